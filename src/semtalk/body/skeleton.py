"""Body models that turn a BEAT2 pose into joint positions.

Two implementations of one :class:`BodyModel` interface:

- :class:`BuiltinSkeleton`: an approximate SMPL-X skeleton shipped with semtalk. Its rest joint
  positions were authored from adult human proportions (a 1.75 m neutral body in the SMPL-X
  T-pose and coordinate frame: y up, x towards the body's left, z forward), with the SMPL-X
  kinematic tree. It needs no files, ignores shape (betas) and is used wherever joint positions
  are needed and the user has no SMPL-X model file.
- :class:`SMPLXBodyModel`: the user's own ``SMPLX_NEUTRAL_2020.npz`` through the ``smplx``
  package (``pip install semtalk[smplx]``): exact joints, honouring betas and expressions.

:func:`load_body_model` picks one from an optional path. Both follow SMPL-X's conventions:
joint ``j``'s world rotation is its parent's times its own local rotation, the global
orientation (joint 0) rotates about the pelvis joint, and ``trans`` is added to every joint.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch

from semtalk.body.parts import FOOT_JOINTS, NUM_JOINTS, PARENTS, POSE_DIM
from semtalk.body.rotation import axis_angle_to_matrix

CONTACT_THRESHOLD_M = 0.01
"""A foot joint is in contact when it moves less than this between consecutive frames."""


@runtime_checkable
class BodyModel(Protocol):
    """Maps poses to the 55 SMPL-X joint positions."""

    name: str
    """Short identifier recorded in reports (``"builtin"`` or ``"smplx"``)."""

    def joints(
        self,
        poses: torch.Tensor,
        trans: torch.Tensor | None = None,
        betas: torch.Tensor | None = None,
        expressions: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Joint positions ``[..., 55, 3]`` in metres.

        Args:
            poses: ``[..., 165]`` axis-angle of the 55 joints.
            trans: ``[..., 3]`` global translation; ``None`` means zero.
            betas: ``[B]`` shape coefficients (one body per call); ``None`` means the mean shape.
            expressions: ``[..., 100]``; ``None`` means neutral.
        """
        ...


# Rest (T-pose) joint positions of the left side and the midline, in metres, for a 1.75 m adult
# whose floor is at y = -1.30 (heights above the floor: ankle 0.08, knee 0.50, hip 0.88,
# pelvis 0.96, shoulder 1.42, neck 1.48, head joint 1.62). Right-side joints are the mirror
# image (x -> -x) of their left counterparts.
_MIDLINE = {
    "pelvis": (0.0, -0.340, 0.010),
    "spine1": (0.0, -0.230, -0.015),
    "spine2": (0.0, -0.100, 0.000),
    "spine3": (0.0, -0.040, 0.025),
    "neck": (0.0, 0.180, -0.020),
    "head": (0.0, 0.320, 0.010),
    "jaw": (0.0, 0.270, 0.030),
}
_LEFT = {
    "hip": (0.060, -0.420, -0.010),
    "knee": (0.105, -0.800, 0.000),
    "ankle": (0.080, -1.220, -0.040),
    "foot": (0.120, -1.270, 0.090),
    "collar": (0.045, 0.100, -0.010),
    "shoulder": (0.175, 0.120, -0.020),
    "elbow": (0.450, 0.100, -0.040),
    "wrist": (0.705, 0.100, -0.045),
    "eye": (0.033, 0.350, 0.090),
}
# Finger chains relative to the wrist (palm down, thumb forward), three segments each.
_LEFT_FINGERS = {
    "index": ((0.095, -0.005, 0.025), (0.035, -0.002, 0.002), (0.024, -0.002, 0.001)),
    "middle": ((0.100, -0.005, 0.002), (0.036, -0.002, 0.000), (0.027, -0.002, 0.000)),
    "pinky": ((0.082, -0.010, -0.042), (0.025, -0.002, -0.004), (0.018, -0.002, -0.002)),
    "ring": ((0.094, -0.008, -0.021), (0.032, -0.002, -0.003), (0.025, -0.002, -0.001)),
    "thumb": ((0.028, -0.015, 0.030), (0.030, -0.006, 0.025), (0.024, -0.004, 0.018)),
}


