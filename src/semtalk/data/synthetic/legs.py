"""Legs of the synthetic speaker: stance, weight shifts and steps, solved by two-bone IK.

A :class:`StancePlan` says where the pelvis joint is and where each ankle should be, frame by
frame, in world coordinates (y up, floor at y = 0). :func:`solve_legs` turns it into local
rotations of hips, knees and ankles on the built-in skeleton, keeping each foot flat and facing
forward, and the global translation that puts the pelvis where the plan says. A foot whose target
does not move therefore does not move at all (no foot skating), and a stepping foot leaves and
returns to the floor, so contacts derived from the motion are meaningful.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.ndimage import gaussian_filter1d, minimum_filter1d

from semtalk.body.skeleton import BUILTIN_REST_JOINTS

LEGS = {"left": (1, 4, 7), "right": (2, 5, 8)}
"""Hip, knee and ankle joint of each leg."""
PELVIS = 0
REACH_MARGIN = 0.985
"""Fraction of the full leg length a target may ask for (keeps knees off the singularity)."""


@dataclass
class StancePlan:
    """World positions per frame: the pelvis joint ``[T, 3]`` and each ankle ``[T, 3]``."""

    pelvis: np.ndarray
    ankles: dict[str, np.ndarray]


def _skew(v: np.ndarray) -> np.ndarray:
    out = np.zeros((*v.shape[:-1], 3, 3))
    out[..., 0, 1], out[..., 0, 2] = -v[..., 2], v[..., 1]
    out[..., 1, 0], out[..., 1, 2] = v[..., 2], -v[..., 0]
    out[..., 2, 0], out[..., 2, 1] = -v[..., 1], v[..., 0]
    return out


def align_rotation(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Smallest rotations ``[..., 3, 3]`` taking directions ``source`` onto ``target``."""
    a = source / np.linalg.norm(source, axis=-1, keepdims=True)
    b = target / np.linalg.norm(target, axis=-1, keepdims=True)
    axis = np.cross(a, b)
    cos = np.sum(a * b, axis=-1)[..., None, None]
    k = _skew(axis)
    return np.eye(3) + k + (k @ k) / (1.0 + cos)


def _rot_x(angle: np.ndarray) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    out = np.zeros((*angle.shape, 3, 3))
    out[..., 0, 0] = 1.0
    out[..., 1, 1], out[..., 1, 2], out[..., 2, 1], out[..., 2, 2] = c, -s, s, c
    return out


def knee_flexion(thigh: np.ndarray, shin: np.ndarray, distance: np.ndarray) -> np.ndarray:
    """Knee angle (about the knee's x axis, >= 0 bends the shin back) giving hip-ankle
    ``distance`` for rest bones ``thigh`` and ``shin`` ``[3]``."""
    # |thigh + Rx(q) shin|^2 = distance^2  <=>  a cos q + b sin q = rhs
    a = thigh[1] * shin[1] + thigh[2] * shin[2]
    b = thigh[2] * shin[1] - thigh[1] * shin[2]
    rhs = (distance**2 - thigh @ thigh - shin @ shin) / 2.0 - thigh[0] * shin[0]
    radius, phase = np.hypot(a, b), np.arctan2(b, a)
    spread = np.arccos(np.clip(rhs / radius, -1.0, 1.0))
    candidates = np.stack([phase + spread, phase - spread], axis=-1)
    candidates = np.where(candidates < -1e-9, np.inf, candidates)
    return np.minimum(candidates.min(axis=-1), 2.6)


def max_pelvis_height(plan_pelvis: np.ndarray, ankles: dict[str, np.ndarray],
                      pelvis_rotation: np.ndarray) -> np.ndarray:
    """Highest pelvis y per frame at which both ankle targets stay within reach."""
    rest = BUILTIN_REST_JOINTS
    limit = np.full(len(plan_pelvis), np.inf)
    for side, (hip, knee, ankle) in LEGS.items():
        reach = REACH_MARGIN * (np.linalg.norm(rest[knee] - rest[hip])
                                + np.linalg.norm(rest[ankle] - rest[knee]))
        hip_offset = pelvis_rotation @ (rest[hip] - rest[PELVIS])  # [T, 3]
        horizontal = ankles[side][:, [0, 2]] - (plan_pelvis + hip_offset)[:, [0, 2]]
        drop = np.sqrt(np.maximum(reach**2 - (horizontal**2).sum(-1), 0.0))
        limit = np.minimum(limit, ankles[side][:, 1] + drop - hip_offset[:, 1])
    return limit


def fit_pelvis_height(pelvis: np.ndarray, ankles: dict[str, np.ndarray],
                      pelvis_rotation: np.ndarray, smooth_frames: float = 6.0) -> np.ndarray:
    """Lower the planned pelvis where a leg could not reach, smoothly and never above reach."""
    limit = max_pelvis_height(pelvis, ankles, pelvis_rotation)
    wanted = np.minimum(pelvis[:, 1], limit)
    width = int(4 * smooth_frames) | 1
    smooth = gaussian_filter1d(minimum_filter1d(wanted, width, mode="nearest"), smooth_frames,
                               mode="nearest")
    fitted = pelvis.copy()
    fitted[:, 1] = np.minimum(smooth, limit)
    return fitted


def solve_legs(plan: StancePlan, pelvis_rotation: np.ndarray
               ) -> tuple[dict[int, np.ndarray], np.ndarray]:
    """Local rotations ``{joint: [T, 3, 3]}`` of hips, knees and ankles, and ``trans [T, 3]``.

    Args:
        plan: pelvis and ankle targets (world).
        pelvis_rotation: ``[T, 3, 3]`` world rotation of the pelvis (the global orientation).
    """
    rest = BUILTIN_REST_JOINTS
    rotations: dict[int, np.ndarray] = {}
    for side, (hip, knee, ankle) in LEGS.items():
        thigh, shin = rest[knee] - rest[hip], rest[ankle] - rest[knee]
        hip_world = plan.pelvis + pelvis_rotation @ (rest[hip] - rest[PELVIS])
        to_ankle = plan.ankles[side] - hip_world
        reach = REACH_MARGIN * (np.linalg.norm(thigh) + np.linalg.norm(shin))
        distance = np.minimum(np.linalg.norm(to_ankle, axis=-1), reach)
        bend = _rot_x(knee_flexion(thigh, shin, distance))  # [T, 3, 3]
        leg_local = thigh + (bend @ shin)  # hip -> ankle in the hip's frame
        hip_rotation = align_rotation(leg_local, to_ankle)  # world
        rotations[hip] = pelvis_rotation.transpose(0, 2, 1) @ hip_rotation
        rotations[knee] = bend
        rotations[ankle] = (hip_rotation @ bend).transpose(0, 2, 1)  # foot flat, forward
    trans = plan.pelvis - rest[PELVIS]
    return rotations, trans
