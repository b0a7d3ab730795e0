"""Offline recognition with pocketsphinx's language model (or a local faster-whisper model)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from semtalk.constants import AUDIO_SAMPLE_RATE
from semtalk.data.audio import to_mono
from semtalk.data.textgrid import Word
from semtalk.features.alignment.audio import decoder_pcm, speech_regions, where_of
from semtalk.features.alignment.chunks import cut_chunks
from semtalk.features.alignment.sphinx import clamp, decode, make_decoder, segments_to_words
from semtalk.features.alignment.whisper import recognize_whisper

RECOGNITION_CHUNK_S = 20.0
"""Recognition decodes pieces of at least this many seconds, cut at pauses (shorter pieces
raise the word error rate on BEAT2: 43 % with 2 s pieces, 37 % with 15 s or more)."""


def recognize(audio: np.ndarray, sample_rate: int = AUDIO_SAMPLE_RATE, *,
              source: Path | None = None, whisper_model: Path | None = None) -> list[Word]:
    """Recognise the words of speech audio offline (a rough transcript with timings).

    pocketsphinx with its bundled en-us language model decodes pieces of at least 20 s cut
    at pauses (about 0.2x real time; word error rate 33-38 % on BEAT2 speech). With
    ``whisper_model`` (a local faster-whisper/CTranslate2 model folder) faster-whisper's word
    timestamps are used instead.

    Returns:
        The recognised words in time order; ``[]`` for audio without speech (not an error).

    Raises:
        DataError: empty or invalid audio; ``whisper_model`` is not a local model folder (a
            hub id is refused: download the model and pass its folder) or faster-whisper is
            not installed.
    """
    where = where_of(source)
    mono = to_mono(audio, sample_rate, where)
    if whisper_model is not None:
        return recognize_whisper(mono, Path(whisper_model))
    regions = speech_regions(mono)
    if not regions:
        return []
    decoder = make_decoder(language_model=True)
    pcm = decoder_pcm(mono)
    words: list[Word] = []
    for chunk in cut_chunks(regions, len(mono) / AUDIO_SAMPLE_RATE, RECOGNITION_CHUNK_S):
        lo, hi = round(chunk.start * AUDIO_SAMPLE_RATE), round(chunk.end * AUDIO_SAMPLE_RATE)
        decode(decoder, pcm[lo:hi])
        words += segments_to_words(decoder, chunk.start)
    return clamp(words, len(mono) / AUDIO_SAMPLE_RATE)

