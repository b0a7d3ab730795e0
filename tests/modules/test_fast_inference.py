"""The decoders' inference fast path equals PyTorch's own layers, and only runs in inference."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from semtalk.modules.attention import (
    PeriodicPositionalEncoding,
    run_decoder,
    transformer_decoder,
)
from semtalk.modules.code_heads import ResidualCodeHeads
from semtalk.modules.inference import plain_inference, uses_fast_path

TOLERANCE = dict(rtol=1e-5, atol=1e-5)


def _decoder(layers: int = 3) -> nn.TransformerDecoder:
    torch.manual_seed(0)
    return transformer_decoder(16, 4, 32, layers, dropout=0.1).eval()


def _spy_plain_layers(decoder: nn.TransformerDecoder) -> list[int]:
    """Count calls of the layers' own ``forward`` (the plain path)."""
    calls: list[int] = []
    for layer in decoder.layers:
        layer.register_forward_hook(lambda *_: calls.append(1))
    return calls


@pytest.mark.parametrize("with_projection", [False, True])
def test_decoder_fast_path_matches_pytorch_layers(with_projection: bool) -> None:
    decoder = _decoder()
    torch.manual_seed(1)
    projection = nn.Linear(8, 16) if with_projection else None
    tgt = torch.randn(2, 10, 16)
    memory = torch.randn(2, 7, 8 if with_projection else 16)
    calls = _spy_plain_layers(decoder)
    with torch.inference_mode():
        fast = run_decoder(decoder, tgt, memory, projection)
        assert not calls  # the fast path never ran the layers' own forward
        with plain_inference():
            plain = run_decoder(decoder, tgt, memory, projection)
        assert len(calls) == 3
        direct = decoder(tgt, memory if projection is None else projection(memory))
    torch.testing.assert_close(fast, plain, **TOLERANCE)
    torch.testing.assert_close(plain, direct, rtol=0, atol=0)
    assert not torch.allclose(fast, tgt)  # the decoder did something


def test_fast_path_only_in_eval_mode_without_autograd() -> None:
    decoder = _decoder(layers=2)
    tgt, memory = torch.randn(1, 6, 16), torch.randn(1, 5, 16)
    calls = _spy_plain_layers(decoder)
    assert not uses_fast_path(decoder)  # eval mode, but autograd on
    with torch.no_grad():
        assert uses_fast_path(decoder)
        with plain_inference():
            assert not uses_fast_path(decoder)
    out = run_decoder(decoder, tgt.requires_grad_(), memory)
    out.sum().backward()  # the plain path: gradients reach the input
    assert tgt.grad is not None and len(calls) == 2
    decoder.train()
    with torch.no_grad():
        assert not uses_fast_path(decoder)
        torch.manual_seed(3)
        a = run_decoder(decoder, tgt, memory)
        torch.manual_seed(3)
        b = decoder(tgt, memory)  # training: dropout active, plain path, same random draws
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert len(calls) == 6


def test_fused_weights_follow_parameter_updates() -> None:
    decoder = _decoder(layers=2)
    projection = nn.Linear(8, 16)
    tgt, memory = torch.randn(1, 6, 16), torch.randn(1, 5, 8)
    optimizer = torch.optim.SGD([*decoder.parameters(), *projection.parameters()], lr=0.5)
    with torch.inference_mode():
        before = run_decoder(decoder, tgt, memory, projection)
    loss = decoder(tgt, projection(memory)).square().sum()  # an ordinary training step
    loss.backward()
    optimizer.step()
    with torch.inference_mode():
        after = run_decoder(decoder, tgt, memory, projection)
        with plain_inference():
            expected = run_decoder(decoder, tgt, memory, projection)
    assert not torch.allclose(before, after, atol=1e-4)
    torch.testing.assert_close(after, expected, **TOLERANCE)
    with torch.no_grad():  # load_state_dict copies in place: the cache notices that too
        state = {k: v + 0.1 for k, v in projection.state_dict().items()}
        projection.load_state_dict(state)
    with torch.inference_mode():
        reloaded = run_decoder(decoder, tgt, memory, projection)
        with plain_inference():
            expected = run_decoder(decoder, tgt, memory, projection)
    torch.testing.assert_close(reloaded, expected, **TOLERANCE)
    assert not any(name.startswith("_fast") for name in decoder.state_dict())


