"""espeak-ng text-to-speech: exact word timings, exact pauses, prosody control, determinism."""

from __future__ import annotations

import hashlib
import itertools
import multiprocessing
import warnings

import numpy as np
import pytest

from semtalk.data.synthetic.tts import Prosody, Utterance, synthesize
from semtalk.data.synthetic.tts import engine as tts_engine
from semtalk.data.synthetic.tts.capi import EVENT_END, EVENT_PHONEME, EVENT_WORD, Event
from semtalk.data.synthetic.tts.library import library_paths
from semtalk.data.synthetic.tts.phrases import phrase_text
from semtalk.data.synthetic.tts.state import SynthState
from semtalk.data.synthetic.tts.timing import phrase_timing
from semtalk.data.textgrid import Word

WORDS = ["so", "i", "never", "said", "that", "the", "old", "picture", "is", "there", "were",
         "three", "houses"]
PAUSE = 0.4


def _samples(utterance: Utterance, word: Word) -> tuple[int, int]:
    return round(word.start * utterance.sample_rate), round(word.end * utterance.sample_rate)


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64)))) if len(x) else 0.0


def _f0(utterance: Utterance) -> float:
    """Median autocorrelation pitch (Hz) of the voiced 40 ms frames."""
    sr, x = utterance.sample_rate, utterance.audio.astype(np.float64)
    frame, lo, hi = int(0.04 * sr), sr // 400, sr // 60
    pitches = []
    for start in range(0, len(x) - frame, frame // 2):
        seg = x[start:start + frame] - x[start:start + frame].mean()
        if _rms(seg) < 0.05:
            continue
        ac = np.correlate(seg, seg, mode="full")[frame - 1:]
        lag = lo + int(np.argmax(ac[lo:hi]))
        if ac[lag] > 0.5 * ac[0]:
            pitches.append(sr / lag)
    assert len(pitches) > 10
    return float(np.median(pitches))


def _digest(utterance: Utterance) -> str:
    return hashlib.sha256(utterance.audio.tobytes()).hexdigest()


def _digest_of_job(words: tuple[str, ...]) -> str:  # module level: picklable for worker pools
    return _digest(synthesize(words, Prosody(rate_wpm=140), pause_after={1: 0.2}))


@pytest.fixture(scope="module")
def utterance() -> Utterance:
    return synthesize(WORDS, Prosody(), pause_after={4: PAUSE, len(WORDS) - 1: 0.25})


def test_audio_format_and_duration(utterance):
    assert utterance.sample_rate == 22050
    assert utterance.audio.dtype == np.float32 and utterance.audio.ndim == 1
    assert np.abs(utterance.audio).max() <= 1.0
    assert utterance.duration == len(utterance.audio) / utterance.sample_rate
    assert 2.0 < utterance.duration < 6.0
    # a pause after the last word is trailing silence of exactly that length
    trailing = utterance.duration - utterance.words[-1].end
    assert trailing == pytest.approx(0.25, abs=1 / utterance.sample_rate)


def test_words_are_the_input_in_order_and_never_overlap(utterance):
    assert [w.text for w in utterance.words] == WORDS
    starts = [w.start for w in utterance.words]
    assert starts == sorted(starts) and len(set(starts)) == len(starts)
    for word, following in itertools.pairwise(utterance.words):
        assert word.end > word.start
        assert following.start >= word.end
    assert utterance.words[0].start >= 0.0
    assert utterance.words[-1].end <= utterance.duration


def test_pause_is_exact_and_silent(utterance):
    before, after = utterance.words[4], utterance.words[5]
    assert after.start - before.end == pytest.approx(PAUSE, abs=1 / utterance.sample_rate)
    sr = utterance.sample_rate
    gap = utterance.audio[round(before.end * sr):round(after.start * sr)]
    assert len(gap) > 0.39 * sr and not gap.any()
    for word in (before, after):
        start, end = _samples(utterance, word)
        assert _rms(utterance.audio[start:end]) > 0.02


def test_speech_is_inside_words_and_silence_between_them(utterance):
    """Every word carries speech energy; whatever lies between words is digital silence."""
    audio = utterance.audio
    previous_end = 0
    for word in utterance.words:
        start, end = _samples(utterance, word)
        assert _rms(audio[start:end]) > 0.02, word
        assert not audio[previous_end:start].any(), word  # the gap before it is silent
        assert audio[start:start + 50].any(), word  # speech begins at the word's start
        previous_end = end
    assert not audio[previous_end:].any()


def test_multi_word_dictionary_entries_still_get_one_timing_per_word(utterance):
    """espeak reads "there were" as one dictionary entry; each word keeps its own span."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        u = synthesize(["there", "were", "a", "lot", "of", "them"])
    assert [w.text for w in u.words] == ["there", "were", "a", "lot", "of", "them"]
    assert all(w.end - w.start > 0.03 for w in u.words)


def test_a_long_phrase_keeps_every_word():
    """Past espeak's clause-length limit no word is dropped and the words still tile the audio."""
    words = (WORDS * 10)[:120]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        u = synthesize(words, Prosody(rate_wpm=300))
    assert [w.text for w in u.words] == words
    assert all(w.end > w.start and following.start >= w.end
               for w, following in itertools.pairwise(u.words))
    sr = u.sample_rate
    assert all(not u.audio[round(w.end * sr):round(following.start * sr)].any()
               for w, following in itertools.pairwise(u.words))
    assert 15.0 < u.duration < 40.0


def test_phones_lie_inside_words_in_time_order(utterance):
    phones = utterance.phones
    assert len(phones) >= 2 * len(WORDS)
    assert all(p.text and p.end > p.start for p in phones)
    assert all(a.end <= b.start for a, b in itertools.pairwise(phones))
    for phone in phones:
        assert any(w.start <= phone.start and phone.end <= w.end for w in utterance.words)
    first_word_phones = [p.text.strip("ˈˌ") for p in phones if p.end <= utterance.words[0].end]
    assert first_word_phones == ["s", "oʊ"]  # "so"


def test_slower_rate_and_word_gap_give_longer_audio():
    words = WORDS[:8]
    slow = synthesize(words, Prosody(rate_wpm=110)).duration
    normal = synthesize(words, Prosody(rate_wpm=165)).duration
    fast = synthesize(words, Prosody(rate_wpm=300)).duration
    assert slow > 1.25 * normal > 1.25 * 1.2 * fast
    gapped = synthesize(words, Prosody(rate_wpm=165, word_gap_10ms=10)).duration
    assert gapped > normal + 0.05 * (len(words) - 1)


def test_higher_pitch_raises_f0():
    low = _f0(synthesize(WORDS[:8], Prosody(pitch=15)))
    high = _f0(synthesize(WORDS[:8], Prosody(pitch=85)))
    assert high > 1.25 * low
    assert 60 < low < 400 and 60 < high < 400


def test_volume_scales_the_signal():
    quiet = synthesize(WORDS[:5], Prosody(volume=40)).audio
    loud = synthesize(WORDS[:5], Prosody(volume=120)).audio
    assert len(quiet) == len(loud)
    assert _rms(loud) > 2.0 * _rms(quiet)


def test_same_inputs_give_bit_identical_audio_whatever_ran_before():
    first = synthesize(WORDS[:6], Prosody(pitch=60), pause_after={2: 0.3})
    synthesize(["something", "else", "entirely"], Prosody(rate_wpm=300, pitch=90, volume=150))
    synthesize(["and", "another", "voice"], Prosody(voice="en-us+f3"))
    again = synthesize(WORDS[:6], Prosody(pitch=60), pause_after={2: 0.3})
    assert _digest(first) == _digest(again)
    assert first.words == again.words and first.phones == again.phones
    assert _digest(first) != _digest(synthesize(WORDS[:6], Prosody(pitch=61),
                                                pause_after={2: 0.3}))


def test_resetting_in_place_matches_a_freshly_loaded_library(monkeypatch):
    """The saved synthesis state is complete: restoring it equals reloading the library."""
    text, _ = phrase_text(["honestly", "the", "river", "was", "quiet"])
    prosody, other = Prosody(rate_wpm=150, pitch=40), Prosody(rate_wpm=400, volume=180)
    lib_path, data_path = library_paths()
    results = []
    for reload in (False, True):
        if reload:  # as on a platform where the state variables cannot be located
            monkeypatch.setattr(SynthState, "capture", classmethod(lambda *args: None))
        engine = tts_engine.Engine(lib_path, data_path, "en-us")
        assert engine.resets_in_place is not reload
        try:
            with tts_engine._lock:
                engine.synthesize("we\u200bbought\u200bthree\u200bred\u200bpictures", other)
                results.append(engine.synthesize(text, prosody))
        finally:
            engine.close()
    in_place, reloaded = results
    assert bytes(in_place.pcm) == bytes(reloaded.pcm)
    assert in_place.events == reloaded.events


@pytest.mark.parametrize("lead_in, expected_end", [("silent", 100), ("sounding", 150)])
def test_a_word_ends_where_the_next_words_lead_in_falls_silent(lead_in, expected_end):
    """Events of "ab c": c's WORD event at 100, its first phone at 150."""
    word, phone, end = EVENT_WORD, EVENT_PHONEME, EVENT_END
    events = [Event(word, 1, 0), Event(phone, 1, 0, "a"), Event(word, 4, 100),
              Event(phone, 4, 100, ""), Event(phone, 4, 150, "c"),
              Event(end, 4, 250)]
    pcm = np.ones(250, dtype=np.int16)
    if lead_in == "silent":
        pcm[100:150] = 0
    timing = phrase_timing(events, pcm, [0, 3], ["ab", "c"])
    assert timing.words == [(0, expected_end), (150, 250)]
    assert timing.phones == [("a", 0, expected_end), ("c", 150, 250)]


def test_words_espeak_merged_share_its_span_with_a_warning():
    word, phone, end = EVENT_WORD, EVENT_PHONEME, EVENT_END
    events = [Event(word, 1, 0), Event(phone, 1, 0, "a"),
              Event(phone, 1, 100, "b"), Event(phone, 1, 200, "c"),
              Event(end, 1, 300)]
    with pytest.warns(RuntimeWarning, match="as one word"):
        timing = phrase_timing(events, np.ones(300, dtype=np.int16), [0, 3], ["ab", "c"])
    assert timing.words == [(0, 200), (200, 300)]


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_worker_processes_reproduce_the_parent(method):
    if method not in multiprocessing.get_all_start_methods():
        pytest.skip(f"no {method} start method here")
    jobs = [("so", "i", "never", "said"), ("the", "old", "house")]
    expected = [_digest_of_job(job) for job in jobs]
    with multiprocessing.get_context(method).Pool(2) as pool:
        assert pool.map(_digest_of_job, jobs * 2) == expected * 2


@pytest.mark.parametrize("words", [[], ["hello world"], ["hi!"], ["3"], [""]])
def test_bad_words_raise_value_error(words):
    with pytest.raises(ValueError):
        synthesize(words)


@pytest.mark.parametrize("pause_after", [{5: 0.2}, {-1: 0.2}, {0: -0.1}, {0: float("nan")}])
def test_bad_pauses_raise_value_error(pause_after):
    with pytest.raises(ValueError, match="pause_after"):
        synthesize(["one", "two"], pause_after=pause_after)


@pytest.mark.parametrize("field, value", [("rate_wpm", 79), ("rate_wpm", 451), ("pitch", 101),
                                          ("pitch_range", -1), ("volume", 201),
                                          ("word_gap_10ms", -1), ("voice", "")])
def test_out_of_range_prosody_raises_value_error(field, value):
    with pytest.raises(ValueError, match=field):
        Prosody(**{field: value})


def test_unknown_voice_raises_value_error():
    with pytest.raises(ValueError, match="no voice"):
        synthesize(["hello"], Prosody(voice="xx-nonexistent"))


def test_missing_library_raises_runtime_error_naming_path_and_fix(monkeypatch, tmp_path):
    import espeakng_loader

    missing = tmp_path / "libespeak-ng.so"
    monkeypatch.setattr(espeakng_loader, "get_library_path", lambda: str(missing))
    with pytest.raises(RuntimeError, match="pip install espeakng-loader") as error:
        synthesize(["hello"])
    assert str(missing) in str(error.value)


def test_missing_data_raises_runtime_error_naming_path_and_fix(monkeypatch, tmp_path):
    import espeakng_loader

    monkeypatch.setattr(espeakng_loader, "get_data_path", lambda: str(tmp_path))
    with pytest.raises(RuntimeError, match="pip install espeakng-loader") as error:
        synthesize(["hello"])
    assert str(tmp_path) in str(error.value)
