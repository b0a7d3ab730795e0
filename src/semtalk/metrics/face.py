"""Face metrics: vertex MSE and "LVD" (spec §8.4), and a vertex-free parameter error.

Vertex metrics need a face mesh. The official evaluation builds it with SMPL-X from the GT
betas, the jaw rotation and the 100 expression coefficients, every other joint and the
translation at zero, and uses all 10,475 vertices (:func:`smplx_face_vertices`). Any callable
with the same signature (:data:`VerticesFn`) can stand in, e.g. a toy linear model in tests.
Without a real SMPL-X file these numbers are "not computed" rather than approximated.

Per sequence of ``n`` frames, with ``v`` the GT and ``p`` the generated vertices:

- ``mse``: mean over ``n x V x 3`` of ``(p - v)^2``. Papers report "MSE x 10^-8".
- ``lvd`` (paper-comparable, the official definition): mean of
  ``|(p_{t+1} - v_t) - (v_{t+1} - v_t)|`` over ``t = 0 .. n-2``. The ``v_t`` cancel, so this
  is algebraically the L1 *position* error ``mean |p_{t+1} - v_{t+1}|`` on frames 1..n-1,
  not a velocity difference (inherited from EMAGE). Papers report "LVD x 10^-5".
- ``velocity_l1`` (semtalk's clean lip-velocity difference, not comparable with papers): mean
  of ``|(p_{t+1} - p_t) - (v_{t+1} - v_t)|``.

Over a test set each is averaged with weights ``n``.

:func:`face_param_error` needs no mesh: the MSE of the expression coefficients and the mean
geodesic angle between generated and GT jaw rotations. It is a different quantity from the
vertex metrics and is named differently on purpose.

Two measures say whether a face moves at all, which the error metrics above cannot (a frozen
mean face has a small expression MSE):

- :func:`expression_std`: the mean over the 100 coefficients of each one's standard deviation
  over time, frame-weighted over sequences; the evaluation reports generated / GT
  (``expression_std_ratio``: 1 moves as much as the data, 0 is a frozen face).
- :func:`jaw_envelope_correlation`: Pearson correlation, per sequence, between the jaw opening
  (the jaw's rotation angle, ``|axis-angle|``) and the speech RMS envelope at the motion frame
  rate (:func:`speech_envelope`), frame-weighted over sequences; a jaw that follows the speech
  scores near 1, a still jaw 0.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from semtalk.body.parts import EXPRESSION_DIM, JAW, POSE_DIM
from semtalk.body.rotation import axis_angle_to_matrix, geodesic_angle
from semtalk.body.skeleton import SMPLXBodyModel
from semtalk.constants import AUDIO_SAMPLE_RATE, MOTION_FPS

VerticesFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor | None], torch.Tensor]
"""``(jaw axis-angle [T, 3], expressions [T, 100], betas [300] or None) -> vertices [T, V, 3]``."""


@dataclass(frozen=True)
class FaceMotion:
    """The face of one sequence.

    Attributes:
        jaw: ``[T, 3]`` jaw axis-angle (SMPL-X joint 22).
        expressions: ``[T, 100]`` expression coefficients.
    """

    jaw: torch.Tensor | np.ndarray
    expressions: torch.Tensor | np.ndarray

    def tensors(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(jaw [T, 3], expressions [T, 100])`` as float64 tensors, shapes checked."""
        jaw = torch.as_tensor(np.asarray(self.jaw) if not isinstance(self.jaw, torch.Tensor)
                              else self.jaw).double()
        expressions = torch.as_tensor(
            np.asarray(self.expressions) if not isinstance(self.expressions, torch.Tensor)
            else self.expressions).double()
        if jaw.dim() != 2 or jaw.shape[1] != 3:
            raise ValueError(f"jaw must be axis-angle [T, 3], got shape {tuple(jaw.shape)}")
        if expressions.shape != (jaw.shape[0], EXPRESSION_DIM):
            raise ValueError(f"expressions must be [{jaw.shape[0]}, {EXPRESSION_DIM}] to match "
                             f"the jaw, got shape {tuple(expressions.shape)}")
        return jaw, expressions


def smplx_face_vertices(body_model: SMPLXBodyModel) -> VerticesFn:
    """The official face mesh: SMPL-X with only the jaw and expressions posed, at the origin."""

    def vertices(jaw: torch.Tensor, expressions: torch.Tensor,
                 betas: torch.Tensor | None) -> torch.Tensor:
        poses = jaw.new_zeros(jaw.shape[0], POSE_DIM)
        poses[:, 3 * JAW:3 * JAW + 3] = jaw
        return body_model.vertices(poses, None, betas, expressions)

    return vertices


def _check_pair(generated: torch.Tensor, ground_truth: torch.Tensor) -> None:
    if generated.shape != ground_truth.shape or generated.dim() < 2:
        raise ValueError(f"vertex arrays must match and be [T, ...], got "
                         f"{tuple(generated.shape)} and {tuple(ground_truth.shape)}")


