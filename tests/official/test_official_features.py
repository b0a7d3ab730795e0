"""Official-compatible features against the golden arrays of ../shared/official-fixture:
beat features and word ids (audio_text.npz), the HuBERT pipeline step by step with tiny-hubert
(features.npz, features_report.json), window sentences and CLIP text embeddings."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from semtalk.data.textgrid import Interval, Word
from semtalk.errors import DataError
from semtalk.features.official import (
    OfficialClipTextEncoder,
    aligned_frame_words,
    load_official_hubert,
    load_official_vocab,
    num_official_windows,
    official_beat_features,
    official_beat_features_from_file,
    official_chunk_bounds,
    official_frame_counts,
    official_hubert_features,
    official_wave22,
    read_official_word_tier,
    run_official_hubert,
    textgrid_frame_words,
    window_sentences,
)

SHARED = Path(__file__).resolve().parents[2].parent / "shared"
FIXTURE = SHARED / "official-fixture"
GOLDEN = FIXTURE / "golden"
TINY_HUBERT = FIXTURE / "tiny-hubert"
SAMPLE = SHARED / "data" / "beat2-sample"
WAV = SAMPLE / "2_scott_0_1_1.wav"
TEXTGRID = SAMPLE / "2_scott_0_1_1.TextGrid"


def need(*paths: Path) -> None:
    for path in paths:
        if not path.exists():
            pytest.skip(f"{path} not found (the official fixture and BEAT2 sample live in "
                        "../shared beside the repository)")


@pytest.fixture(scope="module")
def audio_text() -> dict[str, np.ndarray]:
    need(GOLDEN / "audio_text.npz")
    return dict(np.load(GOLDEN / "audio_text.npz"))


@pytest.fixture(scope="module")
def official_vocab(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    need(FIXTURE / "make_checkpoints.py")
    out = tmp_path_factory.mktemp("official_vocab_features")
    subprocess.run([sys.executable, str(FIXTURE / "make_checkpoints.py"), str(out), "--only",
                    "vocab.pkl"], check=True, capture_output=True)
    return load_official_vocab(out / "BEAT2/beat_english_v2.0.0/weights/vocab.pkl")


# --- beat features -------------------------------------------------------------------------------
def test_beat_features_match_golden(audio_text: dict[str, np.ndarray]) -> None:
    need(WAV)
    beat64 = official_beat_features_from_file(WAV, np.float64)
    assert beat64.shape == (1922, 3) and beat64.dtype == np.float64
    assert np.array_equal(beat64, audio_text["beat_float64"])
    beat = official_beat_features_from_file(WAV)
    assert beat.dtype == np.float32 and np.array_equal(beat, audio_text["beat"])
    # the amplitude quirk: the column only sees the first N // 512 samples of the file
    import librosa

    wave, rate = librosa.load(WAV, sr=None)
    assert np.array_equal(official_beat_features(wave, rate), audio_text["beat"])
    changed = wave.copy()
    changed[len(wave) // 2:] *= 0.5
    assert np.array_equal(official_beat_features(changed, rate)[:, 0], beat[:, 0])


def test_beat_features_of_other_rates_and_short_audio() -> None:
    wave = np.sin(np.arange(22050 * 2) * 0.05).astype(np.float32) * 0.3
    assert official_beat_features(wave, 22050).shape == (60, 3)  # 2 s at 16 kHz -> 60 frames
    with pytest.raises(ValueError, match="at least 1024"):
        official_beat_features(wave[:500], 16000)


# --- words ---------------------------------------------------------------------------------------
def test_textgrid_word_ids_match_golden(audio_text, official_vocab) -> None:  # type: ignore[no-untyped-def]
    need(TEXTGRID)
    words = textgrid_frame_words(read_official_word_tier(TEXTGRID), 1906, official_vocab)
    assert words.ids.dtype == np.int32
    assert np.array_equal(words.ids, audio_text["word_ids"])
    assert (words.ids == 4).sum() > 0  # silence has its own index
    generation = np.load(GOLDEN / "generation_inputs.npz")["in_word"]
    assert np.array_equal(words.ids[:262], generation)
    sentences = window_sentences(words.sentence_marks, num_official_windows(1906))
    assert len(sentences) == 31
    assert sentences[0] == "the first thing i like"  # 1.42 s of silence, then words
    assert all("  " not in s for s in sentences)


def test_frame_rules_on_hand_made_intervals(official_vocab) -> None:  # type: ignore[no-untyped-def]
    intervals = [Interval(0.0, 0.1, ""), Interval(0.1, 0.2, "the"), Interval(0.2, 0.3, "The"),
                 Interval(0.4, 0.5, " ")]
    words = textgrid_frame_words(intervals, 18, official_vocab)
    # frame 3 (t = 0.1) lies on a boundary: the first interval (silence) wins
    assert words.ids[:3].tolist() == [4, 4, 4] and words.ids[3] == 4
    assert words.ids[4:7].tolist() == [5, 5, 5]  # "the"
    assert words.ids[7:10].tolist() == [3, 3, 3]  # "The" is looked up as written -> UNK
    assert words.ids[10:12].tolist() == [3, 3] and words.marks[10] is None  # in no interval
    assert words.ids[12:16].tolist() == [0, 0, 0, 0]  # the official " " -> PAD rule
    assert len(words.sentence_marks) == 18 - 2 - 2  # gaps and the tail beyond 0.5 s dropped


def test_window_sentences_rules() -> None:
    marks = ["", "a", "a", "b", " ", "b", "a", None, "c"]
    # blanks are dropped before duplicates collapse: "b", " ", "b" -> "b"
    assert window_sentences(marks, 3, window=4, hop=3) == ["a b", "b a", "a c"]
    assert window_sentences(marks, 4, window=4, hop=3)[3] == ""  # past the end: empty
    assert num_official_windows(262) == 4 and num_official_windows(3) == 0


def test_aligned_words_use_silence_outside_words(official_vocab) -> None:  # type: ignore[no-untyped-def]
    words = [Word("First,", 0.5, 0.7), Word("zzqx", 0.0, 0.2), Word("...", 0.3, 0.4)]
    frames = aligned_frame_words(words, 30, official_vocab)
    first = official_vocab.index("first")
    assert first != 3
    assert frames.ids[:7].tolist() == [3] * 7  # unknown word -> UNK
    assert frames.ids[7:15].tolist() == [4] * 8  # gap (and the dropped "...") -> silence
    assert frames.ids[15:22].tolist() == [first] * 7 and frames.marks[15] == "first"
    assert frames.ids[22:].tolist() == [4] * 8 and frames.marks[29] == ""
    assert window_sentences(frames.marks, 1, window=30, hop=26) == ["zzqx first"]


# --- HuBERT --------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def hubert_run():  # type: ignore[no-untyped-def]
    need(GOLDEN / "features.npz", TINY_HUBERT, WAV)
    model = load_official_hubert(TINY_HUBERT)
    return model, run_official_hubert(WAV, model)


def test_hubert_sizes_and_chunks_exact(hubert_run) -> None:  # type: ignore[no-untyped-def]
    golden = np.load(GOLDEN / "features.npz")
    _, result = hubert_run
    assert np.array_equal(result.sizes.as_array(), golden["sizes_sample"])
    assert np.array_equal(np.array(result.chunk_bounds), golden["chunk_bounds_sample"])
    assert np.array_equal(np.array(result.chunk_frames), golden["chunk_out_frames_sample"])


def test_hubert_waveforms_match_golden(hubert_run) -> None:  # type: ignore[no-untyped-def]
    golden = np.load(GOLDEN / "features.npz")
    report = json.loads((GOLDEN / "features_report.json").read_text())["cases"]["sample"]
    _, result = hubert_run
    same_resampler = hashlib.sha256(result.wave22.tobytes()).hexdigest() == \
        report["wave22_sha256_f32"]
    atol = 0.0 if same_resampler else 2e-6
    for name, values in (("wave22", result.wave22), ("input_values", result.input_values)):
        assert np.allclose(values[:4096], golden[f"{name}_head_sample"], rtol=0, atol=atol)
        assert np.allclose(values[-4096:], golden[f"{name}_tail_sample"], rtol=0, atol=atol)
    if same_resampler:
        assert hashlib.sha256(result.input_values.tobytes()).hexdigest() == \
            report["input_values_sha256_f32"]
    assert np.allclose([result.norm_mean, result.norm_var], golden["norm_stats_sample"],
                       rtol=1e-6, atol=0)


def test_hubert_features_match_golden(hubert_run) -> None:  # type: ignore[no-untyped-def]
    golden = np.load(GOLDEN / "features.npz")
    _, result = hubert_run
    assert result.raw.shape == (4416, 32) and result.features.shape == (1924, 32)
    assert result.features.dtype == np.float32
    assert np.abs(result.raw - golden["hubert_raw_sample"]).max() <= 1e-5
    assert np.abs(result.features - golden["hubert_sample"]).max() <= 1e-5
    assert np.array_equal(result.features[0], result.raw[0])  # align_corners endpoints
    assert np.array_equal(result.features[-1], result.raw[-1])


def test_hubert_array_input_resamples_like_librosa_load(hubert_run) -> None:  # type: ignore[no-untyped-def]
    import librosa

    _, result = hubert_run
    wave, rate = librosa.load(WAV, sr=None)
    wave22, native = official_wave22(wave, rate)
    assert native == 16000 and np.array_equal(wave22, result.wave22)
    with pytest.raises(ValueError, match="sample_rate"):
        official_wave22(wave)


def test_hubert_short_array_end_to_end(hubert_run) -> None:  # type: ignore[no-untyped-def]
    model, _ = hubert_run
    wave = (np.random.default_rng(0).standard_normal(16000) * 0.1).astype(np.float32)
    features = official_hubert_features(wave, model, sample_rate=16000)
    raw_frames, num_16k, frames = official_frame_counts(22050)
    assert (raw_frames, num_16k, frames) == (68, 16000, 30)
    assert features.shape == (30, 32) and features.dtype == np.float32


def test_hubert_bfloat16_opt_in(hubert_run) -> None:  # type: ignore[no-untyped-def]
    """``--hubert-bf16``: a bfloat16 model gets bfloat16 chunks and gives float32 features close
    to the float32 ones (same frames)."""
    import copy

    import torch

    model, _ = hubert_run
    wave = (np.random.default_rng(1).standard_normal(48000) * 0.1).astype(np.float32)
    full = official_hubert_features(wave, model, sample_rate=16000)
    half = official_hubert_features(wave, copy.deepcopy(model).to(torch.bfloat16),
                                    sample_rate=16000)
    assert half.shape == full.shape and half.dtype == np.float32
    assert 0 < np.abs(half - full).max() < 0.1 * np.abs(full).max()


def test_chunk_rule() -> None:
    assert official_chunk_bounds(1000) == [(0, 1000)]
    assert official_chunk_bounds(640399) == [(0, 320080), (320000, 640080)]  # remainder < 400
    assert official_chunk_bounds(640400)[-1] == (640000, 640400)
    with pytest.raises(ValueError, match="fewer than"):
        official_chunk_bounds(399)


def test_hubert_folder_errors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"nowhere.*facebook/hubert-large-ls960-ft"):
        load_official_hubert(tmp_path / "nowhere")
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "clip_text_model"}))
    (tmp_path / "model.safetensors").write_bytes(b"")
    with pytest.raises(ValueError, match=r"config\.json: model_type is 'clip_text_model'"):
        load_official_hubert(tmp_path)
    (tmp_path / "model.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match="no weight file"):
        load_official_hubert(tmp_path)


# --- CLIP text -----------------------------------------------------------------------------------
CLIP_VOCAB = 49408


def write_bpe_tokenizer(folder: Path, num_merges: int) -> int:
    """A CLIP-format BPE tokenizer (vocab.json + merges.txt) with synthetic merges over the
    byte alphabet; ``49408 - 514`` merges give CLIP's vocabulary size. Returns the size."""
    printable = [*range(33, 127), *range(161, 173), *range(174, 256)]
    extra = iter(range(256, 512))
    base = [chr(b) if b in printable else chr(next(extra)) for b in range(256)]
    merges = [(a, b + "</w>") for a in base for b in base][:num_merges]
    tokens = [*base, *(s + "</w>" for s in base), *(a + b for a, b in merges),
              "<|startoftext|>", "<|endoftext|>"]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(tokens)}))
    (folder / "merges.txt").write_text("#version: 0.2\n" + "".join(f"{a} {b}\n"
                                                                  for a, b in merges))
    return len(tokens)


