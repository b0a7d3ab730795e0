"""``semtalk convert official``: the published official SemTalk weights as a semtalk release.

Input: one of the authors' zips (``weights_semtalk_no_smplx.zip``, speaker 2;
``SemTalk_all_speakers_weights_25spk.zip``, 25 speakers) or a folder holding the same files
(:mod:`semtalk.official.sources` finds them by name and checks a ``SHA256SUMS``). Output: a
normal release folder (:mod:`semtalk.release`) whose manifest marks the ``official`` family::

    RELEASE/semtalk.json            family "official", speakers, provenance (hashes, licence)
    RELEASE/tokenizer/<part>/       the four official RVQ-VAEs
    RELEASE/base/                   the base generator (+ features.json: the official recipe)
    RELEASE/sparse/                 the sparse generator (+ features.json, vocab.json)
    RELEASE/global_motion/          the global-motion (translation) network

Every tensor goes through a strict key map (:mod:`semtalk.official.generators`,
:mod:`semtalk.official.tokenizers`); the word embedding is the trained one in the sparse
checkpoint, not ``vocab.pkl``'s (which only gives the words and their ids). The release is
written atomically and loaded back before it replaces ``--out``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from semtalk.body.parts import BodyPart
from semtalk.data.beat2 import speaker_class
from semtalk.errors import DataError
from semtalk.fileio import write_text_atomic
from semtalk.models.pretrained import write_checksums
from semtalk.models.rvqvae import RVQVAE
from semtalk.models.sparse_generator import SparseMotionGenerator
from semtalk.models.tokenizer import MotionTokenizer
from semtalk.official.generators import KeyMap, base_from_official, sparse_from_official
from semtalk.official.sources import load_official_state_dict, open_official_source
from semtalk.official.tokenizers import global_motion_from_official, rvq_from_official
from semtalk.release import (
    BASE,
    FEATURES_FILE,
    GLOBAL_MOTION,
    MANIFEST,
    SPARSE,
    TOKENIZER,
    VOCAB_FILE,
    FeatureSpec,
    Manifest,
    Release,
    publish,
)

OFFICIAL_REPOSITORY = "Xiangyue-Zhang/SemTalk"
OFFICIAL_COMMIT = "12589ef"
"""The official code the ``official`` family reproduces (the golden fixture's commit)."""
LICENCE_NOTE = (
    "The official SemTalk weights were published without a licence grant: the right to use "
    "or redistribute them is the authors' to grant, not semtalk's. This release records where "
    "they came from; check the authors' terms before sharing it or its outputs.")
RVQ_FILES = {BodyPart.FACE: "rvq_face_600.bin", BodyPart.UPPER: "rvq_upper_500.bin",
             BodyPart.HANDS: "rvq_hands_500.bin", BodyPart.LOWER: "rvq_lower_600.bin"}
BEAT2_SPEAKERS = tuple(i for i in range(1, 31) if i not in (9, 15, 20, 26, 29))
"""The 25 BEAT2 speaker ids of the official speaker classes 0-24 (:func:`speaker_class`: ids 27,
28 and 30 take the classes of the absent 20, 15 and 9)."""
SPEAKER_2_ZIP = "weights_semtalk_no_smplx.zip"


def official_feature_spec() -> FeatureSpec:
    """The feature recipe of the official family (what ``features.json`` records): the official
    3-channel beat features and HuBERT pipeline (quirks included), the official vocabulary,
    CLIP ViT-B/32 text embeddings per window, and the emotion input (no effect)."""
    source = {"code": f"{OFFICIAL_REPOSITORY}@{OFFICIAL_COMMIT}"}
    return FeatureSpec(
        speech_feature="hubert_official",
        audio_features={
            "beat": {"name": "beat_official", "channels": ["amplitude", "energy", "onset"],
                     **source},
            "hubert_official": {"name": "hubert_official",
                                "model": "facebook/hubert-large-ls960-ft", "dim": 1024,
                                "load_rate": 22050, "fed_as": 16000, "chunk": 320000,
                                **source}},
        window_features={
            "sentence": {"name": "clip_text", "model": "openai/clip-vit-base-patch32",
                         "dim": 512, **source},
            "emotion": {"name": "clip_emotion_label", "dim": 512, "effect": "none", **source}},
        window=64, hop=60, body_model="smplx", cache_fingerprint=f"official-{OFFICIAL_COMMIT}")


def speakers_for(source_name: str, speakers: str | None) -> dict[int, int]:
    """``{class: BEAT2 id}`` of the converted models.

    ``speakers``: ``"all"`` (the 25-speaker weights), a comma-separated list of BEAT2 ids, or
    None: all for the 25-speaker zip, speaker 2 otherwise (the single-speaker weights).
    """
    if speakers is None:
        speakers = "all" if "25spk" in source_name or "all_speakers" in source_name else "2"
    if speakers == "all":
        ids = list(BEAT2_SPEAKERS)
    else:
        try:
            ids = [int(part) for part in speakers.split(",") if part.strip()]
        except ValueError:
            raise ValueError(f"--speakers must be 'all' or BEAT2 ids like '2,4', got "
                             f"{speakers!r}") from None
    table: dict[int, int] = {}
    for beat2_id in ids:
        cls = speaker_class(beat2_id)
        if not 0 <= cls < 25:
            raise ValueError(f"BEAT2 speaker {beat2_id} has no class in the official models")
        table.setdefault(cls, beat2_id)
    if not table:
        raise ValueError("no speakers given")
    return dict(sorted(table.items()))


@dataclass(frozen=True)
class ConversionReport:
    """What :func:`convert_official` did.

    Attributes:
        release: the release folder written.
        provenance: the manifest's provenance record.
        speakers: ``{class: BEAT2 id}``.
    """

    release: Path
    provenance: dict[str, Any]
    speakers: dict[int, int]


def convert_official(src: str | Path, out: str | Path, *, speakers: str | None = None,
                     work_dir: str | Path | None = None,
                     progress: Callable[[str], None] | None = None) -> ConversionReport:
    """Convert the official weights at ``src`` (zip or folder) into the release ``out``.

    Raises:
        DataError: a file is missing, duplicated, corrupt or does not fit (names the file).
    """
    from semtalk.features.official.vocab import load_official_vocab

    say = progress or (lambda message: None)
    src, out = Path(src), Path(out)
    table = speakers_for(src.name, speakers)
    with open_official_source(src, work_dir=None if work_dir is None else Path(work_dir)) \
            as source:
        files: dict[str, Any] = {
            name: {"sha256": source.sha256[name], "member": source.member_names[name]}
            for name in source.paths}
        record: dict[str, Any] = {
            "converted_from": source.origin, "official_code": OFFICIAL_REPOSITORY,
            "official_commit": OFFICIAL_COMMIT, "sha256sums_checked": source.checked_sums,
            "files": files, "licence": LICENCE_NOTE}

        def fill(staging: Path) -> None:
            say("tokenizers")
            parts = {part: _rvq(source.paths[name], part) for part, name in RVQ_FILES.items()}
            MotionTokenizer(parts).save_pretrained(staging / TOKENIZER)
            say("global-motion network")
            name = "last_1700_foot.bin"
            _checked(name, lambda: global_motion_from_official(
                load_official_state_dict(source.paths[name]))).save_pretrained(
                    staging / GLOBAL_MOTION)
            say("base generator")
            unused = {"best_semtalk_base.bin": _convert_generator(
                source.paths["best_semtalk_base.bin"], base_from_official, staging / BASE)}
            say("sparse generator")
            unused["best_semtalk_sparse.bin"] = _convert_generator(
                source.paths["best_semtalk_sparse.bin"], sparse_from_official, staging / SPARSE)
            vocab = load_official_vocab(source.paths["vocab.pkl"])
            rows = SparseMotionGenerator.read_config(staging / SPARSE).vocab_size
            if len(vocab) != rows:
                raise DataError(source.paths["vocab.pkl"],
                                f"the vocabulary has {len(vocab)} words but the sparse "
                                f"checkpoint's word embedding has {rows} rows: the two files "
                                f"come from different releases")
            vocab.to_vocabulary().save(staging / SPARSE / VOCAB_FILE)
            write_checksums(staging / SPARSE)
            record["unused_official_keys"] = unused
            manifest = Manifest(speakers=table, family="official", provenance=record)
            write_text_atomic(staging / MANIFEST, json.dumps(manifest.to_dict(), indent=1))
            say("checking the release")

        publish(out, fill, verify=Release.load)
    return ConversionReport(out, record, table)


def _rvq(path: Path, part: BodyPart) -> RVQVAE:
    """One official RVQ-VAE file as our model."""
    model: RVQVAE = _checked(path.name, lambda: rvq_from_official(
        load_official_state_dict(path), part))
    return model


def _convert_generator(path: Path, convert: Callable[[dict[str, Any]], tuple[Any, KeyMap]],
                       folder: Path) -> int:
    """Convert one generator file into ``folder`` (weights, config, feature recipe); the
    number of official keys official inference never runs (not converted)."""
    model, key_map = _checked(path.name, lambda: convert(load_official_state_dict(path)))
    model.save_pretrained(folder)
    official_feature_spec().save(folder / FEATURES_FILE)
    write_checksums(folder)
    return len(key_map.unused)


def _checked(name: str, build: Callable[[], Any]) -> Any:
    """``build()``, a key-map or shape problem reported as a DataError naming ``name``."""
    try:
        return build()
    except ValueError as exc:
        raise DataError(Path(name), str(exc)) from exc
