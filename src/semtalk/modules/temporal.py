"""Frame-rate changes inside the generators: stride-2 downsampling convs and token averaging."""

from __future__ import annotations

import torch
from torch import nn


class TemporalDownsample(nn.Module):
    """Halve the frame rate: ``Conv1d(D -> D, k2, s2)`` on ``[B, T, D] -> [B, T/2, D]``."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.conv = nn.Conv1d(dim, dim, kernel_size=2, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, T, D] -> [B, T/2, D]`` (T even)."""
        if x.shape[1] % 2:
            raise ValueError(f"TemporalDownsample needs an even length, got T={x.shape[1]}")
        return self.conv(x.transpose(1, 2)).transpose(1, 2)


def frames_to_tokens(x: torch.Tensor, factor: int) -> torch.Tensor:
    """Mean over each group of ``factor`` frames: ``[B, T, ...] -> [B, T/factor, ...]``."""
    if x.shape[1] % factor:
        raise ValueError(f"cannot average {x.shape[1]} frames in groups of {factor}")
    return x.reshape(x.shape[0], x.shape[1] // factor, factor, *x.shape[2:]).mean(dim=2)


def tokens_to_frames(x: torch.Tensor, factor: int) -> torch.Tensor:
    """Repeat each token ``factor`` times: ``[B, N, ...] -> [B, N*factor, ...]``."""
    return x.repeat_interleave(factor, dim=1)
