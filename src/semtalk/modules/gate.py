"""Sem-gate: a per-token semantic score ψ in [0, 1] from the fused semantic/speech stream.

Three modes, for the paper's Table 2 ablations:

- ``"learned"`` (the paper's sem-gate): logits ``g = Linear(D -> 2)`` of the mean of each
  token's frames, ``ψ = softmax(g)[..., 1]``. The logits are returned for the classification
  loss against the semantic labels; ``ψ > 0.5`` equals ``argmax(g) == 1``.
- ``"random"`` ("Random ψ"): ``ψ ~ U(0, 1)`` per token from torch's global generator (so
  reproducible under ``torch.manual_seed``), in training and in eval; no gradient, no logits,
  no parameters.
- ``"none"`` ("w/o Sem-gate"): no gate at all; ``ψ = 1`` everywhere, no logits, no parameters.
"""

from __future__ import annotations

import torch
from torch import nn

from semtalk.modules.temporal import frames_to_tokens

GATE_MODES = ("learned", "random", "none")


class SemanticGate(nn.Module):
    """``fusion [B, T, D]`` -> ``(logits [B, N, 2] or None, ψ [B, N])``, N = T / frames_per_token.
    """

    def __init__(self, dim: int, frames_per_token: int, mode: str = "learned") -> None:
        super().__init__()
        if mode not in GATE_MODES:
            raise ValueError(f"gate mode must be one of {GATE_MODES}, got {mode!r}")
        self.mode = mode
        self.frames_per_token = frames_per_token
        self.classifier = nn.Linear(dim, 2) if mode == "learned" else None

    def forward(self, fusion: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor]:
        """Gate logits (learned mode only) and the semantic score ψ per token."""
        tokens = fusion.shape[1] // self.frames_per_token
        shape = (fusion.shape[0], tokens)
        if self.classifier is None:
            if self.mode == "random":
                return None, torch.rand(shape, device=fusion.device, dtype=fusion.dtype)
            return None, fusion.new_ones(shape)
        logits = self.classifier(frames_to_tokens(fusion, self.frames_per_token))
        return logits, logits.softmax(dim=-1)[..., 1]
