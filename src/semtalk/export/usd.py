"""OpenUSD scenes with a UsdSkel skeleton (and optionally a skinned SMPL-X mesh) for a motion.

Units and axes: metres (``metersPerUnit = 1``); SMPL-X's frame inside the skeleton (y up, x
towards the body's left, z forward). The stage's ``upAxis`` is ``Y``; with ``up="z"`` it is
``Z`` and the ``SkelRoot`` carries a +90 degree rotation about x, so the body stands on the xy
plane facing -y (the front view of z-up tools) while the joint data stay in SMPL-X's frame.
Time: one time code per motion frame, ``timeCodesPerSecond = framesPerSecond = motion.fps``
(30), ``startTimeCode = 0``, ``endTimeCode = T - 1``.

Layout written by :func:`write_usd` (``/Body`` is the default prim)::

    /Body                 SkelRoot (rotateX 90 when up="z")
    /Body/Skeleton        Skeleton: 55 joints named by their path in the SMPL-X tree
                          ("pelvis/spine1/spine2/..."), bind and rest transforms
    /Body/Animation       SkelAnimation: per-frame local joint rotations (quaternions) and
                          translations (rest bone offsets; the root's is rest pelvis + trans),
                          and, with a mesh, blendShapeWeights = the 100 expression coefficients
    /Body/Mesh            (with an SMPL-X body model) the body shaped by the betas, skinned to
                          the skeleton; /Body/Mesh/expression000..099 are its BlendShapes

The skeleton's rest pose is the SMPL-X T-pose: the built-in skeleton's joints
(:data:`semtalk.body.skeleton.BUILTIN_REST_JOINTS`) by default, or the body model's joints for
the motion's betas. Joint world positions computed from the file equal semtalk's forward
kinematics. For an :class:`~semtalk.body.skeleton.SMPLXBodyModel`, rotations include the
model's mean hand pose (what SMPL-X adds to BEAT2's finger rotations), so fingers match the
SMPL-X body; the mesh is deformed by linear blend skinning and the expression blend shapes, but
not by SMPL-X's pose-corrective blend shapes (UsdSkel has none), and the jaw and eye joints
keep their neutral-expression rest positions.

What a user sees: usdview (``usdview clip.usda``) plays the animated mesh, or the skeleton
alone (shown as bones) when there is no mesh, over 0..T-1 at 30 fps. Blender's USD importer
(File > Import > Universal Scene Description, "Import Skeletons" and "Import Blend Shapes" on)
gives an armature with one action and a mesh with 100 shape keys driven by it; Omniverse
(USD Composer) plays the SkelAnimation on the timeline. Files are ``.usda`` (text), ``.usdc``
(binary) or ``.usd`` (binary); for long clips prefer ``.usdc``/``.usd``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy.spatial.transform import Rotation

from semtalk.body.motion import Motion
from semtalk.body.parts import JOINT_NAMES, NUM_JOINTS, PARENTS, POSE_DIM
from semtalk.body.skeleton import (
    BUILTIN_REST_JOINTS,
    BodyModel,
    BuiltinSkeleton,
    SMPLXBodyModel,
)

USD_SUFFIXES = (".usd", ".usda", ".usdc")
UP_AXES = ("y", "z")
ROOT_PATH = "/Body"
SKELETON_PATH = f"{ROOT_PATH}/Skeleton"
ANIMATION_PATH = f"{ROOT_PATH}/Animation"
MESH_PATH = f"{ROOT_PATH}/Mesh"
EXPRESSION_NAME = "expression{:03d}"
"""Name of expression coefficient ``k``'s blend shape (prim and ``blendShapes`` token)."""


def joint_paths(parents: tuple[int, ...] = PARENTS,
                names: tuple[str, ...] = JOINT_NAMES) -> list[str]:
    """UsdSkel joint tokens: each joint's name prefixed by its ancestors' (``"a/b/c"``)."""
    paths: list[str] = []
    for j, p in enumerate(parents):
        paths.append(names[j] if p < 0 else f"{paths[p]}/{names[j]}")
    return paths


def _rest_joints(body_model: BodyModel | None, betas: np.ndarray) -> np.ndarray:
    """``[55, 3]`` rest (T-pose) joints of the body the file describes, float64."""
    if body_model is None:
        return np.asarray(BUILTIN_REST_JOINTS, dtype=np.float64)
    if isinstance(body_model, SMPLXBodyModel):
        return body_model.rest_shape(betas)[1]
    if isinstance(body_model, BuiltinSkeleton):
        return body_model.rest_joints.numpy().astype(np.float64)
    zero = torch.zeros(1, POSE_DIM, dtype=torch.float64)
    return body_model.joints(zero, betas=torch.as_tensor(betas)).reshape(NUM_JOINTS, 3) \
        .detach().cpu().numpy().astype(np.float64)


