"""Pseudo semantic labels (``semtalk label``) and how ``semtalk prepare --labels`` reads them.

A labels folder, as ``semtalk label`` writes it::

    LABELS/labels.json                      what made the labels (release, hash of its sparse
                                            model.safetensors, β, root) and one record per clip
                                            (word source, frames)
    LABELS/<speaker>/<video_fn>/<clip>.npy  [T] float32, ψ ∈ [0, 1] per 30 fps frame

A SHOW clip's key is ``speaker/video_fn/clip``; a BEAT2 clip's is
``<speaker name>/beat2/<clip id>`` (:func:`beat2_label_key`). A clip is labelled when its
``.npy`` exists *and* ``labels.json`` records it.

:class:`PseudoLabels` turns a labels folder into the frame-level semantic scores that BEAT2's
``sem/`` files give (:func:`semtalk.data.semantic.frame_semantic_scores`): ``soft`` = ψ where
ψ > β and 0 elsewhere (as a ``sem`` score is 0 on frames without semantic relevance, so the
gate's target 1[score > 0] is 1[ψ > β] in both modes), ``hard`` = 1[ψ > β], with the β
recorded by ``semtalk label`` (or another one given). The
dataset readers of ``semtalk prepare`` (:mod:`semtalk.features.sources`) put them in place of
the ``sem/`` files (BEAT2 layout) or as the only semantic scores (SHOW).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from semtalk.constants import MOTION_FPS
from semtalk.data.beat2 import ClipIdentity
from semtalk.errors import DataError

LABELS_FILE = "labels.json"
LABELS_FORMAT = 1
LABEL_MODES: tuple[str, ...] = ("soft", "hard")
MAX_SHORT_FRAMES = 2
"""A label may be this many frames shorter than the clip (its last value is repeated), or, when
the length of the audio it was made from is known, this many frames away from that length."""


def beat2_label_key(info: ClipIdentity) -> str:
    """``<speaker name>/beat2/<clip id>``: where a BEAT2 clip's label lives."""
    return f"{info.speaker_name}/beat2/{info.clip_id}"


def label_path(folder: str | Path, key: str) -> Path:
    """The ``.npy`` of clip ``key`` in the labels ``folder``."""
    return Path(folder) / f"{key}.npy"


def read_labels_record(folder: str | Path) -> dict[str, Any]:
    """The parsed ``labels.json`` of ``folder``."""
    path = Path(folder) / LABELS_FILE
    if not path.is_file():
        raise DataError(path, "not found: LABELS must be a folder written by `semtalk label`")
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(path, f"corrupt labels record: {exc}") from exc
    if not isinstance(record, dict) or record.get("format") != LABELS_FORMAT \
            or not isinstance(record.get("clips"), dict):
        raise DataError(path, f"not a labels record of format {LABELS_FORMAT} (keys format, "
                              "release, sparse_sha256, beta, clips)")
    return record


class PseudoLabels:
    """Read access to a labels folder.

    Args:
        folder: the ``LABELS`` folder.
        mode: ``"soft"`` (ψ where ψ > β, else 0) or ``"hard"`` (1[ψ > β]).
        beta: β of both modes (default: the β ``semtalk label`` recorded).
    """

    def __init__(self, folder: str | Path, mode: str = "soft", beta: float | None = None
                 ) -> None:
        if mode not in LABEL_MODES:
            raise ValueError(f"labels mode must be one of {LABEL_MODES}, got {mode!r}")
        if beta is not None and not 0.0 <= beta <= 1.0:
            raise ValueError(f"beta must be in [0, 1], got {beta}")
        self.folder = Path(folder)
        self.mode = mode
        self.record = read_labels_record(self.folder)
        self.beta = float(self.record["beta"]) if beta is None else float(beta)

    def identity(self) -> dict[str, Any]:
        """What the labels are, for a cache's fingerprint."""
        return {"mode": self.mode, "beta": self.beta,
                "sparse_sha256": self.record.get("sparse_sha256"),
                "clips": len(self.record["clips"])}

    def has(self, key: str) -> bool:
        return key in self.record["clips"] and label_path(self.folder, key).is_file()

    def clip_record(self, key: str) -> dict[str, Any]:
        """What ``semtalk label`` recorded for clip ``key`` (``{}`` when nothing)."""
        entry = self.record["clips"].get(key)
        return entry if isinstance(entry, dict) else {}

    def missing(self, keys: Iterable[str]) -> list[str]:
        """The ``keys`` that have no label (in the given order)."""
        return [key for key in keys if not self.has(key)]

    def scores(self, key: str, num_frames: int, *, audio_frames: int | None = None
               ) -> np.ndarray:
        """``[num_frames]`` float32 semantic scores of clip ``key``.

        Args:
            num_frames: the clip's length (after cropping motion and audio to their common
                length): the label is cut to it, or padded by repeating its last value.
            audio_frames: the frames of the clip's whole audio, which ``semtalk label`` scored;
                when given, a label more than :data:`MAX_SHORT_FRAMES` frames longer or
                shorter is an error (it was made from other audio).

        Raises:
            DataError: the clip is not labelled, or its ``.npy`` is malformed, more than
                :data:`MAX_SHORT_FRAMES` frames shorter than the clip or away from
                ``audio_frames``.
        """
        path = label_path(self.folder, key)
        if not self.has(key):
            raise DataError(path, f"no pseudo-label for clip {key!r}; run `semtalk label` on "
                                  "this dataset first")
        try:
            psi = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise DataError(path, f"not a readable .npy file: {exc}") from exc
        if psi.ndim != 1 or not np.issubdtype(psi.dtype, np.floating):
            raise DataError(path, f"expected a [T] float array, got {psi.dtype} {psi.shape}")
        if not np.isfinite(psi).all() or psi.min(initial=0.0) < 0 or psi.max(initial=0.0) > 1:
            raise DataError(path, "label values must be finite and in [0, 1]")
        if audio_frames is not None and abs(len(psi) - audio_frames) > MAX_SHORT_FRAMES:
            raise DataError(path, f"has {len(psi)} frames but the clip's audio has "
                                  f"{audio_frames} ({audio_frames / MOTION_FPS:.2f} s; the clip "
                                  f"is {num_frames} frames after cropping to the motion); were "
                                  "the labels made from other audio?")
        if len(psi) < num_frames:
            if num_frames - len(psi) > MAX_SHORT_FRAMES or len(psi) == 0:
                raise DataError(path, f"has {len(psi)} frames but the clip has {num_frames}; "
                                      "were the labels made from other audio?")
            psi = np.concatenate([psi, np.repeat(psi[-1:], num_frames - len(psi))])
        psi = psi[:num_frames].astype(np.float32)
        semantic = psi > self.beta
        if self.mode == "hard":
            return semantic.astype(np.float32)
        return np.where(semantic, psi, np.float32(0.0))
