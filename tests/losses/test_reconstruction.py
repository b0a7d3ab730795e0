from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from semtalk.body.parts import LOWER_CONTACT_SLICE, BodyPart
from semtalk.body.representation import (
    LOWER_ROOT_SLICE,
    motion_to_tokenizer_parts,
)
from semtalk.body.rotation import axis_angle_to_matrix, matrix_to_rot6d, rot6d_to_matrix
from semtalk.body.skeleton import BUILTIN_REST_JOINTS, BuiltinSkeleton, foot_contacts
from semtalk.losses.reconstruction import (
    PART_TERMS,
    LossOutput,
    PartLossWeights,
    joint_position_error_mm,
    part_reconstruction_loss,
    rotation_error_degrees,
)

ALL_TERMS = [f.name for f in dataclasses.fields(PartLossWeights)]


def _only(name: str) -> PartLossWeights:
    return PartLossWeights(**{term: (1.0 if term == name else 0.0) for term in ALL_TERMS})


def _target_parts(batch: int = 2, frames: int = 24, seed: int = 0) -> dict[BodyPart, torch.Tensor]:
    """A slow, smooth motion with a drifting root and contacts from the built-in skeleton."""
    gen = torch.Generator().manual_seed(seed)
    t = torch.arange(frames, dtype=torch.float32).view(1, frames, 1) / 30.0
    base = 0.3 * torch.randn(batch, 1, 165, generator=gen)
    wobble = 0.05 * torch.randn(batch, 1, 165, generator=gen)
    poses = base + wobble * torch.sin(2 * math.pi * 0.5 * t)
    expressions = torch.randn(batch, 1, 100, generator=gen) * torch.cos(t * 3)
    trans = torch.cat([0.05 * t, 0.95 + 0.01 * torch.sin(t), -0.02 * t], dim=-1)
    trans = trans.expand(batch, frames, 3)
    contacts = foot_contacts(BuiltinSkeleton().joints(poses, trans))
    return motion_to_tokenizer_parts(poses, expressions, trans, contacts)


def _with_lower_rotations(lower: torch.Tensor, rotations: torch.Tensor) -> torch.Tensor:
    """Replace the 9 lower-body 6D rotations of ``lower`` by matrices ``[..., T, 9, 3, 3]``."""
    return torch.cat([matrix_to_rot6d(rotations).flatten(-2), lower[..., 54:]], dim=-1)


@pytest.mark.parametrize("part", list(BodyPart))
def test_every_term_is_zero_at_target_and_positive_away_from_it(part: BodyPart):
    target = _target_parts()[part]
    if part is BodyPart.LOWER:
        assert target[..., LOWER_CONTACT_SLICE].sum() > 0  # foot_skate needs planted frames
    exact = part_reconstruction_loss(part, target.clone(), target)
    assert set(exact.terms) == set(PART_TERMS[part])
    for name, value in exact.terms.items():
        assert abs(value.item()) < 1e-6, name
    assert abs(exact.total.item()) < 1e-5
    noisy = target + 0.1 * torch.randn(target.shape, generator=torch.Generator().manual_seed(1))
    off = part_reconstruction_loss(part, noisy, target)
    for name, value in off.terms.items():
        assert value.item() > 1e-6, name
    expected_total = sum(getattr(PartLossWeights(), n) * v for n, v in off.terms.items())
    assert torch.isclose(off.total.detach(), expected_total)


@pytest.mark.parametrize("part", list(BodyPart))
def test_gradients_reach_the_prediction_through_every_term(part: BodyPart):
    target = _target_parts()[part]
    noise = 0.1 * torch.randn(target.shape, generator=torch.Generator().manual_seed(2))
    for name in PART_TERMS[part]:
        prediction = (target + noise).requires_grad_()
        out = part_reconstruction_loss(part, prediction, target, _only(name))
        assert list(out.terms) == [name]
        out.total.backward()
        grad = prediction.grad
        assert grad is not None and torch.isfinite(grad).all(), name
        assert grad.abs().sum() > 0, name


def test_zero_weight_skips_the_term_and_weights_are_validated():
    target = _target_parts()[BodyPart.HANDS]
    out = part_reconstruction_loss(BodyPart.HANDS, target + 0.1, target,
                                   PartLossWeights(joint_velocity=0.0))
    assert "joint_velocity" not in out.terms and "joint_position" in out.terms
    with pytest.raises(ValueError, match="foot_skate"):
        PartLossWeights(foot_skate=-1.0)
    with pytest.raises(ValueError, match="differ in shape"):
        part_reconstruction_loss(BodyPart.HANDS, target[:, :5], target)
    with pytest.raises(ValueError, match="180"):
        part_reconstruction_loss(BodyPart.HANDS, target[..., :60], target[..., :60])


