"""SMPL-X joint tables, the four body parts, and split/merge between a BEAT2 pose and parts.

A BEAT2 pose is 55 SMPL-X joints in axis-angle (``[T, 165]``), 100 expression coefficients and a
global translation. SemTalk models four body parts, each as a per-frame feature vector:

=======  ==================================================================  ====
part     content                                                             dim
=======  ==================================================================  ====
face     jaw 6D + 100 expressions                                            106
upper    13 joints (spine, neck, head, collars, arms) x 6D                    78
hands    30 finger joints x 6D                                               180
lower    9 joints (pelvis, legs) x 6D + translation (3) + foot contacts (4)   61
=======  ==================================================================  ====

The eyes (joints 23 and 24) belong to no part. They are never generated: :func:`merge_parts`
writes the eye rotations the caller gives (a seed or rest pose) instead of silently zeroing them.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import Enum

import torch

from semtalk.body.rotation import axis_angle_to_rot6d, rot6d_to_axis_angle

NUM_JOINTS = 55
POSE_DIM = 3 * NUM_JOINTS  # 165
EXPRESSION_DIM = 100
TRANS_DIM = 3
CONTACT_DIM = 4
ROT6D_DIM = 6
FULL_DIM = NUM_JOINTS * ROT6D_DIM + TRANS_DIM + CONTACT_DIM  # 337

JOINT_NAMES: tuple[str, ...] = (
    "pelvis", "left_hip", "right_hip", "spine1", "left_knee", "right_knee", "spine2",
    "left_ankle", "right_ankle", "spine3", "left_foot", "right_foot", "neck", "left_collar",
    "right_collar", "head", "left_shoulder", "right_shoulder", "left_elbow", "right_elbow",
    "left_wrist", "right_wrist", "jaw", "left_eye", "right_eye",
    *(f"{side}_{finger}{k}" for side in ("left", "right")
      for finger in ("index", "middle", "pinky", "ring", "thumb") for k in (1, 2, 3)),
)

PELVIS, JAW, HEAD = 0, 22, 15
EYE_JOINTS: tuple[int, int] = (23, 24)
FOOT_JOINTS: tuple[int, int, int, int] = (7, 8, 10, 11)
"""Left ankle, right ankle, left foot, right foot: the joints whose contacts are tracked."""
LEFT_WRIST, RIGHT_WRIST = 20, 21


def _hand_parents(wrist: int, first: int) -> list[int]:
    parents = []
    for finger in range(5):
        base = first + 3 * finger
        parents += [wrist, base, base + 1]
    return parents


PARENTS: tuple[int, ...] = (
    -1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19, 15, 15, 15,
    *_hand_parents(LEFT_WRIST, 25), *_hand_parents(RIGHT_WRIST, 40),
)
"""SMPL-X kinematic tree: ``PARENTS[j]`` is the parent joint of ``j`` (-1 for the pelvis)."""


class BodyPart(str, Enum):
    """The four body parts SemTalk generates, each with its own tokenizer and code heads."""

    FACE = "face"
    UPPER = "upper"
    HANDS = "hands"
    LOWER = "lower"

    @property
    def joints(self) -> tuple[int, ...]:
        """SMPL-X joints whose rotations (6D) this part carries, in feature order."""
        return PART_JOINTS[self]

    @property
    def dim(self) -> int:
        """Length of the part's per-frame feature vector."""
        return PART_DIMS[self]


PART_JOINTS: dict[BodyPart, tuple[int, ...]] = {
    BodyPart.FACE: (JAW,),
    BodyPart.UPPER: (3, 6, 9, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21),
    BodyPart.HANDS: tuple(range(25, 55)),
    BodyPart.LOWER: (0, 1, 2, 4, 5, 7, 8, 10, 11),
}

PART_EXTRAS: dict[BodyPart, int] = {
    BodyPart.FACE: EXPRESSION_DIM,
    BodyPart.UPPER: 0,
    BodyPart.HANDS: 0,
    BodyPart.LOWER: TRANS_DIM + CONTACT_DIM,
}
"""Non-rotation channels appended after the part's 6D rotations."""

PART_DIMS: dict[BodyPart, int] = {
    part: ROT6D_DIM * len(joints) + PART_EXTRAS[part] for part, joints in PART_JOINTS.items()
}

GENERATED_JOINTS: tuple[int, ...] = tuple(
    sorted(j for part in BodyPart for j in PART_JOINTS[part])
)
"""The 53 joints SemTalk generates: every joint except the eyes."""

UPPER_BODY_BC_JOINTS: tuple[int, ...] = (3, 6, 9, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21)
"""Spine and arm joints used by the beat-consistency metric."""


