"""Voice and prosody of an utterance: the espeak-ng parameters, validated."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Prosody:
    """Voice and prosody of one utterance (espeak-ng parameters, validated on construction)."""

    rate_wpm: int = 165
    """``espeakRATE``: speaking rate in words per minute, 80..450."""
    pitch: int = 50
    """``espeakPITCH``: base pitch, 0..100."""
    pitch_range: int = 50
    """``espeakRANGE``: pitch range, 0 (monotone)..100."""
    volume: int = 100
    """``espeakVOLUME``: amplitude, 0..200 (above 100 may clip)."""
    word_gap_10ms: int = 0
    """``espeakWORDGAP``: extra pause between words, in units of 10 ms."""
    voice: str = "en-us"
    """espeak-ng voice name, optionally with a variant (``"en-us+f3"``)."""

    def __post_init__(self) -> None:
        _check_range("rate_wpm", self.rate_wpm, 80, 450)
        _check_range("pitch", self.pitch, 0, 100)
        _check_range("pitch_range", self.pitch_range, 0, 100)
        _check_range("volume", self.volume, 0, 200)
        _check_range("word_gap_10ms", self.word_gap_10ms, 0, 1000)
        if not self.voice or not self.voice.isprintable() or " " in self.voice:
            raise ValueError(f"Prosody.voice must be an espeak-ng voice name, got {self.voice!r}")



def _check_range(name: str, value: int, low: int, high: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise ValueError(f"Prosody.{name} must be an int in [{low}, {high}], got {value!r}")

