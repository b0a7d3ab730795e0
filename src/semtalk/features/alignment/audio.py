"""Audio for pocketsphinx (checked and converted by :func:`semtalk.data.audio.to_mono`): int16
PCM with dither over digital silence, and the energy voice-activity detector
(:func:`speech_regions`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from semtalk.constants import AUDIO_SAMPLE_RATE

FRAME_RATE = 100
"""pocketsphinx frames per second (10 ms hop)."""
DIGITAL_SILENCE_DB = -90.0
"""10 ms frames quieter than this (dBFS) count as digital silence."""
DIGITAL_SILENCE_FRACTION = 0.01
"""Audio with at least this fraction of digitally silent frames is dithered for pocketsphinx."""
DITHER_RMS = 1e-3
"""RMS of that dither (-60 dBFS)."""


def where_of(source: str | Path | None) -> Path:
    return Path(source) if source is not None else Path("<audio>")


def _to_int16(mono: np.ndarray) -> np.ndarray:
    """Float audio in [-1, 1] as int16 PCM: clipped, then scaled by 32767 and rounded."""
    return np.round(np.clip(mono, -1.0, 1.0) * 32767.0).astype(np.int16)


def decoder_pcm(mono: np.ndarray) -> np.ndarray:
    """int16 PCM for pocketsphinx; audio holding digital silence gets a deterministic dither.

    pocketsphinx's features degenerate on exact zeros: measured on 40 espeak-ng utterances
    (4 to 22 % digital silence), 35 % failed to align with any beam, none after adding
    Gaussian noise at -60 dBFS (seeded, so results stay reproducible). Recordings are left
    untouched (the BEAT2 clip has 0.1 % such frames; dithering it costs 1.5 points of
    boundary accuracy).
    """
    if np.mean(frame_levels_db(mono) < DIGITAL_SILENCE_DB) >= DIGITAL_SILENCE_FRACTION:
        noise = np.random.default_rng(0).normal(0.0, DITHER_RMS, len(mono))
        mono = mono + noise.astype(np.float32)
    return _to_int16(mono)


def frame_levels_db(mono: np.ndarray, sample_rate: int = AUDIO_SAMPLE_RATE) -> np.ndarray:
    """``[num_frames]`` energy (dBFS) of 10 ms frames."""
    hop = sample_rate // FRAME_RATE
    count = len(mono) // hop
    if count == 0:
        return np.full(1, 10 * np.log10(float(np.mean(np.square(mono, dtype=np.float64))) + 1e-12))
    frames = mono[: count * hop].reshape(count, hop).astype(np.float64)
    return 10 * np.log10(np.mean(frames**2, axis=1) + 1e-12)


def speech_regions(audio: np.ndarray, sample_rate: int = AUDIO_SAMPLE_RATE, *,
                   min_silence: float = 0.2, min_speech: float = 0.05,
                   absolute_floor_db: float = -55.0) -> list[tuple[float, float]]:
    """``(start, end)`` seconds of the speech in mono float audio, from 10 ms frame energy.

    A frame is speech when it is louder than both ``absolute_floor_db`` and 35 % of the way
    (in dB) from the noise floor (10th percentile of the frame levels) to the speech level
    (99th percentile). Pauses shorter than ``min_silence`` are bridged and bursts shorter
    than ``min_speech`` dropped. Digital silence, very quiet audio and stationary noise (less
    than 10 dB between floor and peak) have no speech: the result is then empty.
    """
    levels = frame_levels_db(np.asarray(audio, dtype=np.float32), sample_rate)
    floor, peak = np.percentile(levels, 10), np.percentile(levels, 99)
    if peak < absolute_floor_db or peak - floor < 10.0:
        return []
    speech = levels > max(absolute_floor_db, floor + 0.35 * (peak - floor))
    edges = np.flatnonzero(np.diff(np.concatenate([[0], speech.astype(np.int8), [0]])))
    runs = [(int(a), int(b)) for a, b in zip(edges[::2], edges[1::2], strict=True)]
    merged: list[tuple[int, int]] = []
    for start, end in runs:
        if merged and start - merged[-1][1] < min_silence * FRAME_RATE:
            merged[-1] = (merged[-1][0], end)
        else:
            merged.append((start, end))
    return [(a / FRAME_RATE, b / FRAME_RATE) for a, b in merged
            if b - a >= min_speech * FRAME_RATE]

