"""The fast modules a prepared model holds equal PyTorch's own layers, and the prepared model
holds each weight once."""

from __future__ import annotations

import copy
import dataclasses

import pytest
import torch
from torch import nn

from semtalk.inference import packed as packed_module
from semtalk.inference import prepare_for_inference
from semtalk.inference.attention import FastDecoder
from semtalk.inference.conv import FastDownsample, UnfoldedConv1d
from semtalk.inference.packed import DenseLinear, PackedLinear, packing_supported
from semtalk.modules.attention import PeriodicPositionalEncoding, transformer_decoder
from semtalk.modules.code_heads import ResidualCodeHeads
from semtalk.modules.temporal import TemporalDownsample

TOLERANCE = dict(rtol=1e-5, atol=1e-5)


def _decoder(layers: int = 3) -> nn.TransformerDecoder:
    torch.manual_seed(0)
    return transformer_decoder(16, 4, 32, layers, dropout=0.1).eval()


@pytest.mark.parametrize("with_projection", [False, True])
def test_decoder_fast_path_matches_pytorch_layers(with_projection: bool) -> None:
    decoder = _decoder()
    torch.manual_seed(1)
    projection = nn.Linear(8, 16) if with_projection else None
    tgt = torch.randn(2, 10, 16)
    memory = torch.randn(2, 7, 8 if with_projection else 16)
    fast = FastDecoder(decoder, projection)
    with torch.inference_mode():
        got = fast(tgt, memory)  # the projection is folded into the keys and values
        plain = decoder(tgt, memory if projection is None else projection(memory))
    torch.testing.assert_close(got, plain, **TOLERANCE)
    assert not torch.allclose(got, tgt)  # the decoder did something


def test_prepared_decoder_is_for_inference_and_the_plain_one_trains() -> None:
    decoder = _decoder(layers=2)
    tgt, memory = torch.randn(1, 6, 16), torch.randn(1, 5, 16)
    fast = prepare_for_inference(copy.deepcopy(decoder))
    assert isinstance(fast, FastDecoder)
    assert not any(p.requires_grad for p in fast.parameters())
    with pytest.raises(RuntimeError, match="prepared for inference"):
        fast(tgt.clone().requires_grad_(), memory)
    with pytest.raises(RuntimeError, match="prepared for inference"):
        fast.train()
    decoder.train()  # the plain model: dropout active, gradients reach the input
    torch.manual_seed(3)
    a = decoder(tgt.requires_grad_(), memory)
    a.sum().backward()
    assert tgt.grad is not None


@pytest.mark.parametrize("layers", [1, 2])
def test_residual_code_heads_fast_path_gives_the_same_codes(layers: int) -> None:
    torch.manual_seed(0)
    heads = ResidualCodeHeads(16, 24, 40, num_quantizers=4, layers=layers, heads=4,
                              feedforward=32, dropout=0.1).eval()
    x, cond = torch.randn(3, 8, 16), torch.randn(3, 32, 16)
    fast = prepare_for_inference(copy.deepcopy(heads))
    assert all(isinstance(d, FastDecoder) for d in fast.decoders)
    with torch.inference_mode():
        logits, latents = fast(x, cond)
        plain_logits, plain_latents = heads(x, cond)
    torch.testing.assert_close(logits, plain_logits, **TOLERANCE)
    torch.testing.assert_close(latents, plain_latents, **TOLERANCE)
    assert torch.equal(logits.argmax(-1), plain_logits.argmax(-1))
    assert torch.equal(latents[:, 0], x)  # layer 0 is the feature itself either way
    heads.train()  # the plain heads train: gradients reach the condition
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
    """A prepared stride-1 conv runs as one product over shifted copies of its input; it
    equals the conv, also for sequences shorter than the dilation and for batches."""
    monkeypatch.setattr(packed_module, "MIN_PACKED_WEIGHTS", 0)  # pack this small conv too
    torch.manual_seed(dilation + kernel)
    conv = nn.Conv1d(8, 6, kernel, dilation=dilation, padding=padding, bias=bias).eval()
    fast = prepare_for_inference(copy.deepcopy(conv))
    assert isinstance(fast, UnfoldedConv1d)
    if packing_supported():
        assert isinstance(fast.product, PackedLinear)
    for shape in ((1, 8, 16), (3, 8, 5 + dilation * (kernel - 1))):
        x = torch.randn(shape)
        with torch.inference_mode():
            got = fast(x)
            plain = conv(x)
        assert got.shape == plain.shape
        torch.testing.assert_close(got, plain, **TOLERANCE)