def vertex_mse(generated: torch.Tensor, ground_truth: torch.Tensor) -> float:
    """Mean squared vertex error over all frames, vertices and axes (``[T, V, 3]`` each)."""
    _check_pair(generated, ground_truth)
    return float((generated.double() - ground_truth.double()).pow(2).mean())


def vertex_lvd(generated: torch.Tensor, ground_truth: torch.Tensor) -> float:
    """The official "LVD": ``mean |(p_{t+1} - v_t) - (v_{t+1} - v_t)|`` = ``mean |p - v|`` on
    frames 1..T-1 (``[T, V, 3]`` each, T >= 2)."""
    _check_pair(generated, ground_truth)
    if generated.shape[0] < 2:
        raise ValueError("LVD needs at least 2 frames")
    return float((generated[1:].double() - ground_truth[1:].double()).abs().mean())


def vertex_velocity_l1(generated: torch.Tensor, ground_truth: torch.Tensor) -> float:
    """``mean |(p_{t+1} - p_t) - (v_{t+1} - v_t)|``: the velocity difference LVD's name
    promises (``[T, V, 3]`` each, T >= 2)."""
    _check_pair(generated, ground_truth)
    if generated.shape[0] < 2:
        raise ValueError("the vertex velocity error needs at least 2 frames")
    return float((generated.double().diff(dim=0) - ground_truth.double().diff(dim=0))
                 .abs().mean())


@dataclass(frozen=True)
class FaceVertexMetrics:
    """Frame-weighted face vertex metrics over a set of sequences (raw units of the mesh).

    Attributes:
        mse: vertex MSE (papers: x 10^-8).
        lvd: the official "LVD", an L1 position error (papers: x 10^-5).
        velocity_l1: the true vertex-velocity L1 difference (semtalk only).
        num_frames: frames over all sequences.
    """

    mse: float
    lvd: float
    velocity_l1: float
    num_frames: int


def _check_pairs(generated: Sequence[FaceMotion], ground_truth: Sequence[FaceMotion]) -> None:
    if len(generated) != len(ground_truth) or not generated:
        raise ValueError(f"need matching non-empty sequence lists, got {len(generated)} "
                         f"generated and {len(ground_truth)} ground-truth")


