"""Transformer pieces of the generators: a periodic positional encoding and layer-stack builders.

All stacks are PyTorch's own ``nn.TransformerEncoder`` / ``nn.TransformerDecoder`` with
``batch_first=True`` (tensors ``[B, T, D]``), post-LayerNorm and ReLU feed-forward, the library
defaults the official SemTalk code uses. A stack deep-copies its layer, so layers never share
weights. (The CPU inference fast path of these stacks lives in
:mod:`semtalk.inference.attention`.)
"""

from __future__ import annotations

import math

import torch
from torch import nn


class PeriodicPositionalEncoding(nn.Module):
    """Adds a sinusoidal encoding that repeats every ``period`` frames, then dropout.

    ``pe[t, 2i] = sin(p / 10000^(2i/D))`` and ``pe[t, 2i+1] = cos(...)`` with ``p = t mod period``,
    so a sequence longer than the period sees the same positions again, and a shorter one (the
    generators' length-T/2 stages) uses the first positions.
    """

    table: torch.Tensor  # [period, D], a buffer

    def __init__(self, dim: int, period: int, dropout: float = 0.1) -> None:
        super().__init__()
        if dim < 2 or dim % 2:
            raise ValueError(f"positional encoding needs an even dim >= 2, got {dim}")
        if period < 1:
            raise ValueError(f"period must be >= 1, got {period}")
        position = torch.arange(period, dtype=torch.float32)[:, None]
        frequency = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32)
                              * (-math.log(10000.0) / dim))
        table = torch.zeros(period, dim)
        table[:, 0::2] = torch.sin(position * frequency)
        table[:, 1::2] = torch.cos(position * frequency)
        self.register_buffer("table", table, persistent=False)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, T, D] -> [B, T, D]``."""
        period, frames = self.table.shape[0], x.shape[1]
        if frames <= period:  # the generators' windows: a slice, no index tensor
            table = self.table[:frames]
        else:
            table = self.table[torch.arange(frames, device=x.device) % period]
        return self.dropout(x + table.to(x.dtype))


def transformer_decoder(dim: int, heads: int, feedforward: int, layers: int,
                        dropout: float) -> nn.TransformerDecoder:
    """``layers`` batch-first decoder layers: ``decoder(tgt [B, N, D], memory [B, M, D])``."""
    layer = nn.TransformerDecoderLayer(dim, heads, feedforward, dropout, batch_first=True)
    return nn.TransformerDecoder(layer, layers)


def transformer_encoder(dim: int, heads: int, feedforward: int, layers: int,
                        dropout: float) -> nn.TransformerEncoder:
    """``layers`` batch-first self-attention layers: ``encoder(x [B, T, D])``."""
    layer = nn.TransformerEncoderLayer(dim, heads, feedforward, dropout, batch_first=True)
    return nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
