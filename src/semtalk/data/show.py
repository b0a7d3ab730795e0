"""Reader for the SHOW (TalkSHOW) dataset, laid out as distributed.

A root holds one folder per speaker, one per source video inside it, and one per clip inside
that::

    <speaker>/<video_fn>/<clip>/<clip>.pkl     SMPL-X fit (pickle; see below), 30 fps
    <speaker>/<video_fn>/<clip>/<clip>.wav     speech, 22 kHz stereo 16-bit PCM

``<video_fn>`` is the source video's file name (``...-e27ZIIsvuys.mkv``) and ``<clip>`` is
``<interval>-HH_MM_SS-HH_MM_SS``. The archive has no split; TalkSHOW's
``train_val_test.json`` (keys ``train``/``val``/``test``, each a list of
``speaker/video_fn/clip``) supplies one when given (``split_file``). Without it every clip is
put in ``train`` and a warning says so. SHOW has no transcripts and no semantic labels (see
``semtalk label`` for pseudo-labels). ``semtalk prepare`` reads a SHOW root through
:class:`semtalk.features.sources.ShowSource` (words recognised from the audio, pseudo-labels as
the semantic scores, speaker ids :data:`SHOW_SPEAKER_IDS`, cache ids
:attr:`ShowClipInfo.clip_id`).

**The ``.pkl``** is a protocol-2 pickle of a dict (or a one-element list of one) holding NumPy
arrays and, under ``losses_to_log``, torch tensors of the fitting losses. It is read by a
restricted unpickler (:func:`read_show_pkl`): it admits NumPy's array reconstruction,
``numpy.dtype``, ``collections.OrderedDict`` and ``_codecs.encode``, and replaces torch's two
tensor-rebuild globals (``torch._utils._rebuild_tensor_v2``, ``torch.storage._load_from_bytes``)
by stand-ins that decode the tensor's bytes into NumPy arrays (CUDA tensors included; torch is
never imported). Any other global is refused before it is resolved, with an error naming the
file and the global: nothing the file names is executed.

**Conversion to the BEAT2 motion schema** (:class:`~semtalk.body.motion.Motion`):
``poses = [global_orient | body_pose_axis | jaw | leye | reye | left hand | right hand]``
(165, SMPL-X joint order), ``expressions = expression`` (100), ``trans = transl``,
``betas = betas[0]`` (300). The hands are stored as 12 PCA coefficients; their axis-angle is
``pca @ hands_components[:12]`` (no mean added: BEAT2 poses are consumed with
``flat_hand_mean=False``, which adds the mean itself). The components come from the user's
SMPL-X model file (``hands_componentsl``/``hands_componentsr``), which semtalk does not ship:
without ``body_model`` the motion cannot be converted (a clear error), while audio-only work
such as labelling runs. SHOW's root orientation and translation stay in camera coordinates
(y down), as fitted.
"""

from __future__ import annotations

import codecs
import io
import json
import pickle
import struct
import warnings
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from semtalk.body.motion import NUM_BETAS, Motion
from semtalk.constants import AUDIO_SAMPLE_RATE, MOTION_FPS
from semtalk.data.audio import audio_duration, load_audio, num_frames_for, samples_for
from semtalk.data.beat2 import Clip, speaker_class
from semtalk.data.textgrid import Word
from semtalk.errors import DataError, DataIssue, Severity, require_file

SHOW_SPEAKERS: tuple[str, ...] = ("oliver", "chemistry", "conan", "seth")
"""The four speakers of the SHOW release."""
SHOW_SPEAKER_IDS: dict[str, int] = {"oliver": 1, "chemistry": 2, "seth": 3, "conan": 4}
"""Speaker ids of SHOW clips in a feature cache (``semtalk prepare``): ProbTalk's and TalkSHOW's
order (oliver, chemistry, seth, conan) numbered from 1, so that BEAT2's
:func:`~semtalk.data.beat2.speaker_class` (``id - 1`` for these) makes them speaker classes 0-3
of the generators' 25-way speaker embedding. They overlap BEAT2's ids 1-4 on purpose: a model is
trained on one dataset, and a release made from a SHOW cache lists these ids (``semtalk
generate --speaker 3`` is seth)."""
SHOW_SPLITS: tuple[str, ...] = ("train", "val", "test")
UNSPLIT = "train"
"""The split every clip gets when no split file is given."""
NUM_HAND_COMPONENTS = 12
HAND_DIM = 45
MAX_DURATION_MISMATCH_S = 1.0
"""Motion and audio lengths further apart than this are an error (they do not belong together)."""

