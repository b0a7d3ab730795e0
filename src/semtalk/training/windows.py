"""Training windows over a feature cache: which frames each example covers.

Every stage trains on fixed-length windows (64 frames, the official ``pose_length``) cut from
the clips of a prepared cache (:class:`semtalk.features.cache.FeatureCache`) every ``stride``
frames (20 in training). A :class:`Segment` is a frame range of one clip; windows never cross
a segment's end, so a held-out tail of a clip never leaks into training windows.

When a cache has no ``val`` clips, :func:`training_segments` holds out the last
``holdout_fraction`` of every training clip for validation instead.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from semtalk.errors import DataError
from semtalk.features.cache import CachedClip, FeatureCache

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Segment:
    """Frames ``[start, stop)`` of clip ``clip_id``."""

    clip_id: str
    start: int
    stop: int

    @property
    def num_frames(self) -> int:
        return self.stop - self.start


@dataclass(frozen=True)
class Window:
    """Frames ``[start, start + length)`` of clip ``clip_id``."""

    clip_id: str
    start: int
    length: int

    @property
    def stop(self) -> int:
        return self.start + self.length


def window_starts(num_frames: int, length: int, stride: int) -> list[int]:
    """Starts of every full window of ``length`` frames, every ``stride`` frames."""
    if length < 1 or stride < 1:
        raise ValueError(f"length and stride must be >= 1, got {length}, {stride}")
    return list(range(0, num_frames - length + 1, stride))


def cut_windows(segments: Sequence[Segment], length: int, stride: int) -> list[Window]:
    """All full windows of every segment, in order."""
    return [Window(s.clip_id, s.start + offset, length)
            for s in segments for offset in window_starts(s.num_frames, length, stride)]


def training_segments(
    cache: FeatureCache, holdout_fraction: float = 0.1, min_frames: int = 64
) -> tuple[list[Segment], list[Segment]]:
    """``(train, validation)`` segments of a cache.

    The validation segments are the cache's ``val`` clips. Without any, the last
    ``holdout_fraction`` of every training clip (at least ``min_frames`` frames when the clip is
    long enough) is held out instead, and the training segment stops where it begins.
    """
    if not 0.0 <= holdout_fraction < 1.0:
        raise ValueError(f"holdout_fraction must be in [0, 1), got {holdout_fraction}")
    train_ids = cache.ids("train")
    if not train_ids:
        raise DataError(cache.path, "the cache has no (complete) training clips")
    frames = {clip_id: cache.load(clip_id).num_frames for clip_id in train_ids}
    val_ids = cache.ids("val")
    if val_ids:
        val = [Segment(c, 0, cache.load(c).num_frames) for c in val_ids]
        return [Segment(c, 0, n) for c, n in frames.items()], val
    if holdout_fraction == 0.0:
        return [Segment(c, 0, n) for c, n in frames.items()], []
    _log.info("no 'val' clips in %s: holding out the last %.0f%% of each training clip",
              cache.path, 100 * holdout_fraction)
    train, val = [], []
    for clip_id, n in frames.items():
        held = max(round(n * holdout_fraction), min(min_frames, n // 2))
        train.append(Segment(clip_id, 0, n - held))
        val.append(Segment(clip_id, n - held, n))
    return train, val


class CachedWindows(Dataset):
    """Base of the stages' datasets: ``windows`` of a cache, each clip opened once.

    Subclasses build an example in ``__getitem__`` from :meth:`clip` and :func:`read_rows`.
    """

    def __init__(self, cache: FeatureCache, windows: list[Window]) -> None:
        self.cache = cache
        self.windows = windows
        self._clips: dict[str, CachedClip] = {}

    def __len__(self) -> int:
        return len(self.windows)

    def clip(self, window: Window) -> CachedClip:
        """The (memory-mapped) clip ``window`` belongs to."""
        clip = self._clips.get(window.clip_id)
        if clip is None:
            clip = self._clips[window.clip_id] = self.cache.load(window.clip_id)
        return clip


def read_rows(array: Any, rows: slice | int) -> torch.Tensor:
    """A float32 tensor copy of ``array[rows]`` (cached arrays are read-only memory maps)."""
    return torch.from_numpy(np.array(array[rows], dtype=np.float32))
