"""Coarse2Fine cross-attention: body parts refine each other in a fixed order (paper §3.3).

A schedule is a sequence of steps ``(target, sources)``; each source is ``(part, refined)``.
Step by step, ``target' = Decoder(tgt=target, memory=sum of the sources)``, where a source
with ``refined=True`` is that part's output of an earlier step and otherwise its input
feature. The official base schedule is face -> hands -> upper -> lower:

- hands' <- face;  face' <- hands;  upper' <- hands' + lower;  lower' <- upper + hands'.

Parts no step targets pass through unchanged.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import nn

from semtalk.body.parts import BodyPart
from semtalk.modules.attention import transformer_decoder

Schedule = Sequence[tuple[BodyPart, Sequence[tuple[BodyPart, bool]]]]


class CoarseToFine(nn.Module):
    """Refine ``{part: [B, N, D]}`` features by the cross-attention ``schedule``."""

    def __init__(self, schedule: Schedule, dim: int, heads: int, feedforward: int, layers: int,
                 dropout: float) -> None:
        super().__init__()
        targets = [target for target, _ in schedule]
        if len(set(targets)) != len(targets):
            raise ValueError(f"each part may be refined once, got targets {targets}")
        done: set[BodyPart] = set()
        for target, sources in schedule:
            if not sources:
                raise ValueError(f"step for {target.value} has no sources")
            early = [part.value for part, refined in sources if refined and part not in done]
            if early:
                raise ValueError(f"step for {target.value} uses refined {early} before they "
                                 "are refined")
            done.add(target)
        self.schedule = tuple((target, tuple(sources)) for target, sources in schedule)
        self.decoders = nn.ModuleDict({
            target.value: transformer_decoder(dim, heads, feedforward, layers, dropout)
            for target in targets})

    def forward(self, features: Mapping[BodyPart, torch.Tensor]) -> dict[BodyPart, torch.Tensor]:
        """``{part: [B, N, D]}`` -> refined features, same keys and shapes."""
        refined = dict(features)
        for target, sources in self.schedule:
            memory = sum(refined[part] if use_refined else features[part]
                         for part, use_refined in sources)
            refined[target] = self.decoders[target.value](features[target], memory)
        return refined
