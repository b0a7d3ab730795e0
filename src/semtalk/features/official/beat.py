"""The official 3-channel beat features (``extract_rhythm_pause_features``), quirks included.

Columns (amplitude, energy, onset), computed on the 16 kHz waveform with window 1024 and hop
512, then linearly interpolated (``np.interp``) onto ``int(N / 16000 * 30)`` frames. No
normalisation. Reproduced official behaviour:

- **Amplitude-channel quirk**: the amplitude envelope is the max ``|x|`` over the 1024 samples
  starting at *every sample*, and the code then keeps its first ``N // 512`` entries. The
  channel therefore describes only the first ``N / 512`` samples of the file (about 0.125 s
  per minute of audio), stretched over the whole clip by the interpolation. Training and
  inference share this, so it is reproduced, not fixed.
- energy: ``sum(x[i:i+1024] ** 2)`` in float32 for ``i = 0, 512, ...``, cut to the amplitude
  length;
- onset: ``librosa.onset.onset_detect(y, sr=16000, hop_length=512)`` (default peak picking) as
  a 0/1 indicator per hop;
- the frame count ``int(duration * 30)`` truncates, so it can be one below ``round``;
- the official function returns float64 and the dataset and inference cast to float32;
  :func:`official_beat_features` returns float32 by default, float64 on request.
- the wav is read at its native rate (``librosa.load(sr=None)``) and resampled to 16 kHz with
  librosa's default ``soxr_hq`` (a no-op for BEAT2's 16 kHz files).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from semtalk.data.audio import to_mono
from semtalk.errors import require_file

OFFICIAL_BEAT_RATE = 16000
OFFICIAL_BEAT_FRAME = 1024
OFFICIAL_BEAT_HOP = 512
OFFICIAL_FPS = 30


def official_beat_features(wave: np.ndarray, sample_rate: int,
                           dtype: type[np.floating] = np.float32) -> np.ndarray:
    """``[T_b, 3]`` official beat features (amplitude, energy, onset) of a waveform.

    Args:
        wave: ``[N]`` or ``[N, channels]`` samples as ``librosa.load(path, sr=None)`` returns
            them (float32 in [-1, 1]); channels are averaged.
        sample_rate: rate of ``wave``; resampled to 16 kHz with ``librosa.resample`` (soxr_hq)
            when it differs, as the official code does.
        dtype: ``np.float32`` (what the official dataset and inference use) or ``np.float64``
            (what the official function returns).

    Returns:
        ``[int(N16 / 16000 * 30), 3]`` array, ``N16`` the 16 kHz length.
    """
    import librosa

    audio = to_mono(wave, sample_rate, target_rate=sample_rate)
    if sample_rate != OFFICIAL_BEAT_RATE:
        audio = librosa.resample(audio, orig_sr=sample_rate, target_sr=OFFICIAL_BEAT_RATE)
    return _features(np.ascontiguousarray(audio, dtype=np.float32)).astype(dtype, copy=False)


def official_beat_features_from_file(path: str | Path,
                                     dtype: type[np.floating] = np.float32) -> np.ndarray:
    """:func:`official_beat_features` of an audio file read as the official code reads it."""
    import librosa

    path = require_file(path, "audio file")
    wave, rate = librosa.load(path, sr=None)
    return official_beat_features(wave, int(rate), dtype)


def _features(audio: np.ndarray) -> np.ndarray:
    """float64 ``[T_b, 3]`` from a 16 kHz float32 waveform (the official steps in order)."""
    frame, hop = OFFICIAL_BEAT_FRAME, OFFICIAL_BEAT_HOP
    num_samples = len(audio)
    if num_samples < frame:
        raise ValueError(f"audio has {num_samples} samples at 16 kHz; the official beat "
                         f"features need at least {frame}")
    windows = sliding_window_view(audio, frame)[:num_samples // hop]  # the quirk: first N//512
    amplitude = np.abs(windows).max(axis=1)
    energy = np.array([np.sum(np.abs(audio[i:i + frame] ** 2))
                       for i in range(0, num_samples, hop)])[:len(amplitude)]
    onset = _onset_indicator(audio, len(amplitude))
    features = np.stack([amplitude, energy, onset], axis=1)
    num_frames = int(num_samples / OFFICIAL_BEAT_RATE * OFFICIAL_FPS)
    positions = np.linspace(0, len(features) - 1, num_frames)
    grid = np.arange(len(features))
    out = np.zeros((num_frames, features.shape[1]))
    for column in range(features.shape[1]):
        out[:, column] = np.interp(positions, grid, features[:, column])
    return out


def _onset_indicator(audio: np.ndarray, length: int) -> np.ndarray:
    import librosa

    frames = librosa.onset.onset_detect(y=audio, sr=OFFICIAL_BEAT_RATE,
                                        hop_length=OFFICIAL_BEAT_HOP, units="frames")
    indicator = np.zeros(length, dtype=float)
    indicator[frames[frames < length]] = 1.0
    return indicator
