"""The tokenizer's motion representation: part features with the root as velocity.

:func:`semtalk.body.split_pose` stores the global translation of a frame as absolute metres in
the lower part's channels 54:57, as the official code does (which then never trains them). The
tokenizers see a translation-invariant version instead: the three channels hold

- ``v_x``, ``v_z``: horizontal root velocity in m/s, the forward difference times the frame rate
  (``v_t = (x_{t+1} - x_t) * fps``); the last frame repeats the previous velocity;
- ``y``: the absolute root height in metres.

Decoding integrates the velocity: ``x_t = x_0 + sum_{s<t} v_s / fps`` (same for ``z``) and
takes ``y`` as is, where ``(x_0, z_0)`` is a given start position (a seed) or the origin. The
last frame's velocity never enters the integral, so encoding then decoding with the true start
position gives the translation back exactly (up to floating point).

Lower-part channel layout (61): 9 joints x 6D (0:54), ``v_x, y, v_z`` (54:57), foot contacts
(57:61).
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

from semtalk.body.parts import (
    EYE_JOINTS,
    LOWER_CONTACT_SLICE,
    LOWER_TRANS_SLICE,
    NUM_JOINTS,
    ROT6D_DIM,
    TRANS_DIM,
    BodyPart,
    merge_parts,
    pose_to_full,
    split_pose,
)
from semtalk.body.rotation import axis_angle_to_rot6d, matrix_to_rot6d, rot6d_to_matrix
from semtalk.constants import MOTION_FPS

LOWER_ROOT_SLICE = LOWER_TRANS_SLICE  # 54:57
"""Channels of the lower features holding ``(v_x, y, v_z)`` (where :func:`split_pose` keeps the
absolute translation)."""
HORIZONTAL_AXES: tuple[int, int] = (0, 2)
"""Indices of ``x`` and ``z`` in a translation (``y`` is up)."""


def trans_to_root_velocity(trans: torch.Tensor, fps: float = MOTION_FPS) -> torch.Tensor:
    """Absolute translation ``[..., T, 3]`` -> ``(v_x, y, v_z)`` ``[..., T, 3]``.

    ``v`` is the forward difference times ``fps`` (m/s); the last frame repeats the previous
    velocity, and a single-frame sequence has zero velocity.
    """
    if trans.shape[-1] != TRANS_DIM:
        raise ValueError(f"trans must be [..., T, 3], got shape {tuple(trans.shape)}")
    horizontal = trans[..., list(HORIZONTAL_AXES)]  # [..., T, 2]
    step = (horizontal[..., 1:, :] - horizontal[..., :-1, :]) * fps  # [..., T-1, 2]
    if step.shape[-2] == 0:
        velocity = torch.zeros_like(horizontal)
    else:
        velocity = torch.cat([step, step[..., -1:, :]], dim=-2)  # [..., T, 2]
    return torch.stack([velocity[..., 0], trans[..., 1], velocity[..., 1]], dim=-1)


def root_velocity_to_trans(
    values: torch.Tensor,
    start_xz: torch.Tensor | None = None,
    fps: float = MOTION_FPS,
) -> torch.Tensor:
    """``(v_x, y, v_z)`` ``[..., T, 3]`` -> absolute translation ``[..., T, 3]``.

    Args:
        values: ``[..., T, 3]`` horizontal velocity (m/s) and height (m).
        start_xz: ``[..., 2]`` horizontal position ``(x_0, z_0)`` of the first frame, or
            ``None`` for the origin.
        fps: frame rate the velocity was measured at.

    Returns:
        ``[..., T, 3]`` with ``x_t = x_0 + sum_{s<t} v_x,s / fps`` (same for ``z``) and ``y``
        copied.
    """
    if values.shape[-1] != TRANS_DIM:
        raise ValueError(f"values must be [..., T, 3], got shape {tuple(values.shape)}")
    velocity = values[..., list(HORIZONTAL_AXES)]  # [..., T, 2]
    steps = velocity[..., :-1, :] / fps  # [..., T-1, 2]
    offset = torch.cat([torch.zeros_like(velocity[..., :1, :]), steps.cumsum(dim=-2)], dim=-2)
    if start_xz is not None:
        if start_xz.shape[-1] != 2:
            raise ValueError(f"start_xz must be [..., 2], got shape {tuple(start_xz.shape)}")
        offset = offset + start_xz.to(offset).unsqueeze(-2)
    return torch.stack([offset[..., 0], values[..., 1], offset[..., 1]], dim=-1)


def motion_to_tokenizer_parts(
    poses: torch.Tensor,
    expressions: torch.Tensor,
    trans: torch.Tensor,
    contacts: torch.Tensor,
    fps: float = MOTION_FPS,
) -> dict[BodyPart, torch.Tensor]:
    """Split a BEAT2 motion into the four tokenizer part features.

    Same as :func:`semtalk.body.split_pose` except that the lower part's translation channels
    54:57 hold ``(v_x, y, v_z)`` (:func:`trans_to_root_velocity`) instead of absolute position.

    Args:
        poses: ``[..., T, 165]`` axis-angle; expressions: ``[..., T, 100]``;
        trans: ``[..., T, 3]`` in metres; contacts: ``[..., T, 4]``.

    Returns:
        ``{part: [..., T, part.dim]}`` in the dtype of ``poses``.
    """
    parts = split_pose(poses, expressions, trans, contacts)
    lower = parts[BodyPart.LOWER]
    root = trans_to_root_velocity(trans.to(lower), fps)
    parts[BodyPart.LOWER] = torch.cat(
        [lower[..., :LOWER_ROOT_SLICE.start], root, lower[..., LOWER_ROOT_SLICE.stop:]], dim=-1
    )
    return parts


def tokenizer_parts_to_motion(
    parts: Mapping[BodyPart, torch.Tensor],
    start_xz: torch.Tensor | None = None,
    eye_pose: torch.Tensor | None = None,
    fps: float = MOTION_FPS,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Inverse of :func:`motion_to_tokenizer_parts`.

    Args:
        parts: ``{part: [..., T, part.dim]}`` for all four parts, in the tokenizer
            representation.
        start_xz: ``[..., 2]`` horizontal root position of the first frame (a seed), or
            ``None`` for the origin.
        eye_pose: eye axis-angle written into joints 23 and 24 (see
            :func:`semtalk.body.merge_parts`).

    Returns:
        ``(poses [..., T, 165], expressions [..., T, 100], trans [..., T, 3])``.
    """
    poses, expressions, root = merge_parts(parts, eye_pose=eye_pose)
    return poses, expressions, root_velocity_to_trans(root, start_xz, fps)


