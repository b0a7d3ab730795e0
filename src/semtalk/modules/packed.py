"""Linear products with weights packed once for oneDNN (CPU inference in float32).

On the CPU, ``F.linear`` hands each product to a BLAS that re-packs the weight matrix into its
blocked layout on every call. The generators' products are short (16-64 rows, one window) against
weights that no longer sit in cache when the next window comes (0.07-2.4 M entries each, 350 M in
all), so that re-packing is a large share of the time. Packed once into oneDNN's layout
(``torch.ops.mkldnn._reorder_linear_weight``, the kernels PyTorch's compiler uses for frozen CPU
models) the same products run markedly faster; measured on this project's 2-core AMD EPYC
(AVX-512), cold weights, one thread: 16 rows 30-46 -> 57-66 GFLOP/s, 64 rows 76-85 -> 97-107
GFLOP/s. A packed weight is a copy (as large as the weight), built on first use and kept on its
module (:func:`~semtalk.modules.inference.cached`) until the parameter changes.

:class:`Product` is one ``x W^T + b`` (optionally with ReLU) that takes the packed kernel when it
can (a float32 input on the CPU, autograd off, a weight of at least 256 x 256 entries, oneDNN
present and checked once against ``F.linear``: :func:`packable`) and ``F.linear`` otherwise,
so the GPU, other dtypes and training run PyTorch's own product. :class:`Linear` is
``nn.Linear`` (same parameters and state dict) with that product in inference.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from semtalk.modules.inference import cached, uses_fast_path


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
    """True when :func:`prepare` packs ``weight``: a 2-D float32 CPU tensor of at least
    :data:`MIN_PACKED_WEIGHTS` entries, and :func:`packing_supported`."""
    return (weight.dtype == torch.float32 and weight.device.type == "cpu" and weight.dim() == 2
            and weight.numel() >= MIN_PACKED_WEIGHTS and packing_supported())


@dataclass(frozen=True)
class Product:
    """``x W^T + b`` (``weight [out, in]``, ``bias [out]`` or None), with ``packed``: the
    weight in oneDNN's layout, or None where it cannot be packed (see :func:`prepare`)."""

    weight: torch.Tensor
    bias: torch.Tensor | None
    packed: torch.Tensor | None

    def __call__(self, x: torch.Tensor, relu: bool = False) -> torch.Tensor:
        """``[..., in] -> [..., out]``; ``relu``: ReLU applied to the result."""
        if (self.packed is not None and x.dtype == torch.float32 and x.device.type == "cpu"
                and not torch.is_grad_enabled()):
            return torch.ops.mkldnn._linear_pointwise(x, self.packed, self.bias,
                                                      "relu" if relu else "none", [], "")
        y = F.linear(x, self.weight, self.bias)
        return F.relu(y) if relu else y


def prepare(weight: torch.Tensor, bias: torch.Tensor | None) -> Product:
    """The :class:`Product` of ``weight`` and ``bias`` (detached), packed where it pays
    (:func:`packable`)."""
    weight = weight.detach()
    bias = None if bias is None else bias.detach()
    packed = None
    if packable(weight):
        with torch.inference_mode(False), torch.no_grad():
            packed = torch.ops.mkldnn._reorder_linear_weight(weight.contiguous())
    return Product(weight, bias, packed)


def product(owner: nn.Module, name: str, weight: torch.Tensor,
            bias: torch.Tensor | None) -> Product:
    """``prepare(weight, bias)``, kept on ``owner`` as ``name`` until one of them changes."""
    sources = [weight] if bias is None else [weight, bias]
    return cached(owner, f"product_{name}", sources, lambda: prepare(weight, bias))


def linear(module: nn.Linear, x: torch.Tensor, relu: bool = False) -> torch.Tensor:
    """``module``'s product ``x W^T + b`` (then ReLU if ``relu``), packed in inference
    (:func:`uses_fast_path`)."""
    if not uses_fast_path(module):
        y = F.linear(x, module.weight, module.bias)
        return F.relu(y) if relu else y
    return product(module, "linear", module.weight, module.bias)(x, relu)


class Linear(nn.Linear):
    """``nn.Linear`` (same parameters, state dict and training) whose inference product uses
    the packed weight (:func:`linear`)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[..., in] -> [..., out]``."""
        return linear(self, x)
