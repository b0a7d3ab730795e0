"""The SMPL-X rig an exporter writes: rest skeleton, per-frame joint rotations, skinned mesh.

Every format that carries a skeleton (glTF, USD, FBX) needs the same facts about a
:class:`~semtalk.body.motion.Motion` and a body model; :func:`build_rig` gathers them once:

- ``rest_joints``: the 55 rest (T-pose) joint positions in metres: the built-in skeleton's, or
  the user's SMPL-X model shaped by the motion's betas (``J_regressor @ (v_template +
  shapedirs @ betas)``, exactly what SMPL-X does);
- ``pose_offset``: axis-angle added to every frame's pose before it becomes a joint rotation:
  zero for the built-in skeleton, SMPL-X's mean hand pose for an SMPL-X model loaded with
  ``flat_hand_mean=False`` (BEAT2's convention), so a file's finger joints match SMPL-X's;
- ``mesh`` (SMPL-X models only): the rest vertices shaped by the betas, the triangles, the
  ``[V, 55]`` skinning weights and the 100 expression blendshapes as ``[100, V, 3]`` offsets.

What a skinned file cannot carry: SMPL-X's pose-corrective blendshapes (``posedirs``), and the
small move of the joints that expressions cause through the joint regressor; files match
SMPL-X's linear blend skinning of the shaped, expressive rest mesh.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from scipy.spatial.transform import Rotation

from semtalk.body.parts import EXPRESSION_DIM, NUM_JOINTS, POSE_DIM
from semtalk.body.skeleton import BUILTIN_REST_JOINTS, BodyModel, BuiltinSkeleton, SMPLXBodyModel

NUM_BETAS = 300


@dataclass(frozen=True)
class SkinnedMesh:
    """An SMPL-X surface in its rest pose, shaped by one body's betas.

    Attributes:
        vertices: ``[V, 3]`` rest vertices in metres.
        faces: ``[F, 3]`` triangle vertex indices (counter-clockwise seen from outside).
        weights: ``[V, 55]`` linear-blend-skinning weights (rows sum to 1).
        expression_offsets: ``[100, V, 3]`` vertex offsets per unit of each expression
            coefficient (added to the rest vertices before skinning).
    """

    vertices: np.ndarray
    faces: np.ndarray
    weights: np.ndarray
    expression_offsets: np.ndarray

    @property
    def num_vertices(self) -> int:
        return int(self.vertices.shape[0])

    def normals(self) -> np.ndarray:
        """``[V, 3]`` unit vertex normals of the rest mesh (area-weighted face normals;
        ``+y`` for a vertex on no triangle)."""
        tri = self.vertices[self.faces]
        face_normals = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
        normals = np.zeros_like(self.vertices)
        for corner in range(3):
            np.add.at(normals, self.faces[:, corner], face_normals)
        length = np.linalg.norm(normals, axis=1, keepdims=True)
        unit = np.divide(normals, length, out=np.zeros_like(normals), where=length > 1e-12)
        unit[length[:, 0] <= 1e-12] = (0.0, 1.0, 0.0)
        return unit

    def top_influences(self, count: int) -> tuple[np.ndarray, np.ndarray]:
        """The ``count`` largest skinning weights of each vertex, renormalised.

        Returns:
            ``(joints [V, count] int, weights [V, count] float64)``, largest weight first;
            unused slots (a vertex on fewer joints) have joint 0 and weight 0.
        """
        if not 1 <= count <= NUM_JOINTS:
            raise ValueError(f"count must be in 1..{NUM_JOINTS}, got {count}")
        order = np.argsort(-self.weights, axis=1, kind="stable")[:, :count]
        weights = np.take_along_axis(self.weights, order, axis=1).astype(np.float64)
        weights = np.where(weights > 0, weights, 0.0)
        total = weights.sum(axis=1, keepdims=True)
        if (total <= 0).any():
            bad = int(np.argmax(total[:, 0] <= 0))
            raise ValueError(f"vertex {bad} has no positive skinning weight")
        weights /= total
        joints = np.where(weights > 0, order, 0)
        return joints, weights


@dataclass(frozen=True)
class Rig:
    """What an exporter writes for one motion: skeleton, rotations to apply, optional mesh.

    Attributes:
        rest_joints: ``[55, 3]`` rest joint positions in metres.
        pose_offset: ``[165]`` axis-angle added to each frame's pose (see the module docs).
        mesh: the skinned surface, or ``None`` for a skeleton-only body model.
        body_model: the body model's name (``"builtin"``, ``"smplx"`` ...).
    """

    rest_joints: np.ndarray
    pose_offset: np.ndarray
    mesh: SkinnedMesh | None
    body_model: str

    def local_rotations(self, poses: np.ndarray) -> Rotation:
        """Each joint's local rotation in each frame: ``T * 55`` rotations, frame-major."""
        poses = np.asarray(poses, dtype=np.float64)
        if poses.ndim != 2 or poses.shape[1] != POSE_DIM:
            raise ValueError(f"poses must be [T, {POSE_DIM}], got {poses.shape}")
        return Rotation.from_rotvec((poses + self.pose_offset).reshape(-1, 3))


