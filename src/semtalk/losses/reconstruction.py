"""Reconstruction losses for one body part's tokenizer features, and the matching metrics.

A part's features are ``[B, T, part.dim]`` in the tokenizer representation
(:mod:`semtalk.body.representation`: 6D joint rotations, then the face's expressions or the lower
body's ``(v_x, y, v_z)`` root channels and foot contacts). :func:`part_reconstruction_loss`
compares a prediction with its target through a per-part table of terms, each weighted by the
field of :class:`PartLossWeights` with the same name:

=========================  =====================  ==============================================
term                       parts                  what it measures
=========================  =====================  ==============================================
rotation                   all                    mean geodesic angle (rad) between 6D rotations
velocity                   all                    L1, first difference of rotation matrices
acceleration               all                    L1, second difference of rotation matrices
expressions                face                   MSE of the 100 expression coefficients
expression_velocity        face                   MSE of their first difference
expression_acceleration    face                   MSE of their second difference
joint_position             upper, hands, lower    MSE of the part's joint positions (m)
joint_velocity             upper, hands, lower    L1 of their first difference (m/frame)
contact                    lower                  MSE of the 4 foot-contact channels
foot_skate                 lower                  L1 of foot sliding where the target has contact
translation_velocity       lower                  L1 of the horizontal root velocity (m/s)
translation_height         lower                  L1 of the root height (m)
translation_trajectory     lower                  L1 of the integrated horizontal path (m)
=========================  =====================  ==============================================

Joint positions come from forward kinematics with only the part's own joints posed: every other
joint at its rest (zero) rotation and zero translation, as in the official trainers. The
commitment loss of the quantizer is added by the tokenizer, not here.

Differences from the official per-part losses (``official-implementation.md`` §3.2): the
official trainers use SMPL-X vertices for upper/hands/face and joints for lower; we use joints
for upper/hands/lower (the built-in skeleton has no mesh) and leave the face to its rotation and
expression terms. Jaw velocity/acceleration use L1 like every other part (official: MSE). The
official lower trainer has no translation loss at all; ours trains the root-velocity
representation, including its integral so drift is penalised. Foot skating is gated by the
target's contacts, not the prediction's (see :func:`_foot_skate`).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property

import torch

from semtalk.body.parts import FOOT_JOINTS, LOWER_CONTACT_SLICE, NUM_JOINTS, ROT6D_DIM, BodyPart
from semtalk.body.representation import (
    HORIZONTAL_AXES,
    LOWER_ROOT_SLICE,
    root_velocity_to_trans,
)
from semtalk.body.rotation import geodesic_angle, matrix_to_axis_angle, rot6d_to_matrix
from semtalk.body.skeleton import BodyModel, BuiltinSkeleton, forward_kinematics
from semtalk.constants import MOTION_FPS

GEODESIC_EPS = 1e-6
"""The geodesic loss clamps the cosine to ``±(1 - GEODESIC_EPS)`` (official value)."""
CONTACT_ON = 0.5
"""A target contact channel above this counts as "foot in contact"."""


@dataclass(frozen=True)
class PartLossWeights:
    """Weight of each reconstruction term; a weight of 0 skips the term entirely.

    Terms that do not apply to a part (e.g. ``contact`` for the hands) are ignored for it.
    Defaults are the official values where one exists (all 1, foot skating 20).
    """

    rotation: float = 1.0
    """Geodesic angle between predicted and target joint rotations (official 1)."""
    velocity: float = 1.0
    """L1 of rotation-matrix velocity (official 1)."""
    acceleration: float = 1.0
    """L1 of rotation-matrix acceleration (official 1)."""
    expressions: float = 1.0
    """MSE of the face's expression coefficients (official 1)."""
    expression_velocity: float = 1.0
    """MSE of expression velocity (official 1)."""
    expression_acceleration: float = 1.0
    """MSE of expression acceleration (official 1)."""
    joint_position: float = 1.0
    """MSE of the part's joint positions, part posed alone (official vertex/joint MSE: 1)."""
    joint_velocity: float = 1.0
    """L1 of the part's joint velocities (official vertex velocity L1: 1)."""
    contact: float = 1.0
    """MSE of the lower body's 4 foot-contact channels (official 1)."""
    foot_skate: float = 20.0
    """L1 of foot-joint displacement on frames where the target foot is planted (official 20)."""
    translation_velocity: float = 1.0
    """L1 of horizontal root velocity (m/s); official: no translation loss."""
    translation_height: float = 1.0
    """L1 of root height (m); official: no translation loss."""
    translation_trajectory: float = 1.0
    """L1 of the horizontal path integrated over the window (m); penalises drift."""

    def __post_init__(self) -> None:
        for item in dataclasses.fields(self):
            value = getattr(self, item.name)
            if not (isinstance(value, int | float) and math.isfinite(value) and value >= 0):
                raise ValueError(f"PartLossWeights.{item.name} must be a finite number >= 0, "
                                 f"got {value!r}")


