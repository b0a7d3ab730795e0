"""The contract between the pipeline's stages: the release folder and what travels in it.

Training writes releases through this module, generation and evaluation read them through it;
neither side knows the other. A release folder::

    RELEASE/semtalk.json       manifest: format, semtalk version, speakers (class -> BEAT2 id)
    RELEASE/tokenizer/<part>/  the motion tokenizer (face, upper, hands, lower)
    RELEASE/base/              the base motion generator (+ features.json)
    RELEASE/sparse/            the sparse motion generator (+ features.json, vocab.json)
    RELEASE/global_motion/     official family only: the global-motion (translation) network

The manifest's ``family`` says which architecture family the models belong to (DESIGN §7):
``paper`` (default; trained by semtalk) or ``official`` (converted from the official SemTalk
weights by ``semtalk convert official``; its ``provenance`` records the source files).

A training ``OUT`` folder after ``semtalk train tokenizer|base|sparse --out OUT`` has the same
layout minus the manifest, and loads too.

* :class:`FeatureSpec`: the feature identity a generator was trained on (``features.json``),
  typed and validated on load; the JSON on disk is unchanged.
* :func:`check_compatible`: the one check that stages fit together (one error format).
* :func:`publish`: the one way a release folder (a whole release, or one stage's) is written:
  filled in a temporary folder beside it, checked, then renamed into place.
* :class:`Release`: a loaded, cross-checked release (re-exported by :mod:`semtalk.generation`).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from semtalk.config import describe_difference
from semtalk.constants import __version__
from semtalk.data.beat2 import speaker_class
from semtalk.errors import DataError
from semtalk.features.text import Vocabulary
from semtalk.fileio import write_text_atomic
from semtalk.models.base_generator import BaseGeneratorConfig, BaseMotionGenerator
from semtalk.models.global_motion import GlobalMotionNet
from semtalk.models.sparse_generator import SparseGeneratorConfig, SparseMotionGenerator
from semtalk.models.tokenizer import MotionTokenizer

if TYPE_CHECKING:
    from semtalk.features.cache import FeatureCache

# ---------------------------------------------------------------------------------- layout
MANIFEST = "semtalk.json"
"""The release manifest (only an assembled release has one)."""
RELEASE_FORMAT = 1
TOKENIZER = "tokenizer"
BASE = "base"
SPARSE = "sparse"
STAGES = (TOKENIZER, BASE, SPARSE)
"""The stage folders of a release, in training order."""
GLOBAL_MOTION = "global_motion"
"""The official family's global-motion network folder."""
FAMILIES = ("paper", "official")
"""Architecture families (DESIGN §7): never mixed within a release."""
FEATURES_FILE = "features.json"
"""In ``base/`` and ``sparse/``: the :class:`FeatureSpec` the generator was trained on."""
VOCAB_FILE = "vocab.json"
"""In ``sparse/``: the word vocabulary the sparse model's φ_l ids index."""


class IncompatibleStagesError(DataError):
    """Stages (or a stage and a feature cache) that do not fit together."""


def _read_json(path: Path, what: str) -> Any:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise DataError(path, f"not found: a release needs {what}") from None
    except (OSError, json.JSONDecodeError) as exc:
        raise DataError(path, f"cannot read {what}: {exc}") from exc


