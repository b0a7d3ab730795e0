"""The entry point: a clip's timed words from a TextGrid, an aligned transcript or recognition."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from semtalk.constants import AUDIO_SAMPLE_RATE
from semtalk.data.textgrid import Interval, Word, read_words
from semtalk.errors import DataError
from semtalk.features.alignment.audio import where_of
from semtalk.features.alignment.errors import AlignmentError, AlignmentFallbackWarning
from semtalk.features.alignment.forced import align_transcript, align_transcript_with_phones
from semtalk.features.alignment.recognize import recognize

METHOD_TEXTGRID = "textgrid"
"""Words read from a TextGrid."""
METHOD_ALIGNED = "aligned"
"""The transcript force-aligned to the audio."""
METHOD_RECOGNIZED = "recognized"
"""No transcript: words recognised by pocketsphinx (rough, WER about 33 %)."""
METHOD_WHISPER = "recognized-whisper"
"""No transcript: words recognised by a local faster-whisper model."""
METHOD_FALLBACK = "aligned+recognized-fallback"
"""A transcript was given but did not align; the words are recognised instead."""


def words_for_audio(audio: np.ndarray, sr: int = AUDIO_SAMPLE_RATE, *,
                    transcript: str | Sequence[str] | None = None,
                    textgrid: str | Path | None = None, allow_recognition: bool = True,
                    source: Path | None = None, whisper_model: Path | None = None
                    ) -> tuple[list[Word], str]:
    """The timed words of a clip and how they were obtained (a ``METHOD_*`` label).

    In order of preference: the TextGrid's ``words`` tier (``"textgrid"``); the transcript
    force-aligned (``"aligned"``); if that fails and ``allow_recognition``, recognised words
    with an :class:`AlignmentFallbackWarning` (``"aligned+recognized-fallback"``); without a
    transcript, recognition (``"recognized"``, or ``"recognized-whisper"`` with
    ``whisper_model``).

    Raises:
        DataError: unreadable TextGrid or invalid audio; recognition needed but not allowed.
        AlignmentError: alignment failed and ``allow_recognition`` is False.
    """
    words, _, method = words_and_phones_for_audio(
        audio, sr, transcript=transcript, textgrid=textgrid,
        allow_recognition=allow_recognition, source=source, whisper_model=whisper_model)
    return words, method


def words_and_phones_for_audio(audio: np.ndarray, sr: int = AUDIO_SAMPLE_RATE, *,
                               transcript: str | Sequence[str] | None = None,
                               textgrid: str | Path | None = None,
                               allow_recognition: bool = True, source: Path | None = None,
                               whisper_model: Path | None = None, phones: bool = False
                               ) -> tuple[list[Word], list[Interval] | None, str]:
    """:func:`words_for_audio` plus, with ``phones``, the ARPAbet phone intervals of an aligned
    transcript (a second alignment pass): ``(words, phones or None, method)``.

    Phones come only from an aligned transcript: with ``phones`` but no transcript (or a
    TextGrid, or a transcript that fell back to recognition) they are None, with a warning when
    no transcript was given.
    """
    if textgrid is not None:
        return read_words(textgrid), None, METHOD_TEXTGRID
    recognized = METHOD_WHISPER if whisper_model is not None else METHOD_RECOGNIZED
    if transcript is not None:
        try:
            if phones:
                words, tier = align_transcript_with_phones(audio, transcript, sr, source=source)
                return words, tier, METHOD_ALIGNED
            return align_transcript(audio, transcript, sr, source=source), None, METHOD_ALIGNED
        except AlignmentError as exc:
            if not allow_recognition:
                raise
            warnings.warn(f"{exc}; using recognised words instead", AlignmentFallbackWarning,
                          stacklevel=2)
        words = recognize(audio, sr, source=source, whisper_model=whisper_model)
        return words, None, METHOD_FALLBACK
    if phones:
        warnings.warn("phone timings need a transcript; only the words are timed", stacklevel=2)
    if not allow_recognition:
        raise DataError(where_of(source), "no transcript or TextGrid given and speech recognition "
                                        "is switched off")
    return recognize(audio, sr, source=source, whisper_model=whisper_model), None, recognized
