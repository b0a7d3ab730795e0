"""Residual code heads: one part's features -> logits and code vectors for every RVQ layer.

Layer 0 reads the part feature directly: ``z_0 = x``, ``logits_0 = MLP(D, hidden, K)(z_0)``.
Layer k >= 1 predicts its code vector from the earlier ones, attending to a per-frame
condition (the fused audio, or the semantic feature f_t in the sparse model):

- ``u_1 = z_0``; ``u_k = Linear(k*D -> D)([z_0, ..., z_{k-1}])`` for ``k >= 2``;
- ``z_k = Decoder_k(tgt=u_k, memory=cond) + u_k`` (a stack of transformer decoder layers,
  no positional encoding);
- ``logits_k = MLP(D, D, K)(z_k)``.

``z_0 .. z_{Q-1}`` are regressed onto the tokenizer's per-layer code vectors (spec §5.2 step 11).

In inference (:func:`~semtalk.modules.inference.uses_fast_path`) the keys and values of the
condition for all ``(Q - 1) x layers`` decoder layers are computed once, up front
(:func:`~semtalk.modules.attention.memory_keys_values`); the outputs equal the plain path's up to
float rounding.
"""

from __future__ import annotations

import torch
from torch import nn

from semtalk.modules.attention import (
    decode_with_memory,
    memory_keys_values,
    transformer_decoder,
)
from semtalk.modules.fusion import MLP
from semtalk.modules.inference import uses_fast_path
from semtalk.modules.packed import Linear


class ResidualCodeHeads(nn.Module):
    """``x [B, N, D]``, ``cond [B, T, D]`` -> ``(logits [B, N, Q, K], latents [B, Q, N, D])``.

    Args:
        dim: feature and code-vector channels D.
        hidden_dim: hidden width of the layer-0 MLP.
        codebook_size: K.
        num_quantizers: Q.
        layers, heads, feedforward, dropout: each residual predictor's decoder stack.
    """

    def __init__(self, dim: int, hidden_dim: int, codebook_size: int, num_quantizers: int,
                 layers: int, heads: int, feedforward: int, dropout: float) -> None:
        super().__init__()
        self.first_logits = MLP(dim, hidden_dim, codebook_size)
        residual = num_quantizers - 1
        self.mixers = nn.ModuleList(Linear(k * dim, dim) for k in range(2, residual + 1))
        self.decoders = nn.ModuleList(transformer_decoder(dim, heads, feedforward, layers, dropout)
                                      for _ in range(residual))
        self.logits = nn.ModuleList(MLP(dim, dim, codebook_size) for _ in range(residual))

    def forward(self, x: torch.Tensor,
                cond: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits of every layer and the predicted code vectors ``z_0 .. z_{Q-1}``."""
        memory = (memory_keys_values(self, list(self.decoders), cond)
                  if uses_fast_path(self) and len(self.decoders) else None)
        latents = [x]
        logits = [self.first_logits(x)]
        for k, (decoder, head) in enumerate(zip(self.decoders, self.logits, strict=True), 1):
            query = x if k == 1 else self.mixers[k - 2](torch.cat(latents, dim=-1))
            attended = (decoder(query, cond) if memory is None
                        else decode_with_memory(decoder, query, memory[k - 1]))
            z = attended + query
            latents.append(z)
            logits.append(head(z))
        return torch.stack(logits, dim=2), torch.stack(latents, dim=1)