POSE_KEYS: dict[str, tuple[int, ...]] = {
    "global_orient": (1, 3),
    "body_pose_axis": (63,),
    "jaw_pose": (3,),
    "leye_pose": (3,),
    "reye_pose": (3,),
    "left_hand_pose": (NUM_HAND_COMPONENTS,),
    "right_hand_pose": (NUM_HAND_COMPONENTS,),
    "expression": (100,),
    "transl": (3,),
}
"""Per-frame keys of a SHOW ``.pkl`` and the shape of one frame (the array is ``[T, *shape]``)."""
REQUIRED_KEYS: tuple[str, ...] = (*POSE_KEYS, "betas")


class RefusedGlobalError(DataError):
    """A pickle names a global that the SHOW unpickler does not admit."""


# ---------------------------------------------------------------------------- torch stand-ins
_STORAGE_DTYPES: dict[str, str] = {
    "FloatStorage": "<f4", "DoubleStorage": "<f8", "HalfStorage": "<f2",
    "LongStorage": "<i8", "IntStorage": "<i4", "ShortStorage": "<i2", "CharStorage": "i1",
    "ByteStorage": "u1", "BoolStorage": "?", "UntypedStorage": "u1",
}
_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C


@dataclass(frozen=True)
class _StorageType:
    """Stands in for a torch storage class (``torch.FloatStorage``, ``torch.cuda.*``)."""

    name: str

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(_STORAGE_DTYPES[self.name])


class _StorageUnpickler(pickle.Unpickler):
    """Reads the object part of torch's legacy ``torch.save`` stream: only storage classes."""

    def __init__(self, file: Any, path: Path) -> None:
        super().__init__(file)
        self._path = path

    def find_class(self, module: str, name: str) -> Any:
        if module in ("torch", "torch.cuda", "torch.storage") and name in _STORAGE_DTYPES:
            return _StorageType(name)
        raise RefusedGlobalError(self._path, f"refused pickle global '{module}.{name}' inside a "
                                             "pickled torch storage (only torch storage types "
                                             "are admitted)")

    def persistent_load(self, pid: Any) -> Any:
        if not (isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage"
                and isinstance(pid[1], _StorageType)):
            raise DataError(self._path, f"unexpected persistent id in a torch storage: {pid!r}")
        return pid


def _storage_from_bytes(path: Path) -> Any:
    """Stand-in for ``torch.storage._load_from_bytes``: the storage as a flat NumPy array."""

    def load(data: bytes) -> np.ndarray:
        stream = io.BytesIO(data)
        try:
            magic = _NoGlobalsUnpickler(stream).load()
            if magic != _LEGACY_MAGIC:
                raise DataError(path, "a pickled torch storage is not in torch's legacy format")
            _NoGlobalsUnpickler(stream).load()  # protocol version
            _NoGlobalsUnpickler(stream).load()  # system info
            pid = _StorageUnpickler(stream, path).load()
            keys = _StorageUnpickler(stream, path).load()
            if not isinstance(keys, list) or len(keys) != 1:
                raise DataError(path, "a pickled torch storage holds more than one storage")
            (count,) = struct.unpack("<q", stream.read(8))
            dtype = pid[1].dtype
            raw = stream.read(count * dtype.itemsize)
            if len(raw) != count * dtype.itemsize:
                raise DataError(path, "a pickled torch storage is truncated")
            return np.frombuffer(raw, dtype=dtype).copy()
        except (pickle.UnpicklingError, EOFError, struct.error, ValueError) as exc:
            if isinstance(exc, DataError):
                raise
            raise DataError(path, f"cannot decode a pickled torch storage: {exc}") from exc

    return load


class _NoGlobalsUnpickler(pickle.Unpickler):
    """Reads the header pickles of a torch storage stream, which name no global."""

    def find_class(self, module: str, name: str) -> Any:
        raise pickle.UnpicklingError(f"global '{module}.{name}' not allowed here")


def _rebuild_tensor(storage: np.ndarray, offset: int, size: tuple[int, ...],
                    stride: tuple[int, ...], *_: Any) -> np.ndarray:
    """Stand-in for ``torch._utils._rebuild_tensor_v2``: the tensor as a NumPy array."""
    if not size:
        return np.array(storage[offset])
    flat = storage[offset:]
    strides = tuple(s * storage.itemsize for s in stride)
    return np.lib.stride_tricks.as_strided(flat, shape=tuple(size), strides=strides).copy()


