"""The preview video's layout and writer, shared by every way of drawing the body.

Headless and CPU only: a matplotlib ``Figure`` on the Agg canvas (never pyplot). The figure is
built once; per frame only the moving artists are redrawn over a cached background (blitting)
and the canvas buffer is piped straight into ffmpeg, one frame at a time.

The layout (title, time, current word, ψ strip and bar) is separate from the body drawing: a
:class:`BodyView` draws the body into the main axes, whose data coordinates are metres in the
front view (x right, y up). :class:`~semtalk.render.stick.StickView` draws the joints as a
stick figure, :class:`~semtalk.render.mesh.MeshView` the SMPL-X mesh; :func:`render_preview`
writes the video for either.
"""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol

import numpy as np
from matplotlib.artist import Artist
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from semtalk.constants import AUDIO_SAMPLE_RATE, MOTION_FPS
from semtalk.data.audio import write_wav
from semtalk.data.textgrid import Word
from semtalk.fileio import atomic_path, temp_folder
from semtalk.render.ffmpeg import H264Writer, mux_audio
from semtalk.render.style import (
    BACKGROUND,
    DPI,
    EMPHASIS_COLOUR,
    FLOOR_COLOUR,
    MUTED_COLOUR,
    PSI_THRESHOLD,
    TEXT_COLOUR,
)
from semtalk.render.words import WordLike, WordTrack, normalise_words

ProgressFn = Callable[[int, int], None]
"""Called as ``progress(frames_done, total_frames)`` after every frame."""


class BodyView(Protocol):
    """Draws the body into the main axes; the preview layout owns everything else."""

    @property
    def num_frames(self) -> int:
        """``T``: the frames this view can draw."""
        ...

    def extent(self) -> tuple[float, float, float, float]:
        """``(xmin, xmax, ymin, ymax)`` the camera must show over the whole clip (metres)."""
        ...

    def setup(self, ax: Axes, scale: float) -> list[Artist]:
        """Create the static and moving artists; return the moving ones."""
        ...

    def update(self, frame: int) -> None:
        """Move the artists to ``frame``."""
        ...

    def close(self) -> None:
        """Free what :meth:`setup` acquired (called once the video is written or failed)."""
        ...


def draw_floor(ax: Axes, extent: tuple[float, float, float, float], scale: float) -> None:
    """A floor line just under the lowest point of the clip, a little wider than its extent."""
    xmin, xmax, ymin, _ = extent
    floor_y = ymin - 0.02
    pad = 0.25 * (xmax - xmin + 0.5)
    ax.plot([xmin - pad, xmax + pad], [floor_y, floor_y], color=FLOOR_COLOUR,
            lw=2.0 * scale, solid_capstyle="round", zorder=1)


def _fit_limits(extent: tuple[float, float, float, float], aspect: float,
                margin: float = 0.06) -> tuple[tuple[float, float], tuple[float, float]]:
    """Axis limits that contain ``extent`` with a margin and have ``width/height = aspect``."""
    xmin, xmax, ymin, ymax = extent
    cx, cy = (xmin + xmax) / 2, (ymin + ymax) / 2
    height = max(ymax - ymin, 0.1) * (1 + 2 * margin)
    width = max(xmax - xmin, 0.1) + 2 * margin * height
    if width / height < aspect:
        width = height * aspect
    else:
        height = width / aspect
    return (cx - width / 2, cx + width / 2), (cy - height / 2, cy + height / 2)


