"""Timed words as the renderers take them: tuples or TextGrid words, looked up by time."""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from typing import Any

from semtalk.data.textgrid import Word

WordLike = Any
"""A ``(text, start_s, end_s)`` tuple or an object with ``text``, ``start`` and ``end``
(such as :class:`~semtalk.data.textgrid.Word`)."""


def normalise_words(words: Sequence[WordLike] | None) -> list[Word]:
    """``words`` as :class:`~semtalk.data.textgrid.Word` sorted by start (``None`` gives ``[]``)."""
    out = []
    for w in words or ():
        if hasattr(w, "text"):
            text, start, end = w.text, w.start, w.end
        else:
            text, start, end = w
        if not end >= start:
            raise ValueError(f"word {text!r} ends ({end}) before it starts ({start})")
        out.append(Word(str(text), float(start), float(end)))
    return sorted(out, key=lambda w: w.start)


class WordTrack:
    """The word being spoken at a given time (empty between words)."""

    def __init__(self, words: list[Word]) -> None:
        self.words = words
        self._starts = [w.start for w in words]

    def at(self, seconds: float) -> str:
        i = bisect.bisect_right(self._starts, seconds) - 1
        if i >= 0 and seconds < self.words[i].end:
            return self.words[i].text
        return ""