@dataclass
class LossOutput:
    """A loss and its parts."""

    total: torch.Tensor
    """Scalar: the weighted sum of the terms (differentiable)."""
    terms: dict[str, torch.Tensor]
    """Unweighted value of each computed term, detached scalars for logging."""


def _mean(x: torch.Tensor) -> torch.Tensor:
    """Mean that returns 0 (not NaN) for an empty tensor (too few frames for a difference)."""
    return x.mean() if x.numel() else x.new_zeros(())


def _l1(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return _mean((a - b).abs())


def _mse(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return _mean((a - b).square())


def _time_diff(x: torch.Tensor, order: int, time_dim: int) -> torch.Tensor:
    """``order``-th forward difference along ``time_dim`` (empty if there are too few frames)."""
    if x.shape[time_dim] <= order:
        shape = list(x.shape)
        shape[time_dim] = 0
        return x.new_zeros(shape)
    return torch.diff(x, n=order, dim=time_dim)


def _posed_joints(part: BodyPart, rotations: torch.Tensor, body_model: BodyModel) -> torch.Tensor:
    """All 55 joint positions with only ``part``'s joints posed, zero translation.

    Args:
        rotations: ``[..., T, J, 3, 3]`` local rotations of the part's ``J`` joints.

    Returns:
        ``[..., T, 55, 3]`` in metres.
    """
    lead = rotations.shape[:-3]
    index = list(part.joints)
    if isinstance(body_model, BuiltinSkeleton):
        # Fast path: FK on the matrices directly, no axis-angle round trip.
        eye = torch.eye(3, dtype=rotations.dtype, device=rotations.device)
        full = eye.expand(*lead, NUM_JOINTS, 3, 3).clone()
        full[..., index, :, :] = rotations
        positions, _ = forward_kinematics(full, body_model.rest_joints)
        return positions
    axis_angle = rotations.new_zeros(*lead, NUM_JOINTS, 3)
    axis_angle[..., index, :] = matrix_to_axis_angle(rotations)
    positions = body_model.joints(axis_angle.flatten(-2))
    if torch.is_grad_enabled() and rotations.requires_grad and not positions.requires_grad:
        raise ValueError(f"body model {body_model.name!r} is not differentiable; joint-position "
                         "losses need one that is (e.g. BuiltinSkeleton)")
    return positions.to(rotations)


class _PartFeatures:
    """Lazily decoded views of one part's features ``[..., T, part.dim]``."""

    def __init__(self, part: BodyPart, features: torch.Tensor, body_model: BodyModel,
                 fps: float) -> None:
        self.part = part
        self.features = features
        self.body_model = body_model
        self.fps = fps
        self.rotation_dim = ROT6D_DIM * len(part.joints)

    @cached_property
    def rotations(self) -> torch.Tensor:
        """``[..., T, J, 3, 3]``."""
        rot6d = self.features[..., : self.rotation_dim]
        return rot6d_to_matrix(rot6d.unflatten(-1, (len(self.part.joints), ROT6D_DIM)))

    @property
    def extras(self) -> torch.Tensor:
        """``[..., T, D - 6J]``: the expressions for the face."""
        return self.features[..., self.rotation_dim :]

    @property
    def root(self) -> torch.Tensor:
        """``[..., T, 3]`` lower-body ``(v_x, y, v_z)``."""
        return self.features[..., LOWER_ROOT_SLICE]

    @property
    def contacts(self) -> torch.Tensor:
        """``[..., T, 4]`` lower-body foot contacts."""
        return self.features[..., LOWER_CONTACT_SLICE]

    @cached_property
    def all_joints(self) -> torch.Tensor:
        """``[..., T, 55, 3]``: the part posed alone, zero translation."""
        return _posed_joints(self.part, self.rotations, self.body_model)

    @property
    def part_joints(self) -> torch.Tensor:
        """``[..., T, J, 3]``: positions of the part's own joints."""
        return self.all_joints[..., list(self.part.joints), :]

    @cached_property
    def trajectory(self) -> torch.Tensor:
        """``[..., T, 3]`` root translation integrated from the velocity, starting at x=z=0."""
        return root_velocity_to_trans(self.root, None, self.fps)

    @property
    def world_feet(self) -> torch.Tensor:
        """``[..., T, 4, 3]`` ankles and feet with the integrated translation applied."""
        return self.all_joints[..., list(FOOT_JOINTS), :] + self.trajectory.unsqueeze(-2)


_Term = Callable[[_PartFeatures, _PartFeatures], torch.Tensor]


def _rotation(pred: _PartFeatures, target: _PartFeatures) -> torch.Tensor:
    # The clamp makes identical rotations read ~1.4e-3 rad; subtracting that constant makes a
    # perfect prediction score exactly 0 without changing any gradient.
    angle = geodesic_angle(pred.rotations, target.rotations, GEODESIC_EPS)
    floor = torch.acos(angle.new_tensor(1.0 - GEODESIC_EPS))  # ~1.4e-3 rad, in angle's dtype
    return _mean(angle) - floor


def _rotation_velocity(pred: _PartFeatures, target: _PartFeatures) -> torch.Tensor:
    return _l1(_time_diff(pred.rotations, 1, -4), _time_diff(target.rotations, 1, -4))


def _rotation_acceleration(pred: _PartFeatures, target: _PartFeatures) -> torch.Tensor:
    return _l1(_time_diff(pred.rotations, 2, -4), _time_diff(target.rotations, 2, -4))


def _expressions(pred: _PartFeatures, target: _PartFeatures) -> torch.Tensor:
    return _mse(pred.extras, target.extras)


def _expression_velocity(pred: _PartFeatures, target: _PartFeatures) -> torch.Tensor:
    return _mse(_time_diff(pred.extras, 1, -2), _time_diff(target.extras, 1, -2))


def _expression_acceleration(pred: _PartFeatures, target: _PartFeatures) -> torch.Tensor:
    return _mse(_time_diff(pred.extras, 2, -2), _time_diff(target.extras, 2, -2))


def _joint_position(pred: _PartFeatures, target: _PartFeatures) -> torch.Tensor:
    return _mse(pred.part_joints, target.part_joints)


def _joint_velocity(pred: _PartFeatures, target: _PartFeatures) -> torch.Tensor:
    return _l1(_time_diff(pred.part_joints, 1, -3), _time_diff(target.part_joints, 1, -3))


def _contact(pred: _PartFeatures, target: _PartFeatures) -> torch.Tensor:
    return _mse(pred.contacts, target.contacts)


def _foot_skate(pred: _PartFeatures, target: _PartFeatures) -> torch.Tensor:
    """L1 of predicted foot sliding on the frames where the *target* foot is planted.

    Contact at frame ``t`` means the joint moves < 1 cm from ``t`` to ``t + 1``, so it gates the
    displacement ``p_{t+1} - p_t``. The official trainer gates by the *predicted* contact
    channel instead (> 0.95); then the model can switch the penalty off by predicting "no
    contact", and the contact MSE is far too weak to stop it (weight 1 against 20). The target's
    contacts are ground truth the model cannot move.

    The sliding counted is what exceeds the target's own foot motion (per axis), so a perfect
    prediction scores 0 although BEAT2 contacts allow up to 1 cm/frame of mocap jitter; where
    the target foot is still this is exactly the official L1 on the displacement. Normalised
    like the official loss: mean over all entries, non-contact ones counting as 0.
    """
    pred_step = _time_diff(pred.world_feet, 1, -3).abs()  # [..., T-1, 4, 3]
    target_step = _time_diff(target.world_feet, 1, -3).abs()
    planted = (target.contacts[..., :-1, :] > CONTACT_ON).to(pred_step.dtype)  # [..., T-1, 4]
    excess = (pred_step - target_step).clamp_min(0.0)
    return _mean(excess * planted.unsqueeze(-1))


def _translation_velocity(pred: _PartFeatures, target: _PartFeatures) -> torch.Tensor:
    axes = list(HORIZONTAL_AXES)
    return _l1(pred.root[..., axes], target.root[..., axes])


def _translation_height(pred: _PartFeatures, target: _PartFeatures) -> torch.Tensor:
    return _l1(pred.root[..., 1], target.root[..., 1])


def _translation_trajectory(pred: _PartFeatures, target: _PartFeatures) -> torch.Tensor:
    axes = list(HORIZONTAL_AXES)
    return _l1(pred.trajectory[..., axes], target.trajectory[..., axes])


_TERMS: dict[str, _Term] = {
    "rotation": _rotation,
    "velocity": _rotation_velocity,
    "acceleration": _rotation_acceleration,
    "expressions": _expressions,
    "expression_velocity": _expression_velocity,
    "expression_acceleration": _expression_acceleration,
    "joint_position": _joint_position,
    "joint_velocity": _joint_velocity,
    "contact": _contact,
    "foot_skate": _foot_skate,
    "translation_velocity": _translation_velocity,
    "translation_height": _translation_height,
    "translation_trajectory": _translation_trajectory,
}

_ROTATION_TERMS = ("rotation", "velocity", "acceleration")
_JOINT_TERMS = ("joint_position", "joint_velocity")
PART_TERMS: dict[BodyPart, tuple[str, ...]] = {
    BodyPart.FACE: (*_ROTATION_TERMS, "expressions", "expression_velocity",
                    "expression_acceleration"),
    BodyPart.UPPER: (*_ROTATION_TERMS, *_JOINT_TERMS),
    BodyPart.HANDS: (*_ROTATION_TERMS, *_JOINT_TERMS),
    BodyPart.LOWER: (*_ROTATION_TERMS, *_JOINT_TERMS, "contact", "foot_skate",
                     "translation_velocity", "translation_height", "translation_trajectory"),
}
"""The loss terms each part is trained with (names are :class:`PartLossWeights` fields)."""


def _check_features(part: BodyPart, prediction: torch.Tensor, target: torch.Tensor) -> None:
    if prediction.shape != target.shape:
        raise ValueError(f"{part.value}: prediction {tuple(prediction.shape)} and target "
                         f"{tuple(target.shape)} differ in shape")
    if prediction.dim() < 2 or prediction.shape[-1] != part.dim:
        raise ValueError(f"{part.value} features must be [..., T, {part.dim}], "
                         f"got {tuple(prediction.shape)}")


def part_reconstruction_loss(
    part: BodyPart,
    prediction: torch.Tensor,
    target: torch.Tensor,
    weights: PartLossWeights | None = None,
    body_model: BodyModel | None = None,
    fps: float = MOTION_FPS,
) -> LossOutput:
    """Weighted reconstruction loss of one part (terms in :data:`PART_TERMS`).

    Args:
        part: which body part the features belong to.
        prediction: ``[B, T, part.dim]`` decoded features (any leading dims work).
        target: ``[B, T, part.dim]`` ground truth in the same representation.
        weights: term weights; ``None`` means :class:`PartLossWeights` defaults.
        body_model: forward kinematics for the joint terms; must be differentiable.
            ``None`` means :class:`~semtalk.body.skeleton.BuiltinSkeleton`.
        fps: frame rate (for integrating the root velocity).

    Returns:
        :class:`LossOutput` with the weighted total and each computed term (terms with weight
        0 are skipped).
    """
    _check_features(part, prediction, target)
    weights = PartLossWeights() if weights is None else weights
    model = BuiltinSkeleton() if body_model is None else body_model
    pred = _PartFeatures(part, prediction, model, fps)
    true = _PartFeatures(part, target.detach(), model, fps)
    total = prediction.new_zeros(())
    terms: dict[str, torch.Tensor] = {}
    for name in PART_TERMS[part]:
        weight = getattr(weights, name)
        if weight == 0:
            continue
        value = _TERMS[name](pred, true)
        total = total + weight * value
        terms[name] = value.detach()
    return LossOutput(total=total, terms=terms)


def _exact_angle(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Relative rotation angle ``[...]`` (rad) of matrices ``[..., 3, 3]``, accurate near 0.

    ``atan2(sin, cos)`` from the skew and trace parts of ``a^T b``: no clamp, so unlike
    ``acos`` it resolves small angles in float32.
    """
    m = a.transpose(-1, -2) @ b
    cos = (m.diagonal(dim1=-2, dim2=-1).sum(-1) - 1.0) / 2.0
    skew = torch.stack((m[..., 2, 1] - m[..., 1, 2], m[..., 0, 2] - m[..., 2, 0],
                        m[..., 1, 0] - m[..., 0, 1]), dim=-1)
    return torch.atan2(skew.norm(dim=-1) / 2.0, cos)


@torch.no_grad()
def rotation_error_degrees(
    prediction: torch.Tensor, target: torch.Tensor, part: BodyPart
) -> torch.Tensor:
    """Mean angle (degrees) between predicted and target rotations over joints and frames.

    Args:
        prediction, target: ``[..., T, part.dim]`` part features.

    Returns:
        Scalar tensor.
    """
    _check_features(part, prediction, target)
    n = ROT6D_DIM * len(part.joints)
    shape = (len(part.joints), ROT6D_DIM)
    pred = rot6d_to_matrix(prediction[..., :n].unflatten(-1, shape))
    true = rot6d_to_matrix(target[..., :n].unflatten(-1, shape))
    return torch.rad2deg(_exact_angle(pred, true)).mean()


@torch.no_grad()
def joint_position_error_mm(
    prediction: torch.Tensor,
    target: torch.Tensor,
    part: BodyPart,
    body_model: BodyModel | None = None,
) -> torch.Tensor:
    """Mean per-joint position error (mm) of the part's joints, the part posed alone.

    Every other joint is at its rest rotation and the translation is zero, so for the lower
    body this is root-relative: the root channels do not enter. For the face the only joint is
    the jaw, whose own position does not depend on its rotation; the error is then 0.

    Args:
        prediction, target: ``[..., T, part.dim]`` part features.
        body_model: ``None`` means :class:`~semtalk.body.skeleton.BuiltinSkeleton`.

    Returns:
        Scalar tensor.
    """
    _check_features(part, prediction, target)
    model = BuiltinSkeleton() if body_model is None else body_model
    pred = _PartFeatures(part, prediction, model, MOTION_FPS).part_joints
    true = _PartFeatures(part, target, model, MOTION_FPS).part_joints
    return 1000.0 * (pred - true).norm(dim=-1).mean()