class PreviewFrames:
    """The preview figure, built once; :meth:`render` redraws only what moves.

    Args:
        view: draws the body.
        num_frames: ``T``.
        fps: frames per second.
        size: ``(width, height)`` in pixels.
        words: timed words (shown while spoken).
        psi: ``[T]`` semantic score per frame or ``None``.
        title: static caption at the top left.
    """

    def __init__(self, view: BodyView, num_frames: int, fps: float, size: tuple[int, int],
                 words: list[Word], psi: np.ndarray | None, title: str | None,
                 threshold: float = PSI_THRESHOLD) -> None:
        width, height = size
        self.view, self.fps, self.psi, self.threshold = view, fps, psi, threshold
        self.words = WordTrack(words)
        self.fig = Figure(figsize=(width / DPI, height / DPI), dpi=DPI, facecolor=BACKGROUND)
        self.canvas = FigureCanvasAgg(self.fig)
        scale = height / 720
        self.scale = scale
        body_bottom = 0.24 if psi is not None else 0.12
        ax = self.fig.add_axes((0.0, body_bottom, 1.0, 0.92 - body_bottom))
        ax.set_axis_off()
        xlim, ylim = _fit_limits(view.extent(), width / ((0.92 - body_bottom) * height))
        ax.set_xlim(*xlim)
        ax.set_ylim(*ylim)
        moving = list(view.setup(ax, scale))
        if title:
            self.fig.text(0.015, 0.975, title, ha="left", va="top", color=TEXT_COLOUR,
                          fontsize=16 * scale)
        self.clock = self.fig.text(0.985, 0.975, "", ha="right", va="top", color=MUTED_COLOUR,
                                   fontsize=13 * scale, family="monospace")
        self.word = self.fig.text(0.5, body_bottom - 0.015, "", ha="center", va="top",
                                  color=TEXT_COLOUR, fontsize=30 * scale, weight="bold")
        moving += [self.clock, self.word]
        if psi is not None:
            moving += self._build_psi(psi, num_frames, scale)
        for artist in moving:
            artist.set_animated(True)
        self._moving = moving
        self.canvas.draw()
        self._background = self.canvas.copy_from_bbox(self.fig.bbox)

    def _build_psi(self, psi: np.ndarray, num_frames: int, scale: float) -> list[Artist]:
        strip = self.fig.add_axes((0.06, 0.035, 0.78, 0.09))
        times = np.arange(num_frames) / self.fps
        strip.set_xlim(0, max(num_frames - 1, 1) / self.fps)
        strip.set_ylim(0, 1.05)
        strip.set_facecolor("#ffffff")
        strip.fill_between(times, 0, psi, where=psi > self.threshold, color=EMPHASIS_COLOUR,
                           alpha=0.25, lw=0, step="mid")
        strip.plot(times, np.clip(psi, 0, 1.05), color="#555555", lw=1.2 * scale)
        strip.axhline(self.threshold, color=MUTED_COLOUR, lw=0.8 * scale, ls="--")
        strip.tick_params(labelsize=9 * scale, length=2 * scale, colors=MUTED_COLOUR)
        strip.set_yticks([0, self.threshold, 1])
        for spine in strip.spines.values():
            spine.set_color("#cccccc")
        self.fig.text(0.06, 0.13, "semantic score ψ", ha="left", va="bottom",
                      color=MUTED_COLOUR, fontsize=11 * scale)
        (self.cursor,) = strip.plot([0, 0], [0, 1.05], color=TEXT_COLOUR, lw=1.2 * scale)
        (self.dot,) = strip.plot([0], [float(psi[0])], "o", color=TEXT_COLOUR,
                                 ms=5 * scale)
        gauge = self.fig.add_axes((0.875, 0.035, 0.02, 0.09))
        gauge.set_xlim(0, 1)
        gauge.set_ylim(0, 1)
        gauge.set_xticks([])
        gauge.set_yticks([])
        gauge.set_facecolor("#ffffff")
        for spine in gauge.spines.values():
            spine.set_color(MUTED_COLOUR)
        gauge.axhline(self.threshold, color=MUTED_COLOUR, lw=0.8 * scale, ls="--", zorder=3)
        self.bar = Rectangle((0, 0), 1, 0, color=MUTED_COLOUR, zorder=2)
        gauge.add_patch(self.bar)
        self.value = self.fig.text(0.905, 0.08, "", ha="left", va="center",
                                   color=TEXT_COLOUR, fontsize=16 * scale, family="monospace")
        return [self.cursor, self.dot, self.bar, self.value]

    def render(self, frame: int) -> memoryview:
        """Draw ``frame``; returns the ``[H, W, 4]`` RGBA canvas buffer (valid until next call)."""
        seconds = frame / self.fps
        self.view.update(frame)
        self.clock.set_text(f"{seconds:6.2f} s")
        self.word.set_text(self.words.at(seconds))
        emphasised = False
        if self.psi is not None:
            value = float(self.psi[frame])
            emphasised = value > self.threshold
            colour = EMPHASIS_COLOUR if emphasised else MUTED_COLOUR
            self.cursor.set_xdata([seconds, seconds])
            self.dot.set_data([seconds], [min(max(value, 0.0), 1.05)])
            self.bar.set_height(min(max(value, 0.0), 1.0))
            self.bar.set_color(colour)
            self.value.set_text(f"ψ {value:.2f}")
            self.value.set_color(EMPHASIS_COLOUR if emphasised else TEXT_COLOUR)
        self.word.set_color(EMPHASIS_COLOUR if emphasised else TEXT_COLOUR)
        self.canvas.restore_region(self._background)
        for artist in self._moving:
            self.fig.draw_artist(artist)
        return self.canvas.buffer_rgba()


