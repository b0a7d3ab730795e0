"""Precomputed official-family inputs: the ``generation_inputs.npz`` layout of the fixture.

``semtalk features`` writes one, ``semtalk generate --features`` reads one, so features can be
computed on one machine and motion generated on another, and outputs compared with the
official code's (the fixture's ``golden/generation_inputs.npz`` is such a file). Keys (n frames,
R windows; README §3a of the fixture):

==================  ===============  =====================================================
``hubert``          (>= n, 1024)     official HuBERT features (rows past n are ignored)
``beat``            (>= n, 3)        official beat features
``in_word``         (n,) int         word ids under the official vocabulary
``feat_clip_text``  (R, 512)         CLIP sentence embedding of window r (frames 60r ..)
``emo_clip_text``   (R, 512)         CLIP emotion-label embedding (no effect on the output)
``tar_pose``        (n, 165)         axis-angle; frames 0-3 are the first window's seed
``tar_trans``       (n, 3)           translation; frame 0 starts the integration
``tar_contact``     (n, 4)           foot contacts of the seed frames
``tar_exps``        (n, 100)         optional, unused by generation
``tar_beta``        (n, 300)         optional: betas written to the output
``tar_id``          (n, 1) int       speaker class (0-24)
==================  ===============  =====================================================

n is ``len(in_word)``; only frames 0-3 of the ``tar_*`` arrays matter.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from semtalk.errors import DataError
from semtalk.fileio import atomic_path

REQUIRED = ("hubert", "beat", "in_word", "feat_clip_text", "emo_clip_text", "tar_pose",
            "tar_trans", "tar_contact", "tar_id")
OPTIONAL = ("tar_exps", "tar_beta")
SEED_FRAMES = 4


@dataclass
class OfficialInputs:
    """One utterance's official-family inputs (see the module docstring for the layout)."""

    hubert: np.ndarray
    beat: np.ndarray
    in_word: np.ndarray
    feat_clip_text: np.ndarray
    emo_clip_text: np.ndarray
    tar_pose: np.ndarray
    tar_trans: np.ndarray
    tar_contact: np.ndarray
    tar_id: np.ndarray
    tar_exps: np.ndarray | None = None
    tar_beta: np.ndarray | None = None

    @property
    def num_frames(self) -> int:
        """n, the word frames."""
        return len(self.in_word)

    @property
    def speaker_class(self) -> int:
        """The speaker class of frame 0."""
        return int(np.asarray(self.tar_id).reshape(-1)[0])

    def problems(self) -> list[str]:
        """Everything wrong with the arrays (empty when fine)."""
        problems = []
        n = self.num_frames
        if n < SEED_FRAMES:
            problems.append(f"in_word has {n} frames; at least {SEED_FRAMES} are needed")
        widths = {"hubert": None, "beat": 3, "tar_pose": 165, "tar_trans": 3,
                  "tar_contact": 4, "feat_clip_text": None, "emo_clip_text": None}
        for name, width in widths.items():
            value = getattr(self, name)
            if value.ndim != 2 or (width is not None and value.shape[1] != width):
                wanted = f"(rows, {width})" if width else "(rows, channels)"
                problems.append(f"{name} must be {wanted}, got {value.shape}")
            elif not np.isfinite(value).all():
                problems.append(f"{name} contains NaN or Inf")
        for name in ("hubert", "beat"):
            value = getattr(self, name)
            if value.ndim == 2 and len(value) < n:
                problems.append(f"{name} has {len(value)} rows, fewer than the {n} word frames")
        for name in ("tar_pose", "tar_trans", "tar_contact"):
            value = getattr(self, name)
            if value.ndim == 2 and len(value) < SEED_FRAMES:
                problems.append(f"{name} needs the {SEED_FRAMES} seed frames, has {len(value)}")
        if self.feat_clip_text.shape != self.emo_clip_text.shape:
            problems.append(f"feat_clip_text {self.feat_clip_text.shape} and emo_clip_text "
                            f"{self.emo_clip_text.shape} must have one shape")
        if not len(self.feat_clip_text):
            problems.append("feat_clip_text has no window rows")
        if self.in_word.ndim != 1 or not np.issubdtype(self.in_word.dtype, np.integer):
            problems.append(f"in_word must be 1-d integers, got {self.in_word.dtype} "
                            f"{self.in_word.shape}")
        elif n and self.in_word.min() < 0:
            problems.append("in_word has negative ids")
        if not np.issubdtype(np.asarray(self.tar_id).dtype, np.integer) or not self.tar_id.size:
            problems.append("tar_id must hold integer speaker classes")
        return problems

    @classmethod
    def load(cls, path: str | Path) -> OfficialInputs:
        """Read and check a file (DataError names it and every problem)."""
        path = Path(path)
        try:
            with np.load(path, allow_pickle=False) as data:
                arrays = {name: np.asarray(data[name]) for name in data.files}
        except FileNotFoundError:
            raise DataError(path, "features file not found") from None
        except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
            raise DataError(path, f"not a readable .npz features file: {exc}") from exc
        missing = [name for name in REQUIRED if name not in arrays]
        if missing:
            raise DataError(path, f"not an official-family features file: it lacks {missing} "
                                  f"(`semtalk features` writes one; keys: {list(REQUIRED)})")
        inputs = cls(**{name: arrays[name] for name in REQUIRED})
        inputs.tar_exps, inputs.tar_beta = arrays.get("tar_exps"), arrays.get("tar_beta")
        problems = inputs.problems()
        if problems:
            raise DataError(path, "invalid features: " + "; ".join(problems))
        return inputs

    def save(self, path: str | Path) -> Path:
        """Write atomically (uncompressed ``.npz``)."""
        problems = self.problems()
        if problems:
            raise ValueError("invalid features: " + "; ".join(problems))
        arrays = {name: getattr(self, name) for name in REQUIRED + OPTIONAL
                  if getattr(self, name) is not None}
        path = Path(path)
        with atomic_path(path) as tmp, tmp.open("wb") as handle:
            np.savez(handle, **arrays)
        return path