def save_tiny_clip(folder: Path, vocab_size: int, projection: int = 24) -> None:
    import torch
    from transformers import CLIPTextConfig, CLIPTextModelWithProjection

    config = CLIPTextConfig(vocab_size=vocab_size, hidden_size=32, intermediate_size=48,
                            num_hidden_layers=2, num_attention_heads=4,
                            max_position_embeddings=77, projection_dim=projection,
                            hidden_act="quick_gelu", bos_token_id=vocab_size - 2,
                            eos_token_id=vocab_size - 1, pad_token_id=vocab_size - 1)
    torch.manual_seed(0)
    CLIPTextModelWithProjection(config).save_pretrained(folder)


@pytest.fixture(scope="module")
def clip_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("transformers")
    folder = tmp_path_factory.mktemp("official_clip")
    assert write_bpe_tokenizer(folder, CLIP_VOCAB - 514) == CLIP_VOCAB
    save_tiny_clip(folder, CLIP_VOCAB)
    return folder


def test_clip_text_embeddings(clip_folder: Path) -> None:
    import torch
    from transformers import CLIPTextModelWithProjection, CLIPTokenizer

    sentences = ["the first thing i like", "", "to do on weekends is relaxing"]
    encoder = OfficialClipTextEncoder(clip_folder)
    values = encoder.encode(sentences)
    assert values.shape == (3, 24) and values.dtype == np.float32
    tokenizer = CLIPTokenizer.from_pretrained(clip_folder)
    model = CLIPTextModelWithProjection.from_pretrained(clip_folder).eval()
    with torch.no_grad():  # one sentence at a time, unpadded: the EOT feature is the same
        direct = np.stack([model(**tokenizer([s], return_tensors="pt")).text_embeds[0].numpy()
                           for s in sentences])
    assert np.allclose(values, direct, atol=1e-5)
    # truncation at 77 tokens: [bos] + 75 words + [eos]
    many, just, fewer = encoder.encode([" ".join(["a"] * n) for n in (120, 75, 74)])
    assert np.allclose(many, just, atol=1e-6) and not np.allclose(just, fewer, atol=1e-4)
    assert encoder.encode([]).shape == (0, 24)


