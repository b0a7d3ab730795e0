import numpy as np
import pytest
import torch

from semtalk.body.parts import FOOT_JOINTS, HEAD, JOINT_NAMES, NUM_JOINTS, PARENTS
from semtalk.body.skeleton import (
    BUILTIN_REST_JOINTS,
    BodyModel,
    BuiltinSkeleton,
    SMPLXBodyModel,
    foot_contacts,
    load_body_model,
)
from semtalk.data.synthetic.body_model import write_synthetic_smplx


def test_rest_skeleton_has_human_proportions():
    rest = BUILTIN_REST_JOINTS
    floor = rest[[10, 11], 1].min() - 0.03
    height_of = {name: rest[i, 1] - floor for i, name in enumerate(JOINT_NAMES)}
    assert 1.55 < height_of["head"] < 1.70
    assert 0.85 < height_of["left_hip"] < 0.95 and 0.45 < height_of["left_knee"] < 0.55
    # left side is +x, mirrored exactly on the right
    for i, name in enumerate(JOINT_NAMES):
        if name.startswith("left_"):
            j = JOINT_NAMES.index("right_" + name[5:])
            assert rest[i, 0] > 0 and np.allclose(rest[j], rest[i] * [-1, 1, 1])
    bones = np.linalg.norm(rest[1:] - rest[list(PARENTS[1:])], axis=1)
    assert bones.min() > 0.015 and bones.max() < 0.45


def test_fk_zero_pose_gives_rest_and_translation_adds():
    sk = BuiltinSkeleton()
    joints = sk.joints(torch.zeros(2, 165, dtype=torch.float64),
                       torch.tensor([[0.0, 0.0, 0.0], [1.0, 2.0, 3.0]], dtype=torch.float64))
    assert torch.allclose(joints[0], torch.tensor(BUILTIN_REST_JOINTS))
    assert torch.allclose(joints[1] - joints[0], torch.tensor([1.0, 2.0, 3.0],
                                                              dtype=torch.float64))


def test_fk_rotating_elbow_moves_only_its_subtree():
    sk = BuiltinSkeleton()
    poses = torch.zeros(1, 165, dtype=torch.float64)
    poses[0, 18 * 3 + 1] = -np.pi / 2  # left elbow flexion about y
    joints = sk.joints(poses)[0]
    rest = torch.tensor(BUILTIN_REST_JOINTS)
    moved = (joints - rest).norm(dim=-1) > 1e-9
    subtree = {20, *range(25, 40)}
    assert set(torch.nonzero(moved).flatten().tolist()) == subtree
    forearm = joints[20] - joints[18]
    assert forearm[2] > 0.2 and abs(forearm[0]) < 0.01  # bent forward, bone length kept
    assert torch.isclose(forearm.norm(), (rest[20] - rest[18]).norm())


def test_fk_batch_shapes_and_global_orient():
    sk = BuiltinSkeleton()
    poses = torch.zeros(3, 7, 165, dtype=torch.float64)
    poses[..., 1] = np.pi  # turn the whole body around the vertical axis
    joints = sk.joints(poses)
    assert joints.shape == (3, 7, NUM_JOINTS, 3)
    pelvis = torch.tensor(BUILTIN_REST_JOINTS[0])
    rel = joints[0, 0] - pelvis
    rest_rel = torch.tensor(BUILTIN_REST_JOINTS) - pelvis
    assert torch.allclose(rel, rest_rel * torch.tensor([-1.0, 1.0, -1.0], dtype=torch.float64),
                          atol=1e-12)


def test_foot_contacts_definition():
    joints = torch.zeros(6, NUM_JOINTS, 3)
    joints[:, 7, 0] = torch.tensor([0.0, 0.005, 0.01, 0.03, 0.05, 0.05])  # left ankle moves
    contacts = foot_contacts(joints)
    assert contacts.shape == (6, 4)
    assert contacts[:, 0].tolist() == [1.0, 1.0, 0.0, 0.0, 1.0, 1.0]
    assert contacts[:, 1:].eq(1).all() and contacts[-1].eq(1).all()


def test_real_clip_joints_are_plausible(beat2_sample):
    data = np.load(beat2_sample / "2_scott_0_1_1.npz")
    joints = BuiltinSkeleton().joints(torch.from_numpy(data["poses"]).double(),
                                      torch.from_numpy(data["trans"]))
    height = joints[..., 1]
    lowest_foot = height[:, list(FOOT_JOINTS)].min(dim=1).values
    head_above_feet = height[:, HEAD] - lowest_foot
    assert lowest_foot.abs().median() < 0.1  # feet near the floor (y = 0)
    assert 1.5 < head_above_feet.median() < 1.9
    assert (head_above_feet > 1.4).float().mean() > 0.95
    contacts = foot_contacts(joints)
    assert 0.6 < contacts.mean() < 0.99  # mostly standing, some steps


def test_smplx_path_matches_builtin_fk_on_the_same_skeleton(tiny_smplx):
    model = load_body_model(tiny_smplx.parent)
    assert isinstance(model, SMPLXBodyModel) and isinstance(model, BodyModel)
    g = torch.Generator().manual_seed(1)
    poses = torch.randn(40, 165, generator=g) * 0.5
    trans = torch.randn(40, 3, generator=g)
    exact = model.joints(poses, trans)
    approx = BuiltinSkeleton().joints(poses.double(), trans.double())
    assert exact.shape == (40, NUM_JOINTS, 3)
    assert torch.allclose(exact.double(), approx, atol=1e-5)


def test_smplx_path_uses_all_300_betas(tiny_smplx):
    model = SMPLXBodyModel(tiny_smplx)
    poses = torch.zeros(2, 165)
    betas = torch.zeros(300)
    betas[0] = 1.0  # shapedirs[..., 0] scales the template by 10 %
    base = model.joints(poses)
    scaled = model.joints(poses, betas=betas)
    assert torch.allclose(scaled, base * 1.1, atol=1e-5)


def test_smplx_model_without_expression_space_is_rejected(tmp_path):
    pytest.importorskip("smplx")
    path = write_synthetic_smplx(tmp_path / "SMPLX_NEUTRAL_2020.npz", shape_components=20)
    with pytest.raises(ValueError, match="300 \\+ 100 shape components"):
        SMPLXBodyModel(path)


def test_missing_smplx_file_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"no SMPLX_NEUTRAL_2020\.npz"):
        SMPLXBodyModel(tmp_path)
    with pytest.raises(FileNotFoundError, match="not found"):
        SMPLXBodyModel(tmp_path / "nope.npz")


def test_smplx_rest_shape_is_the_zero_pose_body_for_the_betas(tiny_smplx_model):
    betas = np.zeros(300)
    betas[0] = 1.0  # the stand-in grows by 10 %
    vertices, joints = tiny_smplx_model.rest_shape(betas)
    zero = torch.zeros(1, 165)
    expected_joints = tiny_smplx_model.joints(zero, betas=torch.as_tensor(betas))[0]
    expected_vertices = tiny_smplx_model.vertices(zero, betas=torch.as_tensor(betas))[0]
    assert np.abs(joints - expected_joints.double().numpy()).max() < 1e-5
    assert np.abs(vertices - expected_vertices.double().numpy()).max() < 1e-5
    assert np.abs(joints - 1.1 * BUILTIN_REST_JOINTS).max() < 1e-5
    assert tiny_smplx_model.pose_mean.shape == (165,)
    assert tiny_smplx_model.expression_directions.shape == (vertices.shape[0], 3, 100)
