"""File formats: TextGrid, sem, emo, audio conversion."""

import numpy as np
import pytest
import soundfile as sf

from semtalk.data.audio import load_audio, resample, write_wav
from semtalk.data.emotion import (
    EmotionSegment,
    emotion_from_clip_id,
    emotion_from_index,
    first_index_of,
    read_emotion_csv,
    write_emotion_csv,
)
from semtalk.data.semantic import (
    SemanticSegment,
    frame_semantic_scores,
    read_semantic,
    write_semantic,
)
from semtalk.data.textgrid import Interval, read_textgrid, read_words, write_textgrid
from semtalk.errors import DataError

SHORT_TEXTGRID = '''File type = "ooTextFile"
Object class = "TextGrid"

0
2.5
<exists>
1
"IntervalTier"
"words"
0
2.5
3
0
1.0
""
1.0
1.6
"Hello"
1.6
2.5
"say ""hi"""
'''


def test_textgrid_long_format_round_trip_with_gaps_and_quotes(tmp_path):
    tiers = {"words": [Interval(0.5, 1.0, "hello"), Interval(1.2, 1.9, 'say "hi"')],
             "phones": [Interval(0.5, 0.7, "HH")]}
    path = write_textgrid(tmp_path / "a.TextGrid", tiers, xmax=2.0)
    back = read_textgrid(path)
    assert back["words"] == [Interval(0.0, 0.5, ""), Interval(0.5, 1.0, "hello"),
                             Interval(1.0, 1.2, ""), Interval(1.2, 1.9, 'say "hi"'),
                             Interval(1.9, 2.0, "")]
    assert [w.text for w in read_words(path)] == ["hello", 'say "hi"']
    assert read_words(path, tier="phones")[0].text == "hh"


def test_textgrid_short_format_and_utf16(tmp_path):
    path = tmp_path / "short.TextGrid"
    path.write_text(SHORT_TEXTGRID, encoding="utf-16")
    words = read_words(path)
    assert [(w.text, w.start, w.end) for w in words] == [("hello", 1.0, 1.6),
                                                        ('say "hi"', 1.6, 2.5)]


def test_textgrid_errors_name_the_problem(tmp_path):
    path = tmp_path / "bad.TextGrid"
    path.write_text(SHORT_TEXTGRID.replace("1.6\n2.5", "1.6\n1.2", 1))
    with pytest.raises(DataError, match=r"ends .* before it starts"):
        read_textgrid(path)
    with pytest.raises(DataError, match="no tier 'syllables'"):
        path.write_text(SHORT_TEXTGRID)
        read_words(path, tier="syllables")
    with pytest.raises(DataError, match="TextGrid file not found"):
        read_textgrid(tmp_path / "missing.TextGrid")


def test_real_textgrid(beat2_sample):
    tiers = read_textgrid(beat2_sample / "2_scott_0_1_1.TextGrid")
    assert list(tiers) == ["words", "phones"]
    assert len(tiers["words"]) == 220 and tiers["words"][1] == Interval(1.42, 1.52, "the")
    assert tiers["phones"][1].text == "DH"


def test_sem_round_trip_and_frame_scores(tmp_path):
    segments = [SemanticSegment("deictic", 0.5, 1.0, 0.9, "you"),
                SemanticSegment("iconic", 2.0, 2.2, 0.05)]
    path = write_semantic(tmp_path / "s.txt", segments)
    back = read_semantic(path)
    assert back == segments
    assert path.read_text().splitlines()[0].split("\t") == ["deictic", "0.500", "1.000",
                                                            "0.500", "0.900", "you"]
    scores = frame_semantic_scores(back, 90)
    assert np.flatnonzero(scores).tolist() == list(range(15, 31))
    assert np.allclose(scores[15:31], 0.9)


def test_sem_errors(tmp_path):
    path = tmp_path / "s.txt"
    path.write_text("beat\t1.0\t2.0\n")
    with pytest.raises(DataError, match="line 1: expected at least 5"):
        read_semantic(path)
    path.write_text("beat\t3.0\t2.0\t-1\t0.5\n")
    with pytest.raises(DataError, match=r"end_time 2\.0 is before"):
        read_semantic(path)


def test_emotion_numbering_and_csv(tmp_path):
    assert emotion_from_index(0) == "neutral" and emotion_from_index(64) == "neutral"
    assert [emotion_from_index(i) for i in (65, 73, 81, 87, 95, 103, 111)] == [
        "happiness", "anger", "sadness", "contempt", "surprise", "fear", "disgust"]
    assert emotion_from_index(86) == "sadness" and first_index_of("fear") == 103
    assert emotion_from_clip_id("2_scott_0_73_73") == "anger"
    assert emotion_from_clip_id("custom") is None
    path = write_emotion_csv(tmp_path / "e.csv", [EmotionSegment("anger", 0.0, 3.5)])
    assert read_emotion_csv(path) == [EmotionSegment("anger", 0.0, 3.5)]
    path.write_text("happiness\n")
    assert read_emotion_csv(path) == [EmotionSegment("happiness")]
    path.write_text("start,end,label\n1,2\n")
    with pytest.raises(DataError, match="line 2: expected 'start,end,label'"):
        read_emotion_csv(path)


def test_resample_preserves_duration_and_content():
    t = np.arange(44100) / 44100
    tone = np.sin(2 * np.pi * 440 * t).astype(np.float32)
    out = resample(tone, 44100, 16000)
    assert out.shape == (16000,) and out.dtype == np.float32
    spectrum = np.abs(np.fft.rfft(out))
    assert abs(np.argmax(spectrum) - 440) <= 1


@pytest.mark.parametrize("subtype", ["PCM_16", "PCM_24", "FLOAT", "DOUBLE"])
def test_load_audio_formats(tmp_path, subtype):
    rng = np.random.default_rng(0)
    signal = (0.5 * rng.uniform(-1, 1, 22050)).astype(np.float32)
    path = tmp_path / "x.wav"
    sf.write(path, np.stack([signal, signal], 1), 22050, subtype=subtype)
    audio = load_audio(path)
    assert audio.dtype == np.float32 and audio.shape == (16000,)
    assert 0.2 < np.abs(audio).max() <= 1.0  # scaled, not raw integers


def test_load_audio_flac_and_write_wav(tmp_path):
    signal = np.linspace(-0.5, 0.5, 16000, dtype=np.float32)
    sf.write(tmp_path / "x.flac", signal, 16000)
    assert np.allclose(load_audio(tmp_path / "x.flac"), signal, atol=1e-4)
    write_wav(tmp_path / "y.wav", signal)
    assert sf.info(tmp_path / "y.wav").subtype == "FLOAT"
    assert np.array_equal(load_audio(tmp_path / "y.wav"), signal)


def test_audio_errors(tmp_path):
    with pytest.raises(DataError, match="is a directory"):
        load_audio(tmp_path)
    with pytest.raises(DataError, match="audio file not found"):
        load_audio(tmp_path / "none.wav")
    sf.write(tmp_path / "empty.wav", np.zeros(0, np.float32), 16000)
    with pytest.raises(DataError, match="zero samples"):
        load_audio(tmp_path / "empty.wav")
