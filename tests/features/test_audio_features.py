"""Audio feature extractors: exact frame counts, onsets on the right frames, tone bands, and
HuBERT loading, layers, chunking and identity on tiny random checkpoints."""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from semtalk.data.audio import load_audio, num_frames_for
from semtalk.features.base import AudioFeatureExtractor
from semtalk.features.beat import BeatFeatures, BeatFeaturesConfig
from semtalk.features.hubert import (
    HubertFeatures,
    HubertFeaturesConfig,
    ModelUnavailableError,
    chunk_plan,
)
from semtalk.features.spectral import SpectralFeatures, SpectralFeaturesConfig

SR = 16_000
SAMPLE_FRAMES = 1906
"""Motion frames of the real clip 2_scott_0_1_1 (its audio covers 1922)."""


def save_tiny_model(folder: Path, seed: int = 0, model_type: str = "hubert") -> Path:
    """A random 32-d, 2-layer HuBERT (or wav2vec 2.0) with a "layer"-norm front end, saved."""
    pytest.importorskip("transformers", reason="HuBERT needs the optional transformers stack")
    import torch
    from transformers import HubertConfig, HubertModel, Wav2Vec2Config, Wav2Vec2Model

    config_class, model_class = ((HubertConfig, HubertModel) if model_type == "hubert"
                                 else (Wav2Vec2Config, Wav2Vec2Model))
    config = config_class(hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                          intermediate_size=64, conv_dim=(16,) * 7, num_conv_pos_embeddings=16,
                          num_conv_pos_embedding_groups=4, feat_extract_norm="layer",
                          do_stable_layer_norm=True)
    torch.manual_seed(seed)
    model_class(config).save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_model(tmp_path_factory.mktemp("models") / "tiny-hubert")


@pytest.fixture()
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


def tiny_hubert(folder: Path, **overrides: object) -> HubertFeatures:
    return HubertFeatures(HubertFeaturesConfig(model=str(folder), **overrides))  # type: ignore[arg-type]


@pytest.fixture(params=["beat", "spectral", "hubert"])
def extractor(request: pytest.FixtureRequest, tiny_model: Path) -> AudioFeatureExtractor:
    factories: dict[str, Callable[[], AudioFeatureExtractor]] = {
        "beat": BeatFeatures, "spectral": SpectralFeatures,
        "hubert": lambda: tiny_hubert(tiny_model, chunk_s=2.0, context_s=0.5)}
    return factories[request.param]()


def noise(num_samples: int, seed: int = 0, scale: float = 0.1) -> np.ndarray:
    return (scale * np.random.default_rng(seed).standard_normal(num_samples)).astype(np.float32)


def tone(freq: float, seconds: float, amplitude: float = 0.5) -> np.ndarray:
    t = np.arange(round(seconds * SR)) / SR
    return (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32)


# --- every extractor ---------------------------------------------------------------------------

def test_real_clip_gives_the_motion_frame_count(extractor: AudioFeatureExtractor,
                                                 beat2_sample: Path) -> None:
    audio = load_audio(beat2_sample / "2_scott_0_1_1.wav")
    features = extractor.extract(audio, SAMPLE_FRAMES)
    assert features.shape == (SAMPLE_FRAMES, extractor.dim)
    assert features.dtype == np.float32
    assert np.isfinite(features).all()
    assert features.std(axis=0).max() > 0


@pytest.mark.parametrize("num_samples", [12345, 16001, 533, 100])
def test_odd_lengths_give_exactly_the_requested_frames(extractor: AudioFeatureExtractor,
                                                       num_samples: int) -> None:
    audio = noise(num_samples)
    covered = num_frames_for(num_samples)
    for num_frames in (covered, covered + 1, covered + 37, 0):
        features = extractor.extract(audio, num_frames)
        assert features.shape == (num_frames, extractor.dim)
        assert features.dtype == np.float32
        assert np.isfinite(features).all()