def check_video_args(num_frames: int, fps: float, size: tuple[int, int], out: Path,
                     psi: np.ndarray | None, audio: np.ndarray | None) -> None:
    """Raise ValueError for arguments :func:`render_preview` cannot honour."""
    if num_frames < 1:
        raise ValueError(f"the preview needs at least one frame, got {num_frames}")
    if not fps > 0:
        raise ValueError(f"fps must be positive, got {fps}")
    width, height = size
    if min(width, height) < 64 or width % 2 or height % 2:
        raise ValueError(f"size must be even and at least 64x64 pixels (H.264 with yuv420p "
                         f"needs even sizes), got {width}x{height}")
    if out.suffix.lower() != ".mp4":
        raise ValueError(f"{out}: the preview video must be an .mp4 file")
    if psi is not None and psi.shape != (num_frames,):
        raise ValueError(f"psi must be [T] = [{num_frames}] (one score per frame), "
                         f"got shape {psi.shape}")
    if psi is not None and not np.isfinite(psi).all():
        raise ValueError("psi contains NaN or infinite values")
    if audio is not None and (audio.ndim != 1 or audio.size == 0):
        raise ValueError(f"audio must be mono [N] with N > 0, got shape {audio.shape}")


AUDIO_TAIL_S = 0.25
"""Silence after the video's end in the muxed WAV; the mp4 is cut at the video's duration."""


def _fit_audio(audio: np.ndarray, num_frames: int, fps: float, sample_rate: int) -> np.ndarray:
    """``audio`` trimmed or zero-padded to the video's duration plus :data:`AUDIO_TAIL_S`."""
    samples = round((num_frames / fps + AUDIO_TAIL_S) * sample_rate)
    out = np.zeros(samples, dtype=np.float32)
    n = min(samples, audio.shape[0])
    out[:n] = audio[:n]
    return out


def render_preview(
    view: BodyView,
    out_path: str | Path,
    *,
    fps: float = MOTION_FPS,
    audio: np.ndarray | None = None,
    sample_rate: int = AUDIO_SAMPLE_RATE,
    words: Sequence[WordLike] | None = None,
    psi: np.ndarray | None = None,
    size: tuple[int, int] = (1280, 720),
    title: str | None = None,
    progress: ProgressFn | None = None,
) -> Path:
    """Render a preview video (H.264 mp4) of the body ``view`` draws, optionally with sound.

    Args:
        view: draws the body (front view, metres); the video has its ``num_frames`` frames.
        out_path: the ``.mp4`` to write; it appears whole or not at all.
        fps: frame rate; the video has exactly ``T`` frames at this rate.
        audio: ``[N]`` mono float audio at ``sample_rate``; trimmed or zero-padded to the
            video's duration ``T / fps`` and muxed in as AAC.
        sample_rate: of ``audio``.
        words: ``(text, start_s, end_s)`` tuples (or :class:`~semtalk.data.textgrid.Word`);
            the word being spoken is shown under the figure.
        psi: ``[T]`` frame-level semantic score; drawn as a strip with a cursor and a bar
            holding the current value, highlighted while above 0.5.
        size: ``(width, height)`` in pixels, both even.
        title: caption at the top left.
        progress: called as ``progress(frames_done, T)`` after every frame.

    Returns:
        ``out_path`` as a :class:`~pathlib.Path`.

    Raises:
        ValueError: bad inputs (checked before anything is written).
        semtalk.render.ffmpeg.FFmpegError: ffmpeg failed; the message quotes its stderr.
    """
    out = Path(out_path)
    psi_arr = None if psi is None else np.asarray(psi, dtype=np.float64).reshape(-1)
    audio_arr = None if audio is None else np.asarray(audio, dtype=np.float32)
    size = (int(size[0]), int(size[1]))
    num_frames = int(view.num_frames)
    check_video_args(num_frames, fps, size, out, psi_arr, audio_arr)
    timed_words = normalise_words(words)
    with contextlib.ExitStack() as stack:
        stack.callback(view.close)
        frames = PreviewFrames(view, num_frames, fps, size, timed_words, psi_arr, title)
        tmp = stack.enter_context(atomic_path(out))
        # next to the output (the same disk, and cleared by the next run if this one is killed:
        # semtalk.fileio.clear_stale_temp), not in the system's temporary folder
        work = temp_folder(tmp.parent, "render")
        stack.callback(shutil.rmtree, work, ignore_errors=True)
        video = tmp if audio_arr is None else work / "video.mp4"
        with H264Writer(video, size, fps) as writer:
            for t in range(num_frames):
                writer.write(frames.render(t))
                if progress is not None:
                    progress(t + 1, num_frames)
        if audio_arr is not None:
            wav = write_wav(work / "audio.wav",
                            _fit_audio(audio_arr, num_frames, fps, sample_rate), sample_rate)
            mux_audio(video, wav, tmp, duration=num_frames / fps)
    return out
