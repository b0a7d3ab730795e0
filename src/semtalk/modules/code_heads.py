"""Residual code heads: one part's features -> logits and code vectors for every RVQ layer.

Layer 0 reads the part feature directly: ``z_0 = x``, ``logits_0 = MLP(D, hidden, K)(z_0)``.
Layer k >= 1 predicts its code vector from the earlier ones, attending to a per-frame
condition (the fused audio, or the semantic feature f_t in the sparse model):

- ``u_1 = z_0``; ``u_k = Linear(k*D -> D)([z_0, ..., z_{k-1}])`` for ``k >= 2``;
- ``z_k = Decoder_k(tgt=u_k, memory=cond) + u_k`` (a stack of transformer decoder layers,
  no positional encoding);
- ``logits_k = MLP(D, D, K)(z_k)``.

``z_0 .. z_{Q-1}`` are regressed onto the tokenizer's per-layer code vectors (spec §5.2 step 11).
:class:`CodeHeads` holds one such head per body part. (The CPU inference fast path, several
parts' heads in one stacked pass, lives in :mod:`semtalk.inference.heads`.)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import nn

from semtalk.body.parts import BodyPart
from semtalk.modules.attention import transformer_decoder
from semtalk.modules.fusion import MLP


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
        self.mixers = nn.ModuleList(nn.Linear(k * dim, dim) for k in range(2, residual + 1))
        self.decoders = nn.ModuleList(transformer_decoder(dim, heads, feedforward, layers, dropout)
                                      for _ in range(residual))
        self.logits = nn.ModuleList(MLP(dim, dim, codebook_size) for _ in range(residual))

    def forward(self, x: torch.Tensor,
                cond: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits of every layer and the predicted code vectors ``z_0 .. z_{Q-1}``."""
        latents = [x]
        logits = [self.first_logits(x)]
        for k, (decoder, head) in enumerate(zip(self.decoders, self.logits, strict=True), 1):
            query = x if k == 1 else self.mixers[k - 2](torch.cat(latents, dim=-1))
            z = decoder(query, cond) + query
            latents.append(z)
            logits.append(head(z))
        return torch.stack(logits, dim=2), torch.stack(latents, dim=1)


class CodeHeads(nn.ModuleDict):
    """The residual code heads of a generator's parts, ``{part name: ResidualCodeHeads}``."""

    def forward(self, features: Mapping[BodyPart, torch.Tensor],
                conditions: Mapping[BodyPart, torch.Tensor], parts: Sequence[BodyPart]
                ) -> tuple[dict[BodyPart, torch.Tensor], dict[BodyPart, torch.Tensor]]:
        """``(logits, latents)`` of the heads of ``parts``, each reading ``features[part]``
        and attending to ``conditions[part]``: ``{part: [B, N, Q, K]}``,
        ``{part: [B, Q, N, D]}``."""
        logits, latents = {}, {}
        for part in parts:
            logits[part], latents[part] = self[part.value](features[part], conditions[part])
        return logits, latents
