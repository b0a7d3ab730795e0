"""1-D convolution stacks of the RVQ-VAE: dilated residual blocks, encoder and decoder.

The layout follows T2M-GPT / MoMask as the official SemTalk code uses it (no normalisation,
ReLU activations). :class:`ConvEncoder` and :class:`ConvDecoder` take and return channels-last
tensors ``[B, T, D]``; the blocks inside work channels-first ``[B, C, T]``. (Their CPU inference
fast path, convolutions as unfolded products, lives in :mod:`semtalk.inference.conv`.)
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class ResConv1DBlock(nn.Module):
    """``x + Dropout(Conv1x1(ReLU(DilatedConv3(ReLU(x)))))`` on ``[B, C, T]`` (length kept)."""

    def __init__(self, width: int, dilation: int = 1, dropout: float = 0.0) -> None:
        super().__init__()
        self.dilated = nn.Conv1d(width, width, kernel_size=3, dilation=dilation, padding=dilation)
        self.pointwise = nn.Conv1d(width, width, kernel_size=1)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, C, T] -> [B, C, T]``."""
        hidden = self.pointwise(F.relu(self.dilated(F.relu(x))))
        return x + self.dropout(hidden)


class Resnet1D(nn.Sequential):
    """``depth`` residual blocks with dilations ``growth**0 .. growth**(depth-1)``.

    With ``reverse_dilation`` (the official default, used in encoder and decoder) the blocks
    run from the largest dilation down: for depth 3 and growth 3, dilations 9, 3, 1.
    """

    def __init__(self, width: int, depth: int, dilation_growth: int,
                 reverse_dilation: bool = True, dropout: float = 0.0) -> None:
        dilations = [dilation_growth**level for level in range(depth)]
        if reverse_dilation:
            dilations.reverse()
        super().__init__(*(ResConv1DBlock(width, d, dropout) for d in dilations))


class ConvEncoder(nn.Module):
    """Motion features ``[B, T, input_dim]`` -> latents ``[B, T / 2**down_t, code_dim]``.

    Conv3 + ReLU; ``down_t`` x [Conv4 stride 2, Resnet1D]; Conv3 to ``code_dim``.
    """

    def __init__(self, input_dim: int, width: int, code_dim: int, down_t: int, depth: int,
                 dilation_growth: int, dropout: float = 0.0) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Conv1d(input_dim, width, 3, padding=1), nn.ReLU()]
        for _ in range(down_t):
            layers += [nn.Conv1d(width, width, 4, stride=2, padding=1),
                       Resnet1D(width, depth, dilation_growth, True, dropout)]
        layers.append(nn.Conv1d(width, code_dim, 3, padding=1))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, T, input_dim] -> [B, T / 2**down_t, code_dim]``."""
        return self.net(x.transpose(1, 2)).transpose(1, 2)


class ConvDecoder(nn.Module):
    """Latents ``[B, N, code_dim]`` -> motion features ``[B, N * 2**up_t, output_dim]``.

    Conv3 + ReLU; ``up_t`` x [Resnet1D, nearest upsample x2, Conv3]; Conv3 + ReLU; Conv3 to
    ``output_dim``.
    """

    def __init__(self, output_dim: int, width: int, code_dim: int, up_t: int, depth: int,
                 dilation_growth: int, dropout: float = 0.0) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Conv1d(code_dim, width, 3, padding=1), nn.ReLU()]
        for _ in range(up_t):
            layers += [Resnet1D(width, depth, dilation_growth, True, dropout),
                       nn.Upsample(scale_factor=2, mode="nearest"),
                       nn.Conv1d(width, width, 3, padding=1)]
        layers += [nn.Conv1d(width, width, 3, padding=1), nn.ReLU(),
                   nn.Conv1d(width, output_dim, 3, padding=1)]
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """``[B, N, code_dim] -> [B, N * 2**up_t, output_dim]``."""
        return self.net(z.transpose(1, 2)).transpose(1, 2)