def _author_rest_joints() -> np.ndarray:
    """Assemble the ``[55, 3]`` rest joint table from the proportion tables above."""
    from semtalk.body.parts import JOINT_NAMES

    positions: dict[str, np.ndarray] = {k: np.array(v) for k, v in _MIDLINE.items()}
    mirror = np.array([-1.0, 1.0, 1.0])
    for name, xyz in _LEFT.items():
        positions[f"left_{name}"] = np.array(xyz)
        positions[f"right_{name}"] = np.array(xyz) * mirror
    for finger, segments in _LEFT_FINGERS.items():
        for side, sign in (("left", 1.0), ("right", -1.0)):
            point = positions[f"{side}_wrist"].copy()
            for k, offset in enumerate(segments, start=1):
                point = point + np.array(offset) * np.array([sign, 1.0, 1.0])
                positions[f"{side}_{finger}{k}"] = point
    return np.stack([positions[name] for name in JOINT_NAMES]).astype(np.float64)


BUILTIN_REST_JOINTS: np.ndarray = _author_rest_joints()
"""``[55, 3]`` rest joint positions of the built-in skeleton (read-only)."""
BUILTIN_REST_JOINTS.setflags(write=False)


def _depth_levels(parents: tuple[int, ...]) -> list[list[int]]:
    """Group joints by depth in the tree so each level is one batched matrix product."""
    depth = [0] * len(parents)
    for j, p in enumerate(parents):
        if p >= 0:
            if p >= j:
                raise ValueError("parents must precede their children")
            depth[j] = depth[p] + 1
    levels: list[list[int]] = [[] for _ in range(max(depth) + 1)]
    for j, d in enumerate(depth):
        levels[d].append(j)
    return levels


_LEVELS = _depth_levels(PARENTS)


def forward_kinematics(
    rotations: torch.Tensor, rest_joints: torch.Tensor, parents: tuple[int, ...] = PARENTS
) -> tuple[torch.Tensor, torch.Tensor]:
    """Batched forward kinematics.

    Args:
        rotations: ``[..., J, 3, 3]`` local joint rotations.
        rest_joints: ``[J, 3]`` or ``[..., J, 3]`` rest positions.
        parents: kinematic tree, parents before children.

    Returns:
        ``(positions [..., J, 3], world_rotations [..., J, 3, 3])`` with the root joint at its
        rest position (add the translation afterwards).
    """
    levels = _LEVELS if parents is PARENTS else _depth_levels(parents)
    num = rotations.shape[-3]
    rest = rest_joints.to(rotations).expand(*rotations.shape[:-3], num, 3)
    parent_index = torch.tensor([max(p, 0) for p in parents], device=rotations.device)
    offsets = rest - rest[..., parent_index, :]  # bone vectors in the rest pose
    world_rot = torch.empty_like(rotations)
    positions = torch.empty_like(rest)
    root = levels[0]
    world_rot[..., root, :, :] = rotations[..., root, :, :]
    positions[..., root, :] = rest[..., root, :]
    for level in levels[1:]:
        par = [parents[j] for j in level]
        parent_rot = world_rot[..., par, :, :]
        world_rot[..., level, :, :] = parent_rot @ rotations[..., level, :, :]
        bone = (parent_rot @ offsets[..., level, :].unsqueeze(-1)).squeeze(-1)
        positions[..., level, :] = positions[..., par, :] + bone
    return positions, world_rot


def _check_poses(poses: torch.Tensor) -> None:
    if poses.shape[-1] != POSE_DIM:
        raise ValueError(f"poses must have {POSE_DIM} channels (55 joints x axis-angle), "
                         f"got shape {tuple(poses.shape)}")


