"""Rhythmic speech encoders: speech features γ_h and beat features γ_b to one latent stream.

:class:`SpeechEncoder` is the official HuBERT encoder (Conv3 -> BatchNorm -> GELU -> Conv3,
no biases on the convs); it works on any per-frame speech features (HuBERT 1024-d or the
built-in spectral front end). :class:`RhythmAudioEncoder` adds the beat MLP and fuses both
streams per channel (:class:`~semtalk.modules.fusion.ChannelFusion`). BatchNorm uses batch
statistics in training and running statistics in eval mode, so generate in eval mode.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from semtalk.modules.fusion import MLP, ChannelFusion


class SpeechEncoder(nn.Module):
    """``[B, T, speech_dim] -> [B, T, out_dim]`` (length kept)."""

    def __init__(self, speech_dim: int, out_dim: int) -> None:
        super().__init__()
        self.first = nn.Conv1d(speech_dim, out_dim, 3, padding=1, bias=False)
        self.norm = nn.BatchNorm1d(out_dim)
        self.second = nn.Conv1d(out_dim, out_dim, 3, padding=1, bias=False)

    def forward(self, speech: torch.Tensor) -> torch.Tensor:
        """``[B, T, speech_dim] -> [B, T, out_dim]``."""
        hidden = F.gelu(self.norm(self.first(speech.transpose(1, 2))))
        return self.second(hidden).transpose(1, 2)


class RhythmAudioEncoder(nn.Module):
    """Speech and beat features -> ``(speech latent, fused latent)``, both ``[B, T, out_dim]``.

    The speech latent is what the rhythmic consistency loss compares motion with; the fused
    latent conditions the generator.
    """

    def __init__(self, speech_dim: int, beat_dim: int, hidden_dim: int, out_dim: int) -> None:
        super().__init__()
        self.speech = SpeechEncoder(speech_dim, out_dim)
        self.beat = MLP(beat_dim, hidden_dim, out_dim)
        self.fusion = ChannelFusion(out_dim)

    def forward(self, speech: torch.Tensor,
                beat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``speech [B, T, S]``, ``beat [B, T, beat_dim]`` -> two ``[B, T, out_dim]``."""
        speech_latent = self.speech(speech)
        return speech_latent, self.fusion(speech_latent, self.beat(beat))