# ---------------------------------------------------------------------------------- features
@dataclass(frozen=True)
class FeatureSpec:
    """What a generator was trained on, so new inputs get the same features (``features.json``).

    Attributes:
        speech_feature: the γ_h feature the model reads (``spectral`` or ``hubert``).
        audio_features: ``{name: extractor identity}`` of the per-frame features it reads
            (``beat`` and ``speech_feature``).
        window_features: ``{name: extractor identity}`` of the per-window features
            (``sentence``, ``emotion``).
        window, hop: the window grid of the window features (frames).
        body_model: the body model the cache's contacts were computed with.
        cache_fingerprint: the feature cache the model was trained on.
        source: where it was read from (for messages; not part of the identity).
    """

    speech_feature: str
    audio_features: dict[str, Any]
    window_features: dict[str, Any]
    window: int
    hop: int
    body_model: str
    cache_fingerprint: str
    source: str = field(default="", compare=False)

    KEYS = ("speech_feature", "audio_features", "window_features", "window", "hop",
            "body_model", "cache_fingerprint")
    """The JSON keys, in file order."""

    def __post_init__(self) -> None:
        problems = []
        for name in ("audio_features", "window_features"):
            value = getattr(self, name)
            if not isinstance(value, dict) or not all(isinstance(v, dict)
                                                      for v in value.values()):
                problems.append(f"{name} must map names to extractor identities")
        if not problems:
            wanted_audio = ("beat", self.speech_feature)
            problems += [f"audio_features lacks {n!r}" for n in wanted_audio
                         if n not in self.audio_features]
            problems += [f"window_features lacks {n!r}" for n in ("sentence", "emotion")
                         if n not in self.window_features]
        for name in ("window", "hop"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                problems.append(f"{name} must be an integer >= 1, got {value!r}")
        for name in ("speech_feature", "body_model", "cache_fingerprint"):
            if not isinstance(getattr(self, name), str):
                problems.append(f"{name} must be text, got {getattr(self, name)!r}")
        if problems:
            raise DataError(Path(self.source or FEATURES_FILE),
                            "invalid feature identity: " + "; ".join(problems))

    @classmethod
    def from_dict(cls, data: Any, source: str | Path = "") -> FeatureSpec:
        """Validate ``data`` (a ``features.json`` object); DataError names ``source``."""
        where = Path(source or FEATURES_FILE)
        if not isinstance(data, Mapping):
            raise DataError(where, f"invalid feature identity: expected an object, got "
                                   f"{type(data).__name__}")
        missing = [k for k in cls.KEYS if k not in data]
        unknown = sorted(set(data) - set(cls.KEYS))
        if missing or unknown:
            said = [f"missing {missing}"] if missing else []
            said += [f"unknown keys {unknown} (made by a newer semtalk?)"] if unknown else []
            raise DataError(where, "invalid feature identity: " + "; ".join(said))
        return cls(**{k: data[k] for k in cls.KEYS}, source=str(source))

    def to_dict(self) -> dict[str, Any]:
        """The ``features.json`` object (keys in file order)."""
        return {k: getattr(self, k) for k in self.KEYS}

    @classmethod
    def load(cls, path: str | Path) -> FeatureSpec:
        """Read and validate a ``features.json`` (``path`` may be its stage folder)."""
        path = Path(path)
        if path.is_dir():
            path = path / FEATURES_FILE
        return cls.from_dict(_read_json(path, "the stage's features"), path)

    def save(self, path: str | Path) -> Path:
        """Write ``features.json`` atomically (``path`` may be the stage folder)."""
        path = Path(path)
        if path.is_dir():
            path = path / FEATURES_FILE
        write_text_atomic(path, json.dumps(self.to_dict(), indent=1) + "\n")
        return path

    @classmethod
    def from_cache(cls, cache: FeatureCache, speech: str) -> FeatureSpec:
        """What a model trained on ``cache`` with speech feature ``speech`` needs."""
        manifest = cache.manifest
        return cls(speech_feature=speech,
                   audio_features={k: manifest["audio_features"][k] for k in ("beat", speech)},
                   window_features=dict(manifest["window_features"]),
                   window=manifest["window"], hop=manifest["hop"],
                   body_model=manifest["body_model"], cache_fingerprint=cache.fingerprint,
                   source=f"cache {cache.path}")

    def speech_identities(self) -> dict[str, Any]:
        """``{name: identity}`` of the per-frame features the generators read."""
        return {k: v for k, v in self.audio_features.items()
                if k in ("beat", self.speech_feature)}


# ---------------------------------------------------------------------------------- checks
def stage_problems(*, codes: Any = None, base: BaseGeneratorConfig | None = None,
                   sparse: SparseGeneratorConfig | None = None,
                   base_features: FeatureSpec | None = None,
                   features: FeatureSpec | None = None) -> list[str]:
    """What differs between the given parts of a pipeline (empty: they fit together).

    Args:
        codes: the tokenizer's code spec.
        base, sparse: the generator configs.
        base_features: the base stage's feature identity.
        features: the feature identity the other side has (the sparse stage's, or a cache's).
    """
    problems: list[str] = []
    if base is not None and sparse is not None:
        problems += sparse.base_mismatches(base)
        if base.speech_dim != sparse.speech_dim:
            problems.append(f"speech_dim: base {base.speech_dim} vs sparse {sparse.speech_dim}")
    if base is not None and codes is not None and base.codes != codes:
        problems.append(f"codes: base {base.codes} vs tokenizer {codes}")
    if base_features is not None and features is not None:
        have, want = base_features.speech_identities(), features.speech_identities()
        if have != want:
            theirs = base_features.source or "the base stage"
            ours = features.source or "the other side"
            problems += [f"{line} (in {ours})" for line in
                         describe_difference(have, want, "audio_features.", source=theirs)[:6]]
    return problems


def check_compatible(where: str | Path, what: str, **parts: Any) -> None:
    """Raise :class:`IncompatibleStagesError` naming ``where`` unless the parts fit together.

    The message is ``"<what> do not fit together: <difference>; <difference>; ..."``, one
    entry per differing setting (see :func:`stage_problems` for ``parts``).
    """
    problems = stage_problems(**parts)
    if problems:
        raise IncompatibleStagesError(Path(where), f"{what} do not fit together: "
                                                   + "; ".join(problems))


# ---------------------------------------------------------------------------------- writing
def publish(out: str | Path, fill: Callable[[Path], object],
            verify: Callable[[Path], object] | None = None) -> Path:
    """Write the folder ``out`` atomically: ``fill(tmp)`` fills a temporary folder beside it,
    ``verify(tmp)`` may refuse it (by raising), then it is renamed over ``out``.

    On any error the temporary folder is removed and ``out`` is left as it was, so a reader
    sees the old folder or the new one, never part of one. Under ``torchrun`` only rank 0
    writes; every rank gets the path.
    """
    out = Path(out)
    if int(os.environ.get("RANK", "0")) != 0:
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    for stale in out.parent.glob(f".{out.name}.*.tmp"):  # left by a killed writer
        shutil.rmtree(stale, ignore_errors=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    umask = os.umask(0)
    os.umask(umask)
    staging.chmod(0o777 & ~umask)  # mkdtemp makes 0700; a release gets the usual permissions
    try:
        fill(staging)
        if verify is not None:
            verify(staging)
        if out.exists():
            old = out.with_name(f".{out.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(out, old)
            try:
                os.replace(staging, out)
            except BaseException:
                os.replace(old, out)  # the old folder back in place
                raise
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return out


def copy_folder(source: str | Path) -> Callable[[Path], None]:
    """A ``fill`` for :func:`publish` that copies the files of ``source``."""
    def fill(staging: Path) -> None:
        shutil.copytree(source, staging, dirs_exist_ok=True)
    return fill


@dataclass(frozen=True)
class Manifest:
    """``semtalk.json``: what an assembled release records about itself."""

    speakers: dict[int, int] | None = None
    """``{speaker class: BEAT2 speaker id}`` the models were trained on, when known."""
    semtalk_version: str = __version__
    created: str = ""
    family: str = "paper"
    """The architecture family (:data:`FAMILIES`)."""
    provenance: dict[str, Any] | None = None
    """Where converted weights came from (source files and hashes, licence note)."""

    def to_dict(self) -> dict[str, Any]:
        data = {"format": RELEASE_FORMAT, "semtalk_version": self.semtalk_version,
                "created": self.created
                or datetime.now(timezone.utc).isoformat(timespec="seconds"),
                "family": self.family,
                "speakers": None if self.speakers is None
                else {str(k): v for k, v in sorted(self.speakers.items())}}
        if self.provenance is not None:
            data["provenance"] = self.provenance
        return data

    @classmethod
    def load(cls, folder: str | Path) -> Manifest | None:
        """The manifest of the release ``folder``; ``None`` when it has none (a training OUT)."""
        path = Path(folder) / MANIFEST
        if not path.exists():
            return None
        manifest = _read_json(path, "the release manifest")
        if not isinstance(manifest, dict) or manifest.get("format") != RELEASE_FORMAT:
            found = manifest.get("format") if isinstance(manifest, dict) else None
            raise DataError(path, f"release format {found!r} is not the format "
                                  f"{RELEASE_FORMAT} this semtalk {__version__} reads; use a "
                                  f"release made by this version (re-run `semtalk demo` or "
                                  f"re-assemble the training runs)")
        speakers = manifest.get("speakers")
        try:
            speaker_map = None if speakers is None else {int(k): int(v)
                                                         for k, v in speakers.items()}
        except (AttributeError, TypeError, ValueError):
            raise DataError(path, f"'speakers' must map speaker classes to BEAT2 speaker ids "
                                  f"(like {{\"0\": 2}}) or be null, got {speakers!r}") from None
        family = manifest.get("family", "paper")
        if family not in FAMILIES:
            raise DataError(path, f"unknown architecture family {family!r}; this semtalk "
                                  f"{__version__} knows {list(FAMILIES)}")
        written_by = str(manifest.get("semtalk_version", ""))
        if cls._version_key(written_by) > cls._version_key(__version__):
            import warnings

            warnings.warn(f"{path}: written by semtalk {written_by}, newer than this semtalk "
                          f"{__version__}; if loading fails, upgrade semtalk", stacklevel=2)
        provenance = manifest.get("provenance")
        return cls(speaker_map, written_by, str(manifest.get("created", "")),
                   family, provenance if isinstance(provenance, dict) else None)

    @staticmethod
    def _version_key(version: str) -> tuple[int, ...]:
        """``"0.10.2rc1"`` -> ``(0, 10, 2)``: the leading numbers of a version, for ordering."""
        import re

        match = re.match(r"\d+(?:\.\d+)*", version.strip())
        return tuple(int(x) for x in match.group().split(".")) if match else ()


def cache_speakers(cache: str | Path | FeatureCache) -> dict[int, int]:
    """``{speaker class: BEAT2 speaker id}`` of the clips a cache holds."""
    from semtalk.features.cache import FeatureCache

    cache = cache if isinstance(cache, FeatureCache) else FeatureCache(cache)
    ids = sorted({int(c["speaker_id"]) for c in cache.manifest["clips"]})
    return {speaker_class(i): i for i in ids}


# ---------------------------------------------------------------------------------- reading
@dataclass
class Release:
    """The loaded stages of a release, in eval mode.

    Attributes:
        folder: where it was loaded from.
        tokenizer, base, sparse: the three models.
        features: the sparse stage's feature identity (the extractors both generators need).
        vocab: the word vocabulary the sparse model's φ_l ids index.
        speakers: ``{speaker class: BEAT2 speaker id}`` the models were trained on, when known.
        family: the architecture family (``paper`` or ``official``).
        global_motion: the official family's global-motion network (None for ``paper``).
        provenance: where converted weights came from (the manifest's record).
    """

    folder: Path
    tokenizer: MotionTokenizer
    base: BaseMotionGenerator
    sparse: SparseMotionGenerator
    features: FeatureSpec
    vocab: Vocabulary
    speakers: dict[int, int] | None = None
    family: str = "paper"
    global_motion: GlobalMotionNet | None = None
    provenance: dict[str, Any] | None = None

    @classmethod
    def load(cls, folder: str | Path, device: torch.device | str = "cpu") -> Release:
        """Load and cross-check a release (strict; DataError names the file and the problem)."""
        folder = Path(folder)
        if not folder.is_dir():
            raise DataError(folder, "not a release folder (it needs tokenizer/, base/ and "
                                    "sparse/); `semtalk demo` builds one in DIR/release")
        missing = [s for s in STAGES if not (folder / s).is_dir()]
        if missing:
            raise DataError(folder, f"release lacks {missing}: a release holds tokenizer/, "
                                    f"base/ and sparse/ (train them with `semtalk train`)")
        manifest = Manifest.load(folder)
        tokenizer = MotionTokenizer.from_pretrained(folder / TOKENIZER, device)
        base = BaseMotionGenerator.from_pretrained(folder / BASE, device).eval()
        sparse = SparseMotionGenerator.from_pretrained(folder / SPARSE, device).eval()
        features = FeatureSpec.load(folder / SPARSE / FEATURES_FILE)
        base_features = FeatureSpec.load(folder / BASE / FEATURES_FILE)
        check_compatible(folder, "the stages of this release", codes=tokenizer.code_spec,
                         base=base.config, sparse=sparse.config, base_features=base_features,
                         features=features)
        vocab = Vocabulary.load(folder / SPARSE / VOCAB_FILE)
        if len(vocab) != sparse.config.vocab_size:
            raise DataError(folder / SPARSE / VOCAB_FILE,
                            f"vocabulary has {len(vocab)} words but the sparse model expects "
                            f"{sparse.config.vocab_size}")
        speakers = None if manifest is None else manifest.speakers
        family = "paper" if manifest is None else manifest.family
        global_motion = None
        if family == "official":
            if not (folder / GLOBAL_MOTION).is_dir():
                raise DataError(folder, f"an official-family release needs {GLOBAL_MOTION}/ "
                                        f"(the translation network); convert the weights again "
                                        f"with `semtalk convert official`")
            global_motion = GlobalMotionNet.from_pretrained(folder / GLOBAL_MOTION, device).eval()
        return cls(folder, tokenizer.eval(), base, sparse, features, vocab, speakers, family,
                   global_motion, None if manifest is None else manifest.provenance)


def assemble_release(out: str | Path, *, tokenizer: str | Path, base: str | Path,
                     sparse: str | Path, speakers: dict[int, int] | None = None) -> Path:
    """Copy the three stage releases into ``out`` and write its manifest, atomically.

    The copy is checked by loading it before it replaces ``out``, so a broken set of stages
    never becomes a release.
    """
    sources = {TOKENIZER: Path(tokenizer), BASE: Path(base), SPARSE: Path(sparse)}

    def fill(staging: Path) -> None:
        for name, source in sources.items():
            if not source.is_dir():
                raise DataError(source, f"the {name} stage release is missing")
            shutil.copytree(source, staging / name)
        write_text_atomic(staging / MANIFEST,
                          json.dumps(Manifest(speakers).to_dict(), indent=1))

    return publish(out, fill, verify=Release.load)


def release_matches(release: str | Path, stages: Mapping[str, str | Path],
                    speakers: dict[int, int] | None) -> bool:
    """``release`` holds exactly these stage folders (file for file) and ``speakers``."""
    release = Path(release)
    try:
        manifest = Manifest.load(release)
    except DataError:
        return False
    if manifest is None or (manifest.speakers or {}) != (speakers or {}):
        return False
    return all(same_files(Path(source), release / name) for name, source in stages.items())


def same_files(a: Path, b: Path) -> bool:
    """True when folders ``a`` and ``b`` hold the same files with the same bytes."""
    import filecmp

    if not a.is_dir() or not b.is_dir():
        return False
    files_a = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    files_b = sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file())
    return files_a == files_b and all(filecmp.cmp(a / f, b / f, shallow=False)
                                      for f in files_a)
