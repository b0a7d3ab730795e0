"""The official family end to end against the fixture's golden arrays: conversion (every tensor
where it belongs, strictness), the generators window by window, the whole generation from
``generation_inputs.npz`` through the library and the CLI, and the common mistakes' errors."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from semtalk.body.parts import BodyPart
from semtalk.cli import main
from semtalk.errors import DataError
from semtalk.generation.engine import SemTalk, official_length
from semtalk.generation.official import official_inputs_to_features
from semtalk.models.generator_common import GeneratorInputs
from semtalk.official import generators as og
from semtalk.official import tokenizers as ot
from semtalk.official.inputs import OfficialInputs
from semtalk.official.sources import load_official_state_dict
from semtalk.release import Release

FILES = {"best_semtalk_base.bin": "weights/best_semtalk_base.bin",
         "best_semtalk_sparse.bin": "weights/best_semtalk_sparse.bin",
         **{name: f"weights/pretrained_vq/{name}"
            for name in (*ot.OFFICIAL_RVQ_FILES.values(), ot.OFFICIAL_GLOBAL_MOTION_FILE)}}
PARTS = ("face", "upper", "hands", "lower")
GOLDEN = Path(__file__).resolve().parents[2].parent / "shared" / "official-fixture" / "golden"


@pytest.fixture(scope="module")
def golden() -> tuple[OfficialInputs, dict[str, np.ndarray]]:
    if not GOLDEN.is_dir():
        pytest.skip(f"the official fixture's golden arrays are not at {GOLDEN}")
    with np.load(GOLDEN / "generation.npz") as data:
        outputs = {name: data[name] for name in data.files}
    return OfficialInputs.load(GOLDEN / "generation_inputs.npz"), outputs


def _stitched(window_values: np.ndarray) -> np.ndarray:
    """Per-window token values ``[R, 16, ...]`` stitched as the official loop does."""
    return np.concatenate([window_values[0], *window_values[1:, 1:]])


# ------------------------------------------------------------------------------ conversion
def _release_state(release: Path, name: str) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    folders = {"best_semtalk_base.bin": "base", "best_semtalk_sparse.bin": "sparse",
               ot.OFFICIAL_GLOBAL_MOTION_FILE: "global_motion"}
    folders.update({file: f"tokenizer/{part.value}"
                    for part, file in ot.OFFICIAL_RVQ_FILES.items()})
    return load_file(str(release / folders[name] / "model.safetensors"))


def _key_map(name: str, official: dict[str, torch.Tensor]) -> dict[str, str]:
    if name == "best_semtalk_base.bin":
        return og.build_key_map(official, og.BASE_RULES, og.BASE_UNUSED, name).mapped
    if name == "best_semtalk_sparse.bin":
        return og.build_key_map(official, og.SPARSE_RULES, og.SPARSE_UNUSED, name).mapped
    if name == ot.OFFICIAL_GLOBAL_MOTION_FILE:
        return ot.global_motion_key_map()
    part = next(p for p, file in ot.OFFICIAL_RVQ_FILES.items() if file == name)
    return ot.rvq_key_map(part)


@pytest.mark.parametrize("name", list(FILES))
def test_every_tensor_lands_where_it_belongs(name: str, official_checkpoints: Path,
                                            official_release: Path) -> None:
    """Rebuilding each official file's tensor digest from the release's tensors (inverse
    layout changes applied; keys official inference never runs taken from the file) gives the
    digest ``golden/`` was computed from."""
    official = load_official_state_dict(official_checkpoints / FILES[name])
    ours = _release_state(official_release, name)
    key_map = _key_map(name, official)
    digest = hashlib.sha256()
    for key, tensor in official.items():
        if key in key_map:
            mine = ours[key_map[key]]
            transform = og.TRANSFORMS.get(key_map[key])
            if transform is og.swap_pairs:
                mine = og.swap_pairs(mine)
            value = mine.reshape(tensor.shape)
            assert torch.equal(value, tensor), key
        else:
            value = tensor
        digest.update(f"module.{key}".encode() + b"\0" + value.numpy().tobytes())
    expected = json.loads((GOLDEN / "checkpoints.TENSOR_DIGESTS.json").read_text())
    assert digest.hexdigest() == expected[FILES[name]]["tensor_sha256"]
    if name.startswith("best_"):  # everything not mapped is on the documented lists
        unused = og.BASE_UNUSED if "base" in name else og.SPARSE_UNUSED
        rest = [k for k in official if k not in key_map]
        assert all(k.startswith(unused) or k in og.COMPUTED_BUFFERS for k in rest)


def test_release_records_family_provenance_and_licence(official_release: Path,
                                                       official_checkpoints: Path) -> None:
    manifest = json.loads((official_release / "semtalk.json").read_text())
    assert manifest["family"] == "official" and manifest["speakers"] == {"1": 2}
    provenance = manifest["provenance"]
    assert provenance["official_commit"] == "12589ef" and provenance["sha256sums_checked"]
    assert "licence" in provenance["licence"]
    sums = dict(line.split()[::-1] for line in
                (GOLDEN / "checkpoints.SHA256SUMS").read_text().splitlines())
    for record in provenance["files"].values():
        assert record["sha256"] == sums[record["member"]]
    release = Release.load(official_release)
    assert release.family == "official" and release.global_motion is not None
    assert release.vocab.index("") == 4 and release.vocab.unk_id == 3
    # the trained word embedding of the sparse checkpoint, not vocab.pkl's fastText table
    words = release.sparse.semantic.word_embedding.weight
    trained = _official(official_checkpoints, "best_semtalk_sparse.bin")
    assert torch.equal(words, trained["text_pre_encoder_body.weight"])


def _official(official_checkpoints: Path, name: str) -> dict[str, torch.Tensor]:
    return load_official_state_dict(official_checkpoints / FILES[name])


def test_generator_maps_are_strict(official_checkpoints: Path) -> None:
    state = _official(official_checkpoints, "best_semtalk_base.bin")
    missing = dict(state)
    missing.pop("face_decoder.layers.0.norm1.weight")
    with pytest.raises(og.KeyMapError, match=r"face\.decoder\.layers\.0\.norm1\.weight"):
        og.base_from_official(missing)
    extra = dict(state, **{"mystery_head.weight": torch.zeros(3)})
    with pytest.raises(og.KeyMapError, match=r"mystery_head\.weight"):
        og.base_from_official(extra)
    wrong = dict(state, **{"face1d.weight": torch.zeros(256, 256, 3)})
    with pytest.raises(og.KeyMapError, match=r"face1d\.weight .*face\.out\.1\.conv\.weight"):
        og.base_from_official(wrong)
    table = dict(state, **{"position_embeddings.pe": state["position_embeddings.pe"] + 1})
    with pytest.raises(og.KeyMapError, match=r"position_embeddings\.pe"):
        og.base_from_official(table)
    sparse = _official(official_checkpoints, "best_semtalk_sparse.bin")
    with pytest.raises(og.KeyMapError, match="no place"):
        og.base_from_official(sparse)  # the sparse file given as the base one


# ------------------------------------------------------------------------------ generation
def test_generators_reproduce_each_window(official_release: Path,
                                          golden: tuple[OfficialInputs, dict]) -> None:
    """Teacher-forced: window i's golden input motion and feature slices give the golden base
    and sparse codes (arg-max of log-softmax) and gate logits."""
    inputs, out = golden
    release = Release.load(official_release)
    mask = torch.ones(1, 64, 337, dtype=torch.bool)
    mask[:, :4] = False
    with torch.inference_mode():
        for i in range(len(out["window_in_motion"])):
            frames = slice(60 * i, 60 * i + 64)
            batch = GeneratorInputs(
                speech=torch.from_numpy(inputs.hubert[frames])[None].float(),
                beat=torch.from_numpy(inputs.beat[frames])[None].float(),
                motion=torch.from_numpy(out["window_in_motion"][i])[None].float(), mask=mask,
                speaker=torch.tensor([inputs.speaker_class]),
                word_ids=torch.from_numpy(inputs.in_word[frames].astype(np.int64))[None],
                sentence=torch.from_numpy(inputs.feat_clip_text[i])[None].float(),
                emotion=torch.from_numpy(inputs.emo_clip_text[i])[None].float())
            base, sparse = release.base(batch), release.sparse(batch)
            for part in BodyPart:
                codes = torch.log_softmax(base.logits[part][0], -1).argmax(-1).numpy()
                np.testing.assert_array_equal(codes, out[f"base_indices_{part.value}"][i])
                if part is not BodyPart.FACE:
                    codes = torch.log_softmax(sparse.logits[part][0], -1).argmax(-1).numpy()
                    np.testing.assert_array_equal(codes, out[f"sparse_indices_{part.value}"][i])
            assert sparse.gate_logits is not None
            np.testing.assert_allclose(sparse.gate_logits[0].numpy(), out["gate_logits"][i],
                                       atol=1e-5)
            # the emotion input has no effect (the official code discards its branch)
            other = release.sparse(GeneratorInputs(**{**batch.__dict__,
                                                      "emotion": batch.emotion + 3}))
            assert torch.equal(other.logits[BodyPart.UPPER], sparse.logits[BodyPart.UPPER])


@pytest.mark.parametrize("fast", [True, False], ids=["fast", "plain"])
def test_whole_generation_equals_the_official(official_release: Path, fast: bool,
                                              golden: tuple[OfficialInputs, dict]) -> None:
    """``--length official`` from ``generation_inputs.npz``: the stitched codes and gates
    exactly, expressions and translation within 1e-5, poses within 2e-3 (README §4)."""
    inputs, out = golden
    model = SemTalk.from_pretrained(official_release, fast=fast)
    features, seed, contacts, _ = official_inputs_to_features(inputs)
    gen = model.generate_features(features, speaker=2, seed=seed, seed_contacts=contacts,
                                  length="official")
    assert gen.motion.num_frames == official_length(inputs.num_frames) == 244
    for part in PARTS:
        np.testing.assert_array_equal(gen.codes[part], out[f"tokens_{part}"])
        np.testing.assert_array_equal(_stitched(out[f"fused_indices_{part}"]),
                                      out[f"tokens_{part}"])
    np.testing.assert_array_equal(gen.sparse_tokens, _stitched(out["gate"]).astype(bool))
    np.testing.assert_allclose(gen.token_psi_model, _stitched(out["psi"]), atol=1e-5)
    np.testing.assert_allclose(gen.motion.expressions, out["expressions"], atol=1e-5)
    np.testing.assert_allclose(gen.motion.trans, out["trans"], atol=1e-5)
    np.testing.assert_allclose(gen.motion.poses, out["poses"], atol=2e-3)
    assert np.abs(gen.motion.poses[:, 69:75]).max() == 0  # eyes


def test_full_length_covers_the_whole_audio(official_release: Path,
                                            golden: tuple[OfficialInputs, dict]) -> None:
    """The default length generates every frame (an extra window covers the tail the official
    code drops); the frames before the tail's influence equal the official ones."""
    inputs, out = golden
    model = SemTalk.from_pretrained(official_release)
    features, seed, contacts, _ = official_inputs_to_features(inputs)
    gen = model.generate_features(features, speaker=2, seed=seed, seed_contacts=contacts)
    assert gen.motion.num_frames == inputs.num_frames == 262
    for part in PARTS:  # the official windows' tokens, then the extra window's
        np.testing.assert_array_equal(gen.codes[part][:61], out[f"tokens_{part}"])
    assert len(gen.codes["upper"]) == 76
    np.testing.assert_allclose(gen.motion.poses[:150], out["poses"][:150], atol=2e-3)
    assert np.isfinite(gen.motion.poses).all() and np.isfinite(gen.motion.trans).all()


