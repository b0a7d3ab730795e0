"""BVH export: exact round trip, SMPL-X hierarchy, and agreement with our forward kinematics."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from semtalk.body.parts import JOINT_NAMES, NUM_JOINTS, PARENTS
from semtalk.body.skeleton import BUILTIN_REST_JOINTS, BuiltinSkeleton
from semtalk.errors import DataError
from semtalk.export import read_bvh, write_bvh

T = 12


@pytest.fixture()
def motion() -> tuple[np.ndarray, np.ndarray]:
    """Random poses with hard cases: a near-pi rotation and a ZXY gimbal lock (x = 90 deg)."""
    rng = np.random.default_rng(0)
    poses = rng.normal(0.0, 0.8, (T, NUM_JOINTS * 3))
    poses[0, 18 * 3 : 19 * 3] = [0.0, np.pi - 1e-4, 0.0]
    poses[1, 16 * 3 : 17 * 3] = [np.pi / 2, 0.0, 0.0]
    trans = rng.normal(0.0, 0.5, (T, 3))
    return poses, trans


def matrices(poses: np.ndarray) -> np.ndarray:
    return Rotation.from_rotvec(poses.reshape(-1, 3)).as_matrix()


def test_round_trip_recovers_rotations_translation_and_fps(tmp_path, motion):
    poses, trans = motion
    path = write_bvh(poses, trans, tmp_path / "clip.bvh", fps=30)
    back = read_bvh(path)
    assert back.fps == 30.0
    assert np.abs(matrices(back.smplx_poses()) - matrices(poses)).max() < 1e-6
    assert np.abs(back.trans - trans).max() < 1e-6
    assert [p.name for p in tmp_path.iterdir()] == ["clip.bvh"]


def test_hierarchy_is_the_smplx_tree_with_rest_offsets_in_centimetres(tmp_path, motion):
    poses, trans = motion
    path = write_bvh(poses, trans, tmp_path / "clip.bvh")
    text = path.read_text()
    assert text.startswith("HIERARCHY\nROOT pelvis\n")
    assert text.count("JOINT ") == NUM_JOINTS - 1
    assert "CHANNELS 3 Zrotation Xrotation Yrotation" in text
    back = read_bvh(path)
    assert sorted(back.names) == sorted(JOINT_NAMES)
    for j, name in enumerate(back.names):
        parent = back.parents[j]
        expected = PARENTS[JOINT_NAMES.index(name)]
        assert (parent < 0 and expected < 0) or back.names[parent] == JOINT_NAMES[expected]
    assert back.offsets[0] == pytest.approx(BUILTIN_REST_JOINTS[0])
    # the raw file holds centimetres: left_hip's offset line is 100x its metre offset
    hip = (BUILTIN_REST_JOINTS[1] - BUILTIN_REST_JOINTS[0]) * 100
    assert f"OFFSET {hip[0]:.8f} {hip[1]:.8f} {hip[2]:.8f}" in text
    metres = read_bvh(write_bvh(poses, trans, tmp_path / "m.bvh", scale=1.0), scale=1.0)
    assert np.allclose(metres.offsets, back.offsets) and np.allclose(metres.trans, trans)


def bvh_joint_positions(motion) -> np.ndarray:
    """``[T, J, 3]`` world positions from a BvhMotion by plain BVH forward kinematics."""
    frames = motion.poses.shape[0]
    local = matrices(motion.poses).reshape(frames, len(motion.names), 3, 3)
    world = np.zeros_like(local)
    pos = np.zeros((frames, len(motion.names), 3))
    for j, parent in enumerate(motion.parents):  # file order: parents come first
        if parent < 0:
            world[:, j], pos[:, j] = local[:, j], motion.offsets[j] + motion.trans
        else:
            world[:, j] = world[:, parent] @ local[:, j]
            pos[:, j] = pos[:, parent] + world[:, parent] @ motion.offsets[j]
    return pos


def test_bvh_forward_kinematics_matches_the_builtin_skeleton(tmp_path, motion):
    poses, trans = motion
    back = read_bvh(write_bvh(poses, trans, tmp_path / "clip.bvh"))
    ours = BuiltinSkeleton().joints(torch.from_numpy(poses), torch.from_numpy(trans)).numpy()
    order = [back.names.index(n) for n in JOINT_NAMES]
    assert np.abs(bvh_joint_positions(back)[:, order] - ours).max() < 1e-6


def test_custom_rest_joints_and_bad_inputs(tmp_path, motion):
    poses, trans = motion
    rest = BUILTIN_REST_JOINTS * 1.1
    back = read_bvh(write_bvh(poses, trans, tmp_path / "big.bvh", rest_joints=rest))
    assert back.offsets[0] == pytest.approx(rest[0])
    with pytest.raises(ValueError, match="poses must be"):
        write_bvh(poses[:, :-3], trans, tmp_path / "bad.bvh")
    with pytest.raises(ValueError, match="trans must be"):
        write_bvh(poses, trans[:-1], tmp_path / "bad.bvh")
    with pytest.raises(ValueError, match="rest_joints"):
        write_bvh(poses, trans, tmp_path / "bad.bvh", rest_joints=rest[:24])
    assert not (tmp_path / "bad.bvh").exists()


def test_read_rejects_malformed_files(tmp_path, motion):
    poses, trans = motion
    good = write_bvh(poses, trans, tmp_path / "good.bvh").read_text()
    truncated = tmp_path / "truncated.bvh"
    truncated.write_text(good.rsplit("\n", 3)[0])  # drops frames: shape mismatch
    with pytest.raises(DataError, match="MOTION has shape"):
        read_bvh(truncated)
    no_motion = tmp_path / "no_motion.bvh"
    no_motion.write_text(good.split("MOTION")[0])
    with pytest.raises(DataError, match="no MOTION"):
        read_bvh(no_motion)
