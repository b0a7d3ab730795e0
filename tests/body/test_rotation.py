import math

import pytest
import torch
from scipy.spatial.transform import Rotation

from semtalk.body.rotation import (
    axis_angle_to_matrix,
    axis_angle_to_rot6d,
    euler_to_matrix,
    geodesic_angle,
    matrix_to_axis_angle,
    matrix_to_rot6d,
    rot6d_to_axis_angle,
    rot6d_to_matrix,
)


def random_axis_angle(n: int, max_angle: float = math.pi, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    axis = torch.nn.functional.normalize(torch.randn(n, 3, generator=g, dtype=torch.float64),
                                         dim=-1)
    return axis * torch.rand(n, 1, generator=g, dtype=torch.float64) * max_angle


def test_axis_angle_to_matrix_matches_scipy():
    aa = random_axis_angle(2000)
    expected = torch.from_numpy(Rotation.from_rotvec(aa.numpy()).as_matrix())
    assert torch.allclose(axis_angle_to_matrix(aa), expected, atol=1e-12)


def test_matrix_to_axis_angle_inverts_for_every_angle():
    aa = random_axis_angle(5000, max_angle=math.pi - 1e-4)
    assert torch.allclose(matrix_to_axis_angle(axis_angle_to_matrix(aa)), aa, atol=1e-9)


def test_angles_near_pi_round_trip_as_rotations():
    axis = torch.nn.functional.normalize(torch.randn(100, 3, dtype=torch.float64), dim=-1)
    aa = axis * (math.pi - 1e-9)
    back = axis_angle_to_matrix(matrix_to_axis_angle(axis_angle_to_matrix(aa)))
    assert torch.allclose(back, axis_angle_to_matrix(aa), atol=1e-7)


def test_rot6d_is_first_two_rows_and_round_trips():
    m = axis_angle_to_matrix(random_axis_angle(500))
    six = matrix_to_rot6d(m)
    assert torch.equal(six[:, :3], m[:, 0, :]) and torch.equal(six[:, 3:], m[:, 1, :])
    assert torch.allclose(rot6d_to_matrix(six), m, atol=1e-12)


def test_rot6d_decoding_orthonormalises_noisy_input():
    six = axis_angle_to_rot6d(random_axis_angle(100)) + 0.1 * torch.randn(100, 6,
                                                                          dtype=torch.float64)
    m = rot6d_to_matrix(six)
    eye = torch.eye(3, dtype=torch.float64).expand(100, 3, 3)
    assert torch.allclose(m @ m.transpose(1, 2), eye, atol=1e-12)
    assert torch.allclose(torch.linalg.det(m), torch.ones(100, dtype=torch.float64))


def test_gradients_are_finite_at_identity():
    aa = torch.zeros(4, 3, dtype=torch.float64, requires_grad=True)
    rot6d_to_axis_angle(axis_angle_to_rot6d(aa + 1e-12)).sum().backward()
    assert torch.isfinite(aa.grad).all()


def test_euler_matches_scipy_intrinsic():
    angles = torch.tensor([[0.3, -1.1, 2.0], [-0.2, 0.5, 0.1]], dtype=torch.float64)
    for order in ("XYZ", "ZXY"):
        expected = Rotation.from_euler(order, angles.numpy()).as_matrix()
        assert torch.allclose(euler_to_matrix(angles, order), torch.from_numpy(expected),
                              atol=1e-12)
    with pytest.raises(ValueError, match="permutation"):
        euler_to_matrix(angles, "XXY")


def test_geodesic_angle_recovers_rotation_angle():
    aa = random_axis_angle(200, max_angle=3.0)
    eye = torch.eye(3, dtype=torch.float64).expand(200, 3, 3)
    assert torch.allclose(geodesic_angle(eye, axis_angle_to_matrix(aa)), aa.norm(dim=-1),
                          atol=1e-6)
