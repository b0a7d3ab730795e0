"""Checking the input words and pauses, and cutting the words into phrases for espeak-ng."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence

_WORD_RE = re.compile(r"[A-Za-z]+(?:'[A-Za-z]+)*")
_MAX_PHRASE_BYTES = 400
"""Longer phrases are spoken in pieces. espeak breaks a clause of over ~725 bytes itself, and
with zero-width-space separators it then cuts a word in half and drops the next ones."""
_WORD_SEPARATOR = "\u200b"
"""Zero-width space: separates words like a space (bit-identical audio, measured) except that
espeak no longer reads two words as one multi-word dictionary entry ("there were", "in the",
"of the"), which would give them a single WORD event."""


def check_words(words: Sequence[str]) -> list[str]:
    if isinstance(words, str):
        raise TypeError("words must be a sequence of words, not a string")
    tokens = list(words)
    if not tokens:
        raise ValueError("synthesize() needs at least one word")
    for i, word in enumerate(tokens):
        if not isinstance(word, str) or not _WORD_RE.fullmatch(word):
            raise ValueError(f"word {i} must be letters (with inner apostrophes), got {word!r}")
    return tokens


def check_pauses(pause_after: Mapping[int, float] | None, n_words: int) -> dict[int, float]:
    pauses: dict[int, float] = {}
    for index, seconds in (pause_after or {}).items():
        if not 0 <= index < n_words:
            raise ValueError(f"pause_after index {index} is outside 0..{n_words - 1}")
        if not math.isfinite(seconds) or seconds < 0:
            raise ValueError(f"pause_after[{index}] must be >= 0 seconds, got {seconds!r}")
        pauses[int(index)] = float(seconds)
    return pauses


def phrases(tokens: Sequence[str], pauses: Mapping[int, float]) -> list[tuple[int, int]]:
    """``[start, stop)`` word ranges: split after each paused word, and before a phrase would
    exceed ``_MAX_PHRASE_BYTES`` of text."""
    ranges: list[tuple[int, int]] = []
    start = size = 0
    for i, word in enumerate(tokens):
        cost = len(word) + len(_WORD_SEPARATOR.encode("utf-8"))
        if i > start and size + cost > _MAX_PHRASE_BYTES:
            ranges.append((start, i))
            start, size = i, 0
        size += cost
        if i in pauses or i == len(tokens) - 1:
            ranges.append((start, i + 1))
            start, size = i + 1, 0
    return ranges


def phrase_text(words: Sequence[str]) -> tuple[str, list[int]]:
    """The text given to espeak and the 0-based character offset of each word in it."""
    starts, offset = [], 0
    for word in words:
        starts.append(offset)
        offset += len(word) + len(_WORD_SEPARATOR)
    return _WORD_SEPARATOR.join(words), starts

