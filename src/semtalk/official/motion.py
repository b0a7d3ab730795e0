"""The official motion vectors and the arithmetic of the official test loop.

Part vectors are built from BEAT2 arrays exactly as the official test-set builder and
``_g_test`` build them, and decoded part vectors are turned back into poses, seeds, the
global-motion input and translations as the official loop does (fixture README §2, §3a;
spec §2, §7.1). All rotations go through :mod:`semtalk.official.rotation`.

Layouts (joints in ascending SMPL-X index, each joint 6D = first two matrix rows):

=========== ======================================================================== ====
vector      content                                                                  dim
=========== ======================================================================== ====
face        jaw (22) 6D + 100 expressions                                            106
upper       joints 3, 6, 9, 12-21                                                    78
hands       joints 25-54                                                             180
lower       joints 0, 1, 2, 4, 5, 7, 8, 10, 11 + translation (54:57) + contacts      61
latent_all  joints 0-54 (0:330) + translation (330:333) + contacts (333:337)         337
=========== ======================================================================== ====

Reproduced official quirks:

- Translation in the part vectors and ``latent_all`` is the absolute translation, not a
  velocity; the lower decoder's channels 54:57 are nevertheless *read* as (v_x, y, v_z).
- Inverse: each part's 6D goes 6D -> matrix -> axis-angle and is written into a zero 165-vector
  at its joints; the parts are summed. Eyes (69:75) stay 0; the jaw (66:69) is 0 inside the loop
  and comes from the face decoder's dims 0:6 in the final pose.
- Seed rebuild: the axis-angle pose goes back through axis-angle -> matrix -> 6D; translation is
  integrated from the **first frame of the whole sequence** in every window,
  ``x_t = x_{t-1} + v_{t-1} / 30`` (the last velocity is unused), y taken directly; contacts are
  the raw decoder outputs (neither clamped nor thresholded).
- Global-motion input: the decoded lower 6D re-orthonormalised (6D -> matrix -> 6D), translation
  channels zeroed, the decoded contacts kept as they are (training used zeros).
- Saved poses: the 330-d 6D pose goes 6D -> matrix -> 6D -> matrix -> axis-angle.
- Integration is a sequential float32 sum ``x_{t-1} + v_{t-1} * float32(1/30)``, not a cumsum.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

from semtalk.body.parts import (
    CONTACT_DIM,
    EXPRESSION_DIM,
    JAW,
    LOWER_CONTACT_SLICE,
    LOWER_ROTATION_DIM,
    LOWER_TRANS_SLICE,
    NUM_JOINTS,
    POSE_DIM,
    TRANS_DIM,
    BodyPart,
)
from semtalk.official import rotation as orc

FPS = 30
"""Frame rate of the official motion (``pose_fps``); translation is integrated with 1/30 s."""

LATENT_ALL_DIM = 6 * NUM_JOINTS + TRANS_DIM + CONTACT_DIM  # 337
ROTATIONS_6D_DIM = 6 * NUM_JOINTS  # 330
JAW_SLICE = slice(3 * JAW, 3 * JAW + 3)  # 66:69

_BODY_PARTS = (BodyPart.UPPER, BodyPart.HANDS, BodyPart.LOWER)


def _frames(tensor: torch.Tensor, dim: int, name: str) -> torch.Tensor:
    if tensor.dim() < 2 or tensor.shape[-1] != dim:
        raise ValueError(f"{name} must have shape [..., T, {dim}], got {tuple(tensor.shape)}")
    return tensor.float()


def _joint_rot6d(poses: torch.Tensor) -> torch.Tensor:
    """``[..., T, 165]`` axis-angle -> ``[..., T, 55, 6]`` (official route)."""
    poses = _frames(poses, POSE_DIM, "poses")
    return orc.axis_angle_to_rot6d(poses.reshape(*poses.shape[:-1], NUM_JOINTS, 3))


def part_vectors(poses: torch.Tensor, expressions: torch.Tensor, trans: torch.Tensor,
                 contacts: torch.Tensor) -> dict[BodyPart, torch.Tensor]:
    """The four official part vectors ``{part: [..., T, part.dim]}`` of a BEAT2 clip.

    Args:
        poses: ``[..., T, 165]`` axis-angle.
        expressions: ``[..., T, 100]``.
        trans: ``[..., T, 3]`` absolute translation in metres.
        contacts: ``[..., T, 4]`` foot contacts of joints 7, 8, 10, 11.
    """
    rot6d = _joint_rot6d(poses)
    expressions = _frames(expressions, EXPRESSION_DIM, "expressions")
    trans = _frames(trans, TRANS_DIM, "trans")
    contacts = _frames(contacts, CONTACT_DIM, "contacts")
    extras = {BodyPart.FACE: [expressions], BodyPart.UPPER: [], BodyPart.HANDS: [],
              BodyPart.LOWER: [trans, contacts]}
    return {part: torch.cat([rot6d[..., list(part.joints), :].flatten(-2), *extras[part]],
                            dim=-1)
            for part in BodyPart}


def latent_all(poses: torch.Tensor, trans: torch.Tensor, contacts: torch.Tensor) -> torch.Tensor:
    """The official whole-body vector ``[..., T, 337]``: 55 x 6D, translation, contacts."""
    rot6d = _joint_rot6d(poses).flatten(-2)
    return torch.cat([rot6d, _frames(trans, TRANS_DIM, "trans"),
                      _frames(contacts, CONTACT_DIM, "contacts")], dim=-1)


def _part_axis_angle(part: BodyPart, decoded: torch.Tensor) -> torch.Tensor:
    """A decoded part's rotations as axis-angle written into a zero ``[..., T, 165]``."""
    decoded = _frames(decoded, part.dim, f"decoded {part.value}")
    joints = part.joints
    rot6d = decoded[..., : 6 * len(joints)].reshape(*decoded.shape[:-1], len(joints), 6)
    axis_angle = orc.rot6d_to_axis_angle(rot6d)  # [..., T, J, 3]
    full = decoded.new_zeros(*decoded.shape[:-1], NUM_JOINTS, 3)
    full[..., list(joints), :] = axis_angle
    return full.flatten(-2)


