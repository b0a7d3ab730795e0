"""Official RVQ-VAE tokenizers and global-motion net against the fixture's golden arrays.

The synthetic official checkpoints are written by ``../shared/official-fixture/
make_checkpoints.py``; the golden arrays were produced by the official code on those files.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from semtalk.body.parts import BodyPart
from semtalk.models.global_motion import GlobalMotionConfig, GlobalMotionNet
from semtalk.models.rvqvae import RVQVAE
from semtalk.modules.quantizer import QuantizerConfig, ResidualVQ
from semtalk.official import motion as om
from semtalk.official import tokenizers as ot

SHARED = Path(__file__).resolve().parents[2].parent / "shared"
FIXTURE = SHARED / "official-fixture"
MAKE = FIXTURE / "make_checkpoints.py"
GOLDEN = FIXTURE / "golden"
SAMPLE = SHARED / "data" / "beat2-sample" / "2_scott_0_1_1.npz"
VQ_DIR = "weights/pretrained_vq"
FILES = [*ot.OFFICIAL_RVQ_FILES.values(), ot.OFFICIAL_GLOBAL_MOTION_FILE]
ATOL = 1e-5


def _require_fixture() -> None:
    if not (MAKE.is_file() and GOLDEN.is_dir()):
        pytest.skip(f"official fixture not found at {FIXTURE} (it lives in ../shared beside the "
                    "repository)")


@pytest.fixture(scope="module")
def official_states(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, torch.Tensor]]:
    """The synthetic official state dicts (keys with ``module.``), by file name."""
    _require_fixture()
    out = tmp_path_factory.mktemp("official")
    subprocess.run([sys.executable, str(MAKE), str(out), "--only", *FILES], check=True,
                   capture_output=True)
    ours = json.loads((out / "TENSOR_DIGESTS.json").read_text())
    golden = json.loads((GOLDEN / "checkpoints.TENSOR_DIGESTS.json").read_text())
    for name in FILES:
        key = f"{VQ_DIR}/{name}"
        if ours[key]["tensor_sha256"] != golden[key]["tensor_sha256"]:
            pytest.skip(f"{name}: regenerated tensors differ from those golden/ was computed "
                        "from (numpy or torch version); the golden arrays do not apply")
    return {name: torch.load(out / VQ_DIR / name, map_location="cpu",
                             weights_only=True)["model_state"] for name in FILES}


@pytest.fixture(scope="module")
def tokenizers(official_states: dict[str, dict[str, torch.Tensor]]) -> dict[BodyPart, RVQVAE]:
    return {part: ot.rvq_from_official(official_states[name], part)
            for part, name in ot.OFFICIAL_RVQ_FILES.items()}


@pytest.fixture(scope="module")
def golden() -> dict[str, np.ndarray]:
    _require_fixture()
    with np.load(GOLDEN / "tokenizers.npz") as data:
        return {key: data[key] for key in data.files}


def _manifest_keys(name: str) -> list[str]:
    manifest = json.loads((FIXTURE / "manifest.json").read_text())
    entry = next(f for f in manifest["files"] if f["path"] == f"{VQ_DIR}/{name}")
    return [e["key"].removeprefix("module.") for e in entry["entries"]]


# ------------------------------------------------------------------------------------------
# Part vectors


def test_part_vectors_match_official(golden: dict[str, np.ndarray]) -> None:
    if not SAMPLE.is_file():
        pytest.skip(f"BEAT2 sample clip not found at {SAMPLE}")
    with np.load(SAMPLE) as clip:
        poses, exps, trans = (torch.from_numpy(clip[k][:256]) for k in
                              ("poses", "expressions", "trans"))
    # The fixture's contacts are approximate; the golden lower vector holds those it used.
    contacts = torch.from_numpy(golden["input_lower"][:, 57:61])
    parts = om.part_vectors(poses, exps, trans, contacts)
    for part in BodyPart:
        assert parts[part].dtype == torch.float32
        np.testing.assert_allclose(parts[part].numpy(), golden[f"input_{part.value}"],
                                   rtol=0, atol=1e-6, err_msg=part.value)
    everything = om.latent_all(poses, trans, contacts)
    np.testing.assert_allclose(everything.numpy(), golden["latent_all"], rtol=0, atol=1e-6)


# ------------------------------------------------------------------------------------------
# RVQ-VAE numerics


@pytest.mark.parametrize("part", list(BodyPart), ids=lambda p: p.value)
def test_rvq_matches_official(part: BodyPart, tokenizers: dict[BodyPart, RVQVAE],
                              golden: dict[str, np.ndarray]) -> None:
    model = tokenizers[part]
    x = torch.from_numpy(golden[f"input_{part.value}"])[None]
    with torch.no_grad():
        latents = model.encoder(x)[0]  # identity normalisation: the official map2zp
        codes = model.encode(x)
        vectors = model.codes_to_vectors(codes)[:, 0]
        recon = model.decode(torch.from_numpy(golden[f"indices_{part.value}"])[None])[0]
    np.testing.assert_allclose(latents.numpy(), golden[f"encoder_out_{part.value}"],
                               rtol=ATOL, atol=ATOL)
    np.testing.assert_array_equal(codes[0].numpy(), golden[f"indices_{part.value}"])
    np.testing.assert_allclose(vectors.numpy(), golden[f"zq_{part.value}"], rtol=0, atol=ATOL)
    np.testing.assert_allclose(recon.numpy(), golden[f"recon_{part.value}"], rtol=ATOL,
                               atol=ATOL)


def test_global_motion_matches_official(
        official_states: dict[str, dict[str, torch.Tensor]]) -> None:
    net = ot.global_motion_from_official(official_states[ot.OFFICIAL_GLOBAL_MOTION_FILE])
    assert not net.training
    with np.load(GOLDEN / "global_motion.npz") as data:
        case = {key: data[key] for key in data.files}
    with torch.no_grad():
        output = net(torch.from_numpy(case["input"])[None])[0]
    np.testing.assert_allclose(output.numpy(), case["output"], rtol=ATOL, atol=ATOL)
    trans = om.integrate_translation(output, torch.from_numpy(case["init_trans"]))
    np.testing.assert_allclose(trans.numpy(), case["trans"], rtol=ATOL, atol=ATOL)


def test_converted_models_round_trip_through_release(
        official_states: dict[str, dict[str, torch.Tensor]], tmp_path: Path) -> None:
    net = ot.global_motion_from_official(official_states[ot.OFFICIAL_GLOBAL_MOTION_FILE])
    net.save_pretrained(tmp_path / "global")
    again = GlobalMotionNet.from_pretrained(tmp_path / "global")
    x = torch.randn(1, 12, 61)
    with torch.no_grad():
        assert torch.equal(net(x), again(x))
    rvq = ot.rvq_from_official(official_states["rvq_lower_600.bin"], BodyPart.LOWER)
    rvq.save_pretrained(tmp_path / "lower")
    assert RVQVAE.from_pretrained(tmp_path / "lower").config == ot.official_rvq_config(
        BodyPart.LOWER)


# ------------------------------------------------------------------------------------------
# Key maps and strictness


@pytest.mark.parametrize("part", list(BodyPart), ids=lambda p: p.value)
def test_rvq_key_map_covers_the_official_schema(part: BodyPart) -> None:
    _require_fixture()
    key_map = ot.rvq_key_map(part)
    official = _manifest_keys(ot.OFFICIAL_RVQ_FILES[part])
    assert sorted(key_map) == sorted(official)
    assert len(set(key_map.values())) == len(key_map)
    ours = set(RVQVAE(ot.official_rvq_config(part)).state_dict())
    neutral = {k for k in ours if k in ("feature_mean", "feature_std")
               or k.rsplit(".", 1)[-1] in ("cluster_size", "embed_sum", "initialized")}
    assert set(key_map.values()) == ours - neutral
    assert len(neutral) == 2 + 3 * 6


def test_global_motion_key_map_covers_the_official_schema() -> None:
    _require_fixture()
    key_map = ot.global_motion_key_map()
    assert sorted(key_map) == sorted(_manifest_keys(ot.OFFICIAL_GLOBAL_MOTION_FILE))
    assert sorted(key_map.values()) == sorted(GlobalMotionNet(GlobalMotionConfig()).state_dict())


def test_rvq_neutral_buffers(tokenizers: dict[BodyPart, RVQVAE]) -> None:
    model = tokenizers[BodyPart.FACE]
    assert not model.training
    assert torch.equal(model.feature_mean, torch.zeros(106))
    assert torch.equal(model.feature_std, torch.ones(106))
    for layer in model.quantizer.codebook_layers:
        assert torch.equal(layer.cluster_size, torch.ones(256))
        assert torch.equal(layer.embed_sum, layer.codebook)
        assert bool(layer.initialized)
    assert model.config.quantizer.straight_through_residual
    assert model.config.quantizer.quantize_dropout == 0.0


def test_bare_keys_load_like_prefixed_ones(
        official_states: dict[str, dict[str, torch.Tensor]]) -> None:
    state = official_states["rvq_upper_500.bin"]
    bare = {k.removeprefix("module."): v for k, v in state.items()}
    a = ot.rvq_from_official(state, BodyPart.UPPER).state_dict()
    b = ot.rvq_from_official(bare, BodyPart.UPPER).state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_rvq_conversion_is_strict(official_states: dict[str, dict[str, torch.Tensor]]) -> None:
    state = dict(official_states["rvq_hands_500.bin"])
    missing = {k: v for k, v in state.items() if k != "module.encoder.model.2.1.model.1.conv1.bias"}
    with pytest.raises(ValueError, match=r"missing official keys \['encoder.model.2.1.model.1"):
        ot.rvq_from_official(missing, BodyPart.HANDS)
    extra = {**state, "module.quantizer.layers.6.codebook": torch.zeros(256, 256)}
    with pytest.raises(ValueError, match=r"unexpected official keys \['quantizer.layers.6"):
        ot.rvq_from_official(extra, BodyPart.HANDS)
    with pytest.raises(ValueError, match=r"official decoder.model.6.weight \(180, 256, 3\) vs "
                                         r"semtalk decoder.net.10.weight \(78, 256, 3\)"):
        ot.rvq_from_official(state, BodyPart.UPPER)  # hands weights into the upper model
    mixed = {k.removeprefix("module.") if "codebook" in k else k: v for k, v in state.items()}
    with pytest.raises(ValueError, match=r"mix the 'module\.' prefix"):
        ot.rvq_from_official(mixed, BodyPart.HANDS)


def test_global_motion_conversion_is_strict(
        official_states: dict[str, dict[str, torch.Tensor]]) -> None:
    state = dict(official_states[ot.OFFICIAL_GLOBAL_MOTION_FILE])
    del state["module.decoder.main.10.bias"]
    with pytest.raises(ValueError, match=r"last_1700_foot.bin: .*missing official keys "
                                         r"\['decoder.main.10.bias'\]"):
        ot.global_motion_from_official(state)
    state = dict(official_states[ot.OFFICIAL_GLOBAL_MOTION_FILE])
    state["module.encoder.main.0.weight"] = torch.zeros(256, 62, 3)
    state["module.encoder.main.12.weight"] = torch.zeros(1)
    with pytest.raises(ValueError) as info:
        ot.global_motion_from_official(state, source="foot.bin")
    message = str(info.value)
    assert message.startswith("foot.bin: ")
    assert "unexpected official keys ['encoder.main.12.weight']" in message
    assert ("official encoder.main.0.weight (256, 62, 3) vs semtalk encoder.net.0.weight "
            "(256, 61, 3)") in message


# ------------------------------------------------------------------------------------------
# The quantiser switch the official family uses


def test_straight_through_residual_quantiser_contract() -> None:
    torch.manual_seed(0)
    config = QuantizerConfig(num_quantizers=3, codebook_size=16, codebook_dim=8,
                             quantize_dropout=0.0, straight_through_residual=True)
    assert not QuantizerConfig().straight_through_residual  # default keeps semtalk's arithmetic
    quantizer = ResidualVQ(config).eval()
    x = torch.randn(2, 5, 8, requires_grad=True)
    out = quantizer(x)
    assert torch.equal(out.codes, quantizer.encode(x))
    assert torch.allclose(out.quantized, quantizer.decode(out.codes), atol=1e-6)
    out.quantized.sum().backward()
    assert x.grad is not None and torch.equal(x.grad, torch.ones_like(x))
    # Each layer quantises r_k - (r_k + (e_k - r_k)), the official residual.
    residual = x.detach()
    for index, layer in enumerate(quantizer.codebook_layers):
        codes = layer.nearest(residual.reshape(-1, 8)).view(2, 5)
        assert torch.equal(codes, out.codes[..., index])
        vectors = layer.codebook[codes]
        residual = residual - (residual + (vectors - residual))
