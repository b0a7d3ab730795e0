"""Turns a timed utterance into the synthetic speaker's motion (BEAT2 layout, 30 fps).

Layers, each driven by something a model can hear or read:

- idle: breathing in the spine and slow smooth drift of torso, head and arms;
- beat gestures: an arm raise and down-stroke whose end (the hand's speed minimum) lands on
  the start of stressed (content) words, amplitude scaled by the word's loudness and the clip's
  emotion; head nods on some strokes;
- jaw following the speech envelope; the 100 expression coefficients a fixed mix of speech
  drivers (envelope at several time scales, pitch, voicing, onsets) plus a little noise, the
  mouth channel following the envelope and the brow the pitch; smile and brow offsets from
  the emotion;
- weight shifts and steps: the pelvis moves sideways over the feet, and now and then one foot
  lifts and steps to a new spot; legs are solved by inverse kinematics, so standing feet never
  slide and contacts follow the steps;
- semantic gestures: keywords trigger the key pose of their gesture class, held through the
  word; each one is written to the ``sem`` annotation with its score.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import torch
from scipy.ndimage import gaussian_filter1d

from semtalk.body.parts import EXPRESSION_DIM, FOOT_JOINTS, NUM_JOINTS
from semtalk.body.rotation import euler_to_matrix, matrix_to_axis_angle
from semtalk.body.skeleton import BUILTIN_REST_JOINTS
from semtalk.constants import AUDIO_SAMPLE_RATE, MOTION_FPS
from semtalk.data.audio import num_frames_for
from semtalk.data.pitch import autocorrelation_pitch
from semtalk.data.semantic import SemanticSegment
from semtalk.data.synthetic.gestures import (
    GESTURES,
    JOINT,
    mirrored,
    rest_pose,
    side_joint,
    side_of,
)
from semtalk.data.synthetic.legs import LEGS, StancePlan, fit_pelvis_height, solve_legs
from semtalk.data.synthetic.script import FUNCTION_WORDS, KEYWORD_CLASS, Script
from semtalk.data.textgrid import Word

FLOOR_HEIGHT = 0.06
"""Mean height of the four foot joints above y = 0 when standing (as in BEAT2)."""
MIN_STROKE_GAP = 0.45
"""Seconds between beat strokes at least."""
GESTURE_GAP = 0.35
"""Seconds of rest at least between two semantic gestures."""
STEP_PROBABILITY = 0.4
"""Chance that a weight-shift moment becomes a step."""
STEP_LIFT = 0.05
"""Peak height (m) a stepping foot is lifted."""
STANCE_KNEE_DROP = 0.02
"""The pelvis stands this much (m) below straight legs: soft knees, room to shift."""


@dataclass
class Performance:
    """The synthetic speaker's motion for one utterance, plus the ground truth behind it."""

    poses: np.ndarray  # [T, 165]
    expressions: np.ndarray  # [T, 100]
    trans: np.ndarray  # [T, 3]
    semantic: list[SemanticSegment]
    stroke_times: np.ndarray
    """Times (s) at which beat down-strokes end."""


def smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)


def beat_profile(tau: np.ndarray) -> np.ndarray:
    """Raise over [-0.40, -0.12] s, fast down-stroke ending at 0, rest afterwards."""
    rise = smoothstep((tau + 0.40) / 0.28)
    fall = 1.0 - smoothstep((tau + 0.12) / 0.12)
    return np.where(tau < -0.12, rise, fall) * (tau < 0)


def envelope(audio: np.ndarray, num_frames: int, window_s: float = 0.04) -> np.ndarray:
    """RMS per motion frame over a centred window, scaled to ~1 on loud speech."""
    half = int(window_s * AUDIO_SAMPLE_RATE / 2)
    power = np.concatenate([[0.0], np.cumsum(audio.astype(np.float64) ** 2)])
    centres = np.round(np.arange(num_frames) * AUDIO_SAMPLE_RATE / MOTION_FPS).astype(int)
    lo = np.clip(centres - half, 0, len(audio))
    hi = np.clip(centres + half, 0, len(audio))
    rms = np.sqrt((power[hi] - power[lo]) / np.maximum(hi - lo, 1))
    reference = np.percentile(rms, 95) + 1e-8
    return np.clip(rms / reference, 0.0, 1.5)


