"""Beat consistency (BC) between motion and speech (spec §8.2, EMAGE's in-trainer definition).

Motion beats are moments where a joint decelerates into a local speed minimum; audio beats are
speech onsets. BC averages, over the audio onsets, a Gaussian of the distance to the nearest
motion beat, per joint, then over 13 spine and arm joints:

1. Joint speed by central differences (one-sided at the ends) at 30 fps, divided by the
   joint's mean speed over training data (:func:`mean_joint_speed`; BEAT2's official values
   are ``mean_vel_smplxflame_30.npy``).
2. The first and last 2 s (60 frames) are cut off. Motion beats are local minima of the
   normalised speed inside that window (``scipy.signal.argrelextrema(np.less, order=7)``)
   whose normalised speed exceeds 0.3; times are relative to the window start.
3. Audio onsets: ``librosa.onset.onset_detect(sr=16000, hop_length=512, units='time')`` on the
   16 kHz audio truncated to the motion's duration, over the same window.
4. Per joint ``(1/|A|) sum_a exp(-min_m (a - m)^2 / (2 sigma^2))`` with sigma = 0.3 s (0 for a
   joint without beats); the sequence score is the mean over the 13 joints
   (:data:`semtalk.body.UPPER_BODY_BC_JOINTS`).
5. Over a test set, sequences are weighted by their window length ``n - 120`` frames.

Papers report "BC x 10^-1": the raw value times 10 (SemTalk's 7.770 is a raw 0.7770).

Inputs are joint *positions* ``[T, 55, 3]``: the caller runs forward kinematics with the body
model in use. The official evaluation uses SMPL-X with the GT betas, the generated pose
(global orientation and jaw included), zero translation and zero expressions; with the built-in
skeleton the value is an approximation and should be labelled as such.

Differences from the official code (its quirks, fixed here):

- Threshold offset: the official code tests the 0.3 threshold at the minimum's index counted
  from the window start but looked up in the *whole* sequence, i.e. 60 frames too early. Here
  the threshold is tested on the minimum's own frame.
- End trim: the official audio window ends 2 s before the end of the *full* audio file rather
  than of the audio truncated to the motion's length, so with audio longer than the motion it
  keeps onsets the motion window does not cover. Here both windows end 2 s before the end of
  the motion.
- The official L1-diversity routine overwrites the joint array (with absolute deviations from
  the mean) before BC reads it; here inputs are never modified.
- A sequence without any audio onset in its window makes the official code divide by zero;
  here its score is NaN and it is left out of the aggregate (which is NaN if no sequence has
  onsets).
- The official pipeline loads audio at 22.05 kHz and resamples to 16 kHz; here audio is given
  at 16 kHz (semtalk's loaders resample on load), a negligible difference.

The threshold fix matters: speed minima are slow by nature, so testing the threshold at the
minimum itself keeps far fewer beats than the official lookup 2 s earlier (on the BEAT2 sample
clip ``2_scott_0_1_1``, built-in skeleton: about 40 instead of 80 beats per joint, BC 0.42
instead of 0.72). Published BC values (EMAGE, SemTalk) were computed with the quirks; set
``BeatConsistencyConfig(official_quirks=True)`` to reproduce the threshold offset and the audio
end trim when comparing with them, and label such numbers as paper-compatible.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy.signal import argrelextrema

from semtalk.body.parts import NUM_JOINTS, UPPER_BODY_BC_JOINTS
from semtalk.constants import AUDIO_SAMPLE_RATE, MOTION_FPS


@dataclass(frozen=True)
class BeatConsistencyConfig:
    """Constants of BC; the defaults are the official ones.

    Attributes:
        sigma: width of the Gaussian on the onset-to-beat distance (seconds).
        order: neighbourhood (frames each side) of a local speed minimum.
        speed_threshold: a minimum counts only where the normalised speed exceeds this.
        trim_seconds: cut from both ends of motion and audio.
        joints: joints averaged into the sequence score.
        fps: motion frame rate.
        sample_rate: audio sample rate.
        hop_length: onset-detection hop (samples).
        official_quirks: reproduce the official threshold offset (the threshold is looked up
            ``trim_frames`` before the minimum) and audio end trim (2 s before the end of the
            whole audio, not of the motion), for numbers comparable with published BC.
    """

    sigma: float = 0.3
    order: int = 7
    speed_threshold: float = 0.3
    trim_seconds: float = 2.0
    joints: tuple[int, ...] = UPPER_BODY_BC_JOINTS
    fps: int = MOTION_FPS
    sample_rate: int = AUDIO_SAMPLE_RATE
    hop_length: int = 512
    official_quirks: bool = False

    @property
    def trim_frames(self) -> int:
        """Frames cut from each end (60)."""
        return round(self.trim_seconds * self.fps)

    @property
    def trim_samples(self) -> int:
        """Audio samples cut from each end (32000)."""
        return round(self.trim_seconds * self.sample_rate)


def _check_joints(joints: np.ndarray, what: str = "joints") -> np.ndarray:
    array = np.asarray(joints, dtype=np.float64)
    if array.ndim != 3 or array.shape[1:] != (NUM_JOINTS, 3) or array.shape[0] < 2:
        raise ValueError(f"{what} must be joint positions [T >= 2, {NUM_JOINTS}, 3], "
                         f"got shape {array.shape}")
    return array


def joint_speed(joints: np.ndarray, fps: int = MOTION_FPS) -> np.ndarray:
    """Speed of every joint, ``[T, 55, 3] -> [T, 55]`` (units per second).

    Central differences inside, forward / backward differences at the first / last frame.
    """
    positions = _check_joints(joints)
    velocity = np.gradient(positions, 1.0 / fps, axis=0)
    return np.linalg.norm(velocity, axis=-1)


def mean_joint_speed(joint_sequences: Iterable[np.ndarray], fps: int = MOTION_FPS) -> np.ndarray:
    """Per-joint mean speed ``[55]`` over all frames of ``joint_sequences`` (each ``[T, 55, 3]``).

    Computed from training data, it is BC's normaliser (the role of BEAT2's
    ``mean_vel_smplxflame_30.npy``). Frames are pooled, so long sequences weigh more.
    """
    total = np.zeros(NUM_JOINTS)
    frames = 0
    for sequence in joint_sequences:
        speed = joint_speed(sequence, fps)
        total += speed.sum(axis=0)
        frames += speed.shape[0]
    if frames == 0:
        raise ValueError("mean_joint_speed needs at least one sequence")
    return total / frames


def motion_beats(joints: np.ndarray, mean_speed: np.ndarray,
                 config: BeatConsistencyConfig | None = None) -> list[np.ndarray]:
    """Motion beat times per BC joint, in seconds from the start of the trimmed window.

    Args:
        joints: ``[T, 55, 3]`` joint positions.
        mean_speed: ``[55]`` per-joint normaliser (:func:`mean_joint_speed`).

    Returns:
        One array per joint in ``config.joints`` (in that order).
    """
    config = config or BeatConsistencyConfig()
    mean_speed = np.asarray(mean_speed, dtype=np.float64).reshape(-1)
    if mean_speed.shape != (NUM_JOINTS,):
        raise ValueError(f"mean_speed must have {NUM_JOINTS} entries, got {mean_speed.shape}")
    chosen = list(config.joints)
    if not np.all(mean_speed[chosen] > 0):
        raise ValueError(f"mean_speed must be > 0 for the BC joints {chosen}")
    speed = joint_speed(joints, config.fps)
    trim = config.trim_frames
    if speed.shape[0] <= 2 * trim:
        raise ValueError(f"BC needs more than {2 * trim} frames, got {speed.shape[0]}")
    normalised = speed[:, chosen] / mean_speed[chosen]  # [T, J]
    window = normalised[trim:-trim]  # [T - 2*trim, J]
    # the official code tests the threshold at the window index taken as an absolute frame
    tested = normalised if config.official_quirks else window
    beats = []
    for column, threshold_column in zip(window.T, tested.T, strict=True):
        minima = argrelextrema(column, np.less, order=config.order)[0]
        kept = minima[threshold_column[minima] > config.speed_threshold]
        beats.append(kept / config.fps)
    return beats


def audio_onsets(audio: np.ndarray, num_frames: int,
                 config: BeatConsistencyConfig | None = None) -> np.ndarray:
    """Speech onset times in seconds from the start of the trimmed window.

    Args:
        audio: mono signal at ``config.sample_rate`` (16 kHz).
        num_frames: motion length; the audio is truncated to ``num_frames / fps`` seconds and
            ``trim_seconds`` are cut from both ends of that.
    """
    import librosa

    config = config or BeatConsistencyConfig()
    signal = np.asarray(audio, dtype=np.float32)
    if signal.ndim != 1:
        raise ValueError(f"audio must be a mono signal [S], got shape {signal.shape}")
    duration = round(num_frames * config.sample_rate / config.fps)
    truncated = signal[:duration]
    # the official window end is measured from the whole audio, not the truncated audio
    end = (signal.size if config.official_quirks else truncated.size) - config.trim_samples
    window = truncated[config.trim_samples:end]
    if window.size == 0:
        return np.zeros(0)
    return librosa.onset.onset_detect(y=window, sr=config.sample_rate,
                                      hop_length=config.hop_length, units="time")


def beat_alignment(onsets: np.ndarray, beats: np.ndarray, sigma: float = 0.3) -> float:
    """Mean over ``onsets`` of ``exp(-d^2 / (2 sigma^2))``, ``d`` the distance to the nearest
    beat. 0 when there are no beats; NaN when there are no onsets."""
    onsets = np.asarray(onsets, dtype=np.float64).reshape(-1)
    beats = np.asarray(beats, dtype=np.float64).reshape(-1)
    if onsets.size == 0:
        return float("nan")
    if beats.size == 0:
        return 0.0
    nearest = np.abs(onsets[:, None] - beats[None, :]).min(axis=1)
    return float(np.mean(np.exp(-(nearest**2) / (2 * sigma**2))))


def beat_consistency(joints: np.ndarray, audio: np.ndarray, mean_speed: np.ndarray,
                     config: BeatConsistencyConfig | None = None) -> float:
    """BC of one sequence: :func:`beat_alignment` averaged over the BC joints.

    Args:
        joints: ``[T, 55, 3]`` joint positions.
        audio: the matching mono audio at 16 kHz.
        mean_speed: ``[55]`` per-joint speed normaliser.

    Returns:
        The score in [0, 1], or NaN when the audio has no onset inside the window.
    """
    config = config or BeatConsistencyConfig()
    beats = motion_beats(joints, mean_speed, config)
    onsets = audio_onsets(audio, np.asarray(joints).shape[0], config)
    if onsets.size == 0:
        return float("nan")
    return float(np.mean([beat_alignment(onsets, b, config.sigma) for b in beats]))


def aggregate_beat_consistency(scores: Sequence[float], num_frames: Sequence[int],
                               config: BeatConsistencyConfig | None = None) -> float:
    """Test-set BC: per-sequence scores weighted by ``n - 2 * trim_frames`` (NaN scores skipped)."""
    config = config or BeatConsistencyConfig()
    if len(scores) != len(num_frames):
        raise ValueError(f"{len(scores)} scores but {len(num_frames)} lengths")
    pairs = [(s, n - 2 * config.trim_frames) for s, n in zip(scores, num_frames, strict=True)
             if not np.isnan(s)]
    total = sum(w for _, w in pairs)
    if total <= 0:
        return float("nan")
    return float(sum(s * w for s, w in pairs) / total)


def mean_beat_consistency(sequences: Iterable[tuple[np.ndarray, np.ndarray]],
                          mean_speed: np.ndarray,
                          config: BeatConsistencyConfig | None = None) -> float:
    """BC over a set of ``(joints [T, 55, 3], audio [S])`` pairs (raw, not x10)."""
    config = config or BeatConsistencyConfig()
    scores, lengths = [], []
    for joints, audio in sequences:
        scores.append(beat_consistency(joints, audio, mean_speed, config))
        lengths.append(np.asarray(joints).shape[0])
    return aggregate_beat_consistency(scores, lengths, config)