def pack_influences(weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-vertex joint influences in UsdSkel's layout.

    Args:
        weights: ``[V, J]`` skinning weights.

    Returns:
        ``(indices [V, K] int32, values [V, K] float32)``, ``K`` the largest number of non-zero
        weights on one vertex (at least 1); each row holds its non-zero weights, largest first,
        then zero weights on joint 0.
    """
    weights = np.asarray(weights, dtype=np.float32)
    count = max(1, int((weights != 0).sum(axis=1).max(initial=0)))
    order = np.argsort(-weights, axis=1, kind="stable")[:, :count]
    values = np.take_along_axis(weights, order, axis=1)
    order[values == 0] = 0
    return order.astype(np.int32), values


def _to_transforms(translations: np.ndarray) -> np.ndarray:
    """``[J, 4, 4]`` row-vector (Gf) matrices translating by ``translations [J, 3]``."""
    out = np.tile(np.eye(4), (translations.shape[0], 1, 1))
    out[:, 3, :3] = translations
    return out


def _define_skeleton(stage: Any, rest: np.ndarray, paths: list[str]) -> Any:
    from pxr import UsdSkel, Vt

    skeleton = UsdSkel.Skeleton.Define(stage, SKELETON_PATH)
    offsets = rest.copy()
    offsets[1:] = rest[1:] - rest[list(PARENTS[1:])]
    skeleton.CreateJointsAttr(Vt.TokenArray(paths))
    skeleton.CreateJointNamesAttr(Vt.TokenArray(list(JOINT_NAMES)))
    skeleton.CreateBindTransformsAttr(Vt.Matrix4dArray.FromNumpy(_to_transforms(rest)))
    skeleton.CreateRestTransformsAttr(Vt.Matrix4dArray.FromNumpy(_to_transforms(offsets)))
    return skeleton


def _define_animation(stage: Any, motion: Motion, rest: np.ndarray, paths: list[str],
                      pose_mean: np.ndarray | None, with_expressions: bool) -> Any:
    """The SkelAnimation: local rotations, translations and expression weights per frame."""
    from pxr import Gf, UsdSkel, Vt

    animation = UsdSkel.Animation.Define(stage, ANIMATION_PATH)
    animation.CreateJointsAttr(Vt.TokenArray(paths))
    poses = motion.poses.astype(np.float64)
    if pose_mean is not None:
        poses = poses + pose_mean
    num_frames = motion.num_frames
    quats = Rotation.from_rotvec(poses.reshape(-1, 3)).as_quat()  # (x, y, z, w): Gf's layout
    quats = quats.reshape(num_frames, NUM_JOINTS, 4).astype(np.float32)
    offsets = rest.copy()
    offsets[1:] = rest[1:] - rest[list(PARENTS[1:])]
    translations = np.repeat(offsets[None], num_frames, axis=0)
    translations[:, 0] += motion.trans.astype(np.float64)
    translations = translations.astype(np.float32)
    rotations_attr = animation.CreateRotationsAttr()
    translations_attr = animation.CreateTranslationsAttr()
    animation.CreateScalesAttr(Vt.Vec3hArray(NUM_JOINTS, Gf.Vec3h(1.0, 1.0, 1.0)))
    weights_attr = None
    if with_expressions:
        names = [EXPRESSION_NAME.format(k) for k in range(motion.expressions.shape[1])]
        animation.CreateBlendShapesAttr(Vt.TokenArray(names))
        weights_attr = animation.CreateBlendShapeWeightsAttr()
    for frame in range(num_frames):
        rotations_attr.Set(Vt.QuatfArray.FromNumpy(quats[frame]), frame)
        translations_attr.Set(Vt.Vec3fArray.FromNumpy(translations[frame]), frame)
        if weights_attr is not None:
            weights_attr.Set(Vt.FloatArray.FromNumpy(motion.expressions[frame]), frame)
    return animation


def _define_mesh(stage: Any, body_model: SMPLXBodyModel, betas: np.ndarray,
                 skeleton: Any) -> None:
    """The skinned body mesh with one BlendShape per expression coefficient."""
    from pxr import Gf, Sdf, UsdGeom, UsdSkel, Vt

    vertices, _ = body_model.rest_shape(betas)
    points = vertices.astype(np.float32)
    faces = body_model.faces.astype(np.int32)
    mesh = UsdGeom.Mesh.Define(stage, MESH_PATH)
    mesh.CreatePointsAttr(Vt.Vec3fArray.FromNumpy(points))
    mesh.CreateFaceVertexCountsAttr(Vt.IntArray.FromNumpy(np.full(len(faces), 3, np.int32)))
    mesh.CreateFaceVertexIndicesAttr(Vt.IntArray.FromNumpy(faces.reshape(-1)))
    mesh.CreateSubdivisionSchemeAttr(UsdGeom.Tokens.none)
    mesh.CreateExtentAttr(Vt.Vec3fArray.FromNumpy(
        np.stack([points.min(axis=0), points.max(axis=0)])))

    binding = UsdSkel.BindingAPI.Apply(mesh.GetPrim())
    binding.CreateSkeletonRel().SetTargets([skeleton.GetPath()])
    indices, values = pack_influences(body_model.skinning_weights)
    count = indices.shape[1]
    binding.CreateJointIndicesPrimvar(False, count).Set(
        Vt.IntArray.FromNumpy(indices.reshape(-1)))
    binding.CreateJointWeightsPrimvar(False, count).Set(
        Vt.FloatArray.FromNumpy(values.reshape(-1)))
    binding.CreateGeomBindTransformAttr(Gf.Matrix4d(1.0))

    directions = body_model.expression_directions.astype(np.float32)  # [V, 3, E]
    names, targets = [], []
    for k in range(directions.shape[-1]):
        name = EXPRESSION_NAME.format(k)
        offsets = directions[:, :, k]
        moved = np.flatnonzero(np.abs(offsets).max(axis=1) > 0)
        if moved.size == 0:  # an all-zero shape: one zero offset keeps it well-formed
            moved = np.zeros(1, dtype=np.int64)
        shape = UsdSkel.BlendShape.Define(stage, f"{MESH_PATH}/{name}")
        shape.CreateOffsetsAttr(Vt.Vec3fArray.FromNumpy(np.ascontiguousarray(offsets[moved])))
        shape.CreatePointIndicesAttr(Vt.IntArray.FromNumpy(moved.astype(np.int32)))
        names.append(name)
        targets.append(Sdf.Path(f"{MESH_PATH}/{name}"))
    binding.CreateBlendShapesAttr(Vt.TokenArray(names))
    binding.CreateBlendShapeTargetsRel().SetTargets(targets)


def write_usd(
    motion: Motion,
    path: str | Path,
    *,
    body_model: BodyModel | None = None,
    up: str = "y",
) -> Path:
    """Write a motion as an OpenUSD scene with a UsdSkel skeleton, atomically.

    See the module docstring for the layout, units and axes.

    Args:
        motion: the motion (poses, trans, expressions, betas, fps).
        path: the file to write: ``.usda`` (text), ``.usdc`` or ``.usd`` (binary).
        body_model: ``None`` or a :class:`BuiltinSkeleton`: a skeleton with the built-in
            proportions, no mesh. An :class:`SMPLXBodyModel`: the skeleton of the body shaped
            by ``motion.betas``, plus its skinned mesh and 100 expression blend shapes. Any
            other :class:`BodyModel`: its zero-pose joints for the betas as the rest pose.
        up: the stage's up axis, ``"y"`` (SMPL-X's, default) or ``"z"``.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.

    Raises:
        ImportError: OpenUSD's Python bindings (``pxr``) are not installed.
        ValueError: bad suffix, up axis, frame rate or non-finite motion.
    """
    path = Path(path)
    if path.suffix.lower() not in USD_SUFFIXES:
        raise ValueError(f"{path}: a USD file must end in one of {', '.join(USD_SUFFIXES)}")
    if up not in UP_AXES:
        raise ValueError(f"up must be one of {UP_AXES}, got {up!r}")
    if not motion.fps > 0:
        raise ValueError(f"motion.fps must be positive, got {motion.fps}")
    if not (np.isfinite(motion.poses).all() and np.isfinite(motion.trans).all()
            and np.isfinite(motion.expressions).all() and np.isfinite(motion.betas).all()):
        raise ValueError("motion has NaN or Inf values")
    try:
        from pxr import Usd, UsdGeom, UsdSkel
    except ImportError as exc:
        raise ImportError("USD export needs OpenUSD's Python bindings: "
                          "pip install 'semtalk[usd]'") from exc
    from semtalk.fileio import atomic_path

    smplx_model = body_model if isinstance(body_model, SMPLXBodyModel) else None
    rest = _rest_joints(body_model, motion.betas)
    paths = joint_paths()

    stage = Usd.Stage.CreateInMemory()
    UsdGeom.SetStageMetersPerUnit(stage, 1.0)
    UsdGeom.SetStageUpAxis(stage, UsdGeom.Tokens.y if up == "y" else UsdGeom.Tokens.z)
    stage.SetTimeCodesPerSecond(float(motion.fps))
    stage.SetFramesPerSecond(float(motion.fps))
    stage.SetStartTimeCode(0.0)
    stage.SetEndTimeCode(float(motion.num_frames - 1))

    root = UsdSkel.Root.Define(stage, ROOT_PATH)
    stage.SetDefaultPrim(root.GetPrim())
    if up == "z":
        root.AddRotateXOp().Set(90.0)
    skeleton = _define_skeleton(stage, rest, paths)
    animation = _define_animation(
        stage, motion, rest, paths,
        pose_mean=None if smplx_model is None else smplx_model.pose_mean.astype(np.float64),
        with_expressions=smplx_model is not None)
    skel_binding = UsdSkel.BindingAPI.Apply(skeleton.GetPrim())
    skel_binding.CreateAnimationSourceRel().SetTargets([animation.GetPath()])
    if smplx_model is not None:
        _define_mesh(stage, smplx_model, motion.betas, skeleton)

    with atomic_path(path) as tmp:
        if not stage.GetRootLayer().Export(str(tmp)):
            raise OSError(f"{path}: USD could not write the file")
    return path
