"""RVQVAE: shapes, straight-through gradients, code round trips, training, save/load."""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from semtalk.body.parts import BodyPart
from semtalk.config import ConfigError, from_dict, to_dict
from semtalk.errors import DataError
from semtalk.models.rvqvae import RVQVAE, RVQVAEConfig
from semtalk.training.presets import load_preset

DIM = 16


def tiny_config(input_dim: int = DIM) -> RVQVAEConfig:
    return load_preset("tokenizer", "tiny", input_dim=input_dim)


def smooth_signal(gen: torch.Generator, batch: int = 16, length: int = 64) -> torch.Tensor:
    """``[batch, length, DIM]``: three random sinusoids per clip mixed by a fixed matrix."""
    mix = torch.randn(3, DIM, generator=torch.Generator().manual_seed(5)) / math.sqrt(3)
    t = torch.arange(length).float()[None, :, None] / 30
    freq = torch.rand(batch, 1, 3, generator=gen) * 1.5 + 0.3
    phase = torch.rand(batch, 1, 3, generator=gen) * 2 * math.pi
    amp = torch.rand(batch, 1, 3, generator=gen) + 0.5
    return (amp * torch.sin(2 * math.pi * freq * t + phase)) @ mix


def train_steps(model: RVQVAE, optimizer: torch.optim.Optimizer, gen: torch.Generator,
                steps: int) -> None:
    """Reconstruction + commitment training on smooth signals."""
    for _ in range(steps):
        x = smooth_signal(gen)
        out = model(x)
        loss = (out.reconstruction - x).pow(2).mean() + out.commitment_loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()


def trained_tiny(steps: int = 3) -> RVQVAE:
    torch.manual_seed(0)
    model = RVQVAE(tiny_config())
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)
    gen = torch.Generator().manual_seed(1)
    train_steps(model, optimizer, gen, steps)
    return model.eval()


def test_shapes_and_length_check() -> None:
    torch.manual_seed(0)
    model = RVQVAE(tiny_config())
    out = model(torch.randn(2, 64, DIM))
    assert out.reconstruction.shape == (2, 64, DIM)
    assert out.codes.shape == (2, 16, 3)
    assert out.perplexity.shape == out.usage.shape == (3,)
    assert out.commitment_loss.dim() == 0
    assert model.encode(torch.randn(2, 32, DIM)).shape == (2, 8, 3)
    assert model.decode(torch.zeros(2, 8, 2, dtype=torch.long)).shape == (2, 32, DIM)
    with pytest.raises(ValueError, match="multiple of 4, got T=63"):
        model(torch.randn(2, 63, DIM))
    with pytest.raises(ValueError, match="T=6"):
        model.encode(torch.randn(1, 6, DIM))
    with pytest.raises(ValueError, match=rf"\[B, T, {DIM}\]"):
        model(torch.randn(2, 64, DIM + 1))


def test_straight_through_gradient_reaches_the_encoder() -> None:
    torch.manual_seed(0)
    model = RVQVAE(tiny_config()).train()
    captured: dict[str, torch.Tensor] = {}

    def keep(name: str, tensor: torch.Tensor) -> None:
        tensor.retain_grad()
        captured[name] = tensor

    model.encoder.register_forward_hook(lambda _m, _i, out: keep("latents", out))
    model.quantizer.register_forward_hook(lambda _m, _i, out: keep("quantized", out.quantized))
    x = torch.randn(4, 64, DIM)
    out = model(x)
    (out.reconstruction - x).pow(2).mean().backward()  # no commitment term: decoder path only
    latents_grad, quantized_grad = captured["latents"].grad, captured["quantized"].grad
    assert latents_grad is not None and quantized_grad is not None
    assert latents_grad.abs().sum() > 0
    assert torch.equal(latents_grad, quantized_grad)
    first_conv = model.encoder.net[0]
    assert first_conv.weight.grad is not None and first_conv.weight.grad.abs().sum() > 0


def test_eval_codes_round_trip() -> None:
    model = trained_tiny()
    x = smooth_signal(torch.Generator().manual_seed(9), batch=4)
    out = model(x)
    codes = model.encode(x)
    assert torch.equal(out.codes, codes)
    assert (codes >= 0).all()
    assert torch.equal(model.decode(codes), out.reconstruction)
    latents = model.quantizer.decode(codes)
    torch.testing.assert_close(model.codes_to_vectors(codes).sum(0), latents)
    assert model.codes_to_vectors(codes).shape == (3, 4, 16, 32)


