"""Word alignment and recognition: VAD, accuracy on real and synthetic speech, CLI."""

from __future__ import annotations

import itertools
import sys
import types
import warnings
from pathlib import Path

import numpy as np
import pytest

from semtalk.cli import main
from semtalk.data.audio import load_audio, resample, write_wav
from semtalk.data.textgrid import Word, read_textgrid, read_words
from semtalk.errors import DataError
from semtalk.features.alignment import (
    ARPABET,
    METHOD_ALIGNED,
    METHOD_FALLBACK,
    METHOD_RECOGNIZED,
    METHOD_TEXTGRID,
    AlignmentError,
    AlignmentFallbackWarning,
    UnalignedWordsWarning,
    align_transcript,
    align_transcript_with_phones,
    forced,
    normalize_transcript,
    recognize,
    speech_regions,
    words_and_phones_for_audio,
    words_for_audio,
)
from semtalk.features.alignment.audio import decoder_pcm
from semtalk.features.alignment.sphinx import make_decoder

pytest.importorskip("pocketsphinx")

SR = 16_000


# --- helpers and fixtures ------------------------------------------------------------------------
def boundary_errors(words: list[Word], reference: list[Word]) -> np.ndarray:
    """|start - start'| and |end - end'| of every word pair (seconds)."""
    assert [w.text for w in words] == [r.text for r in reference]
    starts = [abs(w.start - r.start) for w, r in zip(words, reference, strict=True)]
    ends = [abs(w.end - r.end) for w, r in zip(words, reference, strict=True)]
    return np.array(starts + ends)


def report(label: str, errors: np.ndarray) -> float:
    within = float(np.mean(errors <= 0.1))
    print(f"\n{label}: {within:.1%} of {len(errors)} boundaries within 100 ms, median error "
          f"{np.median(errors) * 1000:.0f} ms, p90 {np.percentile(errors, 90) * 1000:.0f} ms")
    return within


def decoder():
    return make_decoder(language_model=False)


@pytest.fixture(scope="session")
def clip(beat2_sample: Path) -> tuple[np.ndarray, list[Word]]:
    """The real BEAT2 clip (float WAV) and its TextGrid words."""
    stem = beat2_sample / "2_scott_0_1_1"
    return load_audio(stem.with_suffix(".wav")), read_words(stem.with_suffix(".TextGrid"))


def head(clip: tuple[np.ndarray, list[Word]], seconds: float) -> tuple[np.ndarray, list[Word]]:
    """The clip cut in the middle of its last pause (>= 0.1 s) that lies before ``seconds``."""
    audio, words = clip
    cuts = [((words[k].end + words[k + 1].start) / 2, k) for k in range(len(words) - 1)
            if words[k + 1].start - words[k].end >= 0.1]
    cut, k = max(c for c in cuts if c[0] < seconds)
    return audio[: round(cut * SR)], words[: k + 1]