@pytest.mark.parametrize("make", [BeatFeatures, SpectralFeatures])
def test_rows_past_the_audio_do_not_change_earlier_rows(
        make: Callable[[], AudioFeatureExtractor]) -> None:
    extractor = make()
    audio = noise(12345, seed=3)
    covered = num_frames_for(audio.shape[0])
    short = extractor.extract(audio, covered)
    long = extractor.extract(audio, covered + 30)
    np.testing.assert_allclose(long[:covered], short, atol=1e-5)


def test_hubert_rows_far_from_the_padding_do_not_change(tiny_model: Path) -> None:
    extractor = tiny_hubert(tiny_model, layer=0)  # local: positional conv reaches 8 frames
    audio = noise(12345, seed=3)
    covered = num_frames_for(audio.shape[0])
    short = extractor.extract(audio, covered)
    long = extractor.extract(audio, covered + 30)
    np.testing.assert_allclose(long[:covered - 6], short[:-6], atol=1e-5)
    assert np.abs(long[covered:] - long[covered - 1]).max() > 1e-3


def test_rejects_bad_input(extractor: AudioFeatureExtractor) -> None:
    with pytest.raises(ValueError, match="mono"):
        extractor.extract(np.zeros((100, 2), np.float32), 1)
    with pytest.raises(ValueError, match="NaN"):
        extractor.extract(np.full(1000, np.nan, np.float32), 1)


# --- beat --------------------------------------------------------------------------------------

def test_click_train_fires_exactly_on_the_click_frames() -> None:
    # Frames 9 + 15 k, alternately 12 ms early and 6 ms late: floor or ceil would miss them.
    click_times = 0.3 + 0.5 * np.arange(10) + np.where(np.arange(10) % 2, 0.006, -0.012)
    audio = noise(round(5.5 * SR), seed=1, scale=1e-4)
    audio[np.round(click_times * SR).astype(int)] = 1.0
    features = BeatFeatures().extract(audio, num_frames_for(audio.shape[0]))
    expected = 9 + 15 * np.arange(10)
    assert np.flatnonzero(features[:, 3]).tolist() == expected.tolist()
    assert set(np.unique(features[:, 3])) == {0.0, 1.0}
    strength = features[:, 2]
    assert strength[expected].min() > 10 * np.median(strength)


def test_onsets_of_real_speech_are_plausible(beat2_sample: Path) -> None:
    audio = load_audio(beat2_sample / "2_scott_0_1_1.wav")
    onsets = BeatFeatures().extract(audio, SAMPLE_FRAMES)[:, 3]
    per_second = onsets.sum() / (SAMPLE_FRAMES / 30)
    assert 1.0 < per_second < 10.0


def test_onset_gap_must_exceed_one_motion_frame() -> None:
    with pytest.raises(ValueError, match="motion frame"):
        BeatFeaturesConfig(onset_min_gap_s=0.03)


