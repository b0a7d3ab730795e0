"""data.audio.to_mono: the one conversion every audio input (file, array, alignment) goes
through."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

from semtalk.data.audio import (
    TruncatedAudioWarning,
    load_audio,
    to_mono,
    wav_missing_bytes,
    write_wav,
)
from semtalk.errors import DataError


def test_channels_are_averaged_and_the_rate_converted() -> None:
    t = np.arange(48_000) / 48_000
    left = (0.5 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)
    stereo = np.stack([left, np.zeros_like(left)], axis=1)
    mono = to_mono(stereo, 48_000)
    assert mono.dtype == np.float32 and mono.shape == (16_000,)
    np.testing.assert_allclose(mono, to_mono(left / 2, 48_000), atol=1e-6)
    assert abs(float(np.abs(mono).max()) - 0.25) < 0.01


def test_integer_samples_are_scaled_by_their_range() -> None:
    samples = np.array([0, 16_384, -32_767, 32_767] * 100, dtype=np.int16)
    np.testing.assert_allclose(to_mono(samples, 16_000)[:4], [0.0, 0.5, -1.0, 1.0], atol=1e-4)


@pytest.mark.parametrize(("audio", "rate", "message"), [
    (np.zeros((10, 2, 2), np.float32), 16_000, r"must be \[N\] or \[N, channels\]"),
    (np.zeros(0, np.float32), 16_000, "zero samples"),
    (np.zeros(100, np.float32), 0, "positive integer"),
    (np.zeros(100, np.float32), 16_000.5, "positive integer"),
    (np.full(100, np.nan, np.float32), 16_000, "NaN or Inf"),
    (np.full(100, 40.0, np.float32), 16_000, "peaks at 40"),
    (np.ones(100, np.uint8), 16_000, "unsigned"),
    (np.array(["a"] * 10), 16_000, "float or integer"),
])
def test_bad_audio_is_named(audio: np.ndarray, rate: float, message: str) -> None:
    with pytest.raises(DataError, match=message) as info:
        to_mono(audio, rate, "speech.wav")  # type: ignore[arg-type]
    assert str(info.value).startswith("speech.wav: ")


def test_channels_first_audio_is_transposed() -> None:
    t = np.arange(32_000) / 16_000
    left = (0.5 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)
    channels_first = np.stack([left, np.zeros_like(left)])  # [2, N], as torchaudio gives it
    mono = to_mono(channels_first, 16_000)
    assert mono.shape == (32_000,)
    np.testing.assert_allclose(mono, left / 2, atol=1e-6)
    np.testing.assert_array_equal(to_mono(channels_first.T, 16_000), mono)


def test_sample_rate_given_as_text_says_it_must_be_an_int() -> None:
    with pytest.raises(DataError, match=r"sample rate must be an int, got str '16000'"):
        to_mono(np.zeros(100, np.float32), "16000")  # type: ignore[arg-type]


def test_truncated_wav_body_warns_and_a_complete_one_does_not(tmp_path: Path) -> None:
    audio = (0.1 * np.sin(np.arange(16_000) / 5)).astype(np.float32)
    path = write_wav(tmp_path / "speech.wav", audio)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert len(load_audio(path)) == 16_000
    assert wav_missing_bytes(path) == 0
    cut = tmp_path / "cut.wav"
    cut.write_bytes(path.read_bytes()[:-4_000])  # 1000 float samples short
    assert wav_missing_bytes(cut) == 4_000
    with pytest.warns(TruncatedAudioWarning, match=r"cut\.wav: truncated WAV: its header "
                                                   r"declares 4000 more bytes"):
        assert len(load_audio(cut)) == 15_000