# --- the energy VAD ------------------------------------------------------------------------------
def test_speech_regions_find_pauses() -> None:
    tone = 0.3 * np.sin(2 * np.pi * 220 * np.arange(SR) / SR).astype(np.float32)
    quiet = np.zeros(SR // 2, dtype=np.float32)
    audio = np.concatenate([quiet, tone, quiet, tone[: SR // 2], quiet])
    regions = speech_regions(audio)
    assert len(regions) == 2
    np.testing.assert_allclose(regions, [(0.5, 1.5), (2.0, 2.5)], atol=0.02)
    assert speech_regions(np.zeros(SR, dtype=np.float32)) == []
    noise = np.random.default_rng(0).normal(0, 0.05, SR).astype(np.float32)
    assert speech_regions(noise) == []


# --- alignment on real speech --------------------------------------------------------------------
def test_alignment_matches_beat2_textgrid(clip) -> None:
    audio, reference = clip
    words = align_transcript(audio, [w.text for w in reference])
    errors = boundary_errors(words, reference)
    within = report("BEAT2 2_scott_0_1_1 vs its TextGrid", errors)
    assert within >= 0.9
    assert float(np.median(errors)) <= 0.03
    assert all(w.start < w.end <= len(audio) / SR for w in words)
    assert all(a.end <= b.start + 1e-9 for a, b in itertools.pairwise(words))


def test_chunked_fallback_aligns_when_whole_clip_fails(clip, monkeypatch) -> None:
    audio, reference = head(clip, 30.5)
    original = forced._align_pcm

    def whole_clip_fails(decoder, pcm, words, offset, with_phones):
        if len(pcm) == len(audio):
            return None
        return original(decoder, pcm, words, offset, with_phones)

    monkeypatch.setattr(forced, "_align_pcm", whole_clip_fails)
    words = align_transcript(audio, " ".join(w.text for w in reference))
    errors = boundary_errors(words, reference)
    within = report("BEAT2 clip (30 s), piecewise alignment at silences", errors)
    assert within >= 0.9


def test_float_int16_and_other_rates_agree(clip) -> None:
    audio, reference = head(clip, 7.5)
    text = [w.text for w in reference]
    from_float = align_transcript(audio, text)
    pcm = np.round(audio * 32767).astype(np.int16)
    assert align_transcript(pcm, text) == from_float
    assert align_transcript(audio.astype(np.float64), text) == from_float
    at_44k = align_transcript(resample(audio, SR, 44_100), text, 44_100)
    assert np.mean(boundary_errors(at_44k, from_float) <= 0.03) >= 0.9
    assert np.mean(boundary_errors(from_float, reference) <= 0.1) >= 0.9


def test_out_of_vocabulary_spellings_in_real_speech_align(clip) -> None:
    audio, reference = head(clip, 15.5)
    spelled = {"relaxing": "relaxin", "shopping": "shoppin", "weekends": "weekendz"}
    assert all(decoder().lookup_word(v) is None for v in spelled.values())
    text = [spelled.get(w.text, w.text) for w in reference]
    words = align_transcript(audio, text)
    assert [w.text for w in words] == text
    renamed = [Word(spelled.get(r.text, r.text), r.start, r.end) for r in reference]
    errors = boundary_errors(words, renamed)
    assert np.mean(errors <= 0.1) >= 0.9
    oov = [k for k, w in enumerate(text) if w in spelled.values()]
    assert len(oov) == 3
    assert all(abs(words[k].start - reference[k].start) <= 0.1 for k in oov)


def test_phones_tier(clip) -> None:
    audio, reference = head(clip, 7.5)
    words, phones = align_transcript_with_phones(audio, [w.text for w in reference])
    assert [w.text for w in words] == [w.text for w in reference]
    assert {p.text for p in phones} <= ARPABET
    assert len(phones) >= 2 * len(words)
    for word in words:
        inside = [p for p in phones if word.start - 1e-6 <= p.start < word.end]
        assert inside and inside[-1].end <= word.end + 1e-6


def test_words_and_phones_for_audio_times_phones_only_from_a_transcript(clip) -> None:
    audio, reference = head(clip, 7.5)
    words, phones, method = words_and_phones_for_audio(
        audio, transcript=[w.text for w in reference], phones=True)
    assert method == METHOD_ALIGNED and phones is not None and len(phones) >= 2 * len(words)
    assert words_and_phones_for_audio(audio, transcript=[w.text for w in reference])[1] is None
    with pytest.warns(UserWarning, match="phone timings need a transcript"):
        words, phones, _ = words_and_phones_for_audio(audio, phones=True)
    assert phones is None and words


# --- alignment on synthetic speech (espeak-ng, exact word timings) --------------------------------
@pytest.fixture(scope="module")
def synthesize():
    from semtalk.data.synthetic.tts import Prosody, synthesize

    def speak(words: list[str], voice: str = "en-us", pause: float | None = None):
        pauses = {len(words) // 2: pause} if pause else None
        return synthesize(words, Prosody(voice=voice), pause_after=pauses)
    return speak


@pytest.mark.parametrize(("text", "voice"), [
    ("the machine costs 25 dollars and was built in 1990 by 3 engineers", "en-us"),
    ("on may 5th about 70% of the 300 people arrived at 9:30", "en"),
    ("i saw a blorptastic machine today near the old zorblax", "en-us+m3"),
])
def test_synthetic_speech_with_digits_and_made_up_words(synthesize, text: str,
                                                         voice: str) -> None:
    spoken = normalize_transcript(text)
    utterance = synthesize(spoken, voice, pause=0.4)
    words = align_transcript(utterance.audio, text, utterance.sample_rate)
    assert [w.text for w in words] == spoken
    truth = [Word(w.text, w.start, w.end) for w in utterance.words]
    within = report(f"espeak {voice} '{text[:30]}...'", boundary_errors(words, truth))
    assert within >= 0.9


def test_digital_silence_is_dithered_before_decoding(synthesize) -> None:
    utterance = synthesize(["she", "said", "the", "idea", "was", "good"], pause=0.4)
    mono = resample(utterance.audio, utterance.sample_rate, SR)
    assert np.mean(mono == 0) > 0.05
    pcm = decoder_pcm(mono)
    assert np.count_nonzero(pcm == 0) < 0.01 * len(pcm)
    np.testing.assert_array_equal(decoder_pcm(mono), pcm)


# --- failures ------------------------------------------------------------------------------------
def test_silence_with_transcript_raises_naming_the_file() -> None:
    source = Path("clips/silence.wav")
    for audio in (np.zeros(2 * SR, dtype=np.float32),
                  np.random.default_rng(1).normal(0, 0.02, 2 * SR).astype(np.float32)):
        with pytest.raises(AlignmentError, match="no speech found") as info:
            align_transcript(audio, "hello world", source=source)
        assert str(info.value).startswith(str(source))
        assert isinstance(info.value, DataError)
    with pytest.raises(AlignmentError, match=r"^<audio>: "):
        align_transcript(np.zeros(SR, dtype=np.float32), "hello")


def test_bad_audio_and_transcripts_raise() -> None:
    with pytest.raises(DataError, match="zero samples"):
        align_transcript(np.zeros(0, dtype=np.float32), "hello")
    with pytest.raises(DataError, match="zero samples"):
        recognize(np.zeros(0, dtype=np.float32))
    float_read_as_int = np.random.default_rng(0).integers(-1, 2, SR).astype(np.int16)
    with pytest.raises(DataError, match="float WAV read as int16"):
        align_transcript(float_read_as_int, "hello")
    with pytest.raises(DataError, match="peaks at"):
        align_transcript(np.full(SR, 1000.0, dtype=np.float32), "hello")
    with pytest.raises(DataError, match=r"must be \[N\] or \[N, channels\]"):
        align_transcript(np.zeros((SR, 2, 2), dtype=np.float32), "hello")
    with pytest.raises(AlignmentError, match="no words"):
        align_transcript(np.zeros(SR, dtype=np.float32), "?!")


def test_mismatched_transcript_fails_or_falls_back(clip) -> None:
    audio, _ = head(clip, 4.5)
    with pytest.raises(AlignmentError, match="cover only"):
        align_transcript(audio, "hello there", source=Path("a.wav"))
    with pytest.raises(AlignmentError):
        words_for_audio(audio, SR, transcript="hello there", allow_recognition=False)
    with pytest.warns(AlignmentFallbackWarning, match="cover only"):
        words, method = words_for_audio(audio, SR, transcript="hello there")
    assert method == METHOD_FALLBACK
    assert len(words) >= 5


def test_extra_trailing_words_are_left_out_with_a_warning(clip) -> None:
    audio, truth = head(clip, 8.0)
    spoken = " ".join(w.text for w in truth)
    with pytest.warns(UnalignedWordsWarning, match=r"a\.wav: the last 7 transcript words did "
                      r"not align .* left out: 'so that was it for today folks'"):
        words = align_transcript(audio, spoken + " so that was it for today folks",
                                 source=Path("a.wav"))
    assert [w.text for w in words] == [w.text for w in truth]
    assert report("extra trailing words", boundary_errors(words, truth)) >= 0.9
    with pytest.warns(UnalignedWordsWarning, match="the last transcript word .* 'beautiful'"):
        words, method = words_for_audio(audio, SR, transcript=spoken + " beautiful",
                                        allow_recognition=False)
    assert method == METHOD_ALIGNED and len(words) == len(truth)


def test_many_extra_words_still_fail(clip) -> None:
    audio, truth = head(clip, 8.0)
    spoken = " ".join(w.text for w in truth)
    extra = " and then we all went home to have a long dinner together"  # 13 words
    with pytest.raises(AlignmentError, match="does the transcript match the audio"):
        align_transcript(audio, spoken + extra)


# --- recognition ---------------------------------------------------------------------------------
def test_recognition_on_real_speech(clip) -> None:
    audio, reference = head(clip, 7.5)
    words = recognize(audio)
    known = {w.text for w in reference}
    hits = float(np.mean([w.text in known for w in words]))
    print(f"\nrecognised {len(words)} words ({len(reference)} spoken), {hits:.0%} of them in the "
          f"reference: {' '.join(w.text for w in words)}")
    assert len(words) >= 0.6 * len(reference)
    assert hits >= 0.4
    assert all(w.start < w.end <= len(audio) / SR for w in words)
    assert all(a.end <= b.start + 1e-9 for a, b in itertools.pairwise(words))
    assert recognize(np.zeros(2 * SR, dtype=np.float32)) == []


def test_whisper_model_must_be_a_local_folder(tmp_path: Path) -> None:
    audio = np.zeros(SR, dtype=np.float32)
    for name in ("Systran/faster-whisper-small", "small"):
        with pytest.raises(DataError, match="never downloads"):
            recognize(audio, whisper_model=Path(name))
    with pytest.raises(DataError, match=r"missing model\.bin"):
        recognize(audio, whisper_model=tmp_path)


def test_whisper_word_timestamps_are_normalised(tmp_path: Path, monkeypatch) -> None:
    (tmp_path / "model.bin").write_bytes(b"")
    (tmp_path / "config.json").write_text("{}")
    timed = types.SimpleNamespace
    calls: dict[str, object] = {}

    class FakeWhisperModel:
        def __init__(self, path: str, **options: object) -> None:
            calls.update(path=path, **options)

        def transcribe(self, audio: np.ndarray, **options: object):
            calls.update(samples=len(audio), **options)
            segment = timed(words=[timed(word=" Hello,", start=0.1, end=0.4),
                                   timed(word=" 21", start=0.5, end=0.9)])
            return iter([segment]), None

    monkeypatch.setitem(sys.modules, "faster_whisper",
                        types.SimpleNamespace(WhisperModel=FakeWhisperModel))
    words = recognize(np.zeros(8000, dtype=np.float32), 8000, whisper_model=tmp_path)
    assert [w.text for w in words] == ["hello", "twenty", "one"]
    np.testing.assert_allclose([(w.start, w.end) for w in words],
                               [(0.1, 0.4), (0.5, 0.7), (0.7, 0.9)])
    assert calls["path"] == str(tmp_path) and calls["local_files_only"] is True
    assert calls["word_timestamps"] is True and calls["samples"] == SR


def test_words_for_audio_methods(clip, beat2_sample: Path) -> None:
    audio, reference = head(clip, 4.5)
    textgrid = beat2_sample / "2_scott_0_1_1.TextGrid"
    assert words_for_audio(audio, SR, textgrid=textgrid) == (read_words(textgrid),
                                                             METHOD_TEXTGRID)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        words, method = words_for_audio(audio, SR, transcript=[w.text for w in reference])
    assert method == METHOD_ALIGNED and len(words) == len(reference)
    with pytest.raises(DataError, match="recognition is switched off"):
        words_for_audio(audio, SR, allow_recognition=False, source=Path("x.wav"))
    assert words_for_audio(np.zeros(SR, dtype=np.float32), SR) == ([], METHOD_RECOGNIZED)


# --- CLI -----------------------------------------------------------------------------------------
def test_cli_align_round_trip(clip, tmp_path: Path, capsys) -> None:
    audio, reference = head(clip, 7.5)
    wav = write_wav(tmp_path / "clip.wav", audio)
    transcript = tmp_path / "clip.txt"
    transcript.write_text(" ".join(w.text for w in reference).capitalize() + ".\n")

    assert main(["align", str(wav), "--transcript", str(transcript)]) == 0
    out = capsys.readouterr().out
    assert f"{len(reference)} words, aligned" in out
    written = read_words(tmp_path / "clip.TextGrid")
    assert [w.text for w in written] == [w.text for w in reference]
    assert np.mean(boundary_errors(written, reference) <= 0.1) >= 0.9
    tiers = read_textgrid(tmp_path / "clip.TextGrid")
    assert list(tiers) == ["words"]
    assert tiers["words"][-1].end == pytest.approx(len(audio) / SR)

    assert main(["align", str(wav), "-t", str(transcript)]) == 2
    assert "semtalk align: error: " in capsys.readouterr().err

    other = tmp_path / "phones.TextGrid"
    assert main(["align", str(wav), "-t", " ".join(w.text for w in reference), "-o", str(other),
                 "--phones"]) == 0
    assert set(read_textgrid(other)) == {"words", "phones"}

    assert main(["align", str(wav), "-t", "hello there", "-o", str(other), "--overwrite",
                 "--no-recognition-fallback"]) == 2
    assert "cover only" in capsys.readouterr().err
    assert main(["align", str(tmp_path / "missing.wav")]) == 2
    assert "audio file not found" in capsys.readouterr().err
    assert main(["align", str(wav), "-t", "missing.txt", "-o", str(tmp_path / "x.TextGrid")]) == 2
    assert "transcript file not found" in capsys.readouterr().err


def test_cli_recognition_without_transcript(clip, tmp_path: Path, capsys) -> None:
    audio, _ = head(clip, 4.5)
    wav = write_wav(tmp_path / "clip.wav", audio)
    assert main(["align", str(wav), "-o", str(tmp_path / "out.TextGrid")]) == 0
    assert "recognized" in capsys.readouterr().out
    assert len(read_words(tmp_path / "out.TextGrid")) >= 5
