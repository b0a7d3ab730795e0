"""What :func:`~semtalk.data.synthetic.tts.synthesize` returns: audio with word and phone
timings."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from semtalk.data.textgrid import Word


@dataclass(frozen=True)
class TimedPhone:
    """A phone (IPA, as named by espeak, stress marks included) and when it is spoken."""

    phone: str
    start: float
    end: float


@dataclass(frozen=True)
class Utterance:
    """Synthesized speech with its word and phone timings."""

    audio: np.ndarray
    """float32 mono samples in [-1, 1]."""
    sample_rate: int
    """espeak's native rate (22050 Hz)."""
    words: tuple[Word, ...]
    """One entry per input word, in input order; words never overlap."""
    phones: tuple[TimedPhone, ...]
    """Phones in time order; empty if espeak reported no phoneme events."""

    @property
    def duration(self) -> float:
        """Length of the audio in seconds."""
        return len(self.audio) / self.sample_rate
