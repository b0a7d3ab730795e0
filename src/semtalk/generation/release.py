"""A SemTalk release: the three trained stages in one folder, loaded strictly.

Layout (a training ``OUT`` folder after ``semtalk train tokenizer|base|sparse --out OUT`` has
the same one, minus the manifest, and loads too)::

    RELEASE/semtalk.json       manifest: format, semtalk version, speakers (class -> BEAT2 id)
    RELEASE/tokenizer/<part>/  the motion tokenizer (face, upper, hands, lower)
    RELEASE/base/              the base motion generator (+ features.json)
    RELEASE/sparse/            the sparse motion generator (+ features.json, vocab.json)
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

from semtalk.constants import __version__
from semtalk.data.beat2 import speaker_class
from semtalk.errors import DataError
from semtalk.features.cache import FeatureCache
from semtalk.features.text import Vocabulary
from semtalk.fileio import write_text_atomic
from semtalk.models.base_generator import BaseMotionGenerator
from semtalk.models.sparse_generator import SparseMotionGenerator
from semtalk.models.tokenizer import MotionTokenizer
from semtalk.training.generator import FEATURES_FILE, VOCAB_FILE

MANIFEST = "semtalk.json"
RELEASE_FORMAT = 1
STAGES = ("tokenizer", "base", "sparse")


def cache_speakers(cache: str | Path | FeatureCache) -> dict[int, int]:
    """``{speaker class: BEAT2 speaker id}`` of the clips a cache holds."""
    cache = cache if isinstance(cache, FeatureCache) else FeatureCache(cache)
    ids = sorted({int(c["speaker_id"]) for c in cache.manifest["clips"]})
    return {speaker_class(i): i for i in ids}


def _read_json(path: Path, what: str) -> Any:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise DataError(path, f"not found: a release needs {what}") from None
    except (OSError, json.JSONDecodeError) as exc:
        raise DataError(path, f"cannot read {what}: {exc}") from exc


def _read_manifest(folder: Path) -> dict[str, Any] | None:
    path = folder / MANIFEST
    if not path.exists():
        return None
    manifest = _read_json(path, "the release manifest")
    if not isinstance(manifest, dict) or manifest.get("format") != RELEASE_FORMAT:
        found = manifest.get("format") if isinstance(manifest, dict) else None
        raise DataError(path, f"release format {found!r} is not the format {RELEASE_FORMAT} "
                              f"this semtalk {__version__} reads; use a release made by this "
                              f"version (re-run `semtalk demo` or re-assemble the training runs)")
    return manifest


@dataclass
class Release:
    """The loaded stages of a release, in eval mode.

    Attributes:
        folder: where it was loaded from.
        tokenizer, base, sparse: the three models.
        features: the sparse stage's ``features.json`` (the extractors both generators need).
        vocab: the word vocabulary the sparse model's φ_l ids index.
        speakers: ``{speaker class: BEAT2 speaker id}`` the models were trained on, when known.
    """

    folder: Path
    tokenizer: MotionTokenizer
    base: BaseMotionGenerator
    sparse: SparseMotionGenerator
    features: dict[str, Any]
    vocab: Vocabulary
    speakers: dict[int, int] | None = None

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
        manifest = _read_manifest(folder)
        tokenizer = MotionTokenizer.from_pretrained(folder / "tokenizer", device)
        base = BaseMotionGenerator.from_pretrained(folder / "base", device).eval()
        sparse = SparseMotionGenerator.from_pretrained(folder / "sparse", device).eval()
        features = _read_json(folder / "sparse" / FEATURES_FILE, "the sparse stage's features")
        base_features = _read_json(folder / "base" / FEATURES_FILE, "the base stage's features")
        problems = sparse.config.base_mismatches(base.config)
        if base.config.codes != tokenizer.code_spec:
            problems.append(f"codes: base {base.config.codes} vs tokenizer "
                            f"{tokenizer.code_spec}")
        if base_features.get("audio_features") != features.get("audio_features"):
            problems.append("the base and sparse stages were trained on different speech "
                            "features")
        if problems:
            raise DataError(folder, "the stages of this release do not fit together: "
                                    + "; ".join(problems))
        vocab = Vocabulary.load(folder / "sparse" / VOCAB_FILE)
        if len(vocab) != sparse.config.vocab_size:
            raise DataError(folder / "sparse" / VOCAB_FILE,
                            f"vocabulary has {len(vocab)} words but the sparse model expects "
                            f"{sparse.config.vocab_size}")
        speakers = None
        if manifest is not None and manifest.get("speakers") is not None:
            speakers = {int(k): int(v) for k, v in manifest["speakers"].items()}
        return cls(folder, tokenizer.eval(), base, sparse, features, vocab, speakers)


def assemble_release(out: str | Path, *, tokenizer: str | Path, base: str | Path,
                     sparse: str | Path, speakers: dict[int, int] | None = None) -> Path:
    """Copy the three stage releases into ``out`` and write its manifest, atomically.

    The copy is checked by loading it before it replaces ``out``, so a broken set of stages
    never becomes a release.
    """
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    umask = os.umask(0)
    os.umask(umask)
    staging.chmod(0o777 & ~umask)  # mkdtemp makes 0700; a release gets the usual permissions
    try:
        for name, source in (("tokenizer", tokenizer), ("base", base), ("sparse", sparse)):
            if not Path(source).is_dir():
                raise DataError(Path(source), f"the {name} stage release is missing")
            shutil.copytree(source, staging / name)
        manifest = {"format": RELEASE_FORMAT, "semtalk_version": __version__,
                    "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                    "speakers": None if speakers is None
                    else {str(k): v for k, v in sorted(speakers.items())}}
        write_text_atomic(staging / MANIFEST, json.dumps(manifest, indent=1))
        Release.load(staging)
        if out.exists():
            old = out.with_name(f".{out.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(out, old)
            os.replace(staging, out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return out
