"""Sem-gate: a per-token semantic score ψ in [0, 1] from the fused semantic/speech stream.

Three modes, for the paper's Table 2 ablations:

- ``"learned"`` (the paper's sem-gate): logits ``g = Linear(D -> 2)`` of the mean of each
  token's frames, ``ψ = softmax(g)[..., 1]``. The logits are returned for the classification
  loss against the semantic labels; ``ψ > 0.5`` equals ``argmax(g) == 1``. With a ``context``
  of ``(before, after)`` tokens, the token features first pass one residual convolution over
  that many neighbouring tokens, ``t + ReLU(Conv1d(t))``, so the gate sees the words around a
  token (a keyword's gesture outlasts the word; whether a keyword is gestured depends on the
  gestures just before it). ``(0, 0)`` is the paper's (and the official) per-token gate.
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

    def __init__(self, dim: int, frames_per_token: int, mode: str = "learned",
                 context: tuple[int, int] = (0, 0)) -> None:
        super().__init__()
        if mode not in GATE_MODES:
            raise ValueError(f"gate mode must be one of {GATE_MODES}, got {mode!r}")
        before, after = context
        if before < 0 or after < 0:
            raise ValueError(f"gate context must be >= 0 tokens before and after, got {context}")
        self.mode = mode
        self.frames_per_token = frames_per_token
        self.context = (before, after)
        learned = mode == "learned"
        self.classifier = nn.Linear(dim, 2) if learned else None
        # context exists only for a learned gate with neighbours to read
        self.context_conv = (nn.Conv1d(dim, dim, before + 1 + after)
                             if learned and before + after else None)

    def forward(self, fusion: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor]:
        """Gate logits (learned mode only) and the semantic score ψ per token."""
        tokens = fusion.shape[1] // self.frames_per_token
        shape = (fusion.shape[0], tokens)
        if self.classifier is None:
            if self.mode == "random":
                return None, torch.rand(shape, device=fusion.device, dtype=fusion.dtype)
            return None, fusion.new_ones(shape)
        tokens_in = frames_to_tokens(fusion, self.frames_per_token)  # [B, N, D]
        if self.context_conv is not None:
            before, after = self.context
            padded = nn.functional.pad(tokens_in.transpose(1, 2), (before, after))
            tokens_in = tokens_in + torch.relu(self.context_conv(padded)).transpose(1, 2)
        logits = self.classifier(tokens_in)
        return logits, logits.softmax(dim=-1)[..., 1]
