"""Stick-figure preview videos: front view of the 55 SMPL-X joints, current word, ψ strip.

:class:`StickView` draws the joints as bones coloured by body part, with a head circle, into
the preview layout of :mod:`semtalk.render.preview`; :func:`render_video` writes the video. It
needs nothing beyond matplotlib and the bundled ffmpeg.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.artist import Artist
from matplotlib.axes import Axes
from matplotlib.collections import LineCollection
from matplotlib.patches import Circle

from semtalk.body.parts import EYE_JOINTS, HEAD, NUM_JOINTS, PARENTS, BodyPart
from semtalk.constants import AUDIO_SAMPLE_RATE, MOTION_FPS
from semtalk.render.preview import ProgressFn, draw_floor, render_preview
from semtalk.render.style import PART_COLOURS, PART_LINE_WIDTHS
from semtalk.render.words import WordLike

NECK = 12
HEAD_RADIUS_M = 0.095


def bone_parts() -> list[tuple[int, int, BodyPart]]:
    """``(parent, child, part)`` for the 54 bones; a bone belongs to its child joint's part.

    The eyes belong to no generated part; their bones are drawn with the face.
    """
    owner = {j: part for part in BodyPart for j in part.joints}
    owner.update(dict.fromkeys(EYE_JOINTS, BodyPart.FACE))
    return [(PARENTS[j], j, owner[j]) for j in range(1, NUM_JOINTS)]


class StickView:
    """Front view (x right, y up) of the joints as bones coloured by body part, with a head."""

    def __init__(self, joints: np.ndarray) -> None:
        self.num_frames = int(joints.shape[0])
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
        draw_floor(ax, self.extent(), scale)
        self._lines = LineCollection(
            # matplotlib's stub wants a Sequence; an [n, 2, 2] array is one at runtime
            self._segments(0),  # type: ignore[arg-type]
            colors=[PART_COLOURS[p] for *_, p in self.bones],
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
        # matplotlib's stub wants a Sequence; an [n, 2, 2] array is one at runtime
        self._lines.set_segments(self._segments(frame))  # type: ignore[arg-type]
        self._head.set_center(tuple(self._centres[frame]))

    def close(self) -> None:
        """Nothing to free: matplotlib artists only."""


def check_joints(joints: np.ndarray) -> None:
    """Raise ValueError unless ``joints`` is a finite ``[T, 55, 3]`` array with ``T >= 1``."""
    if joints.ndim != 3 or joints.shape[1:] != (NUM_JOINTS, 3) or joints.shape[0] < 1:
        raise ValueError(f"joints must be [T, {NUM_JOINTS}, 3] with T >= 1, "
                         f"got shape {joints.shape}")
    if not np.isfinite(joints).all():
        raise ValueError("joints contain NaN or infinite values")


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
            from :mod:`semtalk.body.skeleton`). Shown from the front (x right, y up); the camera is
            fixed and frames the whole clip, including the root's travel.
        out_path, fps, audio, sample_rate, words, psi, size, title, progress: as in
            :func:`~semtalk.render.preview.render_preview` (the video has exactly ``T``
            frames; it appears whole or not at all).

    Raises:
        ValueError: bad inputs (checked before anything is written).
        semtalk.render.ffmpeg.FFmpegError: ffmpeg failed; the message quotes its stderr.
    """
    joints = np.asarray(joints, dtype=np.float64)
    check_joints(joints)
    return render_preview(StickView(joints), out_path, fps=fps, audio=audio,
                          sample_rate=sample_rate, words=words, psi=psi, size=size, title=title,
                          progress=progress)