def test_clip_text_float16(clip_folder: Path) -> None:
    import torch

    sentences = ["the first thing i like", "relaxing"]
    full = OfficialClipTextEncoder(clip_folder).encode(sentences)
    half_encoder = OfficialClipTextEncoder(clip_folder, dtype=torch.float16)
    half = half_encoder.encode(sentences)
    assert half.dtype == np.float32 and not np.array_equal(half, full)
    assert np.abs(half - full).max() < 2e-2 * np.abs(full).max()
    norms = [m for m in half_encoder.model.modules() if isinstance(m, torch.nn.LayerNorm)]
    assert norms and all(m.weight.dtype == torch.float32 for m in norms)
    linears = [m for m in half_encoder.model.modules() if isinstance(m, torch.nn.Linear)]
    assert all(m.weight.dtype == torch.float16 for m in linears)
    with pytest.raises(ValueError, match="dtype"):
        OfficialClipTextEncoder(clip_folder, dtype=torch.bfloat16)


def test_clip_refuses_a_small_tokenizer(tmp_path: Path) -> None:
    pytest.importorskip("transformers")
    size = write_bpe_tokenizer(tmp_path, 30)
    save_tiny_clip(tmp_path, size)
    with pytest.raises(DataError, match=r"tokens, expected 49408"):
        OfficialClipTextEncoder(tmp_path)