class BuiltinSkeleton:
    """The approximate SMPL-X skeleton that ships with semtalk (no model file needed).

    Ignores ``betas`` and ``expressions``: every speaker gets the same proportions. Joint
    positions are exact for this skeleton, approximate for a real SMPL-X body: bone lengths
    differ by a few centimetres, and finger rotations are applied as given whereas SMPL-X adds
    its mean hand pose to them (finger joints differ by 1-2 cm).
    """

    name = "builtin"

    def __init__(self, rest_joints: np.ndarray | None = None) -> None:
        table = BUILTIN_REST_JOINTS if rest_joints is None else np.asarray(rest_joints)
        if table.shape != (NUM_JOINTS, 3):
            raise ValueError(f"rest_joints must be [{NUM_JOINTS}, 3], got {table.shape}")
        self.rest_joints = torch.tensor(table, dtype=torch.float64)

    def joints(
        self,
        poses: torch.Tensor,
        trans: torch.Tensor | None = None,
        betas: torch.Tensor | None = None,
        expressions: torch.Tensor | None = None,
    ) -> torch.Tensor:
        _check_poses(poses)
        rotations = axis_angle_to_matrix(poses.reshape(*poses.shape[:-1], NUM_JOINTS, 3))
        positions, _ = forward_kinematics(rotations, self.rest_joints)
        if trans is not None:
            positions = positions + trans.to(positions).unsqueeze(-2)
        return positions


