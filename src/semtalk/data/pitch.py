"""Fundamental frequency (f0) by normalised autocorrelation, in numpy alone.

For each analysis instant a Hann-windowed frame three periods of the pitch floor long is
autocorrelated (by FFT); dividing by the window's own autocorrelation removes the taper's
bias towards short lags (Boersma 1993). The best lag in ``[rate / ceiling, rate / floor]`` is
refined by parabolic interpolation; a shorter lag whose peak is nearly as strong wins, which
avoids octave-down errors. A frame is voiced when its normalised peak exceeds
``voicing_threshold`` and its energy is within ``silence_db`` of the loudest frame.

It is license-clean (semtalk is MIT; Praat's tracker through ``praat-parselmouth`` is GPL and
therefore only an opt-in alternative) and fast: about 0.1 s per minute of audio at 100 Hz.
"""

from __future__ import annotations

import numpy as np

OCTAVE_TOLERANCE = 0.92
"""A shorter lag is preferred when its peak reaches this fraction of the best peak."""
BLOCK = 2048
"""Analysis instants per block: bounds memory on hour-long audio."""


def autocorrelation_pitch(
    audio: np.ndarray,
    times: np.ndarray,
    sample_rate: int,
    floor_hz: float = 75.0,
    ceiling_hz: float = 600.0,
    voicing_threshold: float = 0.45,
    silence_db: float = 40.0,
) -> np.ndarray:
    """f0 in Hz at ``times`` (s) of mono ``audio``; 0 where unvoiced. Shape ``[len(times)]``."""
    times = np.asarray(times, dtype=np.float64)
    peaks = np.zeros(len(times))
    lags = np.ones(len(times))
    loudness = np.full(len(times), -np.inf)
    size = int(np.ceil(3.0 * sample_rate / floor_hz))
    padded = np.pad(np.asarray(audio, dtype=np.float32), (size // 2, size))
    for start in range(0, len(times), BLOCK):
        block = slice(start, start + BLOCK)
        peaks[block], lags[block], loudness[block] = _analyse(
            padded, times[block], sample_rate, size, floor_hz, ceiling_hz)
    voiced = (peaks > voicing_threshold) & (loudness > loudness.max(initial=-np.inf) - silence_db)
    return np.where(voiced, sample_rate / lags, 0.0)


def _analyse(padded: np.ndarray, times: np.ndarray, sample_rate: int, size: int,
             floor_hz: float, ceiling_hz: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per instant: normalised autocorrelation peak, refined lag (samples), energy (dB).

    ``padded`` is the audio with ``size // 2`` zeros before and ``size`` after it.
    """
    lag_lo = max(2, int(np.floor(sample_rate / ceiling_hz)))
    lag_hi = min(size - 2, int(np.ceil(sample_rate / floor_hz)))
    centres = np.round(np.asarray(times) * sample_rate).astype(np.int64)
    index = centres[:, None] + np.arange(size)[None, :]
    frames = padded[np.clip(index, 0, len(padded) - 1)].astype(np.float64)
    frames = frames - frames.mean(axis=1, keepdims=True)
    window = np.hanning(size)
    n_fft = 1 << int(np.ceil(np.log2(2 * size)))
    spectrum = np.fft.rfft(frames * window, n=n_fft)
    corr = np.fft.irfft(np.abs(spectrum) ** 2, n=n_fft)[:, : lag_hi + 2]
    window_corr = np.fft.irfft(np.abs(np.fft.rfft(window, n=n_fft)) ** 2, n=n_fft)[: lag_hi + 2]
    energy = corr[:, 0].copy()
    normalised = corr / (corr[:, :1] + 1e-12) / (window_corr / window_corr[0])
    search = normalised[:, lag_lo : lag_hi + 1]
    best = search.max(axis=1)
    # Smallest lag that is a local maximum and nearly as strong as the best one.
    local_max = np.zeros_like(search, dtype=bool)
    local_max[:, 1:-1] = (search[:, 1:-1] >= search[:, :-2]) & (search[:, 1:-1] >= search[:, 2:])
    strong = local_max & (search >= OCTAVE_TOLERANCE * best[:, None])
    choice = np.where(strong.any(axis=1), strong.argmax(axis=1), search.argmax(axis=1))
    lag = lag_lo + choice
    rows = np.arange(len(lag))
    left, mid, right = normalised[rows, lag - 1], normalised[rows, lag], normalised[rows, lag + 1]
    denominator = left - 2 * mid + right
    curved = np.abs(denominator) > 1e-12
    shift = np.divide(0.5 * (left - right), denominator, out=np.zeros_like(denominator),
                      where=curved)
    refined = lag + np.clip(shift, -0.5, 0.5)
    return normalised[rows, lag], refined, 10 * np.log10(energy + 1e-20)