def _numpy_reconstruct() -> Any:
    try:
        from numpy._core import multiarray
    except ImportError:  # NumPy 1.x
        from numpy.core import multiarray  # type: ignore[no-redef]
    return multiarray._reconstruct


class _ShowUnpickler(pickle.Unpickler):
    """``pickle.Unpickler`` admitting only the globals a SHOW ``.pkl`` needs."""

    def __init__(self, file: Any, path: Path) -> None:
        super().__init__(file, encoding="latin1")
        self._path = path

    def find_class(self, module: str, name: str) -> Any:
        key = f"{module}.{name}"
        if key in ("numpy.core.multiarray._reconstruct", "numpy._core.multiarray._reconstruct"):
            return _numpy_reconstruct()
        allowed: dict[str, Any] = {
            "numpy.ndarray": np.ndarray, "numpy.dtype": np.dtype,
            "collections.OrderedDict": OrderedDict, "_codecs.encode": codecs.encode,
            "torch._utils._rebuild_tensor_v2": _rebuild_tensor,
            "torch.storage._load_from_bytes": _storage_from_bytes(self._path),
        }
        if key not in allowed:
            raise RefusedGlobalError(
                self._path, f"refused pickle global '{key}': a SHOW .pkl only needs NumPy "
                            "arrays and dtypes, collections.OrderedDict, _codecs.encode and "
                            "torch's tensor rebuild (torch._utils._rebuild_tensor_v2, "
                            "torch.storage._load_from_bytes); nothing else is loaded")
        return allowed[key]


def read_show_pkl(path: str | Path) -> dict[str, Any]:
    """The dict of a SHOW ``.pkl``, read without executing anything it names.

    Torch tensors (``losses_to_log``) come back as NumPy arrays. A one-element list of a dict
    (as some tools write) is unwrapped.

    Raises:
        RefusedGlobalError: the pickle names a global outside the admitted set.
        DataError: the file is missing, empty, not a pickle, or holds no dict.
    """
    path = require_file(path, "SHOW motion file (.pkl)")
    try:
        with path.open("rb") as handle, warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # NumPy 2 on NumPy 1 pickles
            obj = _ShowUnpickler(handle, path).load()
    except DataError:
        raise
    except Exception as exc:
        raise DataError(path, f"cannot read as a pickle: {type(exc).__name__}: {exc}") from exc
    if isinstance(obj, list) and len(obj) == 1:
        obj = obj[0]
    if not isinstance(obj, dict):
        raise DataError(path, f"holds a {type(obj).__name__}, expected a dict of SMPL-X "
                              "parameters")
    return obj


# ---------------------------------------------------------------------------- hands
@dataclass(frozen=True)
class HandComponents:
    """The SMPL-X hand PCA bases ``[45, 45]`` (rows are components) of the user's model."""

    left: np.ndarray
    right: np.ndarray
    source: Path

    def to_axis_angle(self, left_pca: np.ndarray, right_pca: np.ndarray
                      ) -> tuple[np.ndarray, np.ndarray]:
        """``[T, k]`` PCA coefficients per hand -> ``[T, 45]`` axis-angle (no mean added)."""
        k = left_pca.shape[1]
        return (left_pca @ self.left[:k]).astype(np.float32), \
            (right_pca @ self.right[:k]).astype(np.float32)


def load_hand_components(model_path: str | Path) -> HandComponents:
    """The hand PCA bases of an SMPL-X model ``.npz`` (or a folder holding
    ``SMPLX_NEUTRAL_2020.npz``): keys ``hands_componentsl`` and ``hands_componentsr``."""
    path = Path(model_path)
    if path.is_dir():
        found = sorted(path.glob("**/SMPLX_NEUTRAL_2020.npz")) or sorted(path.glob("**/*.npz"))
        if not found:
            raise DataError(path, "no SMPL-X model .npz (SMPLX_NEUTRAL_2020.npz) in this folder")
        path = found[0]
    path = require_file(path, "SMPL-X model file (.npz)")
    try:
        with np.load(path, allow_pickle=False) as data:
            missing = [k for k in ("hands_componentsl", "hands_componentsr")
                       if k not in data.files]
            if missing:
                raise DataError(path, f"lacks {missing}: not an SMPL-X model file with hand "
                                      "PCA components")
            left = np.asarray(data["hands_componentsl"], np.float64)
            right = np.asarray(data["hands_componentsr"], np.float64)
    except (OSError, ValueError) as exc:
        if isinstance(exc, DataError):
            raise
        raise DataError(path, f"not a readable SMPL-X .npz: {exc}") from exc
    for name, basis in (("hands_componentsl", left), ("hands_componentsr", right)):
        if basis.ndim != 2 or basis.shape[1] != HAND_DIM or basis.shape[0] < NUM_HAND_COMPONENTS:
            raise DataError(path, f"'{name}' has shape {basis.shape}, expected "
                                  f"(>= {NUM_HAND_COMPONENTS}, {HAND_DIM})")
    return HandComponents(left, right, path)


