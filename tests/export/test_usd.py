"""USD export: valid UsdSkel stages whose joints, skinned mesh and expression weights, read back
through OpenUSD itself, agree with semtalk's forward kinematics and the SMPL-X body model."""

from __future__ import annotations

import builtins
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("pxr", exc_type=ImportError,
                    reason="OpenUSD's Python bindings (pxr) cannot be imported: "
                           "pip install 'semtalk[usd]'")
from pxr import Usd, UsdGeom, UsdSkel, UsdValidation

from semtalk.body.motion import Motion
from semtalk.body.parts import JOINT_NAMES, NUM_JOINTS, PARENTS
from semtalk.body.skeleton import BuiltinSkeleton, SMPLXBodyModel
from semtalk.export.usd import joint_paths, pack_influences, write_usd

T = 9
MM = 1e-3


@pytest.fixture(scope="module")
def motion() -> Motion:
    """Random poses (with a near-pi rotation), translation, expressions and betas."""
    rng = np.random.default_rng(1)
    poses = rng.normal(0.0, 0.6, (T, NUM_JOINTS * 3))
    poses[0, 18 * 3 : 19 * 3] = [0.0, np.pi - 1e-3, 0.0]
    betas = np.zeros(300)
    betas[0] = 1.0  # the stand-in body grows by 10 %
    return Motion(poses, rng.normal(0.0, 1.0, (T, 100)), rng.normal(0.0, 0.5, (T, 3)), betas)


@pytest.fixture(scope="module")
def harder_smplx(tmp_path_factory: pytest.TempPathFactory) -> SMPLXBodyModel:
    """The stand-in SMPL-X model with a non-zero mean hand pose and vertices skinned to up to
    three joints, so both SMPL-X details the exporter must honour are exercised."""
    pytest.importorskip("smplx")
    from semtalk.data.synthetic.body_model import write_synthetic_smplx

    folder = tmp_path_factory.mktemp("smplx_usd")
    plain = write_synthetic_smplx(folder / "plain.npz", scale_beta0=0.1)
    data = dict(np.load(plain))
    rng = np.random.default_rng(2)
    data["hands_meanl"] = rng.normal(0.0, 0.3, 45).astype(np.float32)
    data["hands_meanr"] = rng.normal(0.0, 0.3, 45).astype(np.float32)
    weights = data["weights"]
    mixed = rng.choice(len(weights), 3000, replace=False)
    weights[mixed] *= 0.6
    weights[mixed, rng.integers(0, NUM_JOINTS, 3000)] += 0.25
    weights[mixed[:500], rng.integers(0, NUM_JOINTS, 500)] += 0.15
    data["weights"] = weights / weights.sum(axis=1, keepdims=True)  # SMPL-X's sum to 1
    path = folder / "smplx" / "SMPLX_NEUTRAL_2020.npz"
    path.parent.mkdir()
    np.savez(path, **data)
    return SMPLXBodyModel(path)


def validation_errors(stage_or_path: Usd.Stage | Path) -> list[str]:
    """Errors from all of OpenUSD's registered validators (``usdchecker``'s checks; OpenUSD 26
    replaced ``UsdUtils.ComplianceChecker`` by them)."""
    validators = UsdValidation.ValidationRegistry().GetOrLoadAllValidators()
    context = UsdValidation.ValidationContext(validators)
    stage = stage_or_path if isinstance(stage_or_path, Usd.Stage) \
        else Usd.Stage.Open(str(stage_or_path))
    found = context.Validate(stage)
    return [e.GetMessage() for e in found
            if e.GetType() == UsdValidation.ValidationErrorType.Error]


def read_joint_positions(path: Path) -> np.ndarray:
    """``[T, 55, 3]`` joint positions in stage world space, from UsdSkel's own composition."""
    stage = Usd.Stage.Open(str(path))
    cache = UsdSkel.Cache()
    root = UsdSkel.Root(stage.GetDefaultPrim())
    cache.Populate(root, Usd.TraverseInstanceProxies())
    skeleton = UsdSkel.Skeleton(stage.GetPrimAtPath("/Body/Skeleton"))
    query = cache.GetSkelQuery(skeleton)
    frames = []
    for t in range(int(stage.GetStartTimeCode()), int(stage.GetEndTimeCode()) + 1):
        xf_cache = UsdGeom.XformCache(t)
        world = np.array(query.ComputeJointWorldTransforms(xf_cache))  # [J, 4, 4] row vectors
        frames.append(world[:, 3, :3])
    return np.stack(frames)


def test_skeleton_only_joints_match_forward_kinematics(tmp_path, motion):
    path = write_usd(motion, tmp_path / "clip.usda")
    assert [p.name for p in tmp_path.iterdir()] == ["clip.usda"]  # no temp file left
    expected = BuiltinSkeleton().joints(torch.as_tensor(motion.poses, dtype=torch.float64),
                                        torch.as_tensor(motion.trans, dtype=torch.float64))
    error = np.abs(read_joint_positions(path) - expected.numpy()).max()
    assert error < MM
    assert error < 1e-5  # float32 storage: far below the 1 mm requirement


