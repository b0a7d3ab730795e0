"""Beat consistency: alignment known answers, onsets of a click train, trims and thresholds."""

from __future__ import annotations

import math

import numpy as np
import pytest

from semtalk.metrics import (
    BeatConsistencyConfig,
    aggregate_beat_consistency,
    audio_onsets,
    beat_alignment,
    beat_consistency,
    mean_beat_consistency,
    mean_joint_speed,
    motion_beats,
)

SR, FPS = 16_000, 30
PERIOD = 0.8  # seconds between speech onsets / motion beats
FIRST = 0.5  # time of the first onset


def click_train(times: np.ndarray, seconds: float) -> np.ndarray:
    """16 kHz silence with a 5 ms click at each of ``times``."""
    audio = np.zeros(round(seconds * SR), np.float32)
    for t in times:
        start = round(t * SR)
        audio[start:start + 80] = 0.9 * np.hanning(80)
    return audio


def gesturing(seconds: float, shift: float = 0.0) -> np.ndarray:
    """``[T, 55, 3]``: every joint moves along x with speed ``1 - 0.5 cos``, slowest at
    ``FIRST + shift + k * PERIOD`` (speed minima of 0.5, mean speed 1)."""
    t = np.arange(round(seconds * FPS)) / FPS
    phase = 2 * np.pi * (t - FIRST - shift) / PERIOD
    x = t - 0.5 * PERIOD / (2 * np.pi) * np.sin(phase)
    joints = np.zeros((t.size, 55, 3))
    joints[:, :, 0] = x[:, None]
    return joints


ONSETS = FIRST + PERIOD * np.arange(17)  # up to 13.3 s
AUDIO = click_train(ONSETS, 14.0)
MEAN_SPEED = mean_joint_speed([gesturing(14.0)])


def test_mean_joint_speed_of_known_motion() -> None:
    assert MEAN_SPEED.shape == (55,)
    assert np.allclose(MEAN_SPEED, 1.0, atol=0.02)  # mean of 1 - 0.5 cos over whole periods
    still = np.zeros((10, 55, 3))
    assert np.array_equal(mean_joint_speed([still, still]), np.zeros(55))
    with pytest.raises(ValueError, match="at least one"):
        mean_joint_speed([])


def test_beat_alignment_known_answers() -> None:
    assert beat_alignment([1.0, 2.0], [1.0, 2.3], sigma=0.3) == pytest.approx(
        (1 + math.exp(-0.5)) / 2)
    assert beat_alignment([1.0], [], sigma=0.3) == 0.0
    assert math.isnan(beat_alignment([], [1.0]))


def test_motion_beats_are_the_speed_minima_inside_the_trimmed_window() -> None:
    beats = motion_beats(gesturing(14.0), MEAN_SPEED)
    assert len(beats) == 13  # one per BC joint
    expected = [t - 2.0 for t in ONSETS if 2.0 <= t < 12.0]  # window [2 s, 12 s)
    for joint_beats in beats:
        assert np.allclose(joint_beats, expected, atol=1e-9)


def test_audio_onsets_of_a_click_train_fall_on_the_clicks() -> None:
    onsets = audio_onsets(AUDIO, num_frames=14 * FPS)
    inside = [t - 2.0 for t in ONSETS if 2.0 <= t < 12.0]
    nearest = np.abs(onsets[:, None] - np.array(inside)[None]).min(axis=1)
    assert nearest.max() < 0.07  # within about two hops of 32 ms
    assert {int(np.argmin(np.abs(np.array(inside) - o))) for o in onsets} == set(
        range(len(inside)))


def test_aligned_motion_scores_clearly_higher_than_shifted_motion() -> None:
    aligned = beat_consistency(gesturing(14.0), AUDIO, MEAN_SPEED)
    shifted = beat_consistency(gesturing(14.0, shift=PERIOD / 2), AUDIO, MEAN_SPEED)
    assert aligned > 0.9
    assert shifted < 0.6
    # shifting by half a period puts every onset 0.4 s from the nearest beat
    assert shifted == pytest.approx(math.exp(-0.4**2 / (2 * 0.3**2)), abs=0.08)


