"""The contract every per-frame audio feature extractor follows.

**Frame grid.** Motion runs at 30 fps. Frame ``i`` is the instant ``t_i = i / 30`` s (the same
convention as the ``sem`` rule and the motion samples). An extractor returns exactly
``num_frames`` rows; row ``i`` describes the audio around ``t_i`` (window-based features are
centred on ``t_i``). 16000 / 30 is not an integer hop, so extractors compute on their own
grid and resample or interpolate onto ``t_i``; they never assume a hop of 533 samples (the
official code's drift). ``num_frames`` may reach past the end of the audio: those frames
describe silence (the audio zero-padded), and rows inside the audio stay as they are (the
feature cache asks for a window of silence after every clip, generation for the end of its
last window).

**Identity.** ``name`` + ``version`` + ``config()`` identify what an extractor produces. The
feature cache stores them (its fingerprint) and a model trained on one extractor refuses
features from another, naming the difference. Bump ``version`` whenever outputs change.
"""

from __future__ import annotations

import hashlib
import json
from abc import ABC, abstractmethod
from typing import Any, ClassVar

import numpy as np

from semtalk.constants import MOTION_FPS
from semtalk.data.textgrid import Word


def frame_times(num_frames: int, fps: int = MOTION_FPS) -> np.ndarray:
    """``[num_frames]`` instants (s) of the motion frames: ``i / fps``."""
    return np.arange(num_frames, dtype=np.float64) / fps


def validated_audio(audio: np.ndarray, num_frames: int) -> np.ndarray:
    """``audio`` as a contiguous float32 ``[N]`` array; rejects bad shapes and values."""
    array = np.asarray(audio)
    if array.ndim != 1:
        raise ValueError(f"audio must be mono [N], got shape {array.shape}")
    if num_frames < 0:
        raise ValueError(f"num_frames must be >= 0, got {num_frames}")
    array = np.ascontiguousarray(array, dtype=np.float32)
    if not np.isfinite(array).all():
        raise ValueError("audio contains NaN or Inf samples")
    return array


def pad_to(audio: np.ndarray, num_samples: int) -> np.ndarray:
    """``audio`` ``[N]`` zero-padded at the end to at least ``num_samples`` samples."""
    if audio.shape[0] >= num_samples:
        return audio
    return np.pad(audio, (0, num_samples - audio.shape[0]))


def interpolate_rows(values: np.ndarray, source_times: np.ndarray,
                     target_times: np.ndarray) -> np.ndarray:
    """Linear interpolation of ``values`` ``[K, D]`` (row k at ``source_times[k]``, increasing)
    at ``target_times`` ``[T]`` -> ``[T, D]``. Targets outside the source range take the nearest
    end row.
    """
    if values.shape[0] == 0:
        raise ValueError("cannot interpolate from zero source frames")
    if values.shape[0] == 1:
        return np.repeat(values, target_times.shape[0], axis=0)
    left = np.searchsorted(source_times, target_times, side="right") - 1
    left = np.clip(left, 0, values.shape[0] - 2)
    span = source_times[left + 1] - source_times[left]
    weight = np.clip((target_times - source_times[left]) / span, 0.0, 1.0)[:, None]
    return values[left] * (1.0 - weight) + values[left + 1] * weight


WINDOW_BLOCK = 4096
"""Windows evaluated per block in :func:`window_statistic` (bounds temporaries)."""


def window_statistic(audio: np.ndarray, starts: np.ndarray, window: int, statistic: str
                     ) -> np.ndarray:
    """``max_abs`` or ``mean_square`` of ``audio[s : s + window]`` for every start ``s``
    (``[K]`` int, may lie outside the signal: samples outside count as zeros) -> ``[K]``
    float64. Works block by block, so memory stays bounded on hour-long audio."""
    starts = np.asarray(starts, dtype=np.int64)
    if starts.size == 0:
        return np.zeros(0)
    left = max(0, -int(starts.min()))
    right = max(0, int(starts.max()) + window - audio.shape[0])
    padded = np.pad(np.asarray(audio, dtype=np.float32), (left, right))
    views = np.lib.stride_tricks.sliding_window_view(padded, window)
    out = np.empty(starts.shape[0])
    for lo in range(0, starts.shape[0], WINDOW_BLOCK):
        rows = views[starts[lo : lo + WINDOW_BLOCK] + left].astype(np.float64)
        if statistic == "max_abs":
            out[lo : lo + WINDOW_BLOCK] = np.abs(rows).max(axis=1)
        elif statistic == "mean_square":
            out[lo : lo + WINDOW_BLOCK] = np.einsum("ij,ij->i", rows, rows) / window
        else:
            raise ValueError(f"unknown statistic {statistic!r}")
    return out


class FeatureExtractor(ABC):
    """What every extractor has: a name, a version, a dimension and settings."""

    name: ClassVar[str]
    """Registry name, e.g. ``"beat"``, ``"spectral"``, ``"hubert"``, ``"sentence"``."""
    version: ClassVar[str]
    """Bumped whenever the numbers an extractor produces change."""

    @property
    @abstractmethod
    def dim(self) -> int:
        """Feature channels per row."""

    @abstractmethod
    def config(self) -> dict[str, Any]:
        """JSON-serialisable settings that change the output (paths excluded)."""

    def identity(self) -> dict[str, Any]:
        """What the cache records: name, version, dim and config."""
        return {"name": self.name, "version": self.version, "dim": self.dim,
                "config": self.config()}

    def fingerprint(self) -> str:
        """Short stable hash of :meth:`identity`."""
        blob = json.dumps(self.identity(), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]


class AudioFeatureExtractor(FeatureExtractor):
    """Maps mono float32 16 kHz audio to ``[num_frames, dim]`` float32 features."""

    @abstractmethod
    def extract(self, audio: np.ndarray, num_frames: int) -> np.ndarray:
        """``audio`` ``[N]`` float32 at 16 kHz -> ``[num_frames, dim]`` float32.

        ``num_frames`` may differ from :func:`num_frames_for` of the audio by a few frames
        (the clip's motion decides); rows past the end of the audio describe silence.
        """


def num_windows(num_frames: int, hop: int) -> int:
    """Rows of a window-level feature: one per window start ``0, hop, 2 hop, ...`` that lies
    inside the clip (``ceil(num_frames / hop)``)."""
    return -(-num_frames // hop)


class WindowFeatureExtractor(FeatureExtractor):
    """Features of overlapping windows: sentence-level text (φ_g) and emotion (φ_e).

    Row ``k`` describes frames ``[k * hop, k * hop + window)`` (clipped to the clip). With the
    cache defaults ``window = 64`` (a training window) and ``hop = 4`` (one token), every window
    a stage uses (training stride 20, inference stride 60: both multiples of 4) has its own row,
    so the cache does not depend on the training stride.
    """

    @abstractmethod
    def extract(self, audio: np.ndarray, words: list[Word], num_frames: int, window: int,
                hop: int) -> np.ndarray:
        """``[num_windows(num_frames, hop), dim]`` float32 for mono 16 kHz ``audio`` and the
        clip's timed ``words`` (non-silent, in order; may be empty)."""


def window_words(words: list[Word], start_frame: int, window: int,
                 fps: int = MOTION_FPS) -> list[Word]:
    """Words overlapping frames ``[start_frame, start_frame + window)``, in order."""
    lo, hi = start_frame / fps, (start_frame + window) / fps
    return [w for w in words if w.end > lo and w.start < hi]
