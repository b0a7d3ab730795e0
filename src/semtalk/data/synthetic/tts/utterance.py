"""What :func:`~semtalk.data.synthetic.tts.synthesize` returns: audio with word and phone
timings."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from semtalk.data.textgrid import Interval, Word


@dataclass(frozen=True)
class Utterance:
    """Synthesized speech with its word and phone timings."""

    audio: np.ndarray
    """float32 mono samples in [-1, 1]."""
    sample_rate: int
    """espeak's native rate (22050 Hz)."""
    words: tuple[Word, ...]
    """One entry per input word, in input order; words never overlap."""
    phones: tuple[Interval, ...]
    """Phones in time order, each labelled with its IPA name as espeak gives it (stress marks
    included); empty if espeak reported no phoneme events."""

    @property
    def duration(self) -> float:
        """Length of the audio in seconds."""
        return len(self.audio) / self.sample_rate