@pytest.mark.parametrize("layers", [1, 2])
def test_residual_code_heads_fast_path_gives_the_same_codes(layers: int) -> None:
    torch.manual_seed(0)
    heads = ResidualCodeHeads(16, 24, 40, num_quantizers=4, layers=layers, heads=4,
                              feedforward=32, dropout=0.1).eval()
    x, cond = torch.randn(3, 8, 16), torch.randn(3, 32, 16)
    with torch.inference_mode():
        logits, latents = heads(x, cond)
        with plain_inference():
            plain_logits, plain_latents = heads(x, cond)
    torch.testing.assert_close(logits, plain_logits, **TOLERANCE)
    torch.testing.assert_close(latents, plain_latents, **TOLERANCE)
    assert torch.equal(logits.argmax(-1), plain_logits.argmax(-1))
    assert torch.equal(latents[:, 0], x)  # layer 0 is the feature itself either way
    heads.train()  # training mode: the plain path with gradients
    logits, _ = heads(x, cond.requires_grad_())
    logits.sum().backward()
    assert cond.grad is not None and cond.grad.abs().sum() > 0


def test_positional_encoding_slice_equals_the_periodic_index() -> None:
    pe = PeriodicPositionalEncoding(8, period=6, dropout=0.0)
    for frames in (1, 5, 6, 7, 13):
        index = torch.arange(frames) % 6
        torch.testing.assert_close(pe(torch.zeros(2, frames, 8)),
                                   pe.table[index].expand(2, frames, 8), rtol=0, atol=0)


@pytest.mark.parametrize(("kernel", "dilation", "padding", "bias"),
                         [(3, 1, 1, True), (3, 3, 3, True), (3, 9, 9, True), (1, 1, 0, True),
                          (3, 1, 1, False), (3, 2, 0, True), (2, 1, 1, True)])
def test_conv_fast_path_is_the_conv(kernel: int, dilation: int, padding: int, bias: bool,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """In inference a stride-1 conv runs as one product over shifted copies of its input; it
    equals the conv (also for sequences shorter than the dilation and for batches), follows a
    changed weight, and training keeps PyTorch's conv."""
    from semtalk.modules import packed
    from semtalk.modules.conv import Conv1d

    monkeypatch.setattr(packed, "MIN_PACKED_WEIGHTS", 0)  # pack this small conv too

    torch.manual_seed(dilation + kernel)
    conv = Conv1d(8, 6, kernel, dilation=dilation, padding=padding, bias=bias).eval()
    assert conv.state_dict().keys() == nn.Conv1d(8, 6, kernel, bias=bias).state_dict().keys()
    for shape in ((1, 8, 16), (3, 8, 5 + dilation * (kernel - 1))):
        x = torch.randn(shape)
        with torch.inference_mode():
            fast = conv(x)
            assert "_fast_unfolded_product" in conv.__dict__  # the product ran, not the conv
            with plain_inference():
                plain = conv(x)
        assert fast.shape == plain.shape
        torch.testing.assert_close(fast, plain, **TOLERANCE)
    with torch.no_grad():
        conv.weight.mul_(-2.0)
    x = torch.randn(2, 8, 12)
    with torch.inference_mode():
        torch.testing.assert_close(conv(x), F.conv1d(x, conv.weight, conv.bias,
                                                     dilation=dilation, padding=padding),
                                   **TOLERANCE)
    conv.train()
    del conv.__dict__["_fast_unfolded_product"]
    out = conv(x)
    assert out.requires_grad and "_fast_unfolded_product" not in conv.__dict__


def test_strided_or_small_conv_keeps_pytorchs_kernel(monkeypatch: pytest.MonkeyPatch) -> None:
    """A strided conv, and an undilated one too small to pack, run PyTorch's conv."""
    from semtalk.modules import packed
    from semtalk.modules.conv import Conv1d

    conv = Conv1d(8, 8, 4, stride=2, padding=1).eval()
    x = torch.randn(1, 8, 16)
    with torch.inference_mode():
        out = conv(x)
    assert "_fast_unfolded_product" not in conv.__dict__
    torch.testing.assert_close(out, F.conv1d(x, conv.weight, conv.bias, stride=2, padding=1),
                               rtol=0, atol=0)
    monkeypatch.setattr(packed, "MIN_PACKED_WEIGHTS", 8 * 8 * 3 + 1)
    small = Conv1d(8, 8, 3, padding=1).eval()
    with torch.inference_mode():
        out = small(x)
    assert small.__dict__["_fast_unfolded_product"][1].packed is None
    torch.testing.assert_close(out, F.conv1d(x, small.weight, small.bias, padding=1),
                               rtol=0, atol=0)


def test_cached_builds_once_when_two_threads_ask_together() -> None:
    import threading
    import time

    from semtalk.modules.inference import cached

    owner = nn.Linear(2, 2)
    builds: list[int] = []

    def build() -> int:
        builds.append(1)
        time.sleep(0.05)  # the other thread asks meanwhile
        return len(builds)

    results: list[int] = []
    threads = [threading.Thread(target=lambda: results.append(
        cached(owner, "value", [owner.weight], build))) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert builds == [1] and results == [1, 1]
    with torch.no_grad():
        owner.weight.add_(1.0)  # a changed parameter builds again
    assert cached(owner, "value", [owner.weight], build) == 2