# ---------------------------------------------------------------------------- conversion
def _frames_of(path: Path, data: dict[str, Any]) -> int:
    missing = [k for k in REQUIRED_KEYS if k not in data]
    if missing:
        raise DataError(path, f"missing key(s) {missing}; found {sorted(data)}")
    arrays = {k: np.asarray(data[k]) for k in POSE_KEYS}
    frames = arrays["transl"].shape[0]
    if frames == 0:
        raise DataError(path, "has zero frames")
    for key, shape in POSE_KEYS.items():
        array = arrays[key]
        if array.shape[0] != frames or int(np.prod(array.shape[1:])) != int(np.prod(shape)):
            raise DataError(path, f"'{key}' has shape {array.shape}, expected "
                                  f"({frames}, {', '.join(map(str, shape))})")
        if not np.isfinite(array).all():
            raise DataError(path, f"'{key}' contains NaN or Inf values")
    return int(frames)


def show_motion(data: dict[str, Any], path: str | Path,
                hands: HandComponents | None) -> Motion:
    """A SHOW ``.pkl`` dict (:func:`read_show_pkl`) as a BEAT2-schema :class:`Motion`.

    Raises:
        DataError: (naming ``path``) missing keys, wrong shapes, NaN, or ``hands`` is None.
    """
    path = Path(path)
    frames = _frames_of(path, data)
    if hands is None:
        raise DataError(path, "converting SHOW motion needs the hand PCA components of your "
                              "SMPL-X model file (hands_componentsl/r): pass body_model= "
                              "(the path of SMPLX_NEUTRAL_2020.npz)")

    def rows(key: str) -> np.ndarray:
        return np.asarray(data[key], np.float32).reshape(frames, -1)

    left, right = hands.to_axis_angle(rows("left_hand_pose"), rows("right_hand_pose"))
    poses = np.concatenate([rows("global_orient"), rows("body_pose_axis"), rows("jaw_pose"),
                            rows("leye_pose"), rows("reye_pose"), left, right], axis=1)
    betas = np.asarray(data["betas"], np.float32).reshape(-1)[:NUM_BETAS]
    betas = np.pad(betas, (0, NUM_BETAS - betas.shape[0]))
    return Motion(poses, rows("expression"), rows("transl"), betas, MOTION_FPS)


# ---------------------------------------------------------------------------- dataset
@dataclass(frozen=True)
class ShowClipInfo:
    """Where a SHOW clip's files are and which split it belongs to."""

    speaker: str
    video_fn: str
    clip: str
    split: str
    root: Path

    @property
    def key(self) -> str:
        """``speaker/video_fn/clip``: the clip's name in TalkSHOW's split file."""
        return f"{self.speaker}/{self.video_fn}/{self.clip}"

    @property
    def folder(self) -> Path:
        return self.root / self.speaker / self.video_fn / self.clip

    @property
    def motion_path(self) -> Path:
        return self.folder / f"{self.clip}.pkl"

    @property
    def audio_path(self) -> Path:
        return self.folder / f"{self.clip}.wav"

    @property
    def clip_id(self) -> str:
        """``<speaker>_<clip>``: the clip's id in a feature cache (a folder name). ``<clip>``
        starts with SHOW's interval id, unique over the release; :class:`ShowDataset` refuses
        a root where two clips would get the same id."""
        return f"{self.speaker}_{self.clip}"

    @property
    def speaker_name(self) -> str:
        return self.speaker

    @property
    def speaker_id(self) -> int:
        """The speaker's id in a feature cache (:data:`SHOW_SPEAKER_IDS`)."""
        try:
            return SHOW_SPEAKER_IDS[self.speaker]
        except KeyError:
            raise DataError(self.folder.parent.parent, f"speaker {self.speaker!r} is not one of "
                                                       f"SHOW's {list(SHOW_SPEAKER_IDS)}: it has "
                                                       "no speaker id") from None

    @property
    def speaker_class(self) -> int:
        return speaker_class(self.speaker_id)