LOWER_ROTATION_DIM = ROT6D_DIM * len(BodyPart.LOWER.joints)  # 54
"""Channels of the lower part's features holding its joints' 6D rotations."""
LOWER_TRANS_SLICE = slice(LOWER_ROTATION_DIM, LOWER_ROTATION_DIM + TRANS_DIM)  # 54:57
"""Channels of the lower part's features holding the root translation (absolute in
:func:`split_pose`; the tokenizer representation keeps the root velocity there instead)."""
LOWER_CONTACT_SLICE = slice(LOWER_TRANS_SLICE.stop, LOWER_TRANS_SLICE.stop + CONTACT_DIM)  # 57:61
"""Channels of the lower part's features holding the 4 foot contacts."""


def _as_joint_rotations(poses: torch.Tensor) -> torch.Tensor:
    """``[..., 165]`` or ``[..., 55, 3]`` axis-angle -> ``[..., 55, 3]``."""
    if poses.shape[-1] == POSE_DIM:
        return poses.reshape(*poses.shape[:-1], NUM_JOINTS, 3)
    if poses.shape[-2:] == (NUM_JOINTS, 3):
        return poses
    raise ValueError(f"poses must be [..., {POSE_DIM}] or [..., {NUM_JOINTS}, 3], "
                     f"got shape {tuple(poses.shape)}")


def split_pose(
    poses: torch.Tensor,
    expressions: torch.Tensor,
    trans: torch.Tensor,
    contacts: torch.Tensor,
) -> dict[BodyPart, torch.Tensor]:
    """Split a BEAT2 pose into the four part feature tensors.

    Args:
        poses: ``[..., T, 165]`` axis-angle of the 55 joints.
        expressions: ``[..., T, 100]``.
        trans: ``[..., T, 3]`` global translation in metres.
        contacts: ``[..., T, 4]`` foot contacts (see :func:`semtalk.body.skeleton.foot_contacts`).

    Returns:
        ``{part: [..., T, part.dim]}``, in the dtype of ``poses``.
    """
    rot6d = axis_angle_to_rot6d(_as_joint_rotations(poses))  # [..., T, 55, 6]
    dtype = rot6d.dtype
    extras = {
        BodyPart.FACE: [expressions.to(dtype)],
        BodyPart.UPPER: [],
        BodyPart.HANDS: [],
        BodyPart.LOWER: [trans.to(dtype), contacts.to(dtype)],
    }
    parts = {}
    for part in BodyPart:
        rotations = rot6d[..., list(part.joints), :].flatten(-2)
        parts[part] = torch.cat([rotations, *extras[part]], dim=-1)
    return parts


def merge_parts(
    parts: Mapping[BodyPart, torch.Tensor],
    eye_pose: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Recombine part feature tensors into a BEAT2 pose (inverse of :func:`split_pose`).

    Args:
        parts: ``{part: [..., T, part.dim]}`` for all four parts.
        eye_pose: axis-angle of both eyes, ``[6]``, ``[..., T, 6]`` or anything broadcastable to
            it; written into joints 23 and 24 because eyes are not generated. ``None`` writes
            the rest pose (zero rotation), which is also the built-in seed's eye pose.

    Returns:
        ``(poses [..., T, 165], expressions [..., T, 100], trans [..., T, 3])``. Foot contacts
        are dropped: they are derived from joint motion, not part of a BEAT2 file.
    """
    missing = [p.value for p in BodyPart if p not in parts]
    if missing:
        raise ValueError(f"merge_parts needs all four parts; missing {missing}")
    for part in BodyPart:
        if parts[part].shape[-1] != part.dim:
            raise ValueError(f"{part.value} features must have {part.dim} channels, "
                             f"got shape {tuple(parts[part].shape)}")
    reference = parts[BodyPart.LOWER]
    lead = reference.shape[:-1]
    joints = reference.new_zeros(*lead, NUM_JOINTS, 3)
    for part in BodyPart:
        n = len(part.joints)
        rot6d = parts[part][..., : n * ROT6D_DIM].reshape(*lead, n, ROT6D_DIM)
        joints[..., list(part.joints), :] = rot6d_to_axis_angle(rot6d)
    if eye_pose is not None:
        eyes = eye_pose.to(joints).expand(*lead, 6).reshape(*lead, 2, 3)
        joints[..., list(EYE_JOINTS), :] = eyes
    face_rot = ROT6D_DIM * len(BodyPart.FACE.joints)
    expressions = parts[BodyPart.FACE][..., face_rot:]
    trans = parts[BodyPart.LOWER][..., LOWER_TRANS_SLICE]
    return joints.flatten(-2), expressions, trans


def pose_to_full(poses: torch.Tensor, trans: torch.Tensor, contacts: torch.Tensor) -> torch.Tensor:
    """The 337-d whole-body vector used as seed input: 55 x 6D + translation + contacts.

    Args:
        poses: ``[..., T, 165]``; trans: ``[..., T, 3]``; contacts: ``[..., T, 4]``.

    Returns:
        ``[..., T, 337]``.
    """
    rot6d = axis_angle_to_rot6d(_as_joint_rotations(poses)).flatten(-2)
    return torch.cat([rot6d, trans.to(rot6d.dtype), contacts.to(rot6d.dtype)], dim=-1)
