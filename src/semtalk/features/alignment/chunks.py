"""Cutting audio into chunks in the middle of the pauses between speech regions."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Chunk:
    """A stretch of audio between two cut points (seconds) and the speech it holds."""

    start: float
    end: float
    speech: float

    def merge(self, other: Chunk) -> Chunk:
        return Chunk(min(self.start, other.start), max(self.end, other.end),
                      self.speech + other.speech)


def cut_chunks(regions: Sequence[tuple[float, float]], duration: float,
            min_length: float = 2.0) -> list[Chunk]:
    """Cut the audio in the middle of the pauses between speech regions; short chunks merge."""
    cuts = [0.0] + [(a[1] + b[0]) / 2 for a, b in itertools.pairwise(regions)]
    cuts.append(duration)
    chunks = [Chunk(cuts[k], cuts[k + 1], end - start)
              for k, (start, end) in enumerate(regions)]
    merged: list[Chunk] = []
    for chunk in chunks:
        if merged and merged[-1].end - merged[-1].start < min_length:
            merged[-1] = merged[-1].merge(chunk)
        else:
            merged.append(chunk)
    if len(merged) > 1 and merged[-1].end - merged[-1].start < min_length:
        merged[-2:] = [merged[-2].merge(merged[-1])]
    return merged


def at_most(chunks: list[Chunk], count: int) -> list[Chunk]:
    """Merge the shortest chunk into its shorter neighbour until at most ``count`` remain."""
    chunks = list(chunks)
    while len(chunks) > max(count, 1):
        k = min(range(len(chunks)), key=lambda i: chunks[i].end - chunks[i].start)
        if k == 0 or (k + 1 < len(chunks)
                      and chunks[k + 1].end - chunks[k + 1].start
                      < chunks[k - 1].end - chunks[k - 1].start):
            chunks[k:k + 2] = [chunks[k].merge(chunks[k + 1])]
        else:
            chunks[k - 1:k + 1] = [chunks[k - 1].merge(chunks[k])]
    return chunks

