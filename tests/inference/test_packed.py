"""Packed linear products equal ``F.linear``, serve only CPU float32 inference, hold no dense
copy of their weight; the encoder fast path equals PyTorch's layers."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from semtalk.inference import packed as packed_module
from semtalk.inference import prepare_for_inference
from semtalk.inference.attention import FastEncoder
from semtalk.inference.packed import (
    DenseLinear,
    PackedLinear,
    linear_product,
    packable,
    packing_supported,
)
from semtalk.modules.attention import transformer_encoder

TOLERANCE = dict(rtol=1e-5, atol=1e-5)
needs_packing = pytest.mark.skipif(not packing_supported(),
                                   reason="this PyTorch has no oneDNN packed linear")


@pytest.fixture(autouse=True)
def _pack_small_weights(monkeypatch: pytest.MonkeyPatch) -> None:
    """The tests' small weights are packed too (by default only large ones are)."""
    monkeypatch.setattr(packed_module, "MIN_PACKED_WEIGHTS", 0)


def _weights(out_dim: int = 48, in_dim: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    return (torch.randn(out_dim, in_dim, generator=generator) / in_dim ** 0.5,
            torch.randn(out_dim, generator=generator))


@needs_packing
@pytest.mark.parametrize("shape", [(16, 32), (2, 64, 32), (3, 1, 32)])
@pytest.mark.parametrize("relu", [False, True])
def test_packed_product_equals_linear(shape: tuple[int, ...], relu: bool) -> None:
    weight, bias = _weights()
    x = torch.randn(*shape)
    made = linear_product(weight, bias)
    assert isinstance(made, PackedLinear) and made.packed.is_mkldnn
    with torch.inference_mode():
        got = made(x, relu=relu)
    want = F.linear(x, weight, bias)
    want = F.relu(want) if relu else want
    assert got.shape == (*shape[:-1], 48) and not got.is_mkldnn
    torch.testing.assert_close(got, want, **TOLERANCE)
    if relu:
        assert (got == 0).any() and (got > 0).any()  # the activation is really applied


@needs_packing
def test_packed_product_without_bias_and_on_a_strided_input() -> None:
    weight, _ = _weights()
    x = torch.randn(4, 10, 32)[:, ::3]  # not contiguous
    with torch.inference_mode():
        got = linear_product(weight, None)(x)
    torch.testing.assert_close(got, F.linear(x, weight), **TOLERANCE)


def test_products_refuse_gradients_and_other_dtypes_keep_pytorchs_product() -> None:
    """Inference only: an input that needs gradients raises; float64 and bfloat16 weights are
    not packed and run ``F.linear`` itself."""
    weight, bias = _weights()
    made = linear_product(weight, bias)
    x = torch.randn(5, 32, requires_grad=True)
    with pytest.raises(RuntimeError, match="prepared for inference"):
        made(x)
    double = torch.randn(5, 32, dtype=torch.float64)
    as_double = linear_product(weight.double(), bias.double())
    assert isinstance(as_double, DenseLinear)
    with torch.inference_mode():
        torch.testing.assert_close(as_double(double),
                                   F.linear(double, weight.double(), bias.double()),
                                   rtol=0, atol=0)
    assert not packable(weight.to(torch.bfloat16))
    assert isinstance(linear_product(weight.to(torch.bfloat16), None), DenseLinear)
    if packing_supported():
        with pytest.raises(TypeError, match="float32 CPU inputs"):
            made(double)


@needs_packing
def test_only_weights_large_enough_are_packed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(packed_module, "MIN_PACKED_WEIGHTS", 48 * 32)
    weight, bias = _weights()
    assert isinstance(linear_product(weight, bias), PackedLinear)
    small = linear_product(weight[:40], bias[:40])
    assert isinstance(small, DenseLinear)
    x = torch.randn(3, 32)
    with torch.inference_mode():
        torch.testing.assert_close(small(x), F.linear(x, weight[:40], bias[:40]), rtol=0, atol=0)


def test_unsupported_platform_packs_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(packed_module, "packing_supported", lambda: False)
    weight, bias = _weights()
    made = linear_product(weight, bias)
    assert isinstance(made, DenseLinear)
    layer = nn.Sequential(nn.Linear(32, 48))
    prepare_for_inference(layer)
    assert type(layer[0]) is nn.Linear  # kept as it is
    x = torch.randn(3, 32)
    with torch.inference_mode():
        torch.testing.assert_close(made(x), F.linear(x, weight, bias), rtol=0, atol=0)


@needs_packing
def test_prepared_linear_holds_the_packed_weight_only() -> None:
    torch.manual_seed(2)
    plain = nn.Sequential(nn.Linear(32, 48), nn.ReLU(), nn.Linear(48, 8))
    prepared = prepare_for_inference(copy.deepcopy(plain))
    assert all(isinstance(prepared[k], PackedLinear) for k in (0, 2))
    assert not list(prepared.parameters())  # no dense weight left
    assert {name for name, _ in prepared.named_buffers()} == {
        "0.packed", "0.bias", "2.packed", "2.bias"}
    assert prepared.state_dict() == {}  # the packed copies are never saved
    x = torch.randn(6, 32)
    with torch.inference_mode():
        torch.testing.assert_close(prepared(x), plain(x), **TOLERANCE)
    with pytest.raises(RuntimeError, match="prepared for inference"):
        prepared.train()
    prepared.eval()  # eval mode is fine
    assert prepare_for_inference(prepared) is prepared  # preparing twice changes nothing


def test_plain_linear_trains_as_nn_linear() -> None:
    """The models hold ``nn.Linear``: training never sees a fast path."""
    from semtalk.modules.fusion import MLP

    torch.manual_seed(3)
    mlp = MLP(8, 16, 4)
    assert [type(m) for m in mlp] == [nn.Linear, nn.LeakyReLU, nn.Linear]
    optimizer = torch.optim.SGD(mlp.parameters(), lr=0.1)
    x, target = torch.randn(32, 8), torch.randn(32, 4)
    losses = []
    for _ in range(20):
        loss = F.mse_loss(mlp(x), target)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.8 * losses[0]


def test_encoder_fast_path_matches_pytorch_layers() -> None:
    torch.manual_seed(4)
    encoder = transformer_encoder(16, 4, 32, 2, dropout=0.1).eval()
    x = torch.randn(2, 9, 16)
    fast = prepare_for_inference(copy.deepcopy(encoder))
    assert isinstance(fast, FastEncoder)
    with torch.inference_mode():
        got = fast(x)
        plain = encoder(x)
    torch.testing.assert_close(got, plain, **TOLERANCE)
    assert not torch.allclose(got, x)


def test_pack_linear_layers_of_a_third_party_model(monkeypatch: pytest.MonkeyPatch) -> None:
    """``pack_linear_layers`` (used on HuBERT): big ``nn.Linear`` children become packed
    products with the same outputs; small ones stay as they are."""
    from semtalk.inference.packed import pack_linear_layers, packing_supported

    monkeypatch.setattr(packed_module, "MIN_PACKED_WEIGHTS", 1 << 16)  # the real threshold
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(512, 512), torch.nn.GELU(),
                                torch.nn.Sequential(torch.nn.Linear(512, 8)))
    x = torch.randn(3, 7, 512)
    with torch.no_grad():
        expected = model(x)
        packed = pack_linear_layers(model)
        assert packed == (1 if packing_supported() else 0)
        torch.testing.assert_close(model(x), expected, rtol=1e-5, atol=1e-5)
    assert isinstance(model[2][0], torch.nn.Linear)  # 4096 weights: not worth packing
