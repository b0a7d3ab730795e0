"""Inference fast path of the convolutions: stride-1 convs and the stride-2 downsampling as
unfolded products.

:class:`UnfoldedConv1d` replaces a stride-1, zero-padded, ungrouped ``nn.Conv1d`` whose
unfolded weight is packed (:mod:`semtalk.inference.packed`) or that is dilated: it runs as one
product over the ``k`` shifted copies of its input stacked along channels (im2col), weight
``[C_out, k * C_in]``, kernel tap major. PyTorch's CPU conv kernels are 1.3-3.5x slower at the
16-64-frame lengths of generation. A small undilated conv keeps PyTorch's kernel (as fast
there). :class:`FastDownsample` replaces :class:`~semtalk.modules.temporal.TemporalDownsample`
(``Conv1d(D -> D, k2, s2)``): the same product as one Linear over frame pairs,
``[B, T/2, 2D] -> [B, T/2, D]``, about 3x faster than the conv at 32-64 frames on a CPU
(packed). Both equal the convs up to float rounding.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from semtalk.inference.packed import InferenceModule, linear_product, packable
from semtalk.modules.temporal import TemporalDownsample


def unfolded_weight(conv: nn.Conv1d) -> torch.Tensor:
    """``conv``'s weight as one product over its ``k`` input frames stacked along channels:
    ``[C_out, k * C_in]``, kernel tap major."""
    return conv.weight.detach().permute(0, 2, 1).reshape(conv.out_channels, -1)


def unfolds(conv: nn.Conv1d) -> bool:
    """True when :class:`UnfoldedConv1d` replaces ``conv``: stride 1, ungrouped, zero padding
    given as a number, and its unfolded weight packed or the conv dilated."""
    return (type(conv) is nn.Conv1d and conv.stride[0] == 1 and conv.groups == 1
            and conv.padding_mode == "zeros" and not isinstance(conv.padding, str)
            and (conv.dilation[0] > 1 or packable(unfolded_weight(conv))))


class UnfoldedConv1d(InferenceModule):
    """A stride-1 ``nn.Conv1d`` as one product over shifted copies of its input:
    ``[B, C_in, T] -> [B, C_out, T']`` (a channels-last result viewed as ``[B, C, T]``)."""

    def __init__(self, conv: nn.Conv1d) -> None:
        super().__init__()
        self.kernel, self.dilation = conv.kernel_size[0], conv.dilation[0]
        if isinstance(conv.padding, str):  # unfolds() takes numeric padding only
            raise ValueError(f"an unfolded conv needs numeric padding, got {conv.padding!r}")
        self.padding = conv.padding[0]
        self.product = linear_product(unfolded_weight(conv).contiguous(), conv.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, C_in, T] -> [B, C_out, T']``."""
        rows = x.transpose(1, 2)  # [B, T, C_in]
        kernel, dilation, padding = self.kernel, self.dilation, self.padding
        if kernel > 1 or padding:
            padded = F.pad(rows, (0, 0, padding, padding))
            frames = padded.shape[1] - dilation * (kernel - 1)
            rows = torch.cat([padded[:, k * dilation:k * dilation + frames]
                              for k in range(kernel)], dim=-1)  # [B, T', k C_in]
        return self.product(rows).transpose(1, 2)


class FastDownsample(InferenceModule):
    """:class:`~semtalk.modules.temporal.TemporalDownsample` as one product over frame pairs:
    ``[B, T, D] -> [B, T/2, D]`` (T even)."""

    def __init__(self, downsample: TemporalDownsample) -> None:
        super().__init__()
        self.product = linear_product(unfolded_weight(downsample.conv).contiguous(),
                                      downsample.conv.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, T, D] -> [B, T/2, D]``."""
        if x.shape[1] % 2:
            raise ValueError(f"TemporalDownsample needs an even length, got T={x.shape[1]}")
        return self.product(x.reshape(x.shape[0], x.shape[1] // 2, -1))
