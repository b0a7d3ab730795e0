"""Rotation conversions computed the way the official SemTalk code computes them.

The official code converts rotations with an old copy of pytorch3d's functions. Their results
differ from better-conditioned conversions (such as :mod:`semtalk.body.rotation`) by up to about
1e-3 per axis-angle component, and those differences are part of the official numbers: the
official seed rebuild and the saved poses go through these exact formulas. Every function takes
and returns float32 torch tensors with any leading shape.

Reproduced official quirks:

- matrix -> quaternion uses ``0.5 * sqrt(max(0, 1 +- m00 +- m11 +- m22))`` for every component
  and copies the sign of ``m21 - m12``, ``m02 - m20`` and ``m10 - m01`` onto the vector part
  (a copysign that ignores negative zero). The real part is never negative. For components near
  zero (small rotations) this loses precision to about ``sqrt(eps) ~ 3e-4`` and the sign can
  flip; that is what the official code produces.
- quaternion -> axis-angle: ``angle = 2 atan2(|v|, w)``, ``v / (sin(angle/2) / angle)``, with
  the series ``0.5 - angle^2 / 48`` below ``|angle| < 1e-6``. The quaternion is not normalised.
- axis-angle -> matrix goes through the quaternion (``cos(a/2)``, axis ``* sin(a/2)/a`` with the
  same series for small angles), then ``1 - 2/|q|^2 (...)`` entries.
- 6D is the **first two rows** of the matrix; 6D -> matrix is Gram-Schmidt on the two rows
  (``F.normalize``, eps 1e-12) and their cross product as the third row.

Because the quaternion formula amplifies last-bit differences, results are bit-identical to the
official run only for the same inputs in the same memory layout (decoder outputs are
channels-first tensors viewed channels-last) and the same torch thread count; otherwise they
agree to about 1e-3 (fixture README §4).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

_SMALL_ANGLE = 1e-6


def _check_last(tensor: torch.Tensor, shape: tuple[int, ...], what: str) -> None:
    if tuple(tensor.shape[tensor.dim() - len(shape):]) != shape or tensor.dim() < len(shape):
        raise ValueError(f"{what} must have shape [..., {', '.join(map(str, shape))}], "
                         f"got {tuple(tensor.shape)}")


def _sqrt_positive_part(x: torch.Tensor) -> torch.Tensor:
    """``sqrt(max(0, x))`` (0 where ``x <= 0``), evaluated on the gathered positive entries.

    The square root runs on the compacted 1-D tensor of positive entries, as in the official
    code, so torch's elementwise kernels see the same tensors (a kernel's vectorised body and
    its scalar tail may round differently, and the formula amplifies last-bit differences).
    """
    result = torch.zeros_like(x)
    positive = x > 0
    result[positive] = torch.sqrt(x[positive])
    return result


def _copysign(magnitude: torch.Tensor, sign_of: torch.Tensor) -> torch.Tensor:
    """``magnitude`` with its sign flipped where its sign differs from ``sign_of``'s (``< 0``
    test, so negative zero counts as positive)."""
    return torch.where((magnitude < 0) != (sign_of < 0), -magnitude, magnitude)


def _sin_half_over_angle(half_angles: torch.Tensor, angles: torch.Tensor) -> torch.Tensor:
    """``sin(angle / 2) / angle``, or its series ``0.5 - angle^2 / 48`` for tiny angles; each
    branch evaluated on its gathered entries (see :func:`_sqrt_positive_part`)."""
    small = angles.abs() < _SMALL_ANGLE
    large = ~small
    result = torch.empty_like(angles)
    result[large] = torch.sin(half_angles[large]) / angles[large]
    result[small] = 0.5 - (angles[small] * angles[small]) / 48
    return result


def matrix_to_quaternion(matrix: torch.Tensor) -> torch.Tensor:
    """``[..., 3, 3]`` rotation matrices -> ``[..., 4]`` quaternions (w, x, y, z), official
    formula (see the module docstring)."""
    _check_last(matrix, (3, 3), "matrix")
    m00, m11, m22 = matrix[..., 0, 0], matrix[..., 1, 1], matrix[..., 2, 2]
    w = 0.5 * _sqrt_positive_part(1 + m00 + m11 + m22)
    x = 0.5 * _sqrt_positive_part(1 + m00 - m11 - m22)
    y = 0.5 * _sqrt_positive_part(1 - m00 + m11 - m22)
    z = 0.5 * _sqrt_positive_part(1 - m00 - m11 + m22)
    x = _copysign(x, matrix[..., 2, 1] - matrix[..., 1, 2])
    y = _copysign(y, matrix[..., 0, 2] - matrix[..., 2, 0])
    z = _copysign(z, matrix[..., 1, 0] - matrix[..., 0, 1])
    return torch.stack((w, x, y, z), dim=-1)


def quaternion_to_matrix(quaternion: torch.Tensor) -> torch.Tensor:
    """``[..., 4]`` quaternions (w, x, y, z; need not be unit) -> ``[..., 3, 3]``."""
    _check_last(quaternion, (4,), "quaternion")
    r, i, j, k = torch.unbind(quaternion, dim=-1)
    two_s = 2.0 / (quaternion * quaternion).sum(-1)
    entries = (
        1 - two_s * (j * j + k * k), two_s * (i * j - k * r), two_s * (i * k + j * r),
        two_s * (i * j + k * r), 1 - two_s * (i * i + k * k), two_s * (j * k - i * r),
        two_s * (i * k - j * r), two_s * (j * k + i * r), 1 - two_s * (i * i + j * j),
    )
    return torch.stack(entries, dim=-1).reshape(*quaternion.shape[:-1], 3, 3)


def axis_angle_to_quaternion(axis_angle: torch.Tensor) -> torch.Tensor:
    """``[..., 3]`` axis-angle -> ``[..., 4]`` quaternions (w, x, y, z)."""
    _check_last(axis_angle, (3,), "axis_angle")
    angles = torch.linalg.vector_norm(axis_angle, ord=2, dim=-1, keepdim=True)
    half_angles = 0.5 * angles
    ratio = _sin_half_over_angle(half_angles, angles)
    return torch.cat([torch.cos(half_angles), axis_angle * ratio], dim=-1)


def quaternion_to_axis_angle(quaternion: torch.Tensor) -> torch.Tensor:
    """``[..., 4]`` quaternions (w, x, y, z) -> ``[..., 3]`` axis-angle (official formula)."""
    _check_last(quaternion, (4,), "quaternion")
    norms = torch.linalg.vector_norm(quaternion[..., 1:], ord=2, dim=-1, keepdim=True)
    half_angles = torch.atan2(norms, quaternion[..., :1])
    angles = 2 * half_angles
    return quaternion[..., 1:] / _sin_half_over_angle(half_angles, angles)


def axis_angle_to_matrix(axis_angle: torch.Tensor) -> torch.Tensor:
    """``[..., 3]`` axis-angle -> ``[..., 3, 3]`` through the quaternion, as the official code."""
    return quaternion_to_matrix(axis_angle_to_quaternion(axis_angle))


def matrix_to_axis_angle(matrix: torch.Tensor) -> torch.Tensor:
    """``[..., 3, 3]`` -> ``[..., 3]`` axis-angle through the official quaternion formula."""
    return quaternion_to_axis_angle(matrix_to_quaternion(matrix))


def rot6d_to_matrix(rot6d: torch.Tensor) -> torch.Tensor:
    """``[..., 6]`` 6D (two matrix rows) -> ``[..., 3, 3]``: Gram-Schmidt, third row the cross
    product."""
    _check_last(rot6d, (6,), "rot6d")
    a1, a2 = rot6d[..., :3], rot6d[..., 3:]
    b1 = F.normalize(a1, dim=-1)
    b2 = F.normalize(a2 - (b1 * a2).sum(-1, keepdim=True) * b1, dim=-1)
    b3 = torch.linalg.cross(b1, b2, dim=-1)
    return torch.stack((b1, b2, b3), dim=-2)


def matrix_to_rot6d(matrix: torch.Tensor) -> torch.Tensor:
    """``[..., 3, 3]`` -> ``[..., 6]``: the first two rows."""
    _check_last(matrix, (3, 3), "matrix")
    return matrix[..., :2, :].reshape(*matrix.shape[:-2], 6)


def axis_angle_to_rot6d(axis_angle: torch.Tensor) -> torch.Tensor:
    """``[..., 3]`` axis-angle -> ``[..., 6]`` (axis-angle -> matrix -> 6D, official route)."""
    return matrix_to_rot6d(axis_angle_to_matrix(axis_angle))


def rot6d_to_axis_angle(rot6d: torch.Tensor) -> torch.Tensor:
    """``[..., 6]`` -> ``[..., 3]`` axis-angle (6D -> matrix -> quaternion -> axis-angle)."""
    return matrix_to_axis_angle(rot6d_to_matrix(rot6d))
