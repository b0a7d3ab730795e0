"""Generation inputs: any audio file in, mono 16 kHz audio and timed words out; bad input."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from semtalk.data.audio import num_frames_for, resample, write_wav
from semtalk.data.textgrid import Interval, Word, words_to_intervals, write_textgrid
from semtalk.errors import DataError
from semtalk.features.alignment import (
    METHOD_FALLBACK,
    AlignmentError,
    AlignmentFallbackWarning,
)
from semtalk.generation.inputs import NoSpeechWarning, load_utterance

pytest.importorskip("pocketsphinx")

SR = 16_000
TEXT = "so i never said that my dream job was easy"


@pytest.fixture(scope="module")
def speech(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, np.ndarray, list[Word]]:
    """A spoken sentence (espeak-ng, exact word timings): 16 kHz WAV, 22.05 kHz audio, words."""
    from semtalk.data.synthetic.tts import Prosody, synthesize

    utterance = synthesize(TEXT.split(), Prosody(), pause_after={4: 0.3})
    words = [Word(w.text, w.start, w.end) for w in utterance.words]
    folder = tmp_path_factory.mktemp("speech")
    path = write_wav(folder / "speech.wav", resample(utterance.audio, utterance.sample_rate, SR))
    assert utterance.sample_rate == 22_050
    return path, utterance.audio, words


@pytest.fixture(scope="module")
def textgrid(speech, tmp_path_factory: pytest.TempPathFactory) -> Path:
    _, audio, words = speech
    path = tmp_path_factory.mktemp("grid") / "speech.TextGrid"
    return write_textgrid(path, {"words": words_to_intervals(words)}, len(audio) / 22_050)


@pytest.mark.parametrize(("suffix", "rate", "channels", "subtype"), [
    (".wav", 44_100, 2, "PCM_16"), (".flac", 22_050, 1, "PCM_24"), (".mp3", 48_000, 2, None),
    (".ogg", 8_000, 1, None)])
def test_any_format_rate_and_channel_count_gives_mono_16k(speech, textgrid, tmp_path, suffix,
                                                          rate, channels, subtype) -> None:
    _, audio, words = speech
    signal = resample(audio, 22_050, rate)
    if channels == 2:
        signal = np.stack([signal, 0.5 * signal], axis=1)
    path = tmp_path / f"clip{suffix}"
    sf.write(path, signal, rate, subtype=subtype)
    utterance = load_utterance(path, textgrid=textgrid)
    duration = len(audio) / 22_050
    assert utterance.audio.dtype == np.float32 and utterance.audio.ndim == 1
    assert utterance.sample_rate == SR
    assert utterance.duration == pytest.approx(duration, abs=0.08)  # mp3 pads a few ms
    assert (utterance.words, utterance.words_source, utterance.path) == (words, "textgrid", path)
    if suffix in (".wav", ".flac"):  # lossless: the same samples as the 16 kHz reference
        reference = resample(audio, 22_050, SR) * (0.75 if channels == 2 else 1.0)
        n = min(len(reference), len(utterance.audio))
        assert np.corrcoef(reference[:n], utterance.audio[:n])[0, 1] > 0.99


def test_transcript_text_or_file_is_force_aligned(speech, tmp_path) -> None:
    path, _, truth = speech
    from_text = load_utterance(path, transcript=TEXT.upper() + "!")
    transcript = tmp_path / "speech.txt"
    transcript.write_text(TEXT + "\n")
    from_file = load_utterance(path, transcript=str(transcript))
    assert from_text.words == from_file.words
    assert (from_text.words_source, from_text.words_method) == ("alignment", "aligned")
    assert [w.text for w in from_text.words] == TEXT.split()
    errors = [abs(a.start - b.start) for a, b in zip(from_text.words, truth, strict=True)]
    assert np.mean(np.array(errors) <= 0.1) >= 0.8
    assert from_text.num_frames == num_frames_for(len(from_text.audio)) == 91


def test_unmatched_transcript_fails_naming_the_file_or_falls_back_to_recognition(
        speech) -> None:
    path, _, truth = speech
    with pytest.raises(AlignmentError, match="does not match the audio") as info:
        load_utterance(path, transcript="hello", allow_recognition=False)
    assert str(info.value).startswith(str(path))
    with pytest.warns(AlignmentFallbackWarning, match="using recognised words"):
        utterance = load_utterance(path, transcript="hello")
    assert (utterance.words_source, utterance.words_method) == ("recognition", METHOD_FALLBACK)
    recognised = {w.text for w in utterance.words}
    assert len(recognised & {w.text for w in truth}) >= 6  # a rough transcript


def test_without_transcript_words_are_recognised_unless_switched_off(speech) -> None:
    path, _, _ = speech
    assert load_utterance(path, allow_recognition=False).words_source == "none"
    utterance = load_utterance(path)
    assert utterance.words_source == "recognition" and len(utterance.words) >= 6
    assert all(a.start <= b.start for a, b in zip(utterance.words, utterance.words[1:],
                                                    strict=False))


@pytest.mark.parametrize("kind", ["zeros", "quiet noise"])
def test_silent_audio_has_no_words_and_is_no_error(tmp_path, kind) -> None:
    rng = np.random.default_rng(0)
    audio = np.zeros(SR * 2, np.float32) if kind == "zeros" else \
        rng.normal(0, 0.01, SR * 2).astype(np.float32)
    path = write_wav(tmp_path / "silence.wav", audio)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        utterance = load_utterance(path)
    assert (utterance.words, utterance.words_source) == ([], "none")
    assert utterance.num_frames == 60
    with pytest.warns(NoSpeechWarning, match="no speech; the transcript is not used"):
        assert load_utterance(path, transcript="hello world").words == []


def _zero_sample_wav(path: Path) -> Path:
    sf.write(path, np.zeros((0, 1), np.float32), SR)
    return path


def _file(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


@pytest.mark.parametrize(("make", "message"), [
    (lambda d: d / "missing.wav", "audio file not found"),
    (lambda d: d, "is a directory, expected an audio file"),
    (lambda d: _file(d / "empty.wav", b""), r"empty \(0 bytes\)"),
    (lambda d: _zero_sample_wav(d / "nothing.wav"), "zero samples"),
    (lambda d: _file(d / "bad.wav", b"RIFF\x00\x01garbage" * 50), "cannot decode audio"),
], ids=["missing", "directory", "zero-bytes", "zero-samples", "corrupt"])
def test_bad_audio_is_a_data_error_naming_the_file(tmp_path, make, message) -> None:
    path = make(tmp_path)
    with pytest.raises(DataError, match=message) as info:
        load_utterance(path, transcript="hello")
    assert info.value.path == path and str(info.value).startswith(str(path))


def test_word_sources_are_checked(speech, textgrid, tmp_path) -> None:
    path, _, _ = speech
    with pytest.raises(ValueError, match="not both"):
        load_utterance(path, transcript=TEXT, textgrid=textgrid)
    with pytest.raises(DataError, match="is a directory"):
        load_utterance(path, textgrid=tmp_path)
    with pytest.raises(DataError, match="is a directory, expected a transcript"):
        load_utterance(path, transcript=str(tmp_path))
    with pytest.raises(DataError, match="transcript file not found"):
        load_utterance(path, transcript=str(tmp_path / "missing.txt"))
    long = tmp_path / "other.TextGrid"
    write_textgrid(long, {"words": [Interval(9.0, 9.5, "late")]}, 10.0)
    with pytest.warns(UserWarning, match="another clip"):
        assert load_utterance(path, textgrid=long).words == [Word("late", 9.0, 9.5)]



def test_ten_kilobyte_inline_transcript_is_text(tmp_path) -> None:
    path = write_wav(tmp_path / "silence.wav", np.zeros(SR, np.float32))
    text = " ".join([TEXT] * 240)
    assert len(text.encode()) > 10_000
    with pytest.warns(NoSpeechWarning, match="the transcript is not used"):
        assert load_utterance(path, transcript=text).words == []


@pytest.mark.parametrize("source", ["textgrid", "transcript", "none"])
def test_float_range_is_checked_whatever_the_word_source(tmp_path, source) -> None:
    loud = np.random.default_rng(0).uniform(-3.0, 3.0, SR).astype(np.float32)
    path = tmp_path / "loud.wav"
    sf.write(path, loud, SR, subtype="FLOAT")
    grid = write_textgrid(tmp_path / "loud.TextGrid", {"words": [Interval(0.1, 0.5, "hi")]}, 1.0)
    given = {"textgrid": {"textgrid": grid}, "transcript": {"transcript": "hi"},
             "none": {"allow_recognition": False}}[source]
    with pytest.raises(DataError, match=r"loud\.wav: float audio must lie in \[-1, 1\]"):
        load_utterance(path, **given)