def test_energy_and_envelope_of_silence_are_below_speech(beat2_sample: Path) -> None:
    speech = load_audio(beat2_sample / "2_scott_0_1_1.wav")
    block = SR // 10
    energy = (speech[: speech.shape[0] // block * block] ** 2).reshape(-1, block).sum(axis=1)
    loud = int(np.argmax(np.convolve(energy, np.ones(20), mode="valid")))  # loudest 2 s
    segment = speech[loud * block: loud * block + 2 * SR]
    audio = np.concatenate([np.zeros(SR, np.float32), segment, np.zeros(SR, np.float32)])
    features = BeatFeatures().extract(audio, num_frames_for(audio.shape[0]))
    silent = np.r_[0:27, 93:120]  # > 64 ms away from the speech
    spoken = np.r_[33:87]
    assert features[silent, 1].max() < np.median(features[spoken, 1]) - 2
    np.testing.assert_allclose(features[silent, 1], np.log10(1e-6), atol=1e-6)
    assert features[silent, 0].max() == 0.0
    assert np.median(features[spoken, 0]) > 0.01


def test_envelope_covers_the_whole_signal_on_the_exact_grid() -> None:
    audio = np.zeros(60 * SR, np.float32)
    audio[50 * SR: 50 * SR + SR // 5] = tone(440, 0.2, amplitude=0.8)
    envelope = BeatFeatures().extract(audio, 1800)[:, 0]
    # Frame i's window is [round(i * 1600 / 3) - 512, + 1024): it meets samples
    # [800000, 803200) for i = 1500 .. 1506 only (a 533-sample hop would drift to 1507).
    assert np.flatnonzero(envelope).tolist() == list(range(1500, 1507))
    assert envelope[1501:1506].min() > 0.7


# --- spectral ----------------------------------------------------------------------------------

@pytest.mark.parametrize("freq", [300.0, 1000.0, 3000.0])
def test_pure_tone_lands_in_its_mel_band(freq: float) -> None:
    extractor = SpectralFeatures(SpectralFeaturesConfig(normalization="none"))
    features = extractor.extract(tone(freq, 2.0), 60)
    n_mels = extractor.settings.n_mels
    band = np.bincount(features[5:55, :n_mels].argmax(axis=1)).argmax()
    centres = extractor.band_centres()
    assert centres[band - 1] < freq < centres[band + 1]


def test_deltas_vanish_on_a_stationary_tone_only() -> None:
    extractor = SpectralFeatures(SpectralFeaturesConfig(normalization="none"))
    audio = np.concatenate([np.zeros(SR, np.float32), tone(1000, 2.0)])
    features = extractor.extract(audio, 90)
    n_mels = extractor.settings.n_mels
    deltas = features[:, n_mels:]
    assert np.abs(deltas[36:85]).max() < 1e-2  # well inside the tone
    assert np.abs(deltas[29:32]).max() > 1.0  # the tone's onset at frame 30


def test_meanvar_normalises_each_channel_per_utterance(beat2_sample: Path) -> None:
    audio = load_audio(beat2_sample / "2_scott_0_1_1.wav")
    raw = SpectralFeatures(SpectralFeaturesConfig(normalization="none")).extract(audio, 1906)
    normed = SpectralFeatures().extract(audio, 1906)
    assert np.abs(normed.mean(axis=0)).max() < 0.1
    assert normed.std(axis=0).min() > 0.8 and normed.std(axis=0).max() < 1.1
    assert np.abs(raw[:, :80].mean(axis=0)).min() > 1.0


def test_log_mel_follows_the_exact_frame_grid() -> None:
    extractor = SpectralFeatures(SpectralFeaturesConfig(normalization="none", delta_order=0))
    audio = np.zeros(50 * SR, np.float32)
    audio[45 * SR: 45 * SR + SR // 2] = tone(1000, 0.5)  # 45.0 s to 45.5 s
    band = int(np.argmin(np.abs(extractor.band_centres() - 1000)))
    level = extractor.extract(audio, 1500)[:, band]
    loud = level > (level.min() + level.max()) / 2
    # 12.5 ms half-windows: t_i = i / 30 sees the tone for i = 1350 .. 1365 exactly.
    assert np.flatnonzero(loud).tolist() == list(range(1350, 1366))


def test_deltas_measure_the_log_mel_slope() -> None:
    extractor = SpectralFeatures(SpectralFeaturesConfig(normalization="none"))
    t = np.arange(3 * SR) / SR
    audio = (0.01 * np.exp(t) * np.sin(2 * np.pi * 1000 * t)).astype(np.float32)
    features = extractor.extract(audio, 90)
    n_mels = extractor.settings.n_mels
    band = int(np.argmin(np.abs(extractor.band_centres() - 1000)))
    # Power grows as exp(2 t): the log-mel slope is 2 per second = 0.02 per 10 ms frame.
    np.testing.assert_allclose(features[15:75, n_mels + band], 0.02, rtol=0.05)
    np.testing.assert_allclose(features[15:75, 2 * n_mels + band], 0.0, atol=2e-3)


# --- HuBERT ------------------------------------------------------------------------------------

@pytest.mark.usefixtures("offline")
def test_tiny_checkpoint_loads_offline_and_matches_a_direct_forward(tiny_model: Path) -> None:
    import torch
    from transformers import HubertModel

    audio = noise(3 * SR + 77, seed=4)  # 149 model frames, the last centred at 2.9725 s
    extractor = tiny_hubert(tiny_model, chunk_s=None)
    assert extractor.dim == 32
    features = extractor.extract(audio, 89)  # t = 88 / 30 s needs no padding
    model = HubertModel.from_pretrained(tiny_model).eval()
    normed = (audio - audio.mean()) / np.sqrt(audio.var() + 1e-7)  # true 16 kHz, normalised
    with torch.no_grad():
        hidden = model(torch.from_numpy(normed)[None]).last_hidden_state[0].numpy()
    centres = (np.arange(hidden.shape[0]) * 320 + 200) / SR
    times = np.arange(89) / 30
    expected = np.stack([np.interp(times, centres, column) for column in hidden.T], axis=1)
    np.testing.assert_allclose(features, expected, atol=1e-5)


def test_layers_chain_through_the_transformer_blocks(tiny_model: Path) -> None:
    import torch

    signal = noise(2 * SR, seed=5)
    layers = {layer: tiny_hubert(tiny_model, layer=layer, chunk_s=None).encode(signal)
              for layer in (0, 1, 2, None)}
    model = tiny_hubert(tiny_model, chunk_s=None).model()
    with torch.no_grad():
        for layer in (0, 1):  # block k + 1 maps layer k onto layer k + 1
            block = model.encoder.layers[layer]
            following = block(torch.from_numpy(layers[layer])[None])
            following = following[0] if isinstance(following, tuple) else following
            np.testing.assert_allclose(following[0].numpy(), layers[layer + 1], atol=1e-5)
        # Stable-layer-norm model: last_hidden_state is the final norm of the last block.
        final = model.encoder.layer_norm(torch.from_numpy(layers[2]))
    np.testing.assert_allclose(final.numpy(), layers[None], atol=1e-5)
    for layer in (0, 1, 2):
        assert np.abs(layers[layer] - layers[None]).max() > 1e-2
    with pytest.raises(ValueError, match="layer 3 does not exist"):
        tiny_hubert(tiny_model, layer=3)


def test_chunked_equals_single_pass_where_the_model_is_local(tiny_model: Path) -> None:
    audio = noise(7 * SR + 321, seed=6)
    frames = num_frames_for(audio.shape[0])
    whole = tiny_hubert(tiny_model, layer=0, chunk_s=None).extract(audio, frames)
    chunked = tiny_hubert(tiny_model, layer=0, chunk_s=2.0, context_s=0.5).extract(audio, frames)
    np.testing.assert_allclose(chunked, whole, atol=1e-4)
    # Attention is global: deeper layers agree exactly once the context spans the clip.
    whole = tiny_hubert(tiny_model, chunk_s=None).extract(audio, frames)
    chunked = tiny_hubert(tiny_model, chunk_s=2.0, context_s=8.0).extract(audio, frames)
    np.testing.assert_allclose(chunked, whole, atol=1e-4)


def test_chunk_plan_tiles_the_frames() -> None:
    plan = chunk_plan(1000, 300, 40)
    owned = [frame for _, start, stop, _ in plan for frame in range(start, stop)]
    assert owned == list(range(1000))
    assert all(0 <= lo <= start < stop <= hi <= 1000 for lo, start, stop, hi in plan)
    assert plan[1] == (260, 300, 600, 640)
    assert chunk_plan(50, None, 10) == [(0, 0, 50, 50)]


@pytest.mark.parametrize("hub_offline", [True, False])
def test_unreachable_hub_id_fails_fast_with_instructions(
        hub_offline: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("huggingface_hub", reason="hub ids need the optional transformers stack")
    if hub_offline:
        monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    else:
        monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    start = time.perf_counter()
    with pytest.raises(ModelUnavailableError, match=r"(?s)download.*local directory"):
        HubertFeatures(HubertFeaturesConfig(model="facebook/definitely-not-here",
                                            hub_timeout_s=3.0))
    assert time.perf_counter() - start < 5.0


def test_missing_local_folder_is_reported(tmp_path: Path) -> None:
    with pytest.raises(ModelUnavailableError, match="not a checkpoint directory"):
        tiny_hubert(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelUnavailableError, match=r"config\.json is missing"):
        tiny_hubert(tmp_path / "empty")


def test_wav2vec2_checkpoints_work_too(tmp_path: Path) -> None:
    folder = save_tiny_model(tmp_path / "tiny-w2v2", model_type="wav2vec2")
    features = tiny_hubert(folder).extract(noise(16001), 30)
    assert features.shape == (30, 32)


def test_float16_needs_cuda(tiny_model: Path) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("CUDA present: float16 is allowed")
    with pytest.raises(ValueError, match="float16 needs a CUDA device"):
        tiny_hubert(tiny_model, dtype="float16")


# --- identity ----------------------------------------------------------------------------------

def test_beat_and_spectral_fingerprints_follow_the_config() -> None:
    assert BeatFeatures().fingerprint() == BeatFeatures(BeatFeaturesConfig()).fingerprint()
    assert BeatFeatures().fingerprint() != BeatFeatures(
        BeatFeaturesConfig(energy_window=512)).fingerprint()
    assert SpectralFeatures().fingerprint() == SpectralFeatures().fingerprint()
    assert SpectralFeatures().fingerprint() != SpectralFeatures(
        SpectralFeaturesConfig(normalization="mean")).fingerprint()
    assert SpectralFeatures(SpectralFeaturesConfig(delta_order=0)).dim == 80


def test_hubert_identity_names_the_model_not_its_path(tiny_model: Path, tmp_path: Path) -> None:
    reference = tiny_hubert(tiny_model)
    moved = shutil.copytree(tiny_model, tmp_path / "elsewhere" / tiny_model.name)
    assert tiny_hubert(moved).fingerprint() == reference.fingerprint()
    assert str(tiny_model.parent) not in json.dumps(reference.identity())
    assert reference.identity()["config"]["model"] == "tiny-hubert"
    for change in ({"layer": 1}, {"chunk_s": 10.0}, {"normalize": False}):
        assert tiny_hubert(tiny_model, **change).fingerprint() != reference.fingerprint()
    reseeded = save_tiny_model(tmp_path / "other" / tiny_model.name, seed=1)
    assert tiny_hubert(reseeded).fingerprint() != reference.fingerprint()


def test_spectral_blocks_match_one_pass(monkeypatch):
    import librosa

    from semtalk.features import spectral

    audio = np.random.default_rng(5).normal(0, 0.1, 16000 * 7 + 123).astype(np.float32)
    extractor = SpectralFeatures()
    blocked_mel = extractor.mel_power(audio)
    monkeypatch.setattr(spectral, "STFT_BLOCK", 10**9)
    single = extractor.mel_power(audio)
    s = extractor.settings
    full = librosa.stft(audio, n_fft=s.n_fft, hop_length=s.hop, win_length=s.window,
                        window="hann", center=True, pad_mode="constant")
    reference = (np.abs(full) ** 2).T @ extractor.mel_basis().T
    assert blocked_mel.shape == single.shape == reference.shape
    assert np.allclose(single, reference, rtol=1e-4, atol=1e-7)
    monkeypatch.setattr(spectral, "STFT_BLOCK", 97)  # many uneven blocks
    assert np.allclose(extractor.mel_power(audio), reference, rtol=1e-4, atol=1e-7)