ONSET_HOP = 160
"""Hop (samples) of the onset envelope: 100 per second at 16 kHz."""


def onset_envelope(audio: np.ndarray) -> np.ndarray:
    """Rise of log energy per 10 ms hop (half-wave rectified), for locating acoustic onsets."""
    size = 2 * ONSET_HOP
    count = max(1, (len(audio) - size) // ONSET_HOP + 1)
    power = np.concatenate([[0.0], np.cumsum(audio.astype(np.float64) ** 2)])
    starts = np.arange(count) * ONSET_HOP
    energy = (power[np.minimum(starts + size, len(audio))] - power[starts]) / size
    log_energy = np.log(energy + 1e-8)
    return np.maximum(np.diff(log_energy, prepend=log_energy[0]), 0.0)


def acoustic_onset(onsets: np.ndarray, start: float, search: float = 0.12) -> float:
    """Time (s) of the strongest energy rise within ``search`` seconds after ``start``."""
    rate = AUDIO_SAMPLE_RATE / ONSET_HOP
    lo = max(0, round((start - 0.02) * rate))
    hi = min(len(onsets), round((start + search) * rate) + 1)
    if hi <= lo:
        return start
    # The envelope's hop k covers samples [k, k + 2) hops; its rise is centred at k + 1.
    return (lo + int(np.argmax(onsets[lo:hi])) + 1) / rate


EXPRESSION_NOISE = 0.3
"""Amplitude of the speech-independent part of each expression coefficient, relative to its
speech-driven part (unit-variance drivers, unit-norm mixing rows): ~8 % of its variance."""
EXPRESSION_DRIVERS = 6
EXPRESSION_SEED = 20251019
"""Seed of the speaker's fixed driver-to-expression mixing (the same for every clip)."""


@functools.cache
def expression_mixing() -> np.ndarray:
    """``[100, 6]``: the speaker's map from speech drivers to expressions, unit-norm rows."""
    mixing = np.random.default_rng(EXPRESSION_SEED).standard_normal(
        (EXPRESSION_DIM, EXPRESSION_DRIVERS))
    mixing /= np.linalg.norm(mixing, axis=1, keepdims=True)
    mixing.setflags(write=False)
    return mixing


def smooth_noise(rng: np.random.Generator, shape: tuple[int, ...], sigma: float) -> np.ndarray:
    """Unit-variance Gaussian noise low-passed along axis 0 (``sigma`` in frames)."""
    noise = gaussian_filter1d(rng.standard_normal(shape), sigma, axis=0, mode="wrap")
    return noise / (noise.std(axis=0, keepdims=True) + 1e-9)


class Performer:
    """Builds motion for one clip; all randomness comes from the generator it is given."""

    def __init__(self, script: Script, words: list[Word], audio: np.ndarray,
                 rng: np.random.Generator) -> None:
        self.script = script
        self.words = words
        self.audio = audio
        self.rng = rng
        self.num_frames = num_frames_for(len(audio))
        self.times = np.arange(self.num_frames) / MOTION_FPS
        self.angles = np.broadcast_to(rest_pose(), (self.num_frames, NUM_JOINTS, 3)).copy()

    def perform(self) -> Performance:
        env = envelope(self.audio, self.num_frames)
        self._idle()
        gestures, semantic = self._plan_gestures()
        onsets = onset_envelope(self.audio)
        strokes = self._beats(env, onsets, gestures)
        self._apply_gestures(gestures)
        self._jaw(env)
        expressions = self._expressions(env, onsets)
        poses, trans = self._assemble(self._plan_stance())
        return Performance(poses.astype(np.float32), expressions.astype(np.float32),
                           trans.astype(np.float32), semantic, strokes)

    # -- layers ---------------------------------------------------------------------------
    def _add(self, joint: int, angles: np.ndarray) -> None:
        self.angles[:, joint] += angles

    def _idle(self) -> None:
        t, rng, n = self.times, self.rng, self.num_frames
        breath = np.sin(2 * np.pi * rng.uniform(0.18, 0.28) * t + rng.uniform(0, 2 * np.pi))
        for name, gain in (("spine2", 0.010), ("spine3", 0.014)):
            self._add(JOINT[name], np.outer(breath, (gain, 0.0, 0.0)))
        drift_joints = {"spine1": 0.025, "spine3": 0.02, "neck": 0.04, "head": 0.04,
                        "left_shoulder": 0.05, "right_shoulder": 0.05,
                        "left_elbow": 0.06, "right_elbow": 0.06,
                        "left_wrist": 0.08, "right_wrist": 0.08,
                        "left_eye": 0.05, "right_eye": 0.05}
        drift = smooth_noise(rng, (n, len(drift_joints), 3), sigma=25)
        for k, (name, gain) in enumerate(drift_joints.items()):
            self._add(JOINT[name], gain * drift[:, k])

    def _plan_gestures(self) -> tuple[list[tuple[str, np.ndarray, float, float]], list]:
        """Semantic gestures as (class, weight curve, start, end) and their annotations."""
        planned: list[tuple[str, np.ndarray, float, float]] = []
        segments: list[SemanticSegment] = []
        free_from = 0.0
        duration = self.num_frames / MOTION_FPS
        for word in self.words:
            cls = KEYWORD_CLASS.get(word.text)
            if cls is None or word.start - 0.45 < free_from or word.end + 0.8 > duration:
                continue
            gesture = GESTURES[cls]
            start = word.start - 0.10
            hold_end = max(word.end + 0.30, word.start + 0.60)
            t = self.times
            weight = smoothstep((t - (word.start - 0.45)) / 0.35) * \
                (1.0 - smoothstep((t - hold_end) / 0.45))
            planned.append((cls, weight, start, hold_end))
            score = float(np.clip(gesture.score * self.rng.uniform(0.85, 1.1), 0.15, 1.0))
            segments.append(SemanticSegment(cls, start, hold_end, score, word.text))
            free_from = hold_end + 0.45 + GESTURE_GAP
        return planned, segments

    def _beats(self, env: np.ndarray, onsets: np.ndarray, gestures: list) -> np.ndarray:
        rng, t = self.rng, self.times
        busy = np.zeros(self.num_frames)
        for _, weight, _, _ in gestures:
            busy = np.maximum(busy, weight)
        strokes = []
        last = -np.inf
        for word in self.words:
            if word.text in FUNCTION_WORDS or word.text in KEYWORD_CLASS:
                continue
            when = acoustic_onset(onsets, word.start)
            frame = round(when * MOTION_FPS)
            if when - last < MIN_STROKE_GAP or when < 0.45 or frame >= self.num_frames \
                    or busy[frame] > 0.05:
                continue
            loud = env[frame : frame + 6].max() if frame < len(env) else 0.0
            amplitude = float(np.clip(loud, 0.35, 1.2) * self.script.style.motion_scale
                              * rng.uniform(0.8, 1.2))
            profile = amplitude * beat_profile(t - when)
            arms = ("right",) if rng.random() < 0.55 else \
                ("left", "right") if rng.random() < 0.6 else ("left",)
            for side in arms:
                self._add(side_joint(side, "shoulder"), np.outer(profile, mirrored(
                    (-0.22, -0.10, 0.05), side)))
                self._add(side_joint(side, "elbow"), np.outer(profile, mirrored(
                    (0.0, -0.55, 0.0), side)))
                self._add(side_joint(side, "wrist"), np.outer(profile, mirrored(
                    (0.0, 0.0, 0.30), side)))
            if rng.random() < 0.5:
                nod = amplitude * beat_profile(t - when - 0.03)
                self._add(JOINT["neck"], np.outer(nod, (0.07, 0.0, 0.0)))
            strokes.append(when)
            last = when
        return np.asarray(strokes)

    def _apply_gestures(self, gestures: list) -> None:
        t = self.times
        for cls, weight, start, _ in gestures:
            gesture = GESTURES[cls]
            w = weight[:, None]
            for joint, target in gesture.key_pose().items():
                self.angles[:, joint] = (1 - w) * self.angles[:, joint] + w * target
            wiggle = np.sin(2 * np.pi * 2.5 * (t - start))[:, None] * w
            for name, amplitude in gesture.oscillation.items():
                joints = [JOINT["neck"]] if name == "head" else \
                    [side_joint(side, name) for side in gesture.arms]
                for joint in joints:
                    self._add(joint, wiggle * mirrored(amplitude, side_of(joint)))
            self._add(JOINT["neck"], w * np.asarray(gesture.head))

    def _plan_stance(self) -> StancePlan:
        """Feet on the floor, weight shifts between them, and now and then a step."""
        rng, t, n = self.rng, self.times, self.num_frames
        rest = BUILTIN_REST_JOINTS
        base = np.array([rng.uniform(-0.05, 0.05), 0.0, rng.uniform(-0.05, 0.05)])
        base[1] = FLOOR_HEIGHT - rest[list(FOOT_JOINTS), 1].mean()
        ankles = {side: np.tile(rest[LEGS[side][2]] + base, (n, 1)) for side in LEGS}
        shift = np.zeros(n)  # sideways pelvis offset from the feet's midpoint (m)
        current, when = 0.0, rng.uniform(2.0, 5.0)
        while when < self.num_frames / MOTION_FPS - 1.0:
            if rng.random() < STEP_PROBABILITY and self._step(ankles, when, shift):
                when += rng.uniform(3.0, 7.0)
                continue
            target = rng.choice((-1.0, 1.0)) * rng.uniform(0.015, 0.045)
            shift += (target - current) * smoothstep((t - when) / rng.uniform(0.8, 1.3))
            current = target
            when += rng.uniform(4.0, 10.0)
        midpoint = (ankles["left"] + ankles["right"]) / 2
        rest_mid = (rest[LEGS["left"][2]] + rest[LEGS["right"][2]]) / 2
        pelvis = midpoint + (rest[0] - rest_mid) + np.array([0.0, -STANCE_KNEE_DROP, 0.0])
        pelvis[:, 0] += shift
        pelvis[:, 1] += 0.004 * smooth_noise(rng, (n,), sigma=20)
        return StancePlan(pelvis, ankles)

    def _step(self, ankles: dict[str, np.ndarray], when: float, shift: np.ndarray) -> bool:
        """Move one foot to a new spot starting at ``when``; False if no spot fits."""
        rng, t = self.rng, self.times
        frame = min(round(when * MOTION_FPS), self.num_frames - 1)
        side = str(rng.choice(("left", "right")))
        other = "right" if side == "left" else "left"
        outward = 1.0 if side == "left" else -1.0
        here, anchor = ankles[side][frame].copy(), ankles[other][frame]
        for _ in range(10):
            angle, size = rng.uniform(0, 2 * np.pi), rng.uniform(0.10, 0.22)
            target = here + size * np.array([np.cos(angle), 0.0, np.sin(angle)])
            width = (target[0] - anchor[0]) * outward
            if 0.12 < width < 0.38 and abs(target[2] - anchor[2]) < 0.2:
                break
        else:
            return False
        duration = rng.uniform(0.45, 0.6)
        phase = np.clip((t - when) / duration, 0.0, 1.0)
        ankles[side] += np.outer(smoothstep(phase), target - here)
        ankles[side][:, 1] += STEP_LIFT * np.sin(np.pi * phase)
        # Weight onto the standing foot before the swing, back to the middle after it.
        lean = smoothstep((t - when + 0.35) / 0.3) * (1 - smoothstep((t - when - duration) / 0.4))
        shift -= outward * 0.04 * lean
        return True

    def _jaw(self, env: np.ndarray) -> None:
        opening = gaussian_filter1d(env, 1.0)
        self._add(JOINT["jaw"], np.outer(0.07 * opening, (1.0, 0.0, 0.0)))

    def _expressions(self, env: np.ndarray, onsets: np.ndarray) -> np.ndarray:
        """Expression coefficients driven by the speech, as a real face mostly is.

        Six speech drivers (mouth opening, syllabic articulation, pitch, phrase loudness,
        voicing, onsets) are mixed into the 100 coefficients by the speaker's fixed
        :func:`expression_mixing`, with smooth speech-independent noise at
        :data:`EXPRESSION_NOISE` of the driven amplitude (blinks, idle twitches); the mouth,
        brow and smile channels keep their direct meaning and the emotion's offsets.
        """
        rng, n = self.rng, self.num_frames
        style = self.script.style
        f0 = autocorrelation_pitch(self.audio, self.times, AUDIO_SAMPLE_RATE)
        voiced = f0 > 0
        pitch = np.zeros(n)
        if voiced.sum() > 10:
            log_f0 = np.log(f0[voiced])
            pitch[voiced] = (log_f0 - log_f0.mean()) / (log_f0.std() + 1e-6)
        pitch = gaussian_filter1d(pitch, 3.0)
        mouth = gaussian_filter1d(env, 1.5)
        onset_frames = np.interp(self.times, np.arange(len(onsets)) * ONSET_HOP
                                 / AUDIO_SAMPLE_RATE, onsets)
        drivers = np.stack([
            mouth,
            gaussian_filter1d(env, 1.0) - gaussian_filter1d(env, 4.0),
            pitch,
            gaussian_filter1d(env, 8.0),
            gaussian_filter1d(voiced.astype(np.float64), 2.0),
            gaussian_filter1d(onset_frames, 2.0),
        ], axis=1)
        drivers = (drivers - drivers.mean(axis=0)) / (drivers.std(axis=0) + 1e-6)
        scale = 0.45 / np.sqrt(1.0 + np.arange(EXPRESSION_DIM) / 4.0)
        noise = smooth_noise(rng, (n, EXPRESSION_DIM), sigma=12)
        expressions = (drivers @ expression_mixing().T + EXPRESSION_NOISE * noise) * scale
        expressions[:, [0, 3]] *= 0.3  # mouth channels: directly the envelope
        expressions[:, 0] += 1.8 * mouth - 0.4
        expressions[:, 1] += 0.5 * pitch + style.brow
        expressions[:, 2] += style.smile
        expressions[:, 3] += 0.5 * mouth
        return expressions

    # -- assembly --------------------------------------------------------------------------
    def _assemble(self, plan: StancePlan) -> tuple[np.ndarray, np.ndarray]:
        """Euler angles + leg IK -> ``poses [T, 165]`` and ``trans [T, 3]``."""
        matrices = euler_to_matrix(torch.from_numpy(self.angles), "XYZ").numpy()
        pelvis_rotation = matrices[:, 0]
        plan.pelvis = fit_pelvis_height(plan.pelvis, plan.ankles, pelvis_rotation)
        leg_rotations, trans = solve_legs(plan, pelvis_rotation)
        for joint, rotation in leg_rotations.items():
            matrices[:, joint] = rotation
        poses = matrix_to_axis_angle(torch.from_numpy(matrices)).reshape(self.num_frames, -1)
        return poses.numpy(), trans
