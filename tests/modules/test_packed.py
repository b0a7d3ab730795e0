"""Packed linear products equal ``F.linear``, run only in CPU float32 inference, and follow the
weights; the encoder fast path equals PyTorch's layers."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from semtalk.modules import packed as packed_module
from semtalk.modules.attention import run_encoder, transformer_encoder
from semtalk.modules.inference import plain_inference
from semtalk.modules.packed import Linear, packing_supported, prepare, product

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
    made = prepare(weight, bias)
    assert made.packed is not None and made.packed.is_mkldnn
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
        got = prepare(weight, None)(x)
    torch.testing.assert_close(got, F.linear(x, weight), **TOLERANCE)


def test_product_falls_back_where_packing_does_not_serve() -> None:
    """Autograd on, another dtype, or a platform without packing: ``F.linear`` itself."""
    weight, bias = _weights()
    made = prepare(weight, bias)
    x = torch.randn(5, 32, requires_grad=True)
    y = made(x, relu=True)
    y.sum().backward()  # with autograd on the product is differentiable
    assert x.grad is not None and x.grad.abs().sum() > 0
    double = torch.randn(5, 32, dtype=torch.float64)
    with torch.inference_mode():
        torch.testing.assert_close(prepare(weight.double(), bias.double())(double),
                                   F.linear(double, weight.double(), bias.double()))
    assert prepare(weight.double(), bias.double()).packed is None
    assert prepare(weight.to(torch.bfloat16), None).packed is None


@needs_packing
def test_only_weights_large_enough_are_packed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(packed_module, "MIN_PACKED_WEIGHTS", 48 * 32)
    weight, bias = _weights()
    assert prepare(weight, bias).packed is not None
    small = prepare(weight[:40], bias[:40])
    assert small.packed is None
    x = torch.randn(3, 32)
    with torch.inference_mode():
        torch.testing.assert_close(small(x), F.linear(x, weight[:40], bias[:40]), rtol=0, atol=0)


def test_unsupported_platform_packs_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(packed_module, "packing_supported", lambda: False)
    weight, bias = _weights()
    made = prepare(weight, bias)
    assert made.packed is None
    x = torch.randn(3, 32)
    with torch.inference_mode():
        torch.testing.assert_close(made(x), F.linear(x, weight, bias), rtol=0, atol=0)


@needs_packing
def test_linear_module_packs_in_inference_and_follows_its_weights() -> None:
    torch.manual_seed(2)
    layer = Linear(32, 48)
    reference = nn.Linear(32, 48)
    assert layer.state_dict().keys() == reference.state_dict().keys()  # same checkpoints
    x = torch.randn(6, 32)
    layer.train()
    with torch.no_grad():
        layer(x)
    assert "_fast_product_linear" not in layer.__dict__  # training: PyTorch's product
    layer.eval()
    with torch.inference_mode():
        first = layer(x)
        kept = layer.__dict__["_fast_product_linear"][1]
        assert kept.packed is not None
        with plain_inference():
            torch.testing.assert_close(first, layer(x), **TOLERANCE)
        layer(x)
        assert layer.__dict__["_fast_product_linear"][1] is kept  # packed once
    with torch.no_grad():
        layer.weight.mul_(-1.0)  # an optimizer step or load_state_dict
    with torch.inference_mode():
        changed = layer(x)
    assert layer.__dict__["_fast_product_linear"][1] is not kept
    torch.testing.assert_close(changed, F.linear(x, layer.weight, layer.bias), **TOLERANCE)
    assert not torch.allclose(changed, first)


def test_linear_module_trains_like_nn_linear() -> None:
    torch.manual_seed(3)
    layer = Linear(8, 4)
    optimizer = torch.optim.SGD(layer.parameters(), lr=0.1)
    x, target = torch.randn(32, 8), torch.randn(32, 4)
    losses = []
    for _ in range(20):
        loss = F.mse_loss(layer(x), target)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.8 * losses[0]


@needs_packing
def test_product_is_kept_per_owner_and_name() -> None:
    owner = nn.Linear(2, 2)
    weight, bias = _weights()
    first = product(owner, "a", weight, bias)
    assert product(owner, "a", weight, bias) is first
    assert product(owner, "b", weight[:16], bias[:16]) is not first
    with torch.inference_mode():
        x = torch.randn(3, 32)
        torch.testing.assert_close(product(owner, "b", weight[:16], bias[:16])(x),
                                   F.linear(x, weight[:16], bias[:16]), **TOLERANCE)


def test_encoder_fast_path_matches_pytorch_layers() -> None:
    torch.manual_seed(4)
    encoder = transformer_encoder(16, 4, 32, 2, dropout=0.1).eval()
    x = torch.randn(2, 9, 16)
    calls: list[int] = []
    for layer in encoder.layers:
        layer.register_forward_hook(lambda *_: calls.append(1))
    with torch.inference_mode():
        fast = run_encoder(encoder, x)
        assert not calls
        with plain_inference():
            plain = run_encoder(encoder, x)
        assert len(calls) == 2
    torch.testing.assert_close(fast, plain, **TOLERANCE)
    assert not torch.allclose(fast, x)
    encoder.train()  # training: the layers themselves, with dropout
    run_encoder(encoder, x)
    assert len(calls) == 4