def test_cli_convert_then_generate_from_features(official_checkpoints: Path,
                                                 tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    """The path a second official case takes: ``semtalk convert official`` then
    ``semtalk generate --features ... --length official``."""
    release = tmp_path / "release"
    assert main(["convert", "official", str(official_checkpoints), "--out", str(release)]) == 0
    printed = capsys.readouterr().out
    assert printed.count("licence") == 1 and "speaker(s) 2" in printed
    out = tmp_path / "out"
    assert main(["generate", "--features", str(GOLDEN / "generation_inputs.npz"), "--model",
                 str(release), "--length", "official", "--no-video", "--out", str(out)]) == 0
    with np.load(out / "generation_inputs.npz") as result, \
            np.load(GOLDEN / "generation.npz") as expected:
        np.testing.assert_allclose(result["trans"], expected["trans"], atol=1e-5)
        np.testing.assert_allclose(result["expressions"], expected["expressions"], atol=1e-5)
        np.testing.assert_allclose(result["poses"], expected["poses"], atol=2e-3)
    shutil.rmtree(release)  # 1.5 GB


# ------------------------------------------------------------------------------ mistakes
def test_wrong_source_is_refused_with_what_was_found(tmp_path: Path) -> None:
    (tmp_path / "weights").mkdir()
    (tmp_path / "weights" / "best_semtalk_base.bin").write_bytes(b"not a checkpoint")
    assert main(["convert", "official", str(tmp_path), "--out", str(tmp_path / "r")]) == 2
    assert not (tmp_path / "r").exists()


def test_paper_release_refuses_official_features(tiny_release: Path, tmp_path: Path) -> None:
    code = main(["generate", "--features", str(GOLDEN / "generation_inputs.npz"), "--model",
                 str(tiny_release), "--no-video", "--out", str(tmp_path)])
    assert code == 2


def test_official_release_needs_its_feature_models(official_release: Path) -> None:
    model = SemTalk.from_pretrained(official_release)
    with pytest.raises(DataError, match="--hubert DIR"):
        model.generate(np.zeros(16000, np.float32), 16000)
    model = SemTalk.from_pretrained(official_release, hubert_model=Path("/nowhere/hubert"),
                                    sentence_model=Path("/nowhere/clip"))
    with pytest.raises((FileNotFoundError, DataError), match="nowhere"):
        model.generate(np.zeros(16000, np.float32), 16000)
