"""Stick-figure preview videos: front view of the 55 SMPL-X joints, current word, ψ strip.

Headless and CPU only: a matplotlib ``Figure`` on the Agg canvas (never pyplot). The figure is
built once; per frame only the moving artists are redrawn over a cached background (blitting)
and the canvas buffer is piped straight into ffmpeg, one frame at a time.

The layout (title, time, current word, ψ strip and bar) is separate from the body drawing: a
:class:`BodyView` draws the body into the main axes. :class:`StickView` is the only one today;
a mesh view would implement the same two methods and reuse everything else.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol

import numpy as np
from matplotlib.artist import Artist
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import LineCollection
from matplotlib.figure import Figure
from matplotlib.patches import Circle, Rectangle

from semtalk import AUDIO_SAMPLE_RATE, MOTION_FPS
from semtalk.body import EYE_JOINTS, HEAD, NUM_JOINTS, PARENTS, BodyPart
from semtalk.data.audio import write_wav
from semtalk.fileio import atomic_path
from semtalk.render.ffmpeg import H264Writer, mux_audio
from semtalk.render.style import (
    BACKGROUND,
    DPI,
    EMPHASIS_COLOUR,
    MUTED_COLOUR,
    PART_COLOURS,
    PART_LINE_WIDTHS,
    PSI_THRESHOLD,
    TEXT_COLOUR,
)
from semtalk.render.words import TimedWord, WordLike, WordTrack, normalise_words

NECK = 12
HEAD_RADIUS_M = 0.095
ProgressFn = Callable[[int, int], None]
"""Called as ``progress(frames_done, total_frames)`` after every frame."""


def bone_parts() -> list[tuple[int, int, BodyPart]]:
    """``(parent, child, part)`` for the 54 bones; a bone belongs to its child joint's part.

    The eyes belong to no generated part; their bones are drawn with the face.
    """
    owner = {j: part for part in BodyPart for j in part.joints}
    owner.update(dict.fromkeys(EYE_JOINTS, BodyPart.FACE))
    return [(PARENTS[j], j, owner[j]) for j in range(1, NUM_JOINTS)]


class BodyView(Protocol):
    """Draws the body into the main axes; the preview layout owns everything else."""

    def extent(self) -> tuple[float, float, float, float]:
        """``(xmin, xmax, ymin, ymax)`` the camera must show over the whole clip (metres)."""
        ...

    def setup(self, ax: Axes, scale: float) -> list[Artist]:
        """Create the static and moving artists; return the moving ones."""
        ...

    def update(self, frame: int) -> None:
        """Move the artists to ``frame``."""
        ...


class StickView:
    """Front view (x right, y up) of the joints as bones coloured by body part, with a head."""

    def __init__(self, joints: np.ndarray) -> None:
        self.points = np.ascontiguousarray(joints[..., :2], dtype=np.float64)  # [T, 55, 2]
        self.bones = bone_parts()
        self._parents = np.array([b[0] for b in self.bones])
        self._children = np.array([b[1] for b in self.bones])
        self._centres = self._head_centres()
        self._lines: LineCollection | None = None
        self._head: Circle | None = None

    def _head_centres(self) -> np.ndarray:
        """``[T, 2]`` centre of the head circle: above the head joint, along neck -> head."""
        up = self.points[:, HEAD] - self.points[:, NECK]
        length = np.linalg.norm(up, axis=-1, keepdims=True)
        up = np.where(length > 1e-6, up / np.maximum(length, 1e-6), [0.0, 1.0])
        return self.points[:, HEAD] + 0.6 * HEAD_RADIUS_M * up

    def extent(self) -> tuple[float, float, float, float]:
        heads = self._centres
        xs = np.concatenate([self.points[..., 0].ravel(), heads[:, 0] - HEAD_RADIUS_M,
                             heads[:, 0] + HEAD_RADIUS_M])
        ys = np.concatenate([self.points[..., 1].ravel(), heads[:, 1] + HEAD_RADIUS_M])
        return float(xs.min()), float(xs.max()), float(ys.min()), float(ys.max())

    def setup(self, ax: Axes, scale: float) -> list[Artist]:
        xmin, xmax, ymin, _ = self.extent()
        floor_y = ymin - 0.02
        pad = 0.25 * (xmax - xmin + 0.5)
        ax.plot([xmin - pad, xmax + pad], [floor_y, floor_y], color="#cfcfca",
                lw=2.0 * scale, solid_capstyle="round", zorder=1)
        self._lines = LineCollection(
            self._segments(0), colors=[PART_COLOURS[p] for *_, p in self.bones],
            linewidths=[PART_LINE_WIDTHS[p] * scale for *_, p in self.bones],
            capstyle="round", joinstyle="round", zorder=3)
        ax.add_collection(self._lines)
        self._head = Circle(tuple(self._centres[0]), HEAD_RADIUS_M,
                            facecolor="none", edgecolor=PART_COLOURS[BodyPart.FACE],
                            lw=2.5 * scale, zorder=3)
        ax.add_patch(self._head)
        return [self._lines, self._head]

    def _segments(self, frame: int) -> np.ndarray:
        pts = self.points[frame]
        return np.stack([pts[self._parents], pts[self._children]], axis=1)  # [54, 2, 2]

    def update(self, frame: int) -> None:
        assert self._lines is not None and self._head is not None, "call setup first"
        self._lines.set_segments(self._segments(frame))
        self._head.set_center(tuple(self._centres[frame]))


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
                 words: list[TimedWord], psi: np.ndarray | None, title: str | None,
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


def _check_inputs(joints: np.ndarray, fps: float, size: tuple[int, int], out: Path,
                  psi: np.ndarray | None, audio: np.ndarray | None) -> None:
    if joints.ndim != 3 or joints.shape[1:] != (NUM_JOINTS, 3) or joints.shape[0] < 1:
        raise ValueError(f"joints must be [T, {NUM_JOINTS}, 3] with T >= 1, "
                         f"got shape {joints.shape}")
    if not np.isfinite(joints).all():
        raise ValueError("joints contain NaN or infinite values")
    if not fps > 0:
        raise ValueError(f"fps must be positive, got {fps}")
    width, height = size
    if min(width, height) < 64 or width % 2 or height % 2:
        raise ValueError(f"size must be even and at least 64x64 pixels (H.264 with yuv420p "
                         f"needs even sizes), got {width}x{height}")
    if out.suffix.lower() != ".mp4":
        raise ValueError(f"{out}: the preview video must be an .mp4 file")
    if psi is not None and psi.shape != (joints.shape[0],):
        raise ValueError(f"psi must be [T] = [{joints.shape[0]}] (one score per frame), "
                         f"got shape {psi.shape}")
    if psi is not None and not np.isfinite(psi).all():
        raise ValueError("psi contains NaN or infinite values")
    if audio is not None and (audio.ndim != 1 or audio.size == 0):
        raise ValueError(f"audio must be mono [N] with N > 0, got shape {audio.shape}")


def _fit_audio(audio: np.ndarray, num_frames: int, fps: float, sample_rate: int) -> np.ndarray:
    """Trim or zero-pad ``audio`` to exactly the video's duration."""
    samples = round(num_frames / fps * sample_rate)
    out = np.zeros(samples, dtype=np.float32)
    n = min(samples, audio.shape[0])
    out[:n] = audio[:n]
    return out


