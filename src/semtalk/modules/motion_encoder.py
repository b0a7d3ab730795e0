"""Seed-motion encoder: a learned mask embedding fills hidden entries, then a conv stack.

The generators see the whole-body motion window ``[B, T, 337]`` with a boolean mask of the
same shape (True = hidden). Hidden entries are replaced by a learned vector before any layer
looks at them, so their values never influence the output. The conv stack is the EMAGE
``VQEncoderV6`` layout the official code uses: ``layers`` x [Conv1d k3 s1, LeakyReLU(0.2),
residual block], no temporal downsampling.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class ResBlock1D(nn.Module):
    """``x + Conv3(LeakyReLU(Conv3(x)))`` on ``[B, C, T]`` (length kept)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.first = nn.Conv1d(channels, channels, 3, padding=1)
        self.second = nn.Conv1d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, C, T] -> [B, C, T]``."""
        return x + self.second(F.leaky_relu(self.first(x), 0.2))


class MotionConvEncoder(nn.Module):
    """``[B, T, in_dim] -> [B, T, out_dim]``: ``layers`` x [Conv3, LeakyReLU(0.2), ResBlock1D]."""

    def __init__(self, in_dim: int, out_dim: int, layers: int = 3) -> None:
        super().__init__()
        if layers < 1:
            raise ValueError(f"the motion encoder needs >= 1 layer, got {layers}")
        stack: list[nn.Module] = []
        for index in range(layers):
            stack += [nn.Conv1d(in_dim if index == 0 else out_dim, out_dim, 3, padding=1),
                      nn.LeakyReLU(0.2), ResBlock1D(out_dim)]
        self.net = nn.Sequential(*stack)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, T, in_dim] -> [B, T, out_dim]``."""
        return self.net(x.transpose(1, 2)).transpose(1, 2)


class SeedMotionEncoder(nn.Module):
    """Masked motion window -> per-frame seed latent (the official ``body_hint``).

    Args:
        motion_dim: channels of the motion window (337 for the BEAT2 whole body).
        out_dim: latent channels.
        layers: conv layers of :class:`MotionConvEncoder`.
        init_scale: standard deviation of the mask embedding's initial values (official:
            ``hidden ** -0.5``).
    """

    def __init__(self, motion_dim: int, out_dim: int, layers: int = 3,
                 init_scale: float = 1.0) -> None:
        super().__init__()
        self.mask_embedding = nn.Parameter(torch.randn(motion_dim) * init_scale)
        self.encoder = MotionConvEncoder(motion_dim, out_dim, layers)

    def forward(self, motion: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """``motion [B, T, M]``, ``mask [B, T, M]`` bool (True = hidden) -> ``[B, T, out_dim]``.

        Hidden entries (even NaN or inf ones) are replaced by the mask embedding first.
        """
        filled = torch.where(mask, self.mask_embedding.to(motion.dtype), motion)
        return self.encoder(filled)
