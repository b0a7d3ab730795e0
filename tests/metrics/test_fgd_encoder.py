"""FGD autoencoder: topology, shapes, official checkpoint layout, training, save/load."""

from __future__ import annotations

import math
from collections import OrderedDict
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from semtalk.body.parts import PARENTS
from semtalk.config import from_dict, to_dict
from semtalk.errors import DataError
from semtalk.metrics import FGDAutoencoder, FGDEncoderConfig, load_official_fgd_encoder
from semtalk.metrics.skeleton_topology import edge_neighbours, skeleton_edges


@pytest.fixture(scope="module")
def model() -> FGDAutoencoder:
    torch.manual_seed(0)
    return FGDAutoencoder(FGDEncoderConfig()).eval()


def smooth_rot6d(gen: torch.Generator, batch: int, length: int) -> torch.Tensor:
    """``[batch, length, 330]``: identity 6D plus slow random sinusoids per channel."""
    identity = torch.tensor([1.0, 0, 0, 0, 1, 0]).repeat(55)
    t = torch.arange(length).float()[None, :, None] / 30
    freq = torch.rand(batch, 1, 330, generator=gen) * 1.5 + 0.2
    phase = torch.rand(batch, 1, 330, generator=gen) * 2 * math.pi
    return identity + 0.3 * torch.sin(2 * math.pi * freq * t + phase)


def test_edge_counts_and_widths_per_layer() -> None:
    config = FGDEncoderConfig()
    assert [layer.num_edges for layer in config.topology] == [55, 35, 20, 20]
    assert config.topology[-1].num_output_edges == 20
    assert [layer.pool_groups is not None for layer in config.topology] == [True, True,
                                                                            False, False]
    assert config.channels_per_edge == (6, 6, 6, 12, 12)
    assert config.latent_dim == 240 and config.input_dim == 330
    assert config.downsample_factor == 16


def test_neighbourhoods_of_known_edges() -> None:
    edges = skeleton_edges(PARENTS)
    assert edges[0] == (0, 55) and edges[20] == (18, 20)
    neighbours = edge_neighbours(edges, 2)
    # left wrist: elbow and shoulder bones, the five finger bases and their second segments
    assert neighbours[20] == (16, 18, 20, 25, 26, 28, 29, 31, 32, 34, 35, 37, 38)
    # virtual root edge: the three bones leaving the pelvis and the bones after them
    assert neighbours[0] == (0, 1, 2, 3, 4, 5, 6)


