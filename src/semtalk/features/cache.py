"""The feature cache: training reads features from here and never computes them.

A cache is made from a BEAT2-layout root or a SHOW root (with pseudo-labels); the root's reader
(:mod:`semtalk.features.sources`) hands over loaded clips and everything below is the same for
both.

Layout of a cache folder::

    manifest.json            what made the cache: source, extractors (name, version, config),
                             body model, vocabulary, window grid, and the clips it holds
    vocab.json               the word vocabulary (built from the training transcripts, or given)
    clips/<id>/poses.npy     [T, 165] float32   axis-angle, 30 fps
               expressions.npy [T, 100] float32
               trans.npy     [T, 3] float32
               contacts.npy  [T, 4] float32     from forward kinematics (body model in manifest)
               betas.npy     [300] float32
               word_ids.npy  [T] int32          φ_l input (see semtalk.features.text)
               semantic.npy  [T] float32        frame-level semantic score (if annotated)
               audio_<name>.npy  [T, D]         per-frame audio features (γ_b, γ_h)
               window_<name>.npy [W, D]         per-window features (φ_g, φ_e); row k covers
                                                frames [k * hop, k * hop + window)
               tail_audio_<name>.npy  [P, D]    the per-frame features of the P = ``tail``
                                                frames of silence after the clip
               tail_window_<name>.npy [R, D]    the window rows after the last one, up to the
                                                end of that silence
               words.json    the clip's timed words
               clip.json     written last: the clip is complete when it exists, carries the
                             cache's fingerprint and every file it lists is whole
    .lock, .shard-I-of-N.lock   ``flock`` files of running ``prepare`` processes

The features are computed for the clip followed by ``tail`` (one window) frames of silence, in
one pass: generation's last window reaches up to a window past the end of the audio, and
generation from audio pads it with the extractors' features of silence; evaluation of cached
clips pads it with the ``tail_*`` rows, the same values (caches made before tails existed have
none, and evaluation repeats the last row there). Window rows whose window reaches past the
clip describe the clip followed by silence, as generation computes them.

Every array is a plain ``.npy`` (memory-mappable, no pickle). A clip is written into a
temporary folder next to ``clips/<id>`` and renamed into place, so a clip folder appears whole
or not at all. Outputs are deterministic, so an interrupted run that is restarted ends
byte-for-byte equal to an uninterrupted one, and ``shard=(i, n)`` lets ``n`` processes fill one
cache together.

Concurrency: each run holds a shared lock on ``.lock`` for its whole duration and an exclusive
lock on its shard's ``.shard-I-of-N.lock``, so a second run of the same shard stops with "in
use by PID ..." while other shards run beside it. Destructive upkeep (clearing the clips of an
``overwrite``, deleting temporary files of killed runs) needs the exclusive ``.lock``, i.e. no
other run. Two runs whose shards overlap stay correct: both write the same bytes and the clip
is renamed into place by whichever finishes first.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from numpy.lib import format as npy_format
from tqdm import tqdm

from semtalk.body.skeleton import BodyModel, foot_contacts, load_body_model
from semtalk.config import describe_difference
from semtalk.constants import AUDIO_SAMPLE_RATE, MOTION_FPS, __version__
from semtalk.data.beat2 import STANDARD_SPLITS, Clip
from semtalk.data.pseudo_labels import PseudoLabels
from semtalk.data.textgrid import Word
from semtalk.errors import DataError
from semtalk.features.base import AudioFeatureExtractor, WindowFeatureExtractor, num_windows
from semtalk.features.sources import ClipSource, check_labelled, open_source
from semtalk.features.text import Vocabulary, frame_word_ids
from semtalk.fileio import (
    FileLock,
    LockBusyError,
    file_sha256,
    usual_permissions,
    write_text_atomic,
)

CACHE_FORMAT = 1
MANIFEST = "manifest.json"
VOCAB = "vocab.json"
CLIP_RECORD = "clip.json"
CACHE_LOCK = ".lock"
TMP_SUFFIX = ".tmp"
"""Names of temporary files and folders end with this (``.<name>.<random>.tmp[.npy]``)."""
FK_CHUNK = 4096
"""Frames per forward-kinematics block: bounds memory on hour-long clips."""
FLOAT16_MIN_DIM = 32
"""Audio features with at least this many channels are stored as float16."""


class CacheMismatchError(DataError):
    """A cache was made with other extractors (or settings) than a stage needs."""


@dataclass(frozen=True)
class CacheSettings:
    """Settings of the window grid of window-level features."""

    window: int = 64
    hop: int = 4
    tail: int = 64
    """Frames of silence after each clip whose features are kept (``tail_*.npy``; at least the
    most generation's last window reaches past the audio, ``window - 1``; 0 keeps none)."""

    def __post_init__(self) -> None:
        if self.window < 1 or self.hop < 1:
            raise ValueError(f"window and hop must be >= 1, got {self.window} and {self.hop}")
        if self.tail != 0 and self.tail < self.window - 1:
            raise ValueError(f"tail must be 0 or >= window - 1 ({self.window - 1}) frames, the "
                             f"most generation's last window reaches past a clip; got {self.tail}")


def body_model_identity(model_path: str | Path | None) -> str:
    """``"builtin"``, or ``"smplx:<sha256 prefix>"`` of the user's model file."""
    if model_path is None:
        return "builtin"
    path = Path(model_path)
    if path.is_dir():
        found = sorted(path.glob("**/SMPLX_NEUTRAL_2020.npz"))
        path = found[0] if found else path
    return f"smplx:{file_sha256(path)[:16]}"


def _fingerprint(identity: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:16]


@dataclass
class CachedClip:
    """One clip of a cache; arrays are read-only memory maps."""

    clip_id: str
    record: dict[str, Any]
    poses: np.ndarray
    expressions: np.ndarray
    trans: np.ndarray
    contacts: np.ndarray
    betas: np.ndarray
    word_ids: np.ndarray
    semantic: np.ndarray | None
    audio: dict[str, np.ndarray] = field(default_factory=dict)
    windows: dict[str, np.ndarray] = field(default_factory=dict)
    tail_audio: dict[str, np.ndarray] = field(default_factory=dict)
    """Per-frame features of the silence after the clip (empty in caches without tails)."""
    tail_windows: dict[str, np.ndarray] = field(default_factory=dict)
    """Window rows after the last one, over the silence after the clip."""

    @property
    def num_frames(self) -> int:
        return int(self.record["num_frames"])

    @property
    def split(self) -> str:
        return str(self.record["split"])

    @property
    def speaker_class(self) -> int:
        return int(self.record["speaker_class"])

    def words(self) -> list[Word]:
        path = Path(self.record["_folder"]) / "words.json"
        return [Word(t, s, e) for t, s, e in json.loads(path.read_text())]


class FeatureCache:
    """Read access to a prepared cache."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        manifest_path = self.path / MANIFEST
        if not manifest_path.is_file():
            raise DataError(self.path, "not a feature cache (no manifest.json); make one with "
                                       "`semtalk prepare ROOT --out CACHE`")
        try:
            self.manifest = json.loads(manifest_path.read_text())
        except json.JSONDecodeError as exc:
            raise DataError(manifest_path, f"corrupt manifest: {exc}") from exc
        if self.manifest.get("format") != CACHE_FORMAT:
            raise DataError(manifest_path, f"cache format {self.manifest.get('format')} is not "
                                           f"{CACHE_FORMAT}; prepare the cache again")
        self.vocab = Vocabulary.load(self.path / VOCAB)

    @property
    def fingerprint(self) -> str:
        return str(self.manifest["fingerprint"])

    @property
    def window(self) -> int:
        return int(self.manifest["window"])

    @property
    def hop(self) -> int:
        return int(self.manifest["hop"])

    @property
    def tail(self) -> int:
        """Frames of silence after each clip with kept features (0: a cache made before
        tails existed)."""
        return int(self.manifest.get("tail", 0))

    def _folder(self, clip_id: str) -> Path:
        return self.path / "clips" / clip_id

    def _record(self, clip_id: str) -> dict[str, Any] | None:
        """The clip's ``clip.json`` when it was written for this cache's fingerprint."""
        try:
            record = json.loads((self._folder(clip_id) / CLIP_RECORD).read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            return None
        if not isinstance(record, dict) or record.get("fingerprint") != self.fingerprint:
            return None
        return record

    def damage(self, clip_id: str) -> list[str]:
        """What is wrong with a clip that has its ``clip.json``: missing or truncated files.

        Empty when the clip is whole (or has no ``clip.json`` for this cache at all).
        """
        record = self._record(clip_id)
        if record is None:
            return []
        try:
            n = int(record["num_frames"])
            has_semantic = bool(record["has_semantic"])
        except (KeyError, TypeError, ValueError):
            return [f"{CLIP_RECORD} lacks num_frames/has_semantic"]
        rows = num_windows(n, self.hop)
        expected: dict[str, int | None] = {
            "poses": n, "expressions": n, "trans": n, "contacts": n, "betas": None,
            "word_ids": n, **({"semantic": n} if has_semantic else {}),
            **{f"audio_{name}": n for name in self.manifest["audio_features"]},
            **{f"window_{name}": rows for name in self.manifest["window_features"]},
        }
        if self.tail:
            tail_rows = num_windows(n + self.tail, self.hop) - rows
            expected.update({f"tail_audio_{name}": self.tail
                             for name in self.manifest["audio_features"]})
            expected.update({f"tail_window_{name}": tail_rows
                             for name in self.manifest["window_features"]})
        folder = self._folder(clip_id)
        problems = [problem for name, length in expected.items()
                    if (problem := _npy_problem(folder / f"{name}.npy", length))]
        if not (folder / "words.json").is_file():
            problems.append("words.json is missing")
        return problems

    def is_complete(self, clip_id: str) -> bool:
        """Whether the clip was prepared for this cache and all of its files are whole."""
        return self._record(clip_id) is not None and not self.damage(clip_id)

    def ids(self, split: str | None = None, *, complete_only: bool = True) -> list[str]:
        """Clip ids in manifest order, optionally of one split and only complete ones."""
        return [c["id"] for c in self.manifest["clips"]
                if (split is None or c["split"] == split)
                and (not complete_only or self.is_complete(c["id"]))]

    def missing(self) -> list[str]:
        return [c["id"] for c in self.manifest["clips"] if not self.is_complete(c["id"])]

    def load(self, clip_id: str) -> CachedClip:
        folder = self._folder(clip_id)
        record = self._record(clip_id)
        if record is None:
            raise DataError(folder, "clip is not (completely) prepared in this cache; rerun "
                                    "`semtalk prepare` to finish it")
        damage = self.damage(clip_id)
        if damage:
            raise DataError(folder, "clip is damaged (" + "; ".join(damage) + "); rerun "
                                    "`semtalk prepare` to repair it")
        record["_folder"] = str(folder)

        def read(name: str) -> np.ndarray:
            return np.load(folder / f"{name}.npy", mmap_mode="r")

        return CachedClip(
            clip_id, record, read("poses"), read("expressions"), read("trans"),
            read("contacts"), read("betas"), read("word_ids"),
            read("semantic") if record["has_semantic"] else None,
            {name: read(f"audio_{name}") for name in self.manifest["audio_features"]},
            {name: read(f"window_{name}") for name in self.manifest["window_features"]},
            {name: read(f"tail_audio_{name}") for name in self.manifest["audio_features"]}
            if self.tail else {},
            {name: read(f"tail_window_{name}") for name in self.manifest["window_features"]}
            if self.tail else {},
        )

    def issues(self) -> dict[str, list[str]]:
        """``{clip id: issues}`` recorded while preparing (missing files, crops), complete
        clips in manifest order, clips without issues left out."""
        found: dict[str, list[str]] = {}
        for clip_id in self.ids():
            record = self._record(clip_id) or {}
            if record.get("issues"):
                found[clip_id] = [str(issue) for issue in record["issues"]]
        return found

    def require(
        self,
        audio_features: dict[str, dict[str, Any]] | None = None,
        window_features: dict[str, dict[str, Any]] | None = None,
        *,
        body_model: str | None = None,
        window: int | None = None,
        hop: int | None = None,
    ) -> None:
        """Refuse the cache unless it was made with these extractor identities and settings.

        Extractors the cache has beyond those asked for are fine; missing or different ones
        raise :class:`CacheMismatchError` listing every difference.
        """
        problems: list[str] = []
        for kind, wanted in (("audio_features", audio_features),
                             ("window_features", window_features)):
            for name, identity in (wanted or {}).items():
                have = self.manifest[kind].get(name)
                if have is None:
                    problems.append(f"{kind}.{name}: not in the cache (has "
                                    f"{sorted(self.manifest[kind])})")
                else:
                    problems += describe_difference(have, identity, f"{kind}.{name}.")
        for key, value in (("body_model", body_model), ("window", window), ("hop", hop)):
            if value is not None and self.manifest[key] != value:
                problems.append(f"{key}: cache has {self.manifest[key]!r}, needed {value!r}")
        if problems:
            raise CacheMismatchError(self.path / MANIFEST, "made with different features than "
                                     "needed: " + "; ".join(problems))


def _npy_problem(path: Path, length: int | None) -> str:
    """Why ``path`` is not a whole ``.npy`` of ``length`` rows (``""`` when it is)."""
    try:
        with path.open("rb") as handle:
            version = npy_format.read_magic(handle)
            read_header = (npy_format.read_array_header_1_0 if version == (1, 0)
                           else npy_format.read_array_header_2_0)
            shape, _, dtype = read_header(handle)
            data_start = handle.tell()
    except FileNotFoundError:
        return f"{path.name} is missing"
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        return f"{path.name} is unreadable ({exc})"
    size = data_start + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    actual = path.stat().st_size
    if actual != size:
        return f"{path.name} is truncated ({actual} bytes, its header needs {size})"
    if length is not None and (not shape or shape[0] != length):
        return f"{path.name} has shape {shape}, expected {length} rows"
    return ""


def _save_array(path: Path, array: np.ndarray) -> None:
    """Plain write: the clip's temporary folder is what makes the clip atomic."""
    with path.open("wb") as handle:
        np.save(handle, np.ascontiguousarray(array), allow_pickle=False)


def _contacts(body: BodyModel, clip: Clip) -> np.ndarray:
    """Foot contacts computed block by block (one frame of overlap per block)."""
    poses = torch.from_numpy(clip.motion.poses).double()
    trans = torch.from_numpy(clip.motion.trans).double()
    betas = torch.from_numpy(clip.motion.betas).double()
    parts = []
    for start in range(0, clip.num_frames, FK_CHUNK):
        stop = min(start + FK_CHUNK + 1, clip.num_frames)
        joints = body.joints(poses[start:stop], trans[start:stop], betas=betas)
        contacts = foot_contacts(joints)
        parts.append(contacts[: min(FK_CHUNK, stop - start)])
    return torch.cat(parts).numpy().astype(np.float32)


@dataclass
class _Preparer:
    out: Path
    audio_extractors: Sequence[AudioFeatureExtractor]
    window_extractors: Sequence[WindowFeatureExtractor]
    vocab: Vocabulary
    settings: CacheSettings
    body: BodyModel
    fingerprint: str

    def clip(self, clip: Clip) -> None:
        """Prepare one clip in a temporary folder, then rename it to ``clips/<id>``."""
        target = self.out / "clips" / clip.info.clip_id
        target.parent.mkdir(parents=True, exist_ok=True)
        folder = Path(tempfile.mkdtemp(prefix=f".{clip.info.clip_id}.", suffix=TMP_SUFFIX,
                                       dir=target.parent))
        try:
            usual_permissions(folder, directory=True)
            self._write(clip, folder)
            _install(folder, target, self.out)
        finally:
            shutil.rmtree(folder, ignore_errors=True)  # gone already when it was installed

    def _write(self, clip: Clip, folder: Path) -> None:
        n = clip.num_frames
        motion = clip.motion
        arrays = {
            "poses": motion.poses, "expressions": motion.expressions, "trans": motion.trans,
            "contacts": _contacts(self.body, clip), "betas": motion.betas,
            "word_ids": frame_word_ids(clip.words or [], n, self.vocab),
        }
        if clip.semantic_scores is not None:
            arrays["semantic"] = clip.semantic_scores
        padded = n + self.settings.tail  # one pass over the clip and the silence after it
        for extractor in self.audio_extractors:
            values = extractor.extract(clip.audio, padded)
            _check_shape(folder, extractor.name, values, (padded, extractor.dim))
            dtype = np.float16 if extractor.dim >= FLOAT16_MIN_DIM else np.float32
            arrays[f"audio_{extractor.name}"] = values[:n].astype(dtype)
            if self.settings.tail:
                arrays[f"tail_audio_{extractor.name}"] = values[n:].astype(dtype)
        rows = num_windows(n, self.settings.hop)
        for window_extractor in self.window_extractors:
            values = window_extractor.extract(clip.audio, clip.words or [], padded,
                                              self.settings.window, self.settings.hop)
            _check_shape(folder, window_extractor.name, values,
                         (num_windows(padded, self.settings.hop), window_extractor.dim))
            arrays[f"window_{window_extractor.name}"] = values[:rows].astype(np.float32)
            if self.settings.tail:
                arrays[f"tail_window_{window_extractor.name}"] = \
                    values[rows:].astype(np.float32)
        for name, array in arrays.items():
            _save_array(folder / f"{name}.npy", array)
        words = [[w.text, round(w.start, 6), round(w.end, 6)] for w in clip.words or []]
        write_text_atomic(folder / "words.json", json.dumps(words))
        info = clip.info
        record = {
            "id": info.clip_id, "split": info.split, "speaker_id": info.speaker_id,
            "speaker_name": info.speaker_name, "speaker_class": info.speaker_class,
            "emotion": clip.emotion, "num_frames": n, "has_words": clip.words is not None,
            "has_semantic": clip.semantic_scores is not None,
            "issues": [f"{i.severity.value}: {i.problem}" for i in clip.issues],
            "fingerprint": self.fingerprint,
        }
        write_text_atomic(folder / CLIP_RECORD, json.dumps(record, indent=1, sort_keys=True))


def _install(folder: Path, target: Path, out: Path) -> None:
    """Rename the finished clip ``folder`` to ``target``, replacing an older copy there.

    A damaged or outdated copy is moved aside first and deleted after. When another run put a
    whole copy of the same clip there meanwhile, that copy stays: outputs are deterministic.
    """
    cache = FeatureCache(out)
    for _ in range(5):
        try:
            os.rename(folder, target)
            return
        except OSError as exc:
            if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                raise
        if cache.is_complete(target.name):
            return  # another run finished this clip first
        aside = Path(tempfile.mkdtemp(prefix=f".{target.name}.old.", suffix=TMP_SUFFIX,
                                      dir=target.parent))
        try:
            os.rename(target, aside / "clip")
        except FileNotFoundError:
            pass  # another run moved it away first
        finally:
            shutil.rmtree(aside, ignore_errors=True)
    raise DataError(target, "could not put the prepared clip in place: other runs keep "
                            "replacing it")


def _check_shape(folder: Path, name: str, values: np.ndarray, shape: tuple[int, int]) -> None:
    if values.shape != shape:
        raise DataError(folder, f"extractor '{name}' returned shape {values.shape}, "
                                f"expected {shape}")
    if not np.isfinite(values).all():
        raise DataError(folder, f"extractor '{name}' returned NaN or Inf")


def _manifest(source: ClipSource, speakers: Sequence[int] | None, splits: Sequence[str],
              audio_extractors: Sequence[AudioFeatureExtractor],
              window_extractors: Sequence[WindowFeatureExtractor], vocab: Vocabulary,
              settings: CacheSettings, body: str,
              labels: PseudoLabels | None = None) -> dict[str, Any]:
    identity: dict[str, Any] = {
        "format": CACHE_FORMAT, "fps": MOTION_FPS, "sample_rate": AUDIO_SAMPLE_RATE,
        "window": settings.window, "hop": settings.hop, "tail": settings.tail,
        "body_model": body,
        "audio_features": {e.name: e.identity() for e in audio_extractors},
        "window_features": {e.name: e.identity() for e in window_extractors},
        "vocab": {"size": len(vocab), "fingerprint": vocab.fingerprint()},
        **source.identity(),
    }
    if labels is not None:  # only then: caches prepared without labels keep their fingerprint
        identity["semantic_labels"] = labels.identity()
    return {
        **identity,
        "fingerprint": _fingerprint(identity),
        "semtalk_version": __version__,
        "source": {"root": str(source.root.resolve()), "speakers": speakers,
                   "splits": list(splits)},
        "clips": [{"id": c.clip_id, "split": c.split, "speaker_id": c.speaker_id}
                  for c in source.infos()],
    }


def _in_use(out: Path, lock: FileLock) -> str:
    """Who else is preparing ``out`` (``"PID 12, PID 34"``), from the shard lock files."""
    holders = [note for path in sorted(out.glob(".shard-*.lock"))
               if path != lock.path and (note := FileLock.holder_of(path))]
    return ", ".join(holders) or "another process"


def _same_cache(existing: dict[str, Any], manifest: dict[str, Any]) -> bool:
    return existing.get("fingerprint") == manifest["fingerprint"] \
        and existing.get("clips") == manifest["clips"]


def _read_manifest(out: Path) -> dict[str, Any] | None:
    path = out / MANIFEST
    if not path.is_file():
        return None
    try:
        existing = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(path, f"corrupt manifest: {exc}; prepare into another folder or pass "
                              f"--overwrite") from exc
    if not isinstance(existing, dict):
        raise DataError(path, "corrupt manifest: not a JSON object")
    return existing


def _check_output(out: Path, manifest: dict[str, Any], overwrite: bool) -> None:
    """Refuse (before creating anything) a folder that is another cache or not a cache."""
    existing = _read_manifest(out)
    if existing is not None:
        if not _same_cache(existing, manifest) and not overwrite:
            differences = describe_difference(
                {k: v for k, v in existing.items() if k not in ("semtalk_version", "source")},
                {k: v for k, v in manifest.items() if k not in ("semtalk_version", "source")})
            raise CacheMismatchError(out / MANIFEST, "cache was prepared differently (" +
                                     "; ".join(differences[:6]) + "); use another --out "
                                     "folder or --overwrite")
    elif out.exists() and any(not _setup_entry(p) for p in out.iterdir()) and not overwrite:
        raise DataError(out, "folder is not empty and is not a feature cache; choose an empty "
                             "folder or pass --overwrite")


def _setup_entry(path: Path) -> bool:
    """What a starting ``prepare`` writes before its manifest: locks, hidden temporary files
    and the vocabulary (another shard may be setting the cache up right now)."""
    return path.name.startswith(".") or path.name == VOCAB


def _open_output(out: Path, manifest: dict[str, Any], overwrite: bool, vocab: Vocabulary,
                 shard: tuple[int, int]) -> list[FileLock]:
    """Lock the cache for this run, set it up, and return the held locks (release them).

    Holds the shard's lock exclusively and the cache lock shared. Clearing another cache
    (``overwrite``) and deleting temporary files of killed runs happen only while no other run
    holds the cache.
    """
    _check_output(out, manifest, overwrite)
    out.mkdir(parents=True, exist_ok=True)
    shard_lock = FileLock(out / f".shard-{shard[0]}-of-{shard[1]}.lock")
    try:
        shard_lock.acquire(exclusive=True, wait=False)
    except LockBusyError as exc:
        shard_lock.release()
        holder = exc.holder or "(PID unknown)"
        raise DataError(out, f"cache is in use by {holder} (`semtalk prepare` of shard "
                             f"{shard[0]}/{shard[1]}); wait for it to finish (use --shard i/n "
                             f"to split work between processes)") from None
    cache_lock = FileLock(out / CACHE_LOCK)
    try:
        try:
            cache_lock.acquire(exclusive=True, wait=False)
            alone = True
        except LockBusyError:
            cache_lock.acquire(exclusive=False, wait=True)  # waits out another run's setup
            alone = False
        existing = _read_manifest(out)
        if existing is not None and not _same_cache(existing, manifest):
            if not overwrite:  # another run replaced it since _check_output
                _check_output(out, manifest, overwrite)
            if not alone:
                raise DataError(out, f"cannot --overwrite: the cache is in use by "
                                     f"{_in_use(out, shard_lock)} (`semtalk prepare`)")
            shutil.rmtree(out / "clips", ignore_errors=True)
        if alone:  # temporary files of killed runs (a running one would hold the lock)
            for stale in [*out.glob(f".*{TMP_SUFFIX}*"), *out.glob(f"clips/.*{TMP_SUFFIX}")]:
                if stale.is_dir():
                    shutil.rmtree(stale, ignore_errors=True)
                else:
                    stale.unlink(missing_ok=True)
        vocab.save(out / VOCAB)
        write_text_atomic(out / MANIFEST, json.dumps(manifest, indent=1, sort_keys=True))
        if alone:
            cache_lock.acquire(exclusive=False, wait=True)
            written = _read_manifest(out)
            if written is None or written["fingerprint"] != manifest["fingerprint"]:
                raise DataError(out / MANIFEST, "replaced by another `semtalk prepare "
                                                "--overwrite` while this run started")
    except BaseException:
        cache_lock.release()
        shard_lock.release()
        raise
    return [shard_lock, cache_lock]


def _print_note(text: str) -> None:
    tqdm.write(text, file=sys.stderr)


def prepare_cache(
    root: str | Path | ClipSource,
    out: str | Path,
    *,
    audio_extractors: Sequence[AudioFeatureExtractor],
    window_extractors: Sequence[WindowFeatureExtractor] = (),
    speakers: Sequence[int] | None = None,
    splits: Sequence[str] = STANDARD_SPLITS,
    vocab: Vocabulary | None = None,
    settings: CacheSettings = CacheSettings(),
    body_model_path: str | Path | None = None,
    shard: tuple[int, int] = (0, 1),
    overwrite: bool = False,
    progress: bool = True,
    semantic_labels: PseudoLabels | None = None,
    note: Callable[[str], None] = _print_note,
) -> FeatureCache:
    """Fill (or complete) a feature cache from a dataset.

    Args:
        root: a BEAT2-layout root (read with ``speakers`` and ``splits``), or any opened
            :class:`~semtalk.features.sources.ClipSource` (a SHOW root:
            :func:`~semtalk.features.sources.open_source`); ``speakers`` and ``splits`` are
            then only recorded.
        audio_extractors / window_extractors: what to compute; their identities go into the
            manifest. Names must be unique.
        vocab: the word vocabulary; default the source's (BEAT2: built from the training
            transcripts; SHOW has none, so it must be given).
        body_model_path: SMPL-X model for exact foot contacts (built-in skeleton if ``None``).
        shard: ``(i, n)``: this process prepares clips ``i, i + n, i + 2n, ...``.
        overwrite: replace a cache prepared with other settings.
        semantic_labels: pseudo-labels (``semtalk label``) used as every clip's semantic
            scores instead of its ``sem/`` file; every clip must have one (checked before
            anything is written).
        note: prints the source's warnings and what the run repairs (default: to stderr).

    Raises :class:`DataError` when another run is preparing the same shard of ``out``
    ("in use by PID ..."), and :class:`CacheMismatchError` when ``out`` holds another cache.
    Every run checks that this shard's complete clips are whole and prepares damaged ones
    again.
    """
    index, count = shard
    if not 0 <= index < count:
        raise ValueError(f"shard must be i/n with 0 <= i < n, got {index}/{count}")
    names = [e.name for e in [*audio_extractors, *window_extractors]]
    if len(set(names)) != len(names):
        raise ValueError(f"extractor names must be unique, got {names}")
    out = Path(out)
    source = open_source(root, speakers=speakers, splits=splits) \
        if isinstance(root, (str, Path)) else root
    infos = source.infos()
    if not infos:
        raise DataError(source.root, f"no clips for speakers {speakers} and splits "
                                     f"{list(splits)}")
    for warning in source.warnings:
        note(f"warning: {warning}")
    if semantic_labels is not None:
        check_labelled(source, semantic_labels)
    vocab = vocab or source.vocabulary()
    body = body_model_identity(body_model_path)
    manifest = _manifest(source, speakers, splits, audio_extractors, window_extractors, vocab,
                         settings, body, semantic_labels)
    locks = _open_output(out, manifest, overwrite, vocab, shard)
    try:
        cache = FeatureCache(out)
        todo = []
        for info in infos[index::count]:
            damage = cache.damage(info.clip_id)
            if damage:
                note(f"{out / 'clips' / info.clip_id}: " + "; ".join(damage) +
                     "; preparing the clip again")
            if damage or not cache.is_complete(info.clip_id):
                todo.append(info)
        preparer = _Preparer(out, audio_extractors, window_extractors, vocab, settings,
                             load_body_model(body_model_path), manifest["fingerprint"])
        for info in tqdm(todo, desc=f"preparing {out.name}", unit="clip",
                         disable=not progress):
            preparer.clip(source.load(info, semantic_labels))
    finally:
        for lock in locks:
            lock.release()
    return cache