@dataclass
class ShowCheck:
    """The result of validating one clip (``semtalk inspect``)."""

    info: ShowClipInfo
    num_frames: int
    issues: list[DataIssue] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not any(i.severity is Severity.ERROR for i in self.issues)


def _iter_clip_folders(root: Path) -> Iterator[tuple[str, str, str]]:
    for pkl in sorted(root.glob("*/*/*/*.pkl")):
        if pkl.stem == pkl.parent.name:
            clip_dir = pkl.parent
            yield clip_dir.parent.parent.name, clip_dir.parent.name, clip_dir.name


def is_show_root(root: str | Path) -> bool:
    """Whether ``root`` looks like a SHOW root: no BEAT2 split table, and at least one
    ``<speaker>/<video_fn>/<clip>/<clip>.pkl``."""
    path = Path(root)
    if not path.is_dir() or (path / "train_test_split.csv").is_file():
        return False
    return next(_iter_clip_folders(path), None) is not None


def read_split_file(path: str | Path) -> dict[str, str]:
    """TalkSHOW's ``train_val_test.json`` -> ``{speaker/video_fn/clip: split}``."""
    path = require_file(path, "split file (train_val_test.json)")
    try:
        table = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(path, f"not a JSON file: {exc}") from exc
    if not isinstance(table, dict) or not set(table) <= set(SHOW_SPLITS) or not table:
        raise DataError(path, f"expected a JSON object with keys {list(SHOW_SPLITS)}, each a list "
                              "of 'speaker/video_fn/clip'")
    splits: dict[str, str] = {}
    for split, names in table.items():
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise DataError(path, f"'{split}' must be a list of 'speaker/video_fn/clip' strings")
        for name in names:
            key = name.strip().strip("/")
            if key.count("/") != 2:
                raise DataError(path, f"'{split}' entry {name!r} is not 'speaker/video_fn/clip'")
            if key in splits and splits[key] != split:
                raise DataError(path, f"clip {key!r} is in both '{splits[key]}' and '{split}'")
            splits[key] = split
    return splits