def parts_to_axis_angle(upper: torch.Tensor, hands: torch.Tensor, lower: torch.Tensor,
                        face: torch.Tensor | None = None) -> torch.Tensor:
    """Decoded part vectors -> ``[..., T, 165]`` axis-angle, the official route.

    Upper, hands and lower are converted per part and summed into zeros. Eyes are 0. The jaw is
    0 unless ``face [..., T, 106]`` is given, in which case it is the face's dims 0:6 converted
    the same way (the final pose of the official loop; the seed rebuild passes no face).
    """
    parts = {BodyPart.UPPER: upper, BodyPart.HANDS: hands, BodyPart.LOWER: lower}
    upper_aa, hands_aa, lower_aa = (_part_axis_angle(part, parts[part]) for part in _BODY_PARTS)
    poses = upper_aa + lower_aa + hands_aa  # the official summation order
    if face is not None:
        face = _frames(face, BodyPart.FACE.dim, "decoded face")
        if face.shape[:-1] != poses.shape[:-1]:
            raise ValueError(f"face frames {tuple(face.shape[:-1])} differ from the body's "
                             f"{tuple(poses.shape[:-1])}")
        poses = poses.clone()
        poses[..., JAW_SLICE] = orc.rot6d_to_axis_angle(face[..., :6])
    return poses


def axis_angle_to_pose_6d(poses: torch.Tensor) -> torch.Tensor:
    """``[..., T, 165]`` axis-angle -> ``[..., T, 330]`` 6D (axis-angle -> matrix -> 6D)."""
    return _joint_rot6d(poses).flatten(-2)


def integrate_translation(root: torch.Tensor, first_trans: torch.Tensor) -> torch.Tensor:
    """Official ``velocity2position`` on x and z; y taken directly.

    Args:
        root: ``[..., T, 3]`` (v_x, y, v_z) in m/s and metres, or a ``[..., T, 61]`` lower-layout
            vector (a lower decode or the global-motion output), whose channels 54:57 are read.
        first_trans: ``[..., 3]`` translation of the sequence's first frame (x and z used).

    Returns:
        ``[..., T, 3]`` with ``x_0 = first_trans.x`` and ``x_t = x_{t-1} + v_{t-1} / 30``
        (float32, sequential), z likewise, ``y_t = root.y_t``.
    """
    if root.dim() >= 2 and root.shape[-1] == BodyPart.LOWER.dim:
        root = root[..., LOWER_TRANS_SLICE]
    root = _frames(root, TRANS_DIM, "root")
    first_trans = first_trans.float()
    if first_trans.shape != (*root.shape[:-2], TRANS_DIM):
        raise ValueError(f"first_trans must have shape {(*root.shape[:-2], TRANS_DIM)}, "
                         f"got {tuple(first_trans.shape)}")
    dt = 1.0 / FPS
    velocity = root[..., [0, 2]]  # [..., T, 2]
    positions = [first_trans[..., [0, 2]]]
    for t in range(1, root.shape[-2]):
        positions.append(velocity[..., t - 1, :] * dt + positions[-1])
    xz = torch.stack(positions, dim=-2)
    return torch.stack([xz[..., 0], root[..., 1], xz[..., 1]], dim=-1)


