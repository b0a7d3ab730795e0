"""The pocketsphinx decoder on its bundled en-us model: building, pronunciations, decoding, and
its segmentation as timed words."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from semtalk.constants import AUDIO_SAMPLE_RATE
from semtalk.data.textgrid import Word
from semtalk.features.alignment.audio import FRAME_RATE
from semtalk.features.alignment.g2p import g2p

if TYPE_CHECKING:
    from pocketsphinx import Decoder

WIDE_BEAMS: dict[str, float] = {"beam": 1e-80, "wbeam": 1e-60, "pbeam": 1e-80}
"""Beams of the retry after the default beams failed."""


def make_decoder(*, language_model: bool, wide: bool = False, bestpath: bool = True) -> Decoder:
    """A quiet pocketsphinx decoder on the bundled en-us model (16 kHz, 100 frames/s)."""
    from pocketsphinx import Decoder

    options: dict[str, Any] = {"loglevel": "FATAL", "samprate": AUDIO_SAMPLE_RATE,
                               "bestpath": bestpath}
    if not language_model:
        options["lm"] = None
    if wide:
        options.update(WIDE_BEAMS)
    return Decoder(**options)


def add_pronunciations(decoder: Decoder, words: Sequence[str]) -> dict[str, list[str]]:
    """Every word's phones; words missing from the dictionary are added with :func:`g2p`."""
    phones: dict[str, list[str]] = {}
    for word in dict.fromkeys(words):
        found = decoder.lookup_word(word)
        if found is None:
            pronunciation = g2p(word, decoder.lookup_word)
            decoder.add_word(word, " ".join(pronunciation), True)
            phones[word] = pronunciation
        else:
            phones[word] = found.split()
    return phones


def _is_filler(token: str) -> bool:
    return token.startswith(("<", "[", "+")) or token == ""


def _base_word(token: str) -> str:
    """``"to(3)"`` -> ``"to"`` (pocketsphinx names alternate pronunciations this way)."""
    return re.sub(r"\(\d+\)$", "", token)


def segments_to_words(decoder: Decoder, offset: float) -> list[Word]:
    words = []
    for segment in decoder.seg() or []:
        if not _is_filler(segment.word):
            words.append(Word(_base_word(segment.word), offset + segment.start_frame / FRAME_RATE,
                              offset + (segment.end_frame + 1) / FRAME_RATE))
    return words


def decode(decoder: Decoder, pcm: np.ndarray) -> None:
    decoder.start_utt()
    decoder.process_raw(pcm.tobytes(), full_utt=True)
    decoder.end_utt()



def clamp(words: list[Word], duration: float) -> list[Word]:
    return [Word(w.text, min(w.start, duration), min(w.end, duration)) for w in words]
