"""The :class:`Motion` container and the BEAT2 motion ``.npz`` format.

A BEAT2 motion file holds (checked on real BEAT2 data):

==================  ===========  ==================================================
key                 shape        meaning
==================  ===========  ==================================================
poses               (T, 165) f4  axis-angle of the 55 SMPL-X joints
expressions         (T, 100) f8  expression coefficients
trans               (T, 3) f8    global translation in metres, y up
betas               (300,) f4    body shape, constant per file
model               str          ``"smplx2020"``
gender              str          ``"neutral"``
mocap_frame_rate    int          30
==================  ===========  ==================================================
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from semtalk.body.parts import EXPRESSION_DIM, POSE_DIM, TRANS_DIM
from semtalk.constants import MOTION_FPS
from semtalk.errors import DataError, DataIssue, Severity, require_file
from semtalk.fileio import atomic_path

NUM_BETAS = 300
REQUIRED_KEYS = ("poses", "trans")
OPTIONAL_KEYS = ("expressions", "betas", "model", "gender", "mocap_frame_rate")
KNOWN_KEYS = frozenset(REQUIRED_KEYS + OPTIONAL_KEYS)


@dataclass
class Motion:
    """A motion sequence in the BEAT2 layout (numpy arrays, float32)."""

    poses: np.ndarray
    """``[T, 165]`` axis-angle of the 55 SMPL-X joints."""
    expressions: np.ndarray
    """``[T, 100]`` expression coefficients."""
    trans: np.ndarray
    """``[T, 3]`` global translation in metres."""
    betas: np.ndarray = field(default_factory=lambda: np.zeros(NUM_BETAS, np.float32))
    """``[300]`` shape coefficients."""
    fps: int = MOTION_FPS
    model: str = "smplx2020"
    gender: str = "neutral"

    def __post_init__(self) -> None:
        self.poses = np.asarray(self.poses, dtype=np.float32)
        self.expressions = np.asarray(self.expressions, dtype=np.float32)
        self.trans = np.asarray(self.trans, dtype=np.float32)
        self.betas = np.asarray(self.betas, dtype=np.float32).reshape(-1)
        n = self.poses.shape[0]
        expected = {"poses": (n, POSE_DIM), "expressions": (n, EXPRESSION_DIM),
                    "trans": (n, TRANS_DIM)}
        for name, shape in expected.items():
            if getattr(self, name).shape != shape:
                raise ValueError(f"Motion.{name} must have shape {shape}, "
                                 f"got {getattr(self, name).shape}")

    @property
    def num_frames(self) -> int:
        return int(self.poses.shape[0])

    @property
    def duration(self) -> float:
        """Length in seconds."""
        return self.num_frames / self.fps

    def crop(self, start: int, stop: int) -> Motion:
        """Frames ``[start, stop)`` as a new Motion (betas and metadata shared)."""
        return Motion(self.poses[start:stop], self.expressions[start:stop],
                      self.trans[start:stop], self.betas, self.fps, self.model, self.gender)

    def save_npz(self, path: str | Path) -> Path:
        """Write a BEAT2 ``.npz`` atomically (the same keys, dtypes and metadata as BEAT2)."""
        path = Path(path)
        with atomic_path(path) as tmp, tmp.open("wb") as handle:
            np.savez(
                handle,
                betas=self.betas.astype(np.float32),
                poses=self.poses.astype(np.float32),
                expressions=self.expressions.astype(np.float64),
                trans=self.trans.astype(np.float64),
                model=np.array(self.model),
                gender=np.array(self.gender),
                mocap_frame_rate=np.array(self.fps, dtype=np.int32),
            )
        return path


def _check_finite(path: Path, name: str, array: np.ndarray) -> None:
    bad = ~np.isfinite(array)
    if bad.any():
        frame = int(np.argwhere(bad)[0][0])
        kind = "NaN" if np.isnan(array).any() else "Inf"
        raise DataError(path, f"'{name}' contains {kind} values ({int(bad.sum())} entries, "
                              f"first at frame {frame})")


def _read_key(path: Path, data: np.lib.npyio.NpzFile, key: str) -> np.ndarray:
    try:
        return data[key]
    except (ValueError, OSError, zipfile.BadZipFile, EOFError) as exc:
        raise DataError(path, f"key '{key}' cannot be read (corrupt file?): {exc}") from exc


def read_motion_npz(
    path: str | Path, *, strict: bool = False
) -> tuple[Motion, list[DataIssue]]:
    """Read and validate a BEAT2 motion ``.npz``.

    Args:
        path: the file.
        strict: treat unknown keys and missing optional keys as errors rather than warnings.

    Returns:
        ``(motion, warnings)``. Missing ``expressions`` or ``betas`` are filled with zeros and
        reported as warnings.

    Raises:
        DataError: the file is missing, not a readable npz, lacks ``poses``/``trans``, has
            wrong shapes, a frame rate other than 30, or NaN/Inf values.
    """
    path = require_file(path, "motion file (BEAT2 .npz)")
    try:
        data = np.load(path, allow_pickle=False)
    except (ValueError, OSError, zipfile.BadZipFile, EOFError) as exc:
        raise DataError(path, f"not a readable .npz file: {exc}") from exc
    if not isinstance(data, np.lib.npyio.NpzFile):
        raise DataError(path, "holds a single array, expected an .npz archive with keys "
                              "'poses', 'trans', 'expressions', 'betas'")
    issues: list[DataIssue] = []
    severity = Severity.ERROR if strict else Severity.WARNING
    with data:
        keys = set(data.files)
        missing = [k for k in REQUIRED_KEYS if k not in keys]
        if missing:
            raise DataError(path, f"missing required key(s) {missing}; found {sorted(keys)}")
        unknown = sorted(keys - KNOWN_KEYS)
        if unknown:
            issues.append(DataIssue(path, f"unknown key(s) {unknown} ignored", severity))
        poses = _read_key(path, data, "poses")
        if poses.ndim != 2 or poses.shape[1] != POSE_DIM or poses.shape[0] == 0:
            raise DataError(path, f"'poses' must have shape (T>0, {POSE_DIM}), "
                                  f"got {poses.shape}")
        n = poses.shape[0]
        trans = _read_key(path, data, "trans")
        if trans.shape != (n, TRANS_DIM):
            raise DataError(path, f"'trans' must have shape ({n}, 3) to match 'poses', "
                                  f"got {trans.shape}")
        if "expressions" in keys:
            expressions = _read_key(path, data, "expressions")
            if expressions.shape != (n, EXPRESSION_DIM):
                raise DataError(path, f"'expressions' must have shape ({n}, {EXPRESSION_DIM}) "
                                      f"to match 'poses', got {expressions.shape}")
        else:
            expressions = np.zeros((n, EXPRESSION_DIM), np.float32)
            issues.append(DataIssue(path, "no 'expressions' key: using neutral (zero) "
                                          "expressions", severity))
        if "betas" in keys:
            betas = _read_key(path, data, "betas").reshape(-1)[:NUM_BETAS]
            betas = np.pad(betas, (0, NUM_BETAS - betas.shape[0]))
        else:
            betas = np.zeros(NUM_BETAS, np.float32)
            issues.append(DataIssue(path, "no 'betas' key: using the mean shape", severity))
        fps = int(_read_key(path, data, "mocap_frame_rate")) if "mocap_frame_rate" in keys \
            else MOTION_FPS
        if fps != MOTION_FPS:
            raise DataError(path, f"mocap_frame_rate is {fps}; semtalk needs {MOTION_FPS} fps "
                                  "motion (resample it first)")
        model = str(data["model"]) if "model" in keys else "smplx2020"
        gender = str(data["gender"]) if "gender" in keys else "neutral"
    for name, array in (("poses", poses), ("trans", trans), ("expressions", expressions),
                        ("betas", betas)):
        _check_finite(path, name, np.asarray(array))
    errors = [i for i in issues if i.severity is Severity.ERROR]
    if errors:
        raise DataError(path, "; ".join(i.problem for i in errors))
    motion = Motion(poses, expressions, trans, betas, fps, model, gender)
    return motion, issues
