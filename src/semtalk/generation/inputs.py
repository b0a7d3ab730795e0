"""What generation reads for one utterance: the audio and its timed words.

:func:`load_utterance` turns an audio file (WAV/FLAC/OGG/MP3 at any rate and channel count)
into mono float32 16 kHz samples and the words spoken in it, taken from (in order of
preference) a TextGrid, a transcript force-aligned to the audio, or offline recognition
(:func:`semtalk.features.alignment.words_for_audio`).

Silent audio is valid input: it has no words, and generation makes calm idle motion for it.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from semtalk.constants import AUDIO_SAMPLE_RATE, MOTION_FPS
from semtalk.data.audio import load_audio, num_frames_for
from semtalk.data.textgrid import Word, read_words
from semtalk.features import alignment

WORDS_SOURCES = ("textgrid", "alignment", "recognition", "none")
"""Where an :class:`Utterance`'s words came from."""
TEXTGRID_OVERHANG_S = 0.5
"""A TextGrid whose words end more than this after the audio draws a warning."""

_SOURCE_OF_METHOD = {
    alignment.METHOD_TEXTGRID: "textgrid",
    alignment.METHOD_ALIGNED: "alignment",
    alignment.METHOD_RECOGNIZED: "recognition",
    alignment.METHOD_WHISPER: "recognition",
    alignment.METHOD_FALLBACK: "recognition",
}


class NoSpeechWarning(UserWarning):
    """The audio holds no speech: it gets no words (and a given transcript is not used)."""


@dataclass(frozen=True)
class Utterance:
    """One clip of speech ready for :meth:`semtalk.generation.engine.SemTalk.generate`.

    Attributes:
        audio: ``[N]`` mono float32 samples in [-1, 1] at 16 kHz.
        words: the spoken words with start/end seconds, in time order (``[]`` for silence).
        words_source: ``"textgrid"``, ``"alignment"``, ``"recognition"`` or ``"none"``.
        path: the audio file.
        words_method: the detailed label from :mod:`semtalk.features.alignment`
            (``"aligned+recognized-fallback"`` when a transcript failed to align), or
            ``"none"``.
    """

    audio: np.ndarray
    words: list[Word]
    words_source: str
    path: Path
    words_method: str = "none"

    @property
    def sample_rate(self) -> int:
        return AUDIO_SAMPLE_RATE

    @property
    def duration(self) -> float:
        """Length in seconds."""
        return self.audio.shape[0] / AUDIO_SAMPLE_RATE

    @property
    def num_frames(self) -> int:
        """Motion frames the audio covers (one per 1/30 s)."""
        return num_frames_for(self.audio.shape[0], AUDIO_SAMPLE_RATE, MOTION_FPS)


def has_speech(audio: np.ndarray) -> bool:
    """Whether 16 kHz mono ``audio`` holds speech (energy VAD: silence and flat noise do not)."""
    return bool(alignment.speech_regions(audio, AUDIO_SAMPLE_RATE))


def load_utterance(path: str | Path, *, transcript: str | None = None,
                   textgrid: str | Path | None = None, allow_recognition: bool = True,
                   whisper_model: str | Path | None = None) -> Utterance:
    """Read an audio file and find its words.

    Args:
        path: the audio file (anything :func:`semtalk.data.audio.load_audio` reads).
        transcript: the text spoken, or the path of a text file holding it; force-aligned.
            Text with a line break, or too long to be a path, is always text; otherwise an
            existing file is read (see :func:`semtalk.data.transcript.transcript_path`).
        textgrid: a Praat TextGrid with a ``words`` tier (used as it is, no alignment).
        allow_recognition: recognise the words when the transcript does not align, or when
            neither a transcript nor a TextGrid is given. Without it, an unaligned transcript
            is an error and no transcript means no words.
        whisper_model: a local faster-whisper model folder for recognition (else pocketsphinx).

    Returns:
        The utterance. Audio without speech gets no words (a :class:`NoSpeechWarning` if a
        transcript was given), never an error. A transcript that fails to align falls back to
        recognition with an :class:`~semtalk.features.alignment.AlignmentFallbackWarning`.

    Raises:
        DataError: the audio is missing, a directory, corrupt or empty; the TextGrid or
            transcript file is unreadable; the transcript does not align and
            ``allow_recognition`` is False (an ``AlignmentError`` naming the audio).
        ValueError: both ``transcript`` and ``textgrid`` are given.
    """
    from semtalk.data.transcript import read_transcript

    if transcript is not None and textgrid is not None:
        raise ValueError("give a transcript or a TextGrid, not both")
    path = Path(path)
    audio = load_audio(path)
    text = read_transcript(transcript) if transcript is not None else None
    whisper = Path(whisper_model) if whisper_model is not None else None
    if textgrid is not None:
        words = read_words(textgrid)
        _check_textgrid_span(Path(textgrid), words, audio.shape[0] / AUDIO_SAMPLE_RATE)
        return Utterance(audio, words, "textgrid", path, alignment.METHOD_TEXTGRID)
    if not has_speech(audio):
        if text is not None:
            warnings.warn(f"{path}: the audio holds no speech; the transcript is not used",
                          NoSpeechWarning, stacklevel=2)
        return Utterance(audio, [], "none", path)
    if text is None and not allow_recognition:
        return Utterance(audio, [], "none", path)
    words, method = alignment.words_for_audio(
        audio, AUDIO_SAMPLE_RATE, transcript=text, allow_recognition=allow_recognition,
        source=path, whisper_model=whisper)
    return Utterance(audio, words, _SOURCE_OF_METHOD[method], path, method)


def _check_textgrid_span(path: Path, words: list[Word], duration: float) -> None:
    last = max((w.end for w in words), default=0.0)
    if last > duration + TEXTGRID_OVERHANG_S:
        warnings.warn(f"{path}: words run to {last:.2f} s but the audio lasts {duration:.2f} s; "
                      "is this the TextGrid of another clip?", UserWarning, stacklevel=3)