def _rotate_every_joint(features: torch.Tensor, part: BodyPart, angle: float,
                        seed: int = 0) -> torch.Tensor:
    """Compose every joint rotation with a rotation by ``angle`` about a random axis."""
    n = 6 * len(part.joints)
    rot = rot6d_to_matrix(features[..., :n].unflatten(-1, (len(part.joints), 6)))
    axes = torch.nn.functional.normalize(
        torch.randn((*rot.shape[:-2], 3), generator=torch.Generator().manual_seed(seed)), dim=-1)
    rotated = rot @ axis_angle_to_matrix(angle * axes)
    return torch.cat([matrix_to_rot6d(rotated).flatten(-2), features[..., n:]], dim=-1)


def test_geodesic_term_and_rotation_error_equal_a_known_angle():
    part = BodyPart.HANDS
    target = _target_parts()[part]
    angle = 0.7
    prediction = _rotate_every_joint(target, part, angle)
    out = part_reconstruction_loss(part, prediction, target, _only("rotation"))
    floor = math.acos(1 - 1e-6)  # the official clamp's reading at identity is subtracted
    assert out.terms["rotation"].item() == pytest.approx(angle - floor, abs=1e-4)
    ten = _rotate_every_joint(target, part, math.radians(10.0), seed=3)
    assert rotation_error_degrees(ten, target, part).item() == pytest.approx(10.0, abs=1e-3)
    assert rotation_error_degrees(target, target, part).item() < 1e-3


def _planted_lower(frames: int) -> torch.Tensor:
    """Lower features of a still body: rest pose, zero velocity, height 0.95, all contacts."""
    lower = torch.zeros(1, frames, 61)
    lower[..., 0:54] = matrix_to_rot6d(torch.eye(3)).repeat(9)
    lower[..., 55] = 0.95
    lower[..., LOWER_CONTACT_SLICE] = 1.0
    return lower


def test_foot_skate_penalises_sliding_where_the_target_is_planted():
    part, frames = BodyPart.LOWER, 16
    target = _planted_lower(frames)
    skate = _only("foot_skate")
    assert part_reconstruction_loss(part, target.clone(), target, skate).total.item() == 0.0
    sliding = target.clone()
    sliding[..., 54] = 0.3  # 0.3 m/s = 1 cm/frame along x
    value = part_reconstruction_loss(part, sliding, target, skate).total.item()
    assert value == pytest.approx(0.01 / 3, rel=1e-4)  # |dx| on one of three axes, every frame
    # Gated by the TARGET contacts: predicting "no contact" does not switch the penalty off ...
    sliding[..., LOWER_CONTACT_SLICE] = 0.0
    assert part_reconstruction_loss(part, sliding, target, skate).total.item() == value
    # ... while a target that is not in contact is not penalised for moving.
    free = target.clone()
    free[..., LOWER_CONTACT_SLICE] = 0.0
    assert part_reconstruction_loss(part, sliding, free, skate).total.item() == 0.0


def test_foot_skate_counts_a_sliding_leg_not_just_the_root():
    part = BodyPart.LOWER
    target = _planted_lower(12)
    frames = torch.arange(12, dtype=torch.float32)
    # Swing the left hip (joint 1, slot 1) about x: the left ankle and foot slide.
    hip = axis_angle_to_matrix(torch.stack([0.02 * frames, 0 * frames, 0 * frames], -1))
    rotations = torch.eye(3).expand(1, 12, 9, 3, 3).clone()
    rotations[:, :, 1] = hip
    prediction = _with_lower_rotations(target, rotations)
    value = part_reconstruction_loss(part, prediction, target, _only("foot_skate")).total
    assert value.item() > 1e-3


def test_translation_drift_grows_with_window_length():
    part, bias = BodyPart.LOWER, 0.05  # m/s on v_x
    values = {}
    for frames in (16, 64):
        target = _planted_lower(frames)
        prediction = target.clone()
        prediction[..., 54] += bias
        out = part_reconstruction_loss(part, prediction, target)
        values[frames] = out.terms
        # Mean |x error| over the window, x and z averaged: bias * mean(t) / fps / 2.
        expected = bias * (frames - 1) / 2 / 30 / 2
        assert out.terms["translation_trajectory"].item() == pytest.approx(expected, rel=1e-4)
        assert out.terms["translation_velocity"].item() == pytest.approx(bias / 2, rel=1e-4)
    assert values[64]["translation_trajectory"] > 3 * values[16]["translation_trajectory"]


def test_joint_position_error_of_a_bent_elbow_is_the_wrist_chord():
    part = BodyPart.UPPER
    target = torch.zeros(1, 4, part.dim)
    target[..., :] = matrix_to_rot6d(torch.eye(3)).repeat(13)
    prediction = target.clone()
    elbow_slot = part.joints.index(18)
    bend = matrix_to_rot6d(axis_angle_to_matrix(torch.tensor([0.0, -math.pi / 2, 0.0])))
    prediction[..., 6 * elbow_slot : 6 * elbow_slot + 6] = bend
    rest = torch.tensor(BUILTIN_REST_JOINTS)
    forearm = rest[20] - rest[18]  # perpendicular to y: a 90 degree turn moves it by |f| * sqrt 2
    assert abs(forearm[1]) < 1e-12
    chord_mm = 1000 * forearm.norm().item() * math.sqrt(2)
    error = joint_position_error_mm(prediction, target, part).item()
    assert error == pytest.approx(chord_mm / 13, rel=1e-4)  # only the wrist of 13 joints moves