def test_mask_restricts_each_edge_to_its_neighbourhood(model: FGDAutoencoder) -> None:
    mask = model.encoder.layers[0].conv.mask  # [330, 330, 4]
    rows = mask[20 * 6:21 * 6, :, 0]  # outputs of the left-wrist edge
    read_edges = sorted({int(c) // 6 for c in rows.nonzero()[:, 1]})
    assert read_edges == [16, 18, 20, 25, 26, 28, 29, 31, 32, 34, 35, 37, 38]
    # changing an input joint outside the neighbourhood leaves the edge's outputs unchanged
    x = torch.randn(1, 330, 32)
    y = x.clone()
    y[:, 54 * 6:55 * 6] += 1.0  # right pinky tip
    conv = model.encoder.layers[0].conv
    assert torch.equal(conv(x)[:, 20 * 6:21 * 6], conv(y)[:, 20 * 6:21 * 6])
    assert not torch.equal(conv(x)[:, 54 * 6:55 * 6], conv(y)[:, 54 * 6:55 * 6])


def test_shapes_and_length_check(model: FGDAutoencoder) -> None:
    x = smooth_rot6d(torch.Generator().manual_seed(0), 2, 64)
    with torch.no_grad():
        out = model(x)
        latents = model.encode(x)
    assert out.latents.shape == latents.shape == (2, 4, 240)
    assert out.reconstruction.shape == (2, 64, 330)
    assert torch.equal(out.latents, latents)
    assert latents.abs().max() <= 1.0  # tanh output
    with pytest.raises(ValueError, match="multiple of 16"):
        model.encode(x[:, :40])
    with pytest.raises(ValueError, match=r"\[B, T, 330\]"):
        model.encode(x[..., :300])


def official_shapes() -> dict[str, tuple[int, ...]]:
    """Names and shapes of every tensor in EMAGE's VAESKConv (AESKConv_240_100.bin)."""
    shapes: dict[str, tuple[int, ...]] = {}
    layers = [(330, 330, 210), (210, 210, 120), (240, 120, None), (240, 240, None)]
    for i, (out, inp, pooled) in enumerate(layers):
        p = f"encoder.layers.{i}.0."
        shapes |= {p + "residual.0.weight": (out, inp, 4), p + "residual.0.bias": (out,),
                   p + "residual.0.mask": (out, inp, 4), p + "residual.1.weight": (out,),
                   p + "residual.1.bias": (out,), p + "shortcut.weight": (out, inp, 1),
                   p + "shortcut.bias": (out,), p + "shortcut.mask": (out, inp, 1)}
        if pooled:
            shapes[p + "common.0.weight"] = (pooled, out)
    for r in (0, 1):
        for conv in (0, 2):
            shapes[f"decoder.main.{r}.model.{conv}.weight"] = (240, 240, 3)
            shapes[f"decoder.main.{r}.model.{conv}.bias"] = (240,)
    for index, (out, inp) in {3: (240, 240), 6: (240, 240), 9: (240, 240), 12: (330, 240),
                              14: (330, 330)}.items():
        shapes[f"decoder.main.{index}.weight"] = (out, inp, 3)
        shapes[f"decoder.main.{index}.bias"] = (out,)
    for head in ("fc_mu", "fc_logvar"):
        shapes |= {f"{head}.weight": (240, 240), f"{head}.bias": (240,)}
    return shapes


def official_state(model: FGDAutoencoder) -> OrderedDict[str, torch.Tensor]:
    """Random trained tensors; masks and pooling matrices are structure, taken from the model."""
    g = torch.Generator().manual_seed(3)
    structure = {}
    for i, layer in enumerate(model.encoder.layers):
        p = f"encoder.layers.{i}.0."
        structure[p + "residual.0.mask"] = layer.conv.mask
        structure[p + "shortcut.mask"] = layer.shortcut.mask
        if layer.pool is not None:
            structure[p + "common.0.weight"] = layer.pool
    state = OrderedDict()
    for name, shape in official_shapes().items():
        state[name] = (structure[name].clone() if name in structure
                       else torch.randn(shape, generator=g) * 0.1)
    return state


def reference_latents(state: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """The official encoder's computation written against the official tensor names."""
    h = x.transpose(1, 2)
    for i in range(4):
        p = f"encoder.layers.{i}.0."
        main = F.conv1d(h, state[p + "residual.0.weight"] * state[p + "residual.0.mask"],
                        state[p + "residual.0.bias"], stride=2, padding=1)
        main = F.group_norm(main, 10, state[p + "residual.1.weight"],
                            state[p + "residual.1.bias"])
        short = F.conv1d(h, state[p + "shortcut.weight"] * state[p + "shortcut.mask"],
                         state[p + "shortcut.bias"], stride=2)
        h = main + short
        if p + "common.0.weight" in state:
            h = state[p + "common.0.weight"] @ h
        h = torch.tanh(h)
    return h.transpose(1, 2)


def test_official_layout_loads_strictly(model: FGDAutoencoder, tmp_path: Path) -> None:
    state = official_state(model)
    assert len(state) == 56
    path = tmp_path / "AESKConv_240_100.bin"
    torch.save({"model_state": OrderedDict((f"module.{k}", v) for k, v in state.items())}, path)
    loaded = load_official_fgd_encoder(path)
    assert not loaded.training
    assert torch.equal(loaded.encoder.layers[1].norm.weight,
                       state["encoder.layers.1.0.residual.1.weight"])
    assert torch.equal(loaded.decoder.resblocks[1].conv2.bias,
                       state["decoder.main.1.model.2.bias"])
    assert torch.equal(loaded.decoder.upsample[3].weight, state["decoder.main.12.weight"])
    assert torch.equal(loaded.decoder.out.weight, state["decoder.main.14.weight"])
    x = smooth_rot6d(torch.Generator().manual_seed(1), 2, 64)
    with torch.no_grad():
        assert torch.allclose(loaded.encode(x), reference_latents(state, x), atol=1e-5)
        assert loaded(x).reconstruction.shape == (2, 64, 330)


def test_mismatched_checkpoint_names_every_problem(model: FGDAutoencoder,
                                                   tmp_path: Path) -> None:
    state = official_state(model)
    del state["decoder.main.14.bias"]
    state["encoder.layers.0.0.extra"] = torch.zeros(3)
    state["encoder.layers.2.0.residual.0.weight"] = torch.zeros(240, 120, 3)
    path = tmp_path / "bad.bin"
    torch.save({"model_state": state}, path)
    with pytest.raises(DataError) as info:
        load_official_fgd_encoder(path)
    message = str(info.value)
    assert str(path) in message
    for key in ("decoder.main.14.bias", "encoder.layers.0.0.extra",
                "encoder.layers.2.0.residual.0.weight"):
        assert key in message


def test_checkpoint_of_another_skeleton_fails_the_structure_check(
        model: FGDAutoencoder, tmp_path: Path) -> None:
    state = official_state(model)
    state["encoder.layers.1.0.residual.0.mask"][0, -1, 0] = 1.0  # an extra neighbour
    path = tmp_path / "other.bin"
    torch.save({"model_state": state}, path)
    with pytest.raises(DataError, match=r"skeleton structure differs.*layers\.1\.0\.residual"):
        load_official_fgd_encoder(path)
    assert load_official_fgd_encoder(path, check_structure=False).config == model.config


def test_unreadable_checkpoints_are_data_errors(tmp_path: Path) -> None:
    (tmp_path / "junk.bin").write_bytes(b"not a checkpoint")
    with pytest.raises(DataError, match="cannot read"):
        load_official_fgd_encoder(tmp_path / "junk.bin")
    torch.save({"model_state": {"a": torch.zeros(1)}, "args": Path("x")}, tmp_path / "pkl.bin")
    with pytest.raises(DataError, match="cannot read"):  # weights_only refuses objects
        load_official_fgd_encoder(tmp_path / "pkl.bin")
    with pytest.raises(DataError, match="not found"):
        load_official_fgd_encoder(tmp_path / "missing.bin")


def test_adam_steps_reduce_reconstruction_loss() -> None:
    torch.manual_seed(0)
    model = FGDAutoencoder(FGDEncoderConfig())
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    x = smooth_rot6d(torch.Generator().manual_seed(2), 4, 64)
    with torch.no_grad():
        before = model.reconstruction_loss(x)["total"].item()
    for _ in range(10):
        terms = model.reconstruction_loss(x)
        optimizer.zero_grad()
        terms["total"].backward()
        optimizer.step()
    with torch.no_grad():
        after = model.reconstruction_loss(x)
    assert set(after) == {"rotation", "velocity", "acceleration", "total"}
    assert after["total"].item() < 0.75 * before
    # masked-out weights stay zero under training (they receive no gradient)
    conv = model.encoder.layers[0].conv
    assert torch.all(conv.weight[conv.mask == 0] == 0)


def test_save_load_gives_identical_latents(model: FGDAutoencoder, tmp_path: Path) -> None:
    folder = model.save_pretrained(tmp_path / "fgd")
    from safetensors.torch import load_file

    stored = load_file(str(folder / "model.safetensors"))
    assert "encoder.layers.0.conv.mask" not in stored  # structure is rebuilt, not stored
    loaded = FGDAutoencoder.from_pretrained(folder)
    x = smooth_rot6d(torch.Generator().manual_seed(4), 2, 32)
    with torch.no_grad():
        assert torch.equal(loaded.encode(x), model.encode(x))


def test_config_round_trip_and_validation() -> None:
    config = FGDEncoderConfig()
    assert from_dict(FGDEncoderConfig, to_dict(config)) == config
    with pytest.raises(ValueError, match="norm_groups"):
        FGDEncoderConfig(norm_groups=7)
    with pytest.raises(ValueError, match="growth"):
        FGDEncoderConfig(growth=())
    with pytest.raises(ValueError, match="precede"):
        FGDEncoderConfig(parents=(-1, 2, 0))