def test_stage_metadata_hierarchy_and_time_samples(tmp_path, motion):
    stage = Usd.Stage.Open(str(write_usd(motion, tmp_path / "clip.usdc")))
    assert stage.GetTimeCodesPerSecond() == 30
    assert (stage.GetStartTimeCode(), stage.GetEndTimeCode()) == (0, T - 1)
    assert UsdGeom.GetStageMetersPerUnit(stage) == 1.0
    assert UsdGeom.GetStageUpAxis(stage) == UsdGeom.Tokens.y
    assert stage.GetDefaultPrim().IsA(UsdSkel.Root)
    skeleton = UsdSkel.Skeleton(stage.GetPrimAtPath("/Body/Skeleton"))
    joints = list(skeleton.GetJointsAttr().Get())
    assert joints[21] == "pelvis/spine1/spine2/spine3/right_collar/right_shoulder/" \
                         "right_elbow/right_wrist"
    assert list(UsdSkel.Topology(joints).GetParentIndices()) == list(PARENTS)
    assert [j.split("/")[-1] for j in joints] == list(JOINT_NAMES)
    animation = UsdSkel.Animation(stage.GetPrimAtPath("/Body/Animation"))
    assert animation.GetRotationsAttr().GetTimeSamples() == list(range(T))
    assert not animation.GetBlendShapeWeightsAttr().HasAuthoredValue()  # no mesh, no shapes
    assert not stage.GetPrimAtPath("/Body/Mesh")


def test_up_z_turns_the_body_onto_the_xy_plane(tmp_path, motion):
    path = write_usd(motion, tmp_path / "clip.usd", up="z")
    assert UsdGeom.GetStageUpAxis(Usd.Stage.Open(str(path))) == UsdGeom.Tokens.z
    y_up = BuiltinSkeleton().joints(torch.as_tensor(motion.poses, dtype=torch.float64),
                                    torch.as_tensor(motion.trans, dtype=torch.float64)).numpy()
    z_up = np.stack([y_up[..., 0], -y_up[..., 2], y_up[..., 1]], -1)  # +90 deg about x
    assert np.abs(read_joint_positions(path) - z_up).max() < 1e-5


def test_skeleton_only_file_passes_usd_validation(tmp_path, motion):
    assert validation_errors(write_usd(motion, tmp_path / "clip.usda")) == []


def test_validation_reports_what_the_writer_must_author(tmp_path, motion, harder_smplx):
    """The validators are not silent: dropping pieces write_usd authors makes them complain."""
    stage = Usd.Stage.Open(str(write_usd(motion, tmp_path / "body.usda",
                                         body_model=harder_smplx)))
    stage.GetRootLayer().ClearDefaultPrim()
    stage.GetPrimAtPath("/Body/Mesh").RemoveAPI(UsdSkel.BindingAPI)
    errors = " ".join(validation_errors(stage))
    assert "defaultPrim" in errors
    assert "SkelBindingAPI" in errors


def test_mesh_file_passes_usd_validation(tmp_path, motion, harder_smplx):
    path = write_usd(motion, tmp_path / "body.usdc", body_model=harder_smplx)
    assert validation_errors(path) == []


def test_smplx_joints_and_expression_weights_round_trip(tmp_path, motion, harder_smplx):
    path = write_usd(motion, tmp_path / "body.usda", body_model=harder_smplx)
    expected = harder_smplx.joints(torch.as_tensor(motion.poses), torch.as_tensor(motion.trans),
                                   torch.as_tensor(motion.betas)).double().numpy()
    # the mean hand pose and the betas both matter: without them the fingers would be off
    assert np.abs(BuiltinSkeleton().joints(torch.as_tensor(motion.poses)).numpy()
                  + motion.trans[:, None] - expected).max() > 0.01
    assert np.abs(read_joint_positions(path) - expected).max() < MM

    stage = Usd.Stage.Open(str(path))
    animation = UsdSkel.Animation(stage.GetPrimAtPath("/Body/Animation"))
    weights = np.stack([np.array(animation.GetBlendShapeWeightsAttr().Get(t))
                        for t in range(T)])
    np.testing.assert_array_equal(weights, motion.expressions)
    assert list(animation.GetBlendShapesAttr().Get()) == [f"expression{k:03d}"
                                                         for k in range(100)]


