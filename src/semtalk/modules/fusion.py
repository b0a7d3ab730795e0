"""Small mixing blocks: a two-layer MLP and the per-channel soft fusion (alpha-gate) of two streams.
"""

from __future__ import annotations

import torch
from torch import nn


class MLP(nn.Sequential):
    """``Linear(in -> hidden) -> LeakyReLU(0.2) -> Linear(hidden -> out)`` on the last axis."""

    def __init__(self, in_dim: int, hidden_dim: int, out_dim: int) -> None:
        super().__init__(nn.Linear(in_dim, hidden_dim), nn.LeakyReLU(0.2),
                         nn.Linear(hidden_dim, out_dim))


class ChannelFusion(nn.Module):
    """Per-channel convex mix of two ``[..., D]`` streams with learned, input-dependent weights.

    ``w = softmax(Linear(2D -> 2D)([a, b]).view(..., D, 2))`` and the output is
    ``a * w[..., 0] + b * w[..., 1]``: every channel of every frame picks its own mix of ``a``
    and ``b`` (the official ``audio_fusion`` / semantic alpha-gate).
    """

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.dim = dim
        self.mix = nn.Linear(2 * dim, 2 * dim)

    def weights(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """``[..., D, 2]`` mixing weights (each pair sums to 1)."""
        logits = self.mix(torch.cat([a, b], dim=-1))
        return logits.view(*logits.shape[:-1], self.dim, 2).softmax(dim=-1)

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """``a, b [..., D] -> [..., D]``."""
        if a.shape != b.shape or a.shape[-1] != self.dim:
            raise ValueError(f"ChannelFusion({self.dim}) needs two [..., {self.dim}] tensors of "
                             f"one shape, got {tuple(a.shape)} and {tuple(b.shape)}")
        w = self.weights(a, b)
        return a * w[..., 0] + b * w[..., 1]