def test_training_tiny_model_reduces_reconstruction_error() -> None:
    torch.manual_seed(0)
    model = RVQVAE(tiny_config())
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)
    gen = torch.Generator().manual_seed(1)
    probe = smooth_signal(torch.Generator().manual_seed(99), batch=32)

    def probe_error() -> float:
        model.eval()
        with torch.no_grad():
            error = (model(probe).reconstruction - probe).pow(2).mean().item()
        model.train()
        return error

    initial = probe_error()
    start = time.perf_counter()
    steps = 300
    train_steps(model, optimizer, gen, steps)
    step_ms = (time.perf_counter() - start) / steps * 1000
    final = probe_error()
    params = sum(p.numel() for p in model.parameters())
    print(f"tiny RVQVAE: {params} params, {step_ms:.1f} ms/step, "
          f"probe MSE {initial:.4f} -> {final:.4f} ({initial / final:.1f}x)")
    assert final * 5 < initial


def test_save_load_gives_identical_outputs_and_buffers(tmp_path: Path) -> None:
    model = trained_tiny()
    folder = model.save_pretrained(tmp_path / "upper")
    assert sorted(p.name for p in folder.iterdir()) == ["checksums.json", "config.json",
                                                        "model.safetensors"]
    header = json.loads((folder / "config.json").read_text())
    assert header["model"] == "RVQVAE" and header["format_version"] == 1
    assert header["config"]["quantizer"]["quantize_dropout"] == 0.2
    loaded = RVQVAE.from_pretrained(folder)
    assert not loaded.training
    assert loaded.config == model.config
    original_buffers = dict(model.named_buffers())
    assert original_buffers.keys() == dict(loaded.named_buffers()).keys()
    for name, buffer in loaded.named_buffers():
        assert torch.equal(buffer, original_buffers[name]), name
    for name, parameter in loaded.named_parameters():
        assert torch.equal(parameter, dict(model.named_parameters())[name]), name
    x = smooth_signal(torch.Generator().manual_seed(5), batch=3)
    assert torch.equal(loaded(x).reconstruction, model(x).reconstruction)
    assert torch.equal(loaded.encode(x), model.encode(x))
    assert bool(loaded.quantizer.layers[0].initialized)


def test_load_with_changed_config_names_the_mis_shaped_tensors(tmp_path: Path) -> None:
    folder = trained_tiny(steps=1).save_pretrained(tmp_path / "release")
    (folder / "checksums.json").unlink()  # edited by hand: the structural checks apply
    header = json.loads((folder / "config.json").read_text())
    header["config"]["quantizer"]["codebook_size"] = 32
    (folder / "config.json").write_text(json.dumps(header))
    with pytest.raises(DataError) as info:
        RVQVAE.from_pretrained(folder)
    message = str(info.value)
    assert message.startswith(str(folder / "model.safetensors"))
    assert "quantizer.layers.0.codebook: file (64, 32) vs model (32, 32)" in message
    assert "quantizer.layers.2.cluster_size: file (64,) vs model (32,)" in message


def test_load_with_missing_or_extra_tensor_names_them(tmp_path: Path) -> None:
    folder = trained_tiny(steps=1).save_pretrained(tmp_path / "release")
    (folder / "checksums.json").unlink()  # edited by hand: the structural checks apply
    weights = folder / "model.safetensors"
    tensors = load_file(str(weights))
    del tensors["quantizer.layers.2.initialized"]
    tensors["decoder.extra"] = torch.zeros(2)
    save_file(tensors, str(weights))
    with pytest.raises(DataError, match=r"missing tensors \['quantizer.layers.2.initialized'\]"
                                        r", unexpected tensors \['decoder.extra'\]"):
        RVQVAE.from_pretrained(folder)