def motion_to_seed_features(
    poses: torch.Tensor,
    trans: torch.Tensor,
    contacts: torch.Tensor,
    fps: float = MOTION_FPS,
) -> torch.Tensor:
    """The generators' 337-d whole-body motion input ``[..., T, 337]``.

    55 joints x 6D (330), the root as ``(v_x, y, v_z)`` (:func:`trans_to_root_velocity`; the
    official layout holds absolute translation here, which ties a seed to where the speaker
    stands), then the 4 foot contacts.
    """
    return pose_to_full(poses, trans_to_root_velocity(trans.to(poses.dtype), fps), contacts)


def tokenizer_parts_to_seed_features(
    parts: Mapping[BodyPart, torch.Tensor],
    eye_pose: torch.Tensor | None = None,
) -> torch.Tensor:
    """The generators' 337-d motion input of motion given as tokenizer part features: what
    :func:`motion_to_seed_features` gives for the same motion, without leaving the features.

    - rotations: each part's 6D re-orthonormalised (Gram-Schmidt, the rotation the motion
      holds) and kept as 6D, with no round trip through axis-angle;
    - eyes (not generated): ``eye_pose`` (axis-angle ``[6]`` or ``[..., T, 6]``; None: rest);
    - root: the lower part's ``(v_x, y, v_z)`` as they are, so every frame keeps its own
      velocity (integrating and differencing again would give the last frame the velocity of
      the one before);
    - foot contacts: the lower part's contact channels rounded to 0/1, as the contacts of a
      training seed (from forward kinematics) are.

    Args:
        parts: ``{part: [..., T, part.dim]}`` for all four parts.

    Returns:
        ``[..., T, 337]``.
    """
    lower = parts[BodyPart.LOWER]
    lead = lower.shape[:-1]
    rot6d = axis_angle_to_rot6d(lower.new_zeros(*lead, NUM_JOINTS, 3))  # rest: identity
    for part in BodyPart:
        n = len(part.joints)
        values = parts[part][..., : n * ROT6D_DIM].reshape(*lead, n, ROT6D_DIM)
        rot6d[..., list(part.joints), :] = matrix_to_rot6d(rot6d_to_matrix(values.to(rot6d)))
    if eye_pose is not None:
        eyes = eye_pose.to(rot6d).expand(*lead, 6).reshape(*lead, 2, 3)
        rot6d[..., list(EYE_JOINTS), :] = axis_angle_to_rot6d(eyes)
    contacts = (lower[..., LOWER_CONTACT_SLICE] > 0.5).to(rot6d)
    return torch.cat([rot6d.flatten(-2), lower[..., LOWER_ROOT_SLICE].to(rot6d), contacts],
                     dim=-1)