def skinned_points(path: Path, frame: int) -> np.ndarray:
    """Mesh points at ``frame`` deformed by OpenUSD: blend shapes, then linear blend skinning."""
    stage = Usd.Stage.Open(str(path))
    cache = UsdSkel.Cache()
    cache.Populate(UsdSkel.Root(stage.GetDefaultPrim()), Usd.TraverseInstanceProxies())
    mesh = stage.GetPrimAtPath("/Body/Mesh")
    skel_query = cache.GetSkelQuery(UsdSkel.Skeleton(stage.GetPrimAtPath("/Body/Skeleton")))
    skinning = cache.GetSkinningQuery(mesh)
    points = UsdGeom.Mesh(mesh).GetPointsAttr().Get()
    anim_weights = skel_query.GetAnimQuery().ComputeBlendShapeWeights(frame)
    weights = skinning.GetBlendShapeMapper().Remap(anim_weights)
    shapes = UsdSkel.BlendShapeQuery(UsdSkel.BindingAPI(mesh))
    sub_weights, shape_ids, sub_ids = shapes.ComputeSubShapeWeights(weights)
    assert shapes.ComputeDeformedPoints(sub_weights, shape_ids, sub_ids,
                                        shapes.ComputeBlendShapePointIndices(),
                                        shapes.ComputeSubShapePointOffsets(), points)
    transforms = skel_query.ComputeSkinningTransforms(frame)
    assert skinning.ComputeSkinnedPoints(transforms, points, frame)
    return np.array(points)


def test_skinned_mesh_matches_the_smplx_vertices(tmp_path, motion, harder_smplx):
    """The stand-in has no pose correctives, so UsdSkel's skinning must give SMPL-X exactly."""
    path = write_usd(motion, tmp_path / "body.usdc", body_model=harder_smplx)
    stage = Usd.Stage.Open(str(path))
    binding = UsdSkel.BindingAPI(stage.GetPrimAtPath("/Body/Mesh"))
    assert binding.GetJointIndicesPrimvar().GetElementSize() == 3
    assert binding.GetJointWeightsPrimvar().GetElementSize() == 3
    expected = harder_smplx.vertices(
        torch.as_tensor(motion.poses), torch.as_tensor(motion.trans),
        torch.as_tensor(motion.betas), torch.as_tensor(motion.expressions)).double().numpy()
    for frame in (0, T - 1):
        assert np.abs(skinned_points(path, frame) - expected[frame]).max() < MM


def test_pack_influences_keeps_nonzero_weights_largest_first():
    weights = np.array([[0.0, 0.7, 0.0, 0.3],
                        [1.0, 0.0, 0.0, 0.0],
                        [0.0, 0.2, 0.5, 0.3]])
    indices, values = pack_influences(weights)
    np.testing.assert_array_equal(indices, [[1, 3, 0], [0, 0, 0], [2, 3, 1]])
    np.testing.assert_allclose(values, [[0.7, 0.3, 0.0], [1.0, 0.0, 0.0], [0.5, 0.3, 0.2]])


def test_joint_paths_nest_by_hierarchy():
    paths = joint_paths((-1, 0, 1, 0), ("a", "b", "c", "d"))
    assert paths == ["a", "a/b", "a/b/c", "a/d"]


def test_bad_arguments_are_refused_and_leave_no_file(tmp_path, motion):
    with pytest.raises(ValueError, match=r"\.usda"):
        write_usd(motion, tmp_path / "clip.fbx")
    with pytest.raises(ValueError, match="up"):
        write_usd(motion, tmp_path / "clip.usda", up="x")
    broken = Motion(motion.poses.copy(), motion.expressions, motion.trans)
    broken.poses[3, 7] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        write_usd(broken, tmp_path / "clip.usda")
    assert list(tmp_path.iterdir()) == []


def test_missing_pxr_names_the_extra(tmp_path, motion, monkeypatch):
    real_import = builtins.__import__

    def no_pxr(name, *args, **kwargs):  # type: ignore[no-untyped-def]
        if name == "pxr" or name.startswith("pxr."):
            raise ImportError("No module named 'pxr'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_pxr)
    with pytest.raises(ImportError, match=r"pip install 'semtalk\[usd\]'"):
        write_usd(motion, tmp_path / "clip.usda")
    assert list(tmp_path.iterdir()) == []


class ShiftedSkeleton:
    """A body model that is neither built-in nor SMPL-X: the built-in one moved up 1 m."""

    name = "shifted"

    def joints(self, poses, trans=None, betas=None, expressions=None):  # type: ignore[no-untyped-def]
        return BuiltinSkeleton().joints(poses, trans) + torch.tensor([0.0, 1.0, 0.0])


def test_any_body_model_gives_its_zero_pose_as_the_rest_pose(tmp_path, motion):
    path = write_usd(motion, tmp_path / "clip.usdc", body_model=ShiftedSkeleton())
    expected = ShiftedSkeleton().joints(torch.as_tensor(motion.poses, dtype=torch.float64),
                                        torch.as_tensor(motion.trans, dtype=torch.float64))
    assert np.abs(read_joint_positions(path) - expected.numpy()).max() < 1e-5
