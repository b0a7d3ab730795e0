import numpy as np
import pytest

from semtalk.data.pitch import autocorrelation_pitch

SR = 16000


def buzz(f0: np.ndarray, amplitude: float = 0.3) -> np.ndarray:
    """A harmonic-rich voiced-like signal following a per-sample f0 track."""
    phase = 2 * np.pi * np.cumsum(f0) / SR
    return (amplitude * sum(np.sin(k * phase) / k for k in range(1, 6))).astype(np.float32)


def test_tracks_a_two_octave_sweep():
    t = np.arange(2 * SR) / SR
    times = np.arange(200) / 100
    f0 = autocorrelation_pitch(buzz(110 * 4**(t / 2)), times, SR)
    voiced = f0 > 0
    assert voiced.mean() > 0.98
    assert np.median(np.abs(f0[voiced] / (110 * 4**(times[voiced] / 2)) - 1)) < 0.005


def test_silence_and_noise_are_unvoiced():
    times = np.arange(100) / 100
    assert not autocorrelation_pitch(np.zeros(SR, np.float32), times, SR).any()
    noise = np.random.default_rng(0).normal(0, 0.1, SR).astype(np.float32)
    assert (autocorrelation_pitch(noise, times, SR) > 0).mean() < 0.1


def test_quiet_frames_far_below_the_loudest_are_unvoiced():
    tone = buzz(np.full(SR, 200.0))
    tone[: SR // 2] *= 1e-3  # 60 dB quieter
    f0 = autocorrelation_pitch(tone, np.arange(100) / 100, SR)
    assert not f0[5:45].any() and (f0[55:95] == pytest.approx(200, rel=0.01))


def test_long_input_in_blocks_matches_short_pieces():
    audio = buzz(np.full(3 * SR, 150.0))
    times = np.arange(300) / 100
    whole = autocorrelation_pitch(audio, times, SR)
    assert np.array_equal(whole[:100], autocorrelation_pitch(audio, times[:100], SR)) or \
        np.allclose(whole[:100], autocorrelation_pitch(audio, times[:100], SR))
