import numpy as np
import pytest
import torch

from semtalk.body.parts import (
    EYE_JOINTS,
    FULL_DIM,
    GENERATED_JOINTS,
    JOINT_NAMES,
    LOWER_CONTACT_SLICE,
    PARENTS,
    PART_DIMS,
    BodyPart,
    merge_parts,
    pose_to_full,
    split_pose,
)
from semtalk.body.rotation import axis_angle_to_matrix, geodesic_angle


def test_tables_match_beat2_layout():
    assert len(JOINT_NAMES) == 55 and len(PARENTS) == 55
    assert {p.value: p.dim for p in BodyPart} == {"face": 106, "upper": 78, "hands": 180,
                                                  "lower": 61}
    assert sum(PART_DIMS.values()) == 425 and FULL_DIM == 337
    assert BodyPart.UPPER.joints == (3, 6, 9, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21)
    assert BodyPart.LOWER.joints == (0, 1, 2, 4, 5, 7, 8, 10, 11)
    assert BodyPart.HANDS.joints == tuple(range(25, 55))
    assert len(GENERATED_JOINTS) == 53 and not set(EYE_JOINTS) & set(GENERATED_JOINTS)
    assert all(PARENTS[j] < j for j in range(1, 55)) and PARENTS[0] == -1
    # hand chains: index1 of each hand hangs off its wrist, index2 off index1
    assert PARENTS[25] == 20 and PARENTS[26] == 25 and PARENTS[40] == 21
    assert JOINT_NAMES[22] == "jaw" and JOINT_NAMES[54] == "right_thumb3"


def random_pose(t: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    poses = torch.randn(t, 165, generator=g, dtype=torch.float64) * 0.6
    return (poses, torch.randn(t, 100, generator=g, dtype=torch.float64),
            torch.randn(t, 3, generator=g, dtype=torch.float64),
            (torch.rand(t, 4, generator=g) > 0.5).double())


def test_split_merge_round_trip_random():
    poses, expressions, trans, contacts = random_pose(50)
    parts = split_pose(poses, expressions, trans, contacts)
    assert {p: v.shape for p, v in parts.items()} == {p: (50, p.dim) for p in BodyPart}
    back, exp_back, trans_back = merge_parts(parts, eye_pose=poses[:, 69:75])
    err = geodesic_angle(axis_angle_to_matrix(back.reshape(50, 55, 3)),
                         axis_angle_to_matrix(poses.reshape(50, 55, 3)), eps=0.0)
    assert err.max() < 1e-6
    assert torch.allclose(exp_back, expressions) and torch.allclose(trans_back, trans)
    assert torch.equal(parts[BodyPart.LOWER][..., LOWER_CONTACT_SLICE], contacts)


def test_merge_writes_given_eyes_and_rest_eyes_by_default():
    poses, expressions, trans, contacts = random_pose(5)
    parts = split_pose(poses, expressions, trans, contacts)
    rest, _, _ = merge_parts(parts)
    assert torch.equal(rest[:, 69:75], torch.zeros(5, 6, dtype=rest.dtype))
    eyes = torch.tensor([0.1, 0.2, 0.0, -0.1, 0.2, 0.0])
    seeded, _, _ = merge_parts(parts, eye_pose=eyes)
    assert torch.allclose(seeded[:, 69:75], eyes.double().expand(5, 6))


def test_merge_rejects_missing_or_misshaped_parts():
    poses, expressions, trans, contacts = random_pose(3)
    parts = split_pose(poses, expressions, trans, contacts)
    with pytest.raises(ValueError, match="missing"):
        merge_parts({k: v for k, v in parts.items() if k is not BodyPart.HANDS})
    parts[BodyPart.UPPER] = parts[BodyPart.UPPER][:, :70]
    with pytest.raises(ValueError, match="78 channels"):
        merge_parts(parts)


def test_full_vector_layout():
    poses, _, trans, contacts = random_pose(4)
    full = pose_to_full(poses, trans, contacts)
    assert full.shape == (4, 337)
    assert torch.equal(full[:, 330:333], trans) and torch.equal(full[:, 333:], contacts)


def test_real_clip_round_trip_exact(beat2_sample):
    data = np.load(beat2_sample / "2_scott_0_1_1.npz")
    poses = torch.from_numpy(data["poses"]).double()
    expressions = torch.from_numpy(data["expressions"])
    trans = torch.from_numpy(data["trans"])
    contacts = torch.zeros(len(poses), 4, dtype=torch.float64)
    parts = split_pose(poses, expressions, trans, contacts)
    back, exp_back, trans_back = merge_parts(parts, eye_pose=poses[:, 69:75])
    # Every BEAT2 angle is < pi, so axis-angle itself must come back, not just the rotation.
    assert (back - poses).abs().max() < 1e-5
    assert torch.equal(exp_back, expressions) and torch.equal(trans_back, trans)
