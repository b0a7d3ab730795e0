"""L1 diversity (DIV) of generated motion (spec §8.3).

For each sequence of joint positions ``x [n, 55, 3]`` (flattened to ``[n, 165]``), the summed
absolute deviation from its own temporal mean, ``sum_t sum_d |x_td - mean_t x_td|``; over a
test set, ``DIV = sum_seq (that sum) / sum_seq n``. Higher means the motion moves further from
its average pose.

The official evaluation takes joints from SMPL-X with GT betas, the generated pose, zero
translation and zero expressions (the same joints as BC). Unlike the official ``L1div``, the
inputs are never modified (the official routine overwrites its array in place, which then
feeds BC).
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np


def l1_deviation_sum(joints: np.ndarray) -> float:
    """``sum_t sum_d |x_td - mean_t x_td|`` of one sequence ``[n, ...]`` (frames first)."""
    x = np.asarray(joints, dtype=np.float64)
    if x.ndim < 2 or x.shape[0] == 0:
        raise ValueError(f"joints must be [n >= 1, ...] with frames first, got shape {x.shape}")
    flat = x.reshape(x.shape[0], -1)
    return float(np.abs(flat - flat.mean(axis=0)).sum())


def l1_diversity(joint_sequences: Iterable[np.ndarray]) -> float:
    """DIV over sequences of joint positions (each ``[n, 55, 3]`` or ``[n, 165]``)."""
    total, frames = 0.0, 0
    for joints in joint_sequences:
        total += l1_deviation_sum(joints)
        frames += np.asarray(joints).shape[0]
    if frames == 0:
        raise ValueError("l1_diversity needs at least one sequence")
    return total / frames
