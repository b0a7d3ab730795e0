"""Rotation conversions: axis-angle <-> rotation matrix <-> 6D, the one copy in semtalk.

Conventions (they match BEAT2 and the official SemTalk code):

- Axis-angle ``[..., 3]``: direction is the rotation axis, norm the angle in radians.
- Rotation matrices ``[..., 3, 3]`` act on column vectors (``x' = R @ x``).
- 6D ``[..., 6]``: the first two **rows** of the rotation matrix, flattened
  (``R[..., 0, :], R[..., 1, :]``). Decoding normalises the first row, makes the second
  orthogonal to it (Gram-Schmidt), and takes the third row as their cross product.

All functions take and return ``torch.Tensor`` of any floating dtype, broadcast over leading
dimensions, and are differentiable.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

_SMALL_ANGLE = 1e-6


def _skew(v: torch.Tensor) -> torch.Tensor:
    """Skew-symmetric cross-product matrices ``[..., 3, 3]`` of vectors ``[..., 3]``."""
    x, y, z = v.unbind(-1)
    zero = torch.zeros_like(x)
    rows = (
        torch.stack((zero, -z, y), dim=-1),
        torch.stack((z, zero, -x), dim=-1),
        torch.stack((-y, x, zero), dim=-1),
    )
    return torch.stack(rows, dim=-2)


def axis_angle_to_matrix(axis_angle: torch.Tensor) -> torch.Tensor:
    """Rodrigues' formula: ``[..., 3]`` axis-angle -> ``[..., 3, 3]`` rotation matrices.

    Uses Taylor expansions of ``sin(t)/t`` and ``(1 - cos(t))/t^2`` near zero so that the
    result and its gradient stay finite at the identity.
    """
    theta2 = (axis_angle * axis_angle).sum(-1, keepdim=True).unsqueeze(-1)  # [..., 1, 1]
    theta = theta2.clamp_min(_SMALL_ANGLE**2).sqrt()
    small = theta2 < _SMALL_ANGLE**2
    a = torch.where(small, 1.0 - theta2 / 6.0, torch.sin(theta) / theta)
    b = torch.where(small, 0.5 - theta2 / 24.0, (1.0 - torch.cos(theta)) / (theta * theta))
    k = _skew(axis_angle)
    eye = torch.eye(3, dtype=axis_angle.dtype, device=axis_angle.device)
    return eye + a * k + b * (k @ k)


def matrix_to_quaternion(matrix: torch.Tensor) -> torch.Tensor:
    """``[..., 3, 3]`` rotation matrices -> unit quaternions ``[..., 4]`` as (w, x, y, z), w >= 0.

    Picks, per matrix, the best-conditioned of the four standard formulas, so the result is
    accurate for every angle including 180 degrees.
    """
    m = matrix
    m00, m11, m22 = m[..., 0, 0], m[..., 1, 1], m[..., 2, 2]
    # 4 * q_i^2 for i = w, x, y, z.
    four_sq = torch.stack(
        (1 + m00 + m11 + m22, 1 + m00 - m11 - m22, 1 - m00 + m11 - m22, 1 - m00 - m11 + m22),
        dim=-1,
    )
    root = 2.0 * four_sq.clamp_min(1e-12).sqrt()  # 4 * |q_i|
    # Each candidate row is 4 * q_i * q; dividing by 4 * |q_i| gives q up to sign.
    candidates = torch.stack(
        (
            torch.stack((four_sq[..., 0], m[..., 2, 1] - m[..., 1, 2],
                         m[..., 0, 2] - m[..., 2, 0], m[..., 1, 0] - m[..., 0, 1]), dim=-1),
            torch.stack((m[..., 2, 1] - m[..., 1, 2], four_sq[..., 1],
                         m[..., 1, 0] + m[..., 0, 1], m[..., 0, 2] + m[..., 2, 0]), dim=-1),
            torch.stack((m[..., 0, 2] - m[..., 2, 0], m[..., 1, 0] + m[..., 0, 1],
                         four_sq[..., 2], m[..., 2, 1] + m[..., 1, 2]), dim=-1),
            torch.stack((m[..., 1, 0] - m[..., 0, 1], m[..., 2, 0] + m[..., 0, 2],
                         m[..., 2, 1] + m[..., 1, 2], four_sq[..., 3]), dim=-1),
        ),
        dim=-2,
    )  # [..., 4 (which formula), 4 (w, x, y, z)]
    quats = candidates / root.unsqueeze(-1)
    best = four_sq.argmax(dim=-1, keepdim=True)  # [..., 1]
    index = best.unsqueeze(-1).expand(*best.shape, 4)
    q = quats.gather(-2, index).squeeze(-2)
    q = F.normalize(q, dim=-1)
    return torch.where(q[..., :1] < 0, -q, q)


def quaternion_to_axis_angle(quaternion: torch.Tensor) -> torch.Tensor:
    """Unit quaternions ``[..., 4]`` (w, x, y, z) -> axis-angle ``[..., 3]``, angle in [0, pi]."""
    q = torch.where(quaternion[..., :1] < 0, -quaternion, quaternion)
    xyz = q[..., 1:]
    sin_half = xyz.norm(dim=-1, keepdim=True)
    half = torch.atan2(sin_half, q[..., :1])
    small = sin_half < _SMALL_ANGLE
    # angle / sin(angle / 2) -> 2 as the angle -> 0.
    scale = torch.where(small, 2.0 + half * half / 3.0,
                        2.0 * half / sin_half.clamp_min(_SMALL_ANGLE))
    return xyz * scale


def matrix_to_axis_angle(matrix: torch.Tensor) -> torch.Tensor:
    """``[..., 3, 3]`` rotation matrices -> axis-angle ``[..., 3]`` with angle in [0, pi]."""
    return quaternion_to_axis_angle(matrix_to_quaternion(matrix))


def matrix_to_rot6d(matrix: torch.Tensor) -> torch.Tensor:
    """``[..., 3, 3]`` -> ``[..., 6]``: the first two rows, flattened."""
    return matrix[..., :2, :].reshape(*matrix.shape[:-2], 6)


def rot6d_to_matrix(rot6d: torch.Tensor) -> torch.Tensor:
    """``[..., 6]`` -> ``[..., 3, 3]`` by Gram-Schmidt on the two rows and a cross product."""
    a1, a2 = rot6d[..., :3], rot6d[..., 3:]
    b1 = F.normalize(a1, dim=-1)
    b2 = F.normalize(a2 - (b1 * a2).sum(-1, keepdim=True) * b1, dim=-1)
    b3 = torch.cross(b1, b2, dim=-1)
    return torch.stack((b1, b2, b3), dim=-2)


def axis_angle_to_rot6d(axis_angle: torch.Tensor) -> torch.Tensor:
    """``[..., 3]`` axis-angle -> ``[..., 6]``."""
    return matrix_to_rot6d(axis_angle_to_matrix(axis_angle))


def rot6d_to_axis_angle(rot6d: torch.Tensor) -> torch.Tensor:
    """``[..., 6]`` -> ``[..., 3]`` axis-angle."""
    return matrix_to_axis_angle(rot6d_to_matrix(rot6d))


def euler_to_matrix(angles: torch.Tensor, order: str = "XYZ") -> torch.Tensor:
    """Intrinsic Euler angles ``[..., 3]`` (radians, in ``order``) -> ``[..., 3, 3]``.

    ``order="XYZ"`` means ``R = Rx(a0) @ Ry(a1) @ Rz(a2)``.
    """
    if sorted(order) != ["X", "Y", "Z"]:
        raise ValueError(f"Euler order must be a permutation of 'XYZ', got {order!r}")
    eye = torch.eye(3, dtype=angles.dtype, device=angles.device)
    result = eye.expand(*angles.shape[:-1], 3, 3)
    for axis_name, angle in zip(order, angles.unbind(-1), strict=True):
        axis = eye["XYZ".index(axis_name)]
        result = result @ axis_angle_to_matrix(angle.unsqueeze(-1) * axis)
    return result


def geodesic_angle(a: torch.Tensor, b: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Angle in radians of the relative rotation between matrices ``a`` and ``b`` ``[..., 3, 3]``.

    The cosine is clamped to ``±(1 - eps)`` so the gradient stays finite.
    """
    trace = (a.transpose(-1, -2) @ b).diagonal(dim1=-2, dim2=-1).sum(-1)
    cos = ((trace - 1.0) / 2.0).clamp(-1.0 + eps, 1.0 - eps)
    return torch.acos(cos)