class ShowDataset:
    """The clips of a SHOW root, filtered by speaker and split.

    Args:
        root: the dataset root (the folder holding the speaker folders).
        split_file: TalkSHOW's ``train_val_test.json``; without it every clip is in ``train``
            (with a warning in :attr:`warnings`). Clips on disk that the file does not list are
            left out, also with a warning.
        splits: splits to keep (default all).
        speakers: speaker names to keep (default all).
        body_model: the user's SMPL-X model file (for the hand PCA components); needed only to
            convert motion.
    """

    def __init__(self, root: str | Path, *, split_file: str | Path | None = None,
                 splits: Iterable[str] | None = None, speakers: Iterable[str] | None = None,
                 body_model: str | Path | None = None) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise DataError(self.root, "SHOW dataset root not found (or not a folder)")
        wanted = set(SHOW_SPLITS if splits is None else splits)
        unknown = wanted - set(SHOW_SPLITS)
        if unknown:
            raise ValueError(f"unknown split(s) {sorted(unknown)}; expected {list(SHOW_SPLITS)}")
        names = None if speakers is None else set(speakers)
        self.body_model = None if body_model is None else Path(body_model)
        self.warnings: list[str] = []
        found = list(_iter_clip_folders(self.root))
        if not found:
            raise DataError(self.root, "no SHOW clips found: expected "
                                       "<speaker>/<video_fn>/<clip>/<clip>.pkl")
        table = None if split_file is None else read_split_file(split_file)
        if table is None:
            self.warnings.append(f"no split file given: all {len(found)} clips are in "
                                 f"'{UNSPLIT}' (pass TalkSHOW's train_val_test.json)")
        unlisted = 0
        self.clips: list[ShowClipInfo] = []
        for speaker, video_fn, clip in found:
            key = f"{speaker}/{video_fn}/{clip}"
            split = UNSPLIT if table is None else table.get(key)
            if split is None:
                unlisted += 1
                continue
            if split in wanted and (names is None or speaker in names):
                self.clips.append(ShowClipInfo(speaker, video_fn, clip, split, self.root))
        if unlisted:
            self.warnings.append(f"{unlisted} clip(s) on disk are not in the split file "
                                 f"{split_file} and are left out")
        if table is not None:
            on_disk = {f"{s}/{v}/{c}" for s, v, c in found}
            absent = sum(1 for key in table if key not in on_disk)
            if absent:
                self.warnings.append(f"{absent} clip(s) listed in {split_file} are not on disk")
        self._hands: HandComponents | None = None
        self._check_unique_ids(found)

    def _check_unique_ids(self, found: list[tuple[str, str, str]]) -> None:
        seen: dict[str, str] = {}
        for speaker, video_fn, clip in found:
            key = f"{speaker}/{video_fn}/{clip}"
            clip_id = ShowClipInfo(speaker, video_fn, clip, UNSPLIT, self.root).clip_id
            if clip_id in seen:
                raise DataError(self.root / key, f"has the same clip name as {seen[clip_id]}: "
                                                 f"both would be clip {clip_id!r} of a cache")
            seen[clip_id] = key

    def __len__(self) -> int:
        return len(self.clips)

    def __iter__(self) -> Iterator[ShowClipInfo]:
        return iter(self.clips)

    @property
    def speakers(self) -> list[str]:
        return sorted({c.speaker for c in self.clips})

    def hands(self) -> HandComponents | None:
        """The hand PCA components of ``body_model`` (loaded once), or None without one."""
        if self._hands is None and self.body_model is not None:
            self._hands = load_hand_components(self.body_model)
        return self._hands

    def load_motion(self, info: ShowClipInfo) -> Motion:
        """The clip's motion in the BEAT2 schema (needs ``body_model``, see :func:`show_motion`)."""
        return show_motion(read_show_pkl(info.motion_path), info.motion_path, self.hands())

    def load_audio(self, info: ShowClipInfo) -> np.ndarray:
        """The clip's speech as mono float32 at 16 kHz (through :func:`to_mono`)."""
        return load_audio(info.audio_path)

    def clip(self, info: ShowClipInfo, motion: Motion, audio: np.ndarray,
             words: list[Word] | None) -> Clip:
        """Motion, 16 kHz audio and words of a clip cropped to their common length in whole
        frames (a difference over :data:`MAX_DURATION_MISMATCH_S` is an error, one over a
        frame a warning in the clip's issues). The clip has no semantic scores: SHOW has none
        (pseudo-labels, :mod:`semtalk.data.pseudo_labels`, supply them)."""
        issues: list[DataIssue] = []
        audio_frames = num_frames_for(audio.shape[0])
        gap = abs(motion.num_frames - audio_frames) / MOTION_FPS
        if gap > MAX_DURATION_MISMATCH_S:
            raise DataError(info.motion_path, f"motion is {motion.num_frames / MOTION_FPS:.2f} s "
                                              f"but audio {audio_frames / MOTION_FPS:.2f} s; are "
                                              "they the same recording?")
        frames = min(motion.num_frames, audio_frames)
        if frames <= 0:
            raise DataError(info.audio_path, "motion and audio leave no common frame")
        if gap > 1.0 / MOTION_FPS:
            issues.append(DataIssue(info.motion_path, f"motion has {motion.num_frames} frames "
                                    f"and audio {audio_frames} ({gap:.2f} s apart); both cropped "
                                    f"to {frames} frames", Severity.WARNING))
        duration = frames / MOTION_FPS
        if words is not None:
            words = [Word(w.text, w.start, min(w.end, duration)) for w in words
                     if w.start < duration]
        return Clip(info, motion.crop(0, frames),
                    audio[: samples_for(frames)], words,
                    semantic=None, semantic_scores=None, emotion=None, issues=issues)

    def check(self, info: ShowClipInfo) -> ShowCheck:
        """Validate a clip without keeping its data: the ``.pkl`` is parsed fully, the audio
        only through its header."""
        issues: list[DataIssue] = []
        frames = 0
        try:
            frames = _frames_of(info.motion_path, read_show_pkl(info.motion_path))
            audio = require_file(info.audio_path, "audio file")
            audio_frames = num_frames_for(round(audio_duration(audio) * AUDIO_SAMPLE_RATE))
            gap = abs(audio_frames - frames) / MOTION_FPS
            if gap > MAX_DURATION_MISMATCH_S:
                issues.append(DataIssue(info.motion_path, f"motion is {frames / MOTION_FPS:.2f} s "
                                        f"but audio {audio_frames / MOTION_FPS:.2f} s"))
            elif gap > 1.0 / MOTION_FPS:
                issues.append(DataIssue(info.motion_path, f"motion and audio differ by "
                                        f"{gap:.2f} s", Severity.WARNING))
        except DataError as exc:
            issues.append(exc.issue)
        return ShowCheck(info, frames, issues)