def seed_from_window_decode(upper: torch.Tensor, hands: torch.Tensor, lower: torch.Tensor,
                            first_trans: torch.Tensor) -> torch.Tensor:
    """The official rebuilt motion ``[..., T, 337]`` of one window's decoded parts.

    The caller takes its last 4 frames as the next window's seed. Rotations: per-part 6D ->
    axis-angle (jaw and eyes 0) -> 6D; translation: :func:`integrate_translation` of the lower
    decode's channels 54:57 from ``first_trans [..., 3]``, the sequence's first frame; contacts:
    the lower decode's channels 57:61 as they are.
    """
    rot6d = axis_angle_to_pose_6d(parts_to_axis_angle(upper, hands, lower))
    lower = lower.float()
    trans = integrate_translation(lower[..., LOWER_TRANS_SLICE], first_trans)
    return torch.cat([rot6d, trans, lower[..., LOWER_CONTACT_SLICE]], dim=-1)


def global_motion_input(decoded_lower: torch.Tensor) -> torch.Tensor:
    """The global-motion net's input ``[..., T, 61]`` from the lower decode.

    Channels 0:54 re-orthonormalised (6D -> matrix -> 6D), 54:57 zero, 57:61 the decoded
    contacts as they are.
    """
    lower = _frames(decoded_lower, BodyPart.LOWER.dim, "decoded_lower")
    rot6d = lower[..., :LOWER_ROTATION_DIM].reshape(*lower.shape[:-1], -1, 6)
    rot6d = orc.matrix_to_rot6d(orc.rot6d_to_matrix(rot6d)).flatten(-2)
    zeros = lower.new_zeros(*lower.shape[:-1], TRANS_DIM)
    return torch.cat([rot6d, zeros, lower[..., LOWER_CONTACT_SLICE]], dim=-1)


def pose_6d_from_decoded(decoded: Mapping[BodyPart, torch.Tensor]) -> torch.Tensor:
    """The official loop's returned pose ``[..., T, 330]`` from the four decoded parts.

    Body from upper/hands/lower, jaw from the face decoder, eyes identity (axis-angle 0), all via
    :func:`parts_to_axis_angle` and then axis-angle -> matrix -> 6D.
    """
    missing = [part.value for part in BodyPart if part not in decoded]
    if missing:
        raise ValueError(f"pose_6d_from_decoded needs all four parts; missing {missing}")
    poses = parts_to_axis_angle(decoded[BodyPart.UPPER], decoded[BodyPart.HANDS],
                                decoded[BodyPart.LOWER], face=decoded[BodyPart.FACE])
    return axis_angle_to_pose_6d(poses)


def official_pose_output(rec_pose_6d: torch.Tensor) -> torch.Tensor:
    """The poses the official test saves: ``[..., T, 330]`` 6D -> matrix -> 6D -> matrix ->
    axis-angle ``[..., T, 165]``."""
    pose = _frames(rec_pose_6d, ROTATIONS_6D_DIM, "rec_pose_6d")
    rot6d = pose.reshape(*pose.shape[:-1], NUM_JOINTS, 6)
    rot6d = orc.matrix_to_rot6d(orc.rot6d_to_matrix(rot6d))
    return orc.rot6d_to_axis_angle(rot6d).flatten(-2)


def decoded_expressions(decoded_face: torch.Tensor) -> torch.Tensor:
    """Expressions ``[..., T, 100]``: the face decode's dims 6:106, unscaled."""
    return _frames(decoded_face, BodyPart.FACE.dim, "decoded_face")[..., 6:]