def render_video(
    joints: np.ndarray,
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
    """Render a stick-figure preview video (H.264 mp4), optionally with sound.

    Args:
        joints: ``[T, 55, 3]`` joint positions in metres (y up, x towards the body's left, as
            from :mod:`semtalk.skeleton`). Shown from the front (x right, y up); the camera is
            fixed and frames the whole clip, including the root's travel.
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
    joints = np.asarray(joints, dtype=np.float64)
    out = Path(out_path)
    psi_arr = None if psi is None else np.asarray(psi, dtype=np.float64).reshape(-1)
    audio_arr = None if audio is None else np.asarray(audio, dtype=np.float32)
    size = (int(size[0]), int(size[1]))
    _check_inputs(joints, fps, size, out, psi_arr, audio_arr)
    num_frames = joints.shape[0]
    frames = PreviewFrames(StickView(joints), num_frames, fps, size, normalise_words(words),
                           psi_arr, title)
    with atomic_path(out) as tmp, tempfile.TemporaryDirectory(prefix="semtalk-render-") as work:
        video = tmp if audio_arr is None else Path(work) / "video.mp4"
        with H264Writer(video, size, fps) as writer:
            for t in range(num_frames):
                writer.write(frames.render(t))
                if progress is not None:
                    progress(t + 1, num_frames)
        if audio_arr is not None:
            wav = write_wav(Path(work) / "audio.wav",
                            _fit_audio(audio_arr, num_frames, fps, sample_rate), sample_rate)
            mux_audio(video, wav, tmp)
    return out