class SMPLXBodyModel:
    """Exact SMPL-X joints from the user's model file, through the ``smplx`` package.

    Built with BEAT2's settings: 300 betas, 100 expression coefficients, no hand PCA, no face
    contour, and smplx's default ``flat_hand_mean=False`` (finger rotations are relative to the
    model's mean hand pose, as in the official code). Evaluates in chunks so hour-long sequences
    fit in memory.
    """

    name = "smplx"

    def __init__(self, model_path: str | Path, chunk_size: int = 512) -> None:
        path = Path(model_path)
        if path.is_dir():
            candidates = sorted(path.glob("**/SMPLX_NEUTRAL_2020.npz"))
            if not candidates:
                raise FileNotFoundError(f"{path}: no SMPLX_NEUTRAL_2020.npz found in this folder")
            path = candidates[0]
        if not path.is_file():
            raise FileNotFoundError(f"{path}: SMPL-X model file not found")
        try:
            import smplx
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise ImportError("the SMPL-X body model needs the 'smplx' package: "
                              "pip install 'semtalk[smplx]'") from exc
        self.path = path
        self.chunk_size = chunk_size
        self.model = smplx.SMPLX(
            str(path), gender="neutral", num_betas=300, num_expression_coeffs=100,
            use_pca=False, use_face_contour=False, flat_hand_mean=False, batch_size=1,
        )
        self.model.eval()
        if self.model.num_betas != 300 or self.model.num_expression_coeffs != 100:
            raise ValueError(
                f"{path}: model has {self.model.num_betas} betas and "
                f"{self.model.num_expression_coeffs} expression coefficients; BEAT2 needs a "
                "SMPL-X 2020 file with 300 + 100 shape components (shapedirs [V, 3, 400])")

    @property
    def faces(self) -> np.ndarray:
        """``[F, 3]`` triangle indices of the mesh."""
        return np.asarray(self.model.faces, dtype=np.int64)

    @property
    def skinning_weights(self) -> np.ndarray:
        """``[V, 55]`` linear-blend-skinning weights of each vertex on each joint."""
        return self.model.lbs_weights.detach().cpu().numpy()

    @property
    def expression_directions(self) -> np.ndarray:
        """``[V, 3, 100]`` vertex offsets per unit of each expression coefficient."""
        return self.model.expr_dirs.detach().cpu().numpy()

    @property
    def pose_mean(self) -> np.ndarray:
        """``[165]`` axis-angle the model adds to every pose before posing (the mean hand pose
        on the finger joints, since ``flat_hand_mean=False``; zero elsewhere)."""
        return self.model.pose_mean.detach().cpu().numpy().reshape(POSE_DIM)

    def rest_shape(self, betas: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The unposed body shaped by ``betas`` with a neutral expression.

        Args:
            betas: ``[300]`` shape coefficients (fewer are zero-padded); ``None``: mean shape.

        Returns:
            ``(vertices [V, 3], joints [55, 3])`` in metres, float64: the template plus the
            shape blend shapes, and the joints the model regresses from them.
        """
        shapedirs = self.model.shapedirs.detach().cpu().double().numpy()
        coeffs = np.zeros(shapedirs.shape[-1])
        if betas is not None:
            flat = np.asarray(betas, dtype=np.float64).reshape(-1)[: coeffs.shape[0]]
            coeffs[: flat.shape[0]] = flat
        vertices = self.model.v_template.detach().cpu().double().numpy() + shapedirs @ coeffs
        regressor = self.model.J_regressor.detach().cpu().double().numpy()
        return vertices, (regressor @ vertices)[:NUM_JOINTS]

    def _forward(self, poses: torch.Tensor, trans: torch.Tensor | None,
                 betas: torch.Tensor | None, expressions: torch.Tensor | None) -> Any:
        n = poses.shape[0]
        dtype = self.model.shapedirs.dtype
        p = poses.to(dtype)
        betas_row = torch.zeros(1, 300, dtype=dtype) if betas is None else betas.to(dtype)
        return self.model(
            betas=betas_row.reshape(1, -1)[:, :300].expand(n, -1),
            global_orient=p[:, 0:3], body_pose=p[:, 3:66], jaw_pose=p[:, 66:69],
            leye_pose=p[:, 69:72], reye_pose=p[:, 72:75],
            left_hand_pose=p[:, 75:120], right_hand_pose=p[:, 120:165],
            expression=(torch.zeros(n, 100, dtype=dtype) if expressions is None
                        else expressions.to(dtype)),
            transl=torch.zeros(n, 3, dtype=dtype) if trans is None else trans.to(dtype),
            return_verts=True,
        )

    def _run_chunked(self, poses: torch.Tensor, trans: torch.Tensor | None,
                     betas: torch.Tensor | None, expressions: torch.Tensor | None,
                     field: str) -> torch.Tensor:
        _check_poses(poses)
        lead = poses.shape[:-1]
        flat = poses.reshape(-1, POSE_DIM)
        flat_trans = None if trans is None else trans.reshape(-1, 3)
        flat_expr = None if expressions is None else expressions.reshape(-1, 100)
        outputs = []
        with torch.no_grad():
            for start in range(0, flat.shape[0], self.chunk_size):
                sl = slice(start, start + self.chunk_size)
                out = self._forward(
                    flat[sl], None if flat_trans is None else flat_trans[sl], betas,
                    None if flat_expr is None else flat_expr[sl])
                value = getattr(out, field)
                outputs.append(value[:, :NUM_JOINTS] if field == "joints" else value)
        result = torch.cat(outputs, dim=0)
        return result.reshape(*lead, *result.shape[1:]).to(poses.dtype)

    def joints(
        self,
        poses: torch.Tensor,
        trans: torch.Tensor | None = None,
        betas: torch.Tensor | None = None,
        expressions: torch.Tensor | None = None,
    ) -> torch.Tensor:
        return self._run_chunked(poses, trans, betas, expressions, "joints")

    def vertices(
        self,
        poses: torch.Tensor,
        trans: torch.Tensor | None = None,
        betas: torch.Tensor | None = None,
        expressions: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Mesh vertices ``[..., V, 3]`` (10,475 for the real SMPL-X)."""
        return self._run_chunked(poses, trans, betas, expressions, "vertices")


def load_body_model(model_path: str | Path | None = None) -> BodyModel:
    """The SMPL-X model at ``model_path`` if given, else the built-in skeleton."""
    if model_path is None:
        return BuiltinSkeleton()
    return SMPLXBodyModel(model_path)


def foot_contacts(joints: torch.Tensor, threshold: float = CONTACT_THRESHOLD_M) -> torch.Tensor:
    """Per-frame foot contacts from joint positions.

    A contact channel is 1 where the joint moves less than ``threshold`` metres between frame
    ``t`` and ``t + 1``; the last frame is always 1 (BEAT2's definition).

    Args:
        joints: ``[..., T, 55, 3]`` joint positions.

    Returns:
        ``[..., T, 4]`` float tensor for left ankle, right ankle, left foot, right foot.
    """
    feet = joints[..., list(FOOT_JOINTS), :]
    step = (feet[..., 1:, :, :] - feet[..., :-1, :, :]).norm(dim=-1)  # [..., T-1, 4]
    step = torch.cat([step, step.new_zeros(*step.shape[:-2], 1, step.shape[-1])], dim=-2)
    return (step < threshold).to(joints.dtype)