def test_load_rejects_bad_release_folders(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"config\.json: not found"):
        RVQVAE.from_pretrained(tmp_path / "nowhere")
    folder = trained_tiny(steps=1).save_pretrained(tmp_path / "release")
    (folder / "checksums.json").unlink()  # edited by hand: the structural checks apply
    config_path = folder / "config.json"
    good = json.loads(config_path.read_text())

    def write(header: dict) -> None:
        config_path.write_text(json.dumps(header))

    write({**good, "model": "MotionTokenizer"})
    with pytest.raises(DataError, match="'MotionTokenizer' model, expected 'RVQVAE'"):
        RVQVAE.from_pretrained(folder)
    write({**good, "format_version": 99})
    with pytest.raises(DataError, match="format_version 99"):
        RVQVAE.from_pretrained(folder)
    write({**good, "config": {k: v for k, v in good["config"].items() if k != "input_dim"}})
    with pytest.raises(DataError, match=r"config.json: config: \['input_dim'\] must be set"):
        RVQVAE.from_pretrained(folder)
    write({**good, "config": {**good["config"], "nb_code": 256}})
    with pytest.raises(DataError, match=r"config.json: config: unknown key\(s\) \['nb_code'\]"):
        RVQVAE.from_pretrained(folder)
    write(good)
    (folder / "model.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(DataError, match=r"model\.safetensors: cannot read weights"):
        RVQVAE.from_pretrained(folder)
    (folder / "model.safetensors").unlink()
    with pytest.raises(DataError, match=r"model\.safetensors: not found"):
        RVQVAE.from_pretrained(folder)


def test_config_round_trip_and_validation() -> None:
    config = tiny_config(61)
    assert from_dict(RVQVAEConfig, to_dict(config)) == config
    with pytest.raises(ValueError, match=r"code_dim \(128\) must equal quantizer.codebook_dim"):
        RVQVAEConfig(input_dim=78, code_dim=128)
    with pytest.raises(ConfigError, match="input_dim must be >= 1"):
        from_dict(RVQVAEConfig, {"input_dim": 0})
    # An architecture shared by the parts leaves input_dim unset; for_part fills it in.
    shared = from_dict(RVQVAEConfig, {"width": 32, "code_dim": 32,
                                      "quantizer": {"codebook_dim": 32}})
    assert shared.input_dim is None
    assert shared.for_part(BodyPart.LOWER) == RVQVAEConfig(
        input_dim=61, width=32, code_dim=32, quantizer=shared.quantizer)


def test_paper_preset_sizes_and_one_training_step() -> None:
    torch.manual_seed(0)
    for part in BodyPart:
        model = RVQVAE(load_preset("tokenizer", "paper", input_dim=part.dim))
        params = sum(p.numel() for p in model.parameters())
        print(f"paper RVQVAE {part.value} (D={part.dim}): {params} parameters")
        assert model.encoder.net[0].weight.shape == (256, part.dim, 3)
        assert model.decoder.net[-1].weight.shape == (part.dim, 256, 3)
    assert model.quantizer.codebooks.shape == (6, 256, 256)
    dilations = [block.dilated.dilation[0] for block in model.encoder.net[3]]
    assert dilations == [9, 3, 1]
    assert model.config.dropout == 0.2 and model.config.quantizer.quantize_dropout == 0.2
    model = RVQVAE(load_preset("tokenizer", "paper", input_dim=BodyPart.UPPER.dim)).train()
    x = torch.randn(2, 64, BodyPart.UPPER.dim)
    out = model(x)
    assert out.reconstruction.shape == x.shape and out.codes.shape == (2, 16, 6)
    loss = (out.reconstruction - x).pow(2).mean() + out.commitment_loss
    loss.backward()
    assert all(p.grad is not None for p in model.parameters())


def test_reads_the_config_json_of_earlier_releases(tmp_path: Path) -> None:
    """A release written before the presets moved to YAML (the old tiny classmethod's face
    model, residual-block dropout 0.2) still loads, as written."""
    written = {"model": "RVQVAE", "format_version": 1, "config": {
        "input_dim": 106, "width": 32, "code_dim": 32, "down_t": 2, "depth": 2,
        "dilation_growth": 3, "dropout": 0.2, "quantizer": {
            "num_quantizers": 3, "codebook_size": 64, "codebook_dim": 32, "ema_decay": 0.99,
            "dead_code_threshold": 1.0, "sample_temperature": 0.0, "quantize_dropout": 0.2,
            "commitment_weight": 1.0}}}
    (tmp_path / "config.json").write_text(json.dumps(written))
    config = RVQVAE.read_config(tmp_path)
    assert config == replace(tiny_config(BodyPart.FACE.dim), dropout=0.2)
    # Fields added since then take their defaults, which keep the earlier behaviour.
    expected = json.loads(json.dumps(written["config"]))
    expected["quantizer"]["straight_through_residual"] = False
    assert to_dict(config) == expected


def test_saved_release_files_get_the_usual_permissions(tmp_path: Path) -> None:
    old = os.umask(0o027)
    try:
        folder = RVQVAE(tiny_config()).save_pretrained(tmp_path / "release")
    finally:
        os.umask(old)
    modes = {p.name: p.stat().st_mode & 0o777 for p in folder.iterdir()}
    assert modes == {"config.json": 0o640, "model.safetensors": 0o640, "checksums.json": 0o640}