def test_joint_position_error_of_a_pelvis_turn_and_root_invariance():
    part = BodyPart.LOWER
    target = _planted_lower(3)
    angle = math.radians(30)
    rotations = torch.eye(3).expand(1, 3, 9, 3, 3).clone()
    rotations[:, :, 0] = axis_angle_to_matrix(torch.tensor([0.0, angle, 0.0]))
    prediction = _with_lower_rotations(target, rotations)
    rest = torch.tensor(BUILTIN_REST_JOINTS)
    offsets = (rest[list(part.joints)] - rest[0])[:, [0, 2]].norm(dim=-1)
    expected = 1000 * (2 * offsets * math.sin(angle / 2)).mean().item()
    assert joint_position_error_mm(prediction, target, part).item() == pytest.approx(
        expected, rel=1e-4)
    moved = target.clone()
    moved[..., LOWER_ROOT_SLICE] += torch.tensor([0.5, 0.2, -0.3])
    assert joint_position_error_mm(moved, target, part).item() == 0.0


class _ViaProtocol:
    """The built-in skeleton seen only through the BodyModel protocol (axis-angle path)."""

    name = "builtin-protocol"

    def __init__(self, detach: bool = False) -> None:
        self.skeleton = BuiltinSkeleton()
        self.detach = detach

    def joints(self, poses, trans=None, betas=None, expressions=None):
        joints = self.skeleton.joints(poses, trans)
        return joints.detach() if self.detach else joints


def test_generic_body_model_path_matches_builtin_fast_path():
    part = BodyPart.UPPER
    target = _target_parts()[part]
    prediction = (target + 0.05).requires_grad_()
    weights = _only("joint_position")
    fast = part_reconstruction_loss(part, prediction, target, weights)
    slow = part_reconstruction_loss(part, prediction, target, weights, _ViaProtocol())
    assert torch.isclose(fast.total, slow.total, rtol=1e-4)
    slow.total.backward()
    assert torch.isfinite(prediction.grad).all() and prediction.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="not differentiable"):
        part_reconstruction_loss(part, prediction, target, weights, _ViaProtocol(detach=True))


def _optimise(part: BodyPart, prediction: torch.nn.Parameter, target: torch.Tensor,
              weights: PartLossWeights, steps: int, lr: float) -> LossOutput:
    optimiser = torch.optim.Adam([prediction], lr=lr)
    for _ in range(steps):
        optimiser.zero_grad()
        out = part_reconstruction_loss(part, prediction, target, weights)
        out.total.backward()
        optimiser.step()
    return out


def test_optimising_hands_from_noise_recovers_the_rotations():
    part = BodyPart.HANDS
    torch.manual_seed(0)
    target = _target_parts(batch=2, frames=16)[part]
    prediction = torch.nn.Parameter(torch.randn(target.shape))
    assert rotation_error_degrees(prediction, target, part).item() > 60.0
    _optimise(part, prediction, target, PartLossWeights(), steps=200, lr=0.1)
    assert rotation_error_degrees(prediction, target, part).item() < 3.0
    assert joint_position_error_mm(prediction, target, part).item() < 5.0


def test_optimising_lower_from_noise_recovers_rotations_and_keeps_feet_planted():
    # Free per-frame parameters under Adam jitter from frame to frame, and the foot-skate term
    # (weight 20) then dominates the gradient ~25:1 and stalls the rotations (~70 deg after 200
    # steps). So: reach the target without it, then switch to the full default loss at a small
    # step size and check that the solution holds and the skating falls.
    part = BodyPart.LOWER
    torch.manual_seed(0)
    target = _target_parts(batch=2, frames=16)[part]
    prediction = torch.nn.Parameter(torch.randn(target.shape))
    assert rotation_error_degrees(prediction, target, part).item() > 60.0
    _optimise(part, prediction, target, PartLossWeights(foot_skate=0.0), steps=160, lr=0.2)
    assert rotation_error_degrees(prediction, target, part).item() < 3.0
    skate_before = part_reconstruction_loss(part, prediction, target).terms["foot_skate"]
    fine = _optimise(part, prediction, target, PartLossWeights(), steps=40, lr=0.005)
    assert rotation_error_degrees(prediction, target, part).item() < 3.0
    assert fine.terms["foot_skate"] < 0.5 * skate_before
    assert fine.terms["translation_trajectory"] < 0.01  # metres
