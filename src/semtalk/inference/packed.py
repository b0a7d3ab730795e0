"""Linear products with weights packed once for oneDNN (CPU inference in float32).

On the CPU, ``F.linear`` hands each product to a BLAS that re-packs the weight matrix into its
blocked layout on every call. The generators' products are short (16-64 rows, one window) against
weights that no longer sit in cache when the next window comes (0.07-2.4 M entries each, 350 M in
all), so that re-packing is a large share of the time. Packed once into oneDNN's layout
(``torch.ops.mkldnn._reorder_linear_weight``, the kernels PyTorch's compiler uses for frozen CPU
models) the same products run markedly faster; measured on this project's 2-core AMD EPYC
(AVX-512), cold weights, one thread: 16 rows 30-46 -> 57-66 GFLOP/s, 64 rows 76-85 -> 97-107
GFLOP/s.

:func:`linear_product` turns a weight and bias into the module that computes ``x W^T + b`` in
inference: a :class:`PackedLinear` holding only the packed weight (the dense one is dropped, so
a prepared model holds each weight once) where it pays (:func:`packable`: a float32 CPU weight
of at least 256 x 256 entries, oneDNN present and checked once against ``F.linear``), else a
:class:`DenseLinear` running PyTorch's own product (the GPU, bfloat16, float64, small weights).
Both refuse inputs that need gradients: prepared modules are for inference only.
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F
from torch import nn


@functools.cache
def packing_supported() -> bool:
    """True when this PyTorch has oneDNN's packed linear and it agrees with ``F.linear`` on a
    small product (checked once per process)."""
    try:
        if not torch.backends.mkldnn.is_available():
            return False
        generator = torch.Generator().manual_seed(0)
        x = torch.randn(5, 24, generator=generator)
        weight = torch.randn(40, 24, generator=generator)
        bias = torch.randn(40, generator=generator)
        with torch.inference_mode(False), torch.no_grad():
            packed = torch.ops.mkldnn._reorder_linear_weight(weight)
            product = torch.ops.mkldnn._linear_pointwise(x, packed, bias, "relu", [], "")
        return torch.allclose(product, F.relu(F.linear(x, weight, bias)), rtol=1e-5, atol=1e-5)
    except (RuntimeError, AttributeError, NotImplementedError):
        return False


MIN_PACKED_WEIGHTS = 1 << 16
"""Smaller weights stay unpacked: below about 256 x 256 entries oneDNN's fixed cost per call
(about 15 µs) outweighs what packing saves (measured on this project's CPU machine: a
``[16, 64] x [64, 64]`` product takes 8 µs unpacked and 22 µs packed, ``[16, 256] x [256, 256]``
64 µs and 52 µs, with cold weights)."""


def packable(weight: torch.Tensor) -> bool:
    """True when :func:`linear_product` packs ``weight``: a 2-D float32 CPU tensor of at least
    :data:`MIN_PACKED_WEIGHTS` entries, and :func:`packing_supported`."""
    return (weight.dtype == torch.float32 and weight.device.type == "cpu" and weight.dim() == 2
            and weight.numel() >= MIN_PACKED_WEIGHTS and packing_supported())


PREPARED_ONLY = ("was prepared for inference (semtalk.inference.prepare_for_inference): it "
                 "neither trains nor computes gradients; train the plain model")


def _refuse_gradients(x: torch.Tensor) -> None:
    if x.requires_grad:
        raise RuntimeError(f"this module {PREPARED_ONLY}")


class InferenceModule(nn.Module):
    """A module of a prepared model: always in eval mode; ``train()`` raises."""

    def train(self, mode: bool = True) -> InferenceModule:
        if mode:
            raise RuntimeError(f"this model {PREPARED_ONLY}")
        return super().train(False)


class PackedLinear(InferenceModule):
    """``x W^T + b`` from ``W`` packed for oneDNN (float32, CPU; see :func:`packable`).

    Holds the packed weight and the bias only (buffers ``packed`` and ``bias``), not ``W``.
    """

    packed: torch.Tensor
    bias: torch.Tensor | None

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None) -> None:
        super().__init__()
        self.in_features, self.out_features = weight.shape[1], weight.shape[0]
        with torch.inference_mode(False), torch.no_grad():
            packed = torch.ops.mkldnn._reorder_linear_weight(weight.detach().contiguous())
        self.register_buffer("packed", packed, persistent=False)
        self.register_buffer("bias", None if bias is None else bias.detach().contiguous(),
                             persistent=False)

    def forward(self, x: torch.Tensor, relu: bool = False) -> torch.Tensor:
        """``[..., in] -> [..., out]`` (float32 on the CPU); ``relu``: ReLU applied to it."""
        _refuse_gradients(x)
        if x.dtype != torch.float32 or x.device.type != "cpu":
            raise TypeError(f"a packed product takes float32 CPU inputs, got {x.dtype} on "
                            f"{x.device} (prepare the model after casting it)")
        return torch.ops.mkldnn._linear_pointwise(x, self.packed, self.bias,
                                                  "relu" if relu else "none", [], "")

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, packed"


class DenseLinear(InferenceModule):
    """``x W^T + b`` with PyTorch's product (buffers ``weight [out, in]`` and ``bias``): where
    packing does not serve (see :func:`packable`)."""

    weight: torch.Tensor
    bias: torch.Tensor | None

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None) -> None:
        super().__init__()
        self.register_buffer("weight", weight.detach(), persistent=False)
        self.register_buffer("bias", None if bias is None else bias.detach(), persistent=False)

    def forward(self, x: torch.Tensor, relu: bool = False) -> torch.Tensor:
        """``[..., in] -> [..., out]``; ``relu``: ReLU applied to the result."""
        _refuse_gradients(x)
        y = F.linear(x, self.weight, self.bias)
        return F.relu(y) if relu else y


def release_parameters(*modules: nn.Module) -> None:
    """Free the parameters of ``modules`` (they become empty): for the plain modules a prepared
    model discards, as soon as their fast copies are built (it keeps its peak memory low)."""
    for module in modules:
        for parameter in module.parameters():
            parameter.data = torch.empty(0, dtype=parameter.dtype, device=parameter.device)


def linear_product(weight: torch.Tensor, bias: torch.Tensor | None) -> PackedLinear | DenseLinear:
    """The inference module of ``x W^T + b``: packed where it pays (:func:`packable`)."""
    return PackedLinear(weight, bias) if packable(weight) else DenseLinear(weight, bias)


def pack_linear_layers(model: nn.Module) -> int:
    """Replace, in place, every ``nn.Linear`` of a third-party inference model (e.g. HuBERT) by
    :func:`linear_product` of its weight; returns how many were packed. The model then serves
    inference only (no gradients), and its outputs equal the plain ones up to float rounding."""
    packed = 0
    for module in list(model.modules()):
        for name, child in list(module.named_children()):
            if isinstance(child, nn.Linear) and packable(child.weight):
                setattr(module, name, PackedLinear(child.weight.detach(),
                                                   None if child.bias is None
                                                   else child.bias.detach()))
                packed += 1
    return packed