# --- semtalk features ---------------------------------------------------------------------------
def test_features_command_writes_the_official_inputs(official_release: Path, clip_folder: Path,
                                                     audio_text: dict[str, np.ndarray],
                                                     tmp_path: Path) -> None:
    """``semtalk features`` on the sample clip (tiny HuBERT, tiny CLIP): a features file in the
    ``generation_inputs.npz`` layout whose beat features, HuBERT features and word ids are the
    golden ones, with a rest-pose seed and the release's speaker."""
    from semtalk.cli import main
    from semtalk.official.inputs import OfficialInputs

    need(WAV, TEXTGRID, TINY_HUBERT, GOLDEN / "features.npz")
    out = tmp_path / "feats.npz"
    assert main(["features", str(WAV), "--textgrid", str(TEXTGRID), "--model",
                 str(official_release), "--hubert", str(TINY_HUBERT), "--sentence-model",
                 str(clip_folder), "--out", str(out)]) == 0
    inputs = OfficialInputs.load(out)
    n = inputs.num_frames
    assert n == len(audio_text["beat"]) == 1922
    np.testing.assert_array_equal(inputs.beat, audio_text["beat"])
    np.testing.assert_array_equal(inputs.in_word[:1906], audio_text["word_ids"])
    golden = np.load(GOLDEN / "features.npz")["hubert_sample"]
    np.testing.assert_allclose(inputs.hubert, golden[:n], atol=1e-5)
    assert len(inputs.feat_clip_text) == -(-(n - 4) // 60)
    assert inputs.speaker_class == 1 and not inputs.emo_clip_text.any()
    assert inputs.tar_pose.shape == (n, 165) and inputs.tar_contact.all()


def test_features_command_refuses_a_paper_release(tiny_release: Path, tmp_path: Path) -> None:
    from semtalk.cli import main

    need(WAV, TINY_HUBERT)
    assert main(["features", str(WAV), "--model", str(tiny_release), "--hubert",
                 str(TINY_HUBERT), "--sentence-model", str(tmp_path), "--out",
                 str(tmp_path / "f.npz")]) == 2
    assert not (tmp_path / "f.npz").exists()


def test_generate_from_audio_with_an_official_release(official_release: Path, tmp_path: Path,
                                                      ) -> None:
    """``semtalk generate AUDIO --model OFFICIAL --hubert DIR --sentence-model DIR``: the whole
    path from a recording (4 s of the sample clip and its TextGrid) to motion, with stand-ins of
    the real widths (a 1-layer HuBERT of width 1024, a tiny CLIP projecting to 512)."""
    import soundfile as sf
    import torch
    from transformers import HubertConfig, HubertModel

    from semtalk.cli import main

    need(WAV, TEXTGRID)
    hubert = tmp_path / "hubert"
    config = HubertConfig(hidden_size=1024, num_hidden_layers=1, num_attention_heads=2,
                          intermediate_size=64, conv_dim=(16,) * 7, feat_extract_norm="layer",
                          do_stable_layer_norm=True, conv_bias=True, num_conv_pos_embeddings=16,
                          num_conv_pos_embedding_groups=2)
    torch.manual_seed(0)
    HubertModel(config).save_pretrained(hubert)
    clip = tmp_path / "clip"
    write_bpe_tokenizer(clip, CLIP_VOCAB - 514)
    save_tiny_clip(clip, CLIP_VOCAB, projection=512)
    wave, rate = sf.read(WAV, dtype="float32")
    sf.write(tmp_path / "speech.wav", wave[: 4 * rate], rate)
    out = tmp_path / "out"
    assert main(["generate", str(tmp_path / "speech.wav"), "--textgrid", str(TEXTGRID),
                 "--model", str(official_release), "--hubert", str(hubert),
                 "--sentence-model", str(clip), "--no-video", "--out", str(out)]) == 0
    with np.load(out / "speech.npz") as motion:
        assert motion["poses"].shape == (120, 165) and np.isfinite(motion["poses"]).all()
        assert np.abs(motion["poses"][:, 69:75]).max() == 0  # eyes
    report = json.loads((out / "speech.json").read_text())
    assert report["input"]["textgrid"] == str(TEXTGRID)