def test_strided_or_small_conv_keeps_pytorchs_kernel(monkeypatch: pytest.MonkeyPatch) -> None:
    """A strided conv, and an undilated one too small to pack, stay PyTorch's conv; a small
    dilated one is unfolded with PyTorch's product."""
    strided = prepare_for_inference(nn.Sequential(nn.Conv1d(8, 8, 4, stride=2, padding=1)))
    assert type(strided[0]) is nn.Conv1d
    monkeypatch.setattr(packed_module, "MIN_PACKED_WEIGHTS", 8 * 8 * 3 + 1)
    small = prepare_for_inference(nn.Sequential(nn.Conv1d(8, 8, 3, padding=1)))
    assert type(small[0]) is nn.Conv1d
    dilated = nn.Conv1d(8, 8, 3, padding=3, dilation=3).eval()
    fast = prepare_for_inference(copy.deepcopy(dilated))
    assert isinstance(fast, UnfoldedConv1d) and isinstance(fast.product, DenseLinear)
    x = torch.randn(1, 8, 16)
    with torch.inference_mode():
        torch.testing.assert_close(fast(x), dilated(x), **TOLERANCE)


def test_downsample_fast_path_is_the_stride_two_conv() -> None:
    torch.manual_seed(0)
    layer = TemporalDownsample(24).eval()
    fast = prepare_for_inference(copy.deepcopy(layer))
    assert isinstance(fast, FastDownsample)
    x = torch.randn(3, 24, 16).transpose(1, 2)  # [3, 16, 24], not contiguous
    with torch.inference_mode():
        got = fast(x)
        plain = layer(x)
    torch.testing.assert_close(got, plain, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(got[:, 2], layer.conv(x[:, 4:6].transpose(1, 2))[..., 0])
    with pytest.raises(ValueError, match="even length"):
        fast(torch.randn(1, 5, 24))


def _tensors(root: object) -> list[torch.Tensor]:
    """Every tensor a prepared model holds: parameters, buffers and the stacked heads'
    weights kept as plain attributes (each storage once)."""
    found: dict[object, torch.Tensor] = {}
    seen: set[int] = set()

    def visit(value: object) -> None:
        if id(value) in seen:
            return
        seen.add(id(value))
        if isinstance(value, torch.Tensor):
            key = id(value) if value.is_mkldnn else value.untyped_storage().data_ptr()
            found.setdefault(key, value)
        elif isinstance(value, nn.Module):
            for item in value.__dict__.values():
                visit(item)
        elif isinstance(value, dict):
            for item in value.values():
                visit(item)
        elif isinstance(value, (list, tuple)):
            for item in value:
                visit(item)
        elif dataclasses.is_dataclass(value) and not isinstance(value, type):
            for field in dataclasses.fields(value):
                visit(getattr(value, field.name))

    visit(root)
    return list(found.values())


def _bytes(tensors: list[torch.Tensor]) -> int:
    return sum(t.numel() * t.element_size() for t in tensors)


@pytest.mark.skipif(not packing_supported(), reason="this PyTorch has no oneDNN packed linear")
def test_prepared_generators_hold_no_dense_copy_of_packed_weights(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Packed weights replace the dense ones: the prepared base and sparse models hold about
    as many bytes as the plain ones (folded memory projections hold fewer), the dense ones a
    small rest (embeddings, norms, biases, the few weights not packed)."""
    from semtalk.models.base_generator import BaseMotionGenerator
    from semtalk.models.sparse_generator import SparseMotionGenerator
    from semtalk.training.presets import load_preset

    monkeypatch.setattr(packed_module, "MIN_PACKED_WEIGHTS", 0)
    base = load_preset("base_generator", "tiny", speech_dim=20, beat_dim=4)
    sizes = dataclasses.replace(base.sizes, residual_layers=2, word_layers=2)
    sparse = load_preset("sparse_generator", "tiny", speech_dim=20, vocab_size=30,
                         sentence_dim=12, emotion_dim=6, sizes=sizes)
    torch.manual_seed(0)
    for plain in (BaseMotionGenerator(dataclasses.replace(base, sizes=sizes)),
                  SparseMotionGenerator(sparse)):
        plain_bytes = _bytes(_tensors(plain))
        prepared = prepare_for_inference(copy.deepcopy(plain))
        tensors = _tensors(prepared)
        packed = _bytes([t for t in tensors if t.is_mkldnn])
        dense = _bytes([t for t in tensors if not t.is_mkldnn])
        assert packed + dense <= 1.02 * plain_bytes, (packed, dense, plain_bytes)
        assert dense < 0.35 * plain_bytes, (dense, plain_bytes)
        assert packed > 0.6 * plain_bytes


def test_prepared_fgd_autoencoder_encodes_like_the_plain_one() -> None:
    """Every semtalk model prepares: the FGD autoencoder (its convs swapped) still finds its
    weights' dtype and encodes as the plain model does."""
    from semtalk.metrics.fgd_encoder import FGDAutoencoder, FGDEncoderConfig

    torch.manual_seed(0)
    plain = FGDAutoencoder(FGDEncoderConfig()).eval()
    prepared = prepare_for_inference(copy.deepcopy(plain))
    rot6d = torch.randn(2, 32, 330)
    with torch.no_grad():
        torch.testing.assert_close(prepared.encode(rot6d), plain.encode(rot6d),
                                   rtol=1e-4, atol=1e-4)
    assert prepared.dtype == torch.float32