def test_minima_below_the_speed_threshold_are_not_beats() -> None:
    slow = MEAN_SPEED * 2.0  # normalised minima 0.25 < 0.3
    assert all(b.size == 0 for b in motion_beats(gesturing(14.0), slow))
    assert beat_consistency(gesturing(14.0), AUDIO, slow) == 0.0
    relaxed = BeatConsistencyConfig(speed_threshold=0.2)
    expected = motion_beats(gesturing(14.0), MEAN_SPEED)
    assert all(np.array_equal(b, e) for b, e in
               zip(motion_beats(gesturing(14.0), slow, relaxed), expected, strict=True))


def test_threshold_is_tested_at_the_minimum_itself() -> None:
    # standing still for the first second (inside the trimmed part), then gesturing: the
    # official code looks the threshold up 60 frames too early, in the still part, and would
    # drop the beats at window times 0.1 s and 0.9 s
    joints = gesturing(14.0)
    joints[:FPS] = joints[FPS]
    beats = motion_beats(joints, MEAN_SPEED)[0]
    assert np.allclose(beats, motion_beats(gesturing(14.0), MEAN_SPEED)[0])
    assert beats[:2] == pytest.approx([0.1, 0.9])
    official = motion_beats(joints, MEAN_SPEED, BeatConsistencyConfig(official_quirks=True))[0]
    assert np.allclose(official, beats[2:])


def test_audio_window_ends_with_the_motion_not_the_file() -> None:
    audio = click_train(np.array([4.0, 8.5]), 14.0)  # 14 s of audio, 10 s of motion
    onsets = audio_onsets(audio, num_frames=10 * FPS)  # window [2 s, 8 s)
    assert onsets.size >= 1 and np.all(onsets < 2.2)  # the 8.5 s click is outside
    assert abs(onsets[0] - 2.0) < 0.07
    official = audio_onsets(audio, 10 * FPS, BeatConsistencyConfig(official_quirks=True))
    assert np.any(np.abs(official - 6.5) < 0.07)  # the official window runs to 10 s


def test_no_onsets_gives_nan_and_is_skipped_in_the_aggregate() -> None:
    silent = np.zeros(14 * SR, np.float32)
    assert math.isnan(beat_consistency(gesturing(14.0), silent, MEAN_SPEED))
    value = aggregate_beat_consistency([0.5, 1.0, float("nan")], [180, 300, 400])
    assert value == pytest.approx((0.5 * 60 + 1.0 * 180) / 240)
    assert math.isnan(aggregate_beat_consistency([float("nan")], [300]))


def test_dataset_bc_weights_by_window_length_and_leaves_inputs_alone() -> None:
    joints = gesturing(14.0)
    copy = joints.copy()
    pairs = [(joints, AUDIO), (gesturing(10.0, shift=PERIOD / 2), AUDIO[:10 * SR])]
    scores = [beat_consistency(j, a, MEAN_SPEED) for j, a in pairs]
    value = mean_beat_consistency(pairs, MEAN_SPEED)
    assert value == pytest.approx((scores[0] * 300 + scores[1] * 180) / 480)
    assert np.array_equal(joints, copy)


def test_bad_inputs_are_rejected() -> None:
    with pytest.raises(ValueError, match="more than 120 frames"):
        motion_beats(gesturing(4.0), MEAN_SPEED)
    with pytest.raises(ValueError, match=r"\[T >= 2, 55, 3\]"):
        motion_beats(np.zeros((300, 165)), MEAN_SPEED)
    with pytest.raises(ValueError, match="> 0 for the BC joints"):
        motion_beats(gesturing(14.0), np.zeros(55))
    with pytest.raises(ValueError, match="mono"):
        audio_onsets(np.zeros((2, 16000)), 300)
