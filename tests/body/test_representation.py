from __future__ import annotations

import numpy as np
import pytest
import torch

from semtalk.body.parts import LOWER_CONTACT_SLICE, BodyPart, split_pose
from semtalk.body.representation import (
    LOWER_ROOT_SLICE,
    motion_to_seed_features,
    motion_to_tokenizer_parts,
    root_velocity_to_trans,
    tokenizer_parts_to_motion,
    tokenizer_parts_to_seed_features,
    trans_to_root_velocity,
)


def _random_motion(lead: tuple[int, ...], frames: int, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    shape = (*lead, frames)
    # Axis-angle with angles below pi, so axis-angle itself survives a round trip.
    axes = torch.nn.functional.normalize(torch.randn(*shape, 55, 3, generator=gen), dim=-1)
    angles = torch.rand(*shape, 55, 1, generator=gen, dtype=torch.float64) * 3.0
    poses = (axes.double() * angles).flatten(-2)
    expressions = torch.randn(*shape, 100, generator=gen, dtype=torch.float64)
    trans = torch.randn(*shape, 3, generator=gen, dtype=torch.float64).cumsum(-2) * 0.01
    trans[..., 1] += 0.95
    contacts = (torch.rand(*shape, 4, generator=gen) > 0.5).double()
    return poses, expressions, trans, contacts


def test_root_velocity_values_on_a_known_walk():
    frames = torch.arange(5, dtype=torch.float64)
    trans = torch.stack([0.5 + 0.02 * frames, 0.9 + 0.01 * frames, -0.03 * frames], dim=-1)
    values = trans_to_root_velocity(trans, fps=30)
    assert torch.allclose(values[:, 0], torch.full((5,), 0.6, dtype=torch.float64))
    assert torch.allclose(values[:, 2], torch.full((5,), -0.9, dtype=torch.float64))
    assert torch.equal(values[:, 1], trans[:, 1])  # height stays absolute
    # Without a start position the path starts at the origin.
    decoded = root_velocity_to_trans(values, None, fps=30)
    assert torch.allclose(decoded[:, 0], 0.02 * frames)
    assert torch.allclose(decoded[:, 2], -0.03 * frames)


def test_last_frame_repeats_previous_velocity_and_single_frame_is_still():
    trans = torch.tensor([[0.0, 1.0, 0.0], [0.1, 1.0, 0.0], [0.3, 1.0, 0.0]], dtype=torch.float64)
    values = trans_to_root_velocity(trans, fps=10)
    assert torch.allclose(values[:, 0], torch.tensor([1.0, 2.0, 2.0], dtype=torch.float64))
    single = trans_to_root_velocity(trans[:1], fps=10)
    assert torch.equal(single, torch.tensor([[0.0, 1.0, 0.0]], dtype=torch.float64))
    assert torch.equal(root_velocity_to_trans(single, trans[0, [0, 2]], fps=10), trans[:1])


@pytest.mark.parametrize("fps", [30, 15])
def test_trans_round_trip_random_batched(fps: int):
    _, _, trans, _ = _random_motion((3, 2), 200, seed=1)
    trans = trans + torch.tensor([4.0, 0.0, -7.0], dtype=torch.float64)
    values = trans_to_root_velocity(trans, fps)
    back = root_velocity_to_trans(values, trans[..., 0, [0, 2]], fps)
    assert back.shape == trans.shape
    assert (back - trans).abs().max() < 1e-6


def test_root_velocity_is_differentiable_through_the_integral():
    values = torch.zeros(1, 10, 3, dtype=torch.float64, requires_grad=True)
    root_velocity_to_trans(values)[..., -1, 0].backward()
    grad = values.grad[0, :, 0]
    # x_9 = sum_{s<9} v_s / 30: every velocity but the last contributes 1/30.
    assert torch.allclose(grad[:-1], torch.full((9,), 1 / 30, dtype=torch.float64))
    assert grad[-1] == 0


def test_tokenizer_parts_replace_only_the_lower_translation():
    poses, expressions, trans, contacts = _random_motion((2,), 40, seed=2)
    parts = motion_to_tokenizer_parts(poses, expressions, trans, contacts)
    plain = split_pose(poses, expressions, trans, contacts)
    for part in (BodyPart.FACE, BodyPart.UPPER, BodyPart.HANDS):
        assert torch.equal(parts[part], plain[part])
    lower, plain_lower = parts[BodyPart.LOWER], plain[BodyPart.LOWER]
    assert lower.shape == (2, 40, 61)
    assert torch.equal(lower[..., :54], plain_lower[..., :54])
    assert torch.equal(lower[..., LOWER_CONTACT_SLICE], contacts)
    assert torch.equal(lower[..., LOWER_ROOT_SLICE], trans_to_root_velocity(trans))


def test_tokenizer_parts_are_invariant_to_horizontal_position():
    poses, expressions, trans, contacts = _random_motion((), 30, seed=3)
    shifted = trans + torch.tensor([2.5, 0.0, -1.0], dtype=torch.float64)
    a = motion_to_tokenizer_parts(poses, expressions, trans, contacts)[BodyPart.LOWER]
    b = motion_to_tokenizer_parts(poses, expressions, shifted, contacts)[BodyPart.LOWER]
    assert torch.allclose(a, b, atol=1e-12)
    # ... but not to height.
    lifted = trans + torch.tensor([0.0, 0.1, 0.0], dtype=torch.float64)
    c = motion_to_tokenizer_parts(poses, expressions, lifted, contacts)[BodyPart.LOWER]
    assert torch.allclose(c[..., 55] - a[..., 55], torch.tensor(0.1, dtype=torch.float64))


def test_round_trip_random_data():
    poses, expressions, trans, contacts = _random_motion((2, 3), 25, seed=4)
    parts = motion_to_tokenizer_parts(poses, expressions, trans, contacts)
    back, exp_back, trans_back = tokenizer_parts_to_motion(
        parts, start_xz=trans[..., 0, [0, 2]], eye_pose=poses[..., 69:75])
    assert (back - poses).abs().max() < 1e-6
    assert torch.equal(exp_back, expressions)
    assert (trans_back - trans).abs().max() < 1e-6


def test_round_trip_real_clip(beat2_sample):
    data = np.load(beat2_sample / "2_scott_0_1_1.npz")
    poses = torch.from_numpy(data["poses"]).double()
    expressions = torch.from_numpy(data["expressions"]).double()
    trans = torch.from_numpy(data["trans"]).double()
    contacts = torch.ones(len(poses), 4, dtype=torch.float64)
    parts = motion_to_tokenizer_parts(poses, expressions, trans, contacts)
    root = parts[BodyPart.LOWER][:, LOWER_ROOT_SLICE]
    # A standing speaker: slow horizontal root speed, height near the SMPL-X pelvis height.
    assert root[:, [0, 2]].abs().max() < 3.0 and (root[:, 1] - trans[:, 1]).abs().max() == 0
    back, exp_back, trans_back = tokenizer_parts_to_motion(
        parts, start_xz=trans[0, [0, 2]], eye_pose=poses[:, 69:75])
    assert (back - poses).abs().max() < 1e-5  # float32 source data, every angle < pi
    assert torch.equal(exp_back, expressions)
    assert (trans_back - trans).abs().max() < 1e-6


def test_seed_features_of_tokenizer_parts_equal_those_of_the_motion():
    poses, expressions, trans, contacts = _random_motion((2,), 30, seed=5)
    parts = motion_to_tokenizer_parts(poses, expressions, trans, contacts)
    seed = tokenizer_parts_to_seed_features(parts, eye_pose=poses[..., 69:75])
    torch.testing.assert_close(seed, motion_to_seed_features(poses, trans, contacts),
                               atol=1e-6, rtol=0)
    # no eye pose: the rest pose (identity), as :func:`merge_parts` writes
    rest = tokenizer_parts_to_seed_features(parts)
    identity = torch.tensor([1.0, 0, 0, 0, 1, 0], dtype=rest.dtype)
    assert torch.equal(rest[..., 23 * 6:25 * 6], identity.repeat(2, 30, 2))
    # decoder-like values: 6D off the rotation manifold is orthonormalised (the rotation the
    # decoded motion holds), contacts rounded to the 0/1 a training seed has
    noisy = {part: x + 0.05 * torch.randn_like(x) for part, x in parts.items()}
    seed = tokenizer_parts_to_seed_features(noisy)
    held, _, _ = tokenizer_parts_to_motion(noisy)
    expected = motion_to_seed_features(held, trans, contacts)
    torch.testing.assert_close(seed[..., :330], expected[..., :330], atol=1e-5, rtol=0)
    assert set(seed[..., 333:].unique().tolist()) <= {0.0, 1.0}
    assert torch.equal(seed[..., 333:], (noisy[BodyPart.LOWER][..., 57:61] > 0.5).double())
    assert torch.equal(seed[..., 330:333], noisy[BodyPart.LOWER][..., LOWER_ROOT_SLICE])


def test_shape_errors():
    with pytest.raises(ValueError, match=r"\[\.\.\., T, 3\]"):
        trans_to_root_velocity(torch.zeros(5, 2))
    with pytest.raises(ValueError, match="start_xz"):
        root_velocity_to_trans(torch.zeros(5, 3), torch.zeros(3))
