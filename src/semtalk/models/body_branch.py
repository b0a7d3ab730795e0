"""The body branch both generators share (spec §5.2 steps 6-8): seed -> upper, hands, lower.

1. ``x = PE(Linear(MLP(seed)) + spk)``, then a self-attention encoder (``self_layers``).
2. With a memory (the fused body audio in the base model, the semantic feature f_t in the
   sparse model): ``x = x + WordHints(tgt=PE(x + spk), memory=Linear(memory))`` (with
   ``memory_position``: ``Linear(PE(memory))``). The official
   code computes ``x + spk`` for this query and then drops it (query ``PE(x)``); we keep the
   speaker embedding unless ``word_query_speaker`` is False (the official family).
3. Halve the frame rate (stride-2 conv) of ``x`` and of the speaker embedding.
4. Body-part-aware MLPs ``l_p = MLP(x)`` for upper, hands and lower.
5. Intra-body cross-attention ``o_p = Decoder(tgt=PE(l_p + spk'), memory=sum of the other two
   l)``, then ``f_p = Downsample(Linear(o_p + l_p))``: ``[B, T/4, latent]``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypedDict

import torch
from torch import nn

from semtalk.body.parts import BodyPart
from semtalk.models.generator_common import GeneratorSizes
from semtalk.modules.attention import (
    PeriodicPositionalEncoding,
    transformer_decoder,
    transformer_encoder,
)
from semtalk.modules.fusion import MLP
from semtalk.modules.temporal import TemporalDownsample

BODY_PARTS: tuple[BodyPart, ...] = (BodyPart.UPPER, BodyPart.HANDS, BodyPart.LOWER)


@dataclass
class BodyTrunk:
    """Steps 1-4 of :class:`BodyBranch`, what every part's step 5 reads.

    Attributes:
        speaker: ``[B, T/2, H]`` the downsampled speaker embedding.
        lifted: ``{part: [B, T/2, H]}`` the body-part-aware MLP outputs ``l_p``.
    """

    speaker: torch.Tensor
    lifted: dict[BodyPart, torch.Tensor]


class _StackSizes(TypedDict):
    """The sizes every transformer stack of the branch shares (keyword arguments of
    ``transformer_encoder`` / ``transformer_decoder``)."""

    dim: int
    heads: int
    feedforward: int
    dropout: float


class BodyBranch(nn.Module):
    """``seed [B, T, L]``, ``speaker [B]``, ``memory [B, T, L] | None`` -> ``{part: [B, T/4, L]}``.

    Args:
        sizes: widths and layer counts (``hidden`` H, ``latent`` L, ...).
        num_speakers: rows of the speaker embedding.
        period: positional-encoding period (the training window).
        dropout: dropout of the transformer layers and the positional encoding.
        word_query_speaker: add the speaker embedding to the word-hints query (False: the
            official ``PE(x)``).
        memory_position: add the positional encoding to the word-hints memory before its
            Linear (False: the official memory, without position).
    """

    # swapped by prepare_for_inference: word_memory for nn.Identity once folded into
    # word_hints, which becomes a FastDecoder
    word_memory: nn.Module
    word_hints: nn.Module

    def __init__(self, sizes: GeneratorSizes, num_speakers: int, period: int,
                 dropout: float, word_query_speaker: bool = True,
                 memory_position: bool = False) -> None:
        super().__init__()
        self.word_query_speaker = word_query_speaker
        hidden, latent = sizes.hidden, sizes.latent
        # memory_position exists only with the switch (no parameters either way)
        self.memory_position = (PeriodicPositionalEncoding(latent, period, dropout)
                                if memory_position else None)
        layer = _StackSizes(dim=hidden, heads=sizes.heads, feedforward=sizes.feedforward,
                            dropout=dropout)
        self.speaker = nn.Embedding(num_speakers, hidden)
        self.seed = nn.Sequential(MLP(latent, hidden, latent), nn.Linear(latent, hidden))
        self.position = PeriodicPositionalEncoding(hidden, period, dropout)
        self.self_attention = transformer_encoder(layers=sizes.self_layers, **layer)
        self.word_memory = nn.Linear(latent, hidden)
        self.word_hints = transformer_decoder(layers=sizes.word_layers, **layer)
        self.downsample = TemporalDownsample(hidden)
        self.speaker_downsample = TemporalDownsample(hidden)
        names = [part.value for part in BODY_PARTS]
        self.part_mlps = nn.ModuleDict({n: MLP(hidden, hidden, hidden) for n in names})
        self.part_attention = nn.ModuleDict({
            n: transformer_decoder(layers=sizes.part_layers, **layer) for n in names})
        self.part_out = nn.ModuleDict({
            n: nn.Sequential(nn.Linear(hidden, latent), TemporalDownsample(latent))
            for n in names})

    def forward(self, seed: torch.Tensor, speaker: torch.Tensor,
                memory: torch.Tensor | None = None) -> dict[BodyPart, torch.Tensor]:
        """Part features ``{upper, hands, lower: [B, T/4, L]}``; ``memory`` None skips step 2.

        :meth:`trunk` then :meth:`part` of every part (generation runs the parts as separate
        jobs)."""
        trunk = self.trunk(seed, speaker, memory)
        return {part: self.part(trunk, part) for part in BODY_PARTS}

    def trunk(self, seed: torch.Tensor, speaker: torch.Tensor,
              memory: torch.Tensor | None = None) -> BodyTrunk:
        """Steps 1-4 (arguments as in :meth:`forward`)."""
        batch, frames = seed.shape[:2]
        spk = self.speaker(speaker)[:, None].expand(batch, frames, -1)  # [B, T, H]
        x = self.self_attention(self.position(self.seed(seed) + spk))
        if memory is not None:
            query = x + spk if self.word_query_speaker else x
            if self.memory_position is not None:
                memory = self.memory_position(memory)
            x = x + self.word_hints(self.position(query), self.word_memory(memory))
        x = self.downsample(x)  # [B, T/2, H]
        return BodyTrunk(speaker=self.speaker_downsample(spk),
                         lifted={part: self.part_mlps[part.value](x) for part in BODY_PARTS})

    def part(self, trunk: BodyTrunk, part: BodyPart) -> torch.Tensor:
        """Step 5 for one part: ``f_p [B, T/4, L]``."""
        lifted = trunk.lifted
        others = sum(lifted[other] for other in BODY_PARTS if other != part)
        attended = self.part_attention[part.value](self.position(lifted[part] + trunk.speaker),
                                                   others)
        return self.part_out[part.value](attended + lifted[part])