def _betas(betas: np.ndarray | None) -> np.ndarray:
    row = np.zeros(NUM_BETAS) if betas is None else np.asarray(betas, np.float64).reshape(-1)
    return np.pad(row[:NUM_BETAS], (0, max(0, NUM_BETAS - row.shape[0])))


def _smplx_rig(body: SMPLXBodyModel, betas: np.ndarray, with_mesh: bool) -> Rig:
    model = body.model

    def array(name: str) -> np.ndarray:
        return np.asarray(getattr(model, name).detach().cpu().numpy(), dtype=np.float64)

    with torch.no_grad():  # [V, 3, 300] @ [300] in the model's float32 (0.1 µm at most off)
        shapedirs = model.shapedirs[..., :NUM_BETAS]
        offsets = shapedirs @ torch.from_numpy(betas).to(shapedirs)
    vertices = array("v_template").reshape(-1, 3) + offsets.cpu().numpy().astype(np.float64)
    rest_joints = array("J_regressor")[:NUM_JOINTS] @ vertices
    pose_offset = array("pose_mean").reshape(-1)[:POSE_DIM]
    mesh = None
    if with_mesh:
        offsets = array("expr_dirs")[..., :EXPRESSION_DIM]  # [V, 3, 100]
        mesh = SkinnedMesh(vertices=vertices, faces=body.faces,
                           weights=np.asarray(body.skinning_weights, np.float64),
                           expression_offsets=np.ascontiguousarray(offsets.transpose(2, 0, 1)))
    return Rig(rest_joints, pose_offset, mesh, body.name)


def build_rig(body_model: BodyModel | None = None, betas: np.ndarray | None = None, *,
              with_mesh: bool = True) -> Rig:
    """The rig of ``body_model`` for a body of shape ``betas``.

    Args:
        body_model: ``None`` or a :class:`~semtalk.body.skeleton.BuiltinSkeleton` (its rest
            joints, no mesh), an :class:`~semtalk.body.skeleton.SMPLXBodyModel` (shaped rest
            joints, mean hand pose, and the mesh), or any other
            :class:`~semtalk.body.skeleton.BodyModel` (rest joints = its joints for the zero
            pose; no mesh).
        betas: ``[300]`` shape coefficients (fewer are zero-padded); ``None``: the mean shape.
        with_mesh: build the mesh when the body model has one.
    """
    shape = _betas(betas)
    if body_model is None:
        return Rig(np.array(BUILTIN_REST_JOINTS), np.zeros(POSE_DIM), None, "builtin")
    if isinstance(body_model, SMPLXBodyModel):
        return _smplx_rig(body_model, shape, with_mesh)
    if isinstance(body_model, BuiltinSkeleton):
        rest = body_model.rest_joints.detach().cpu().numpy().astype(np.float64)
    else:
        with torch.no_grad():
            joints = body_model.joints(torch.zeros(1, POSE_DIM, dtype=torch.float64),
                                       betas=torch.from_numpy(shape))
        rest = joints.detach().cpu().numpy().reshape(NUM_JOINTS, 3).astype(np.float64)
    return Rig(rest, np.zeros(POSE_DIM), None, str(getattr(body_model, "name", "custom")))