def _pair_tensors(index: int, gen: FaceMotion, gt: FaceMotion
                  ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(gen_jaw, gen_expr, gt_jaw, gt_expr)`` of sequence ``index``, checked to match in
    length."""
    (gen_jaw, gen_expr), (gt_jaw, gt_expr) = gen.tensors(), gt.tensors()
    if gen_jaw.shape[0] != gt_jaw.shape[0]:
        raise ValueError(f"sequence {index}: {gen_jaw.shape[0]} generated frames vs "
                         f"{gt_jaw.shape[0]} ground-truth frames")
    return gen_jaw, gen_expr, gt_jaw, gt_expr


def _weighted(values: list[tuple[float, int]]) -> float:
    total = sum(n for _, n in values)
    return sum(v * n for v, n in values) / total


def face_vertex_metrics(generated: Sequence[FaceMotion], ground_truth: Sequence[FaceMotion],
                        vertices_fn: VerticesFn,
                        betas: Sequence[torch.Tensor | np.ndarray | None] | None = None,
                        ) -> FaceVertexMetrics:
    """Face MSE, LVD and vertex-velocity L1 of generated against GT faces.

    Args:
        generated: generated face per sequence.
        ground_truth: GT face per sequence (same lengths).
        vertices_fn: face mesh builder (:func:`smplx_face_vertices` for paper numbers).
        betas: per-sequence shape (the GT betas) or ``None`` for the mean shape.
    """
    _check_pairs(generated, ground_truth)
    shapes = [None] * len(generated) if betas is None else list(betas)
    if len(shapes) != len(generated):
        raise ValueError(f"{len(shapes)} betas for {len(generated)} sequences")
    mse, lvd, velocity = [], [], []
    for index, (gen, gt, shape) in enumerate(zip(generated, ground_truth, shapes, strict=True)):
        gen_jaw, gen_expr, gt_jaw, gt_expr = _pair_tensors(index, gen, gt)
        shape_t = None if shape is None else torch.as_tensor(np.asarray(shape)).double()
        with torch.no_grad():
            gen_v = vertices_fn(gen_jaw, gen_expr, shape_t)
            gt_v = vertices_fn(gt_jaw, gt_expr, shape_t)
        n = gen_jaw.shape[0]
        mse.append((vertex_mse(gen_v, gt_v), n))
        lvd.append((vertex_lvd(gen_v, gt_v), n))
        velocity.append((vertex_velocity_l1(gen_v, gt_v), n))
    return FaceVertexMetrics(mse=_weighted(mse), lvd=_weighted(lvd),
                             velocity_l1=_weighted(velocity),
                             num_frames=sum(n for _, n in mse))


@dataclass(frozen=True)
class FaceParamErrors:
    """Vertex-free face errors, frame-weighted over sequences.

    Attributes:
        expression_mse: MSE of the 100 expression coefficients.
        jaw_angle: mean geodesic angle between generated and GT jaw rotations (radians).
        num_frames: frames over all sequences.
    """

    expression_mse: float
    jaw_angle: float
    num_frames: int


def face_param_error(generated: Sequence[FaceMotion],
                     ground_truth: Sequence[FaceMotion]) -> FaceParamErrors:
    """Expression MSE and jaw geodesic angle; needs no body model."""
    _check_pairs(generated, ground_truth)
    squared, angle, frames = 0.0, 0.0, 0
    for index, (gen, gt) in enumerate(zip(generated, ground_truth, strict=True)):
        gen_jaw, gen_expr, gt_jaw, gt_expr = _pair_tensors(index, gen, gt)
        squared += float((gen_expr - gt_expr).pow(2).mean(dim=1).sum())
        angle += float(geodesic_angle(axis_angle_to_matrix(gen_jaw),
                                      axis_angle_to_matrix(gt_jaw), eps=0.0).sum())
        frames += gen_jaw.shape[0]
    return FaceParamErrors(expression_mse=squared / frames, jaw_angle=angle / frames,
                           num_frames=frames)


# ---------------------------------------------------------------------- does the face move?
def expression_std(expressions: Sequence[torch.Tensor | np.ndarray]) -> float:
    """Mean over the coefficients of their standard deviation over time (``[T, 100]`` per
    sequence; population std), frame-weighted over sequences."""
    if not expressions:
        raise ValueError("need at least one expression sequence")
    values = []
    for index, sequence in enumerate(expressions):
        # contiguous: numpy sums a strided view in another order (last-bit differences)
        array = np.ascontiguousarray(sequence, dtype=np.float64)
        if array.ndim != 2 or array.shape[1] != EXPRESSION_DIM or array.shape[0] < 1:
            raise ValueError(f"sequence {index}: expressions must be [T >= 1, "
                             f"{EXPRESSION_DIM}], got shape {array.shape}")
        values.append((float(array.std(axis=0).mean()), array.shape[0]))
    return _weighted(values)


def jaw_opening(jaw: torch.Tensor | np.ndarray) -> np.ndarray:
    """``[T]`` jaw rotation angle (radians) of jaw axis-angle ``[T, 3]``."""
    array = np.asarray(jaw, dtype=np.float64)
    if array.ndim != 2 or array.shape[1] != 3:
        raise ValueError(f"jaw must be axis-angle [T, 3], got shape {array.shape}")
    return np.linalg.norm(array, axis=1)


def speech_envelope(audio: np.ndarray, num_frames: int, sample_rate: int = AUDIO_SAMPLE_RATE,
                    fps: int = MOTION_FPS) -> np.ndarray:
    """``[num_frames]`` RMS of ``audio`` (mono) over a window of one frame period centred on
    each motion frame's time ``t / fps``; samples past the end count as silence."""
    signal = np.asarray(audio, dtype=np.float64).reshape(-1)
    power = np.concatenate([[0.0], np.cumsum(signal**2)])
    half = sample_rate / fps / 2
    centres = np.arange(num_frames) * sample_rate / fps
    start = np.round(centres - half).astype(int)
    stop = np.round(centres + half).astype(int)
    width = np.maximum(stop - start, 1)
    lo, hi = np.clip(start, 0, signal.size), np.clip(stop, 0, signal.size)
    return np.sqrt((power[hi] - power[lo]) / width)


def _is_constant(centred: np.ndarray, original: np.ndarray) -> bool:
    """The signal varies by no more than float rounding of its own size."""
    size = max(float(np.abs(original).max(initial=0.0)), 1e-300)
    return float(np.abs(centred).max(initial=0.0)) <= 1e-9 * size


def pearson(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation of two ``[T]`` signals; 0 when either is constant (a signal that
    does not move does not follow the other)."""
    raw_x, raw_y = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if raw_x.shape != raw_y.shape or raw_x.ndim != 1:
        raise ValueError(f"need two [T] signals of one length, got {raw_x.shape} and "
                         f"{raw_y.shape}")
    x, y = raw_x - raw_x.mean(), raw_y - raw_y.mean()
    if _is_constant(x, raw_x) or _is_constant(y, raw_y):
        return 0.0
    norm = float(np.sqrt((x * x).sum() * (y * y).sum()))
    return float((x * y).sum() / norm)


def jaw_envelope_correlation(jaws: Sequence[torch.Tensor | np.ndarray],
                             envelopes: Sequence[np.ndarray]) -> float:
    """Frame-weighted mean over sequences of :func:`pearson` between :func:`jaw_opening` and
    the speech envelope (``[T]`` per sequence, e.g. :func:`speech_envelope`)."""
    if len(jaws) != len(envelopes) or not jaws:
        raise ValueError(f"need matching non-empty lists, got {len(jaws)} jaws and "
                         f"{len(envelopes)} envelopes")
    values = []
    for index, (jaw, envelope) in enumerate(zip(jaws, envelopes, strict=True)):
        opening = jaw_opening(jaw)
        if opening.shape != np.shape(envelope):
            raise ValueError(f"sequence {index}: {opening.shape[0]} jaw frames vs envelope of "
                             f"shape {np.shape(envelope)}")
        values.append((pearson(opening, np.asarray(envelope)), opening.shape[0]))
    return _weighted(values)
