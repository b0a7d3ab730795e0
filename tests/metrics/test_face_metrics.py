"""Face metrics: known answers with a toy linear face, the LVD algebra, SMPL-X wiring."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from semtalk.body.parts import PARENTS
from semtalk.metrics import (
    FaceMotion,
    expression_std,
    face_param_error,
    face_vertex_metrics,
    jaw_envelope_correlation,
    jaw_opening,
    pearson,
    smplx_face_vertices,
    speech_envelope,
    vertex_lvd,
    vertex_mse,
    vertex_velocity_l1,
)

V = 4
GEN = torch.Generator().manual_seed(0)
BASE = torch.randn(V, 3, generator=GEN, dtype=torch.float64)
JAW_BASIS = torch.randn(3, V * 3, generator=GEN, dtype=torch.float64)
EXPR_BASIS = torch.randn(100, V * 3, generator=GEN, dtype=torch.float64)


def toy_vertices(jaw: torch.Tensor, expressions: torch.Tensor,
                 betas: torch.Tensor | None) -> torch.Tensor:
    """A linear face: ``[T, 4, 3]``; betas[0] scales the template."""
    scale = 1.0 if betas is None else 1.0 + float(betas[0])
    offsets = (jaw @ JAW_BASIS + expressions @ EXPR_BASIS).reshape(-1, V, 3)
    return scale * BASE + offsets


def random_face(frames: int, seed: int) -> FaceMotion:
    g = torch.Generator().manual_seed(seed)
    return FaceMotion(jaw=torch.randn(frames, 3, generator=g, dtype=torch.float64) * 0.2,
                      expressions=torch.randn(frames, 100, generator=g, dtype=torch.float64))


def offset_expression(face: FaceMotion, coefficient: int, delta: float) -> FaceMotion:
    expressions = torch.as_tensor(face.expressions).clone()
    expressions[:, coefficient] += delta
    return FaceMotion(jaw=face.jaw, expressions=expressions)


def test_constant_offset_known_answers() -> None:
    gt = random_face(20, 1)
    delta, k = 0.5, 7
    metrics = face_vertex_metrics([offset_expression(gt, k, delta)], [gt], toy_vertices)
    row = EXPR_BASIS[k]
    assert metrics.mse == pytest.approx(float(delta**2 * row.pow(2).mean()))
    assert metrics.lvd == pytest.approx(float(delta * row.abs().mean()))  # a position error
    assert metrics.velocity_l1 == pytest.approx(0.0, abs=1e-12)  # the motion itself matches
    assert metrics.num_frames == 20


def test_lvd_is_the_official_formula_and_velocity_l1_the_velocity_difference() -> None:
    g = torch.Generator().manual_seed(2)
    gt = torch.randn(12, V, 3, generator=g)
    pred = torch.randn(12, V, 3, generator=g)
    official = ((pred[1:] - gt[:-1]) - (gt[1:] - gt[:-1])).abs().mean()
    assert vertex_lvd(pred, gt) == pytest.approx(float(official))
    ramp = gt.clone()
    ramp[:, 2, 1] += 0.3 * torch.arange(12)  # one coordinate drifts 0.3 per frame
    assert vertex_velocity_l1(ramp, gt) == pytest.approx(0.3 / (V * 3))
    assert vertex_mse(gt, gt) == 0.0
    with pytest.raises(ValueError, match="must match"):
        vertex_mse(gt, gt[:5])


def test_sequences_are_weighted_by_frames_and_betas_are_passed() -> None:
    short, long = random_face(10, 3), random_face(30, 4)
    metrics = face_vertex_metrics(
        [offset_expression(short, 0, 1.0), offset_expression(long, 0, 2.0)], [short, long],
        toy_vertices)
    m1, m2 = float(EXPR_BASIS[0].pow(2).mean()), float(4 * EXPR_BASIS[0].pow(2).mean())
    assert metrics.mse == pytest.approx((10 * m1 + 30 * m2) / 40)
    # a shape change moves GT and generated alike: errors unchanged
    shaped = face_vertex_metrics([offset_expression(short, 0, 1.0)], [short], toy_vertices,
                                 betas=[np.array([0.5])])
    assert shaped.mse == pytest.approx(m1)
    with pytest.raises(ValueError, match="generated frames"):
        face_vertex_metrics([random_face(5, 0)], [random_face(6, 0)], toy_vertices)


def test_face_param_error_known_answers() -> None:
    gt = FaceMotion(jaw=np.tile([0.2, 0.0, 0.0], (8, 1)), expressions=np.zeros((8, 100)))
    gen = FaceMotion(jaw=np.tile([0.35, 0.0, 0.0], (8, 1)), expressions=np.full((8, 100), 0.1))
    errors = face_param_error([gen, gt], [gt, gt])
    assert errors.num_frames == 16
    assert errors.expression_mse == pytest.approx(0.01 * 8 / 16)
    assert errors.jaw_angle == pytest.approx(0.15 * 8 / 16, abs=1e-6)
    with pytest.raises(ValueError, match="expressions must be"):
        face_param_error([FaceMotion(np.zeros((8, 3)), np.zeros((8, 50)))], [gt])


def write_face_smplx(path: Path) -> np.ndarray:
    """A synthetic SMPL-X file whose first expression direction is known; returns it."""
    n_verts, joints = 9930, len(PARENTS)
    rng = np.random.default_rng(0)
    v_template = rng.normal(0, 0.3, (n_verts, 3)).astype(np.float32)
    weights = np.zeros((n_verts, joints), np.float32)
    weights[:, 15] = 1.0  # the head ...
    weights[:100] = 0.0
    weights[:100, 22] = 1.0  # ... except 100 vertices on the jaw
    shapedirs = np.zeros((n_verts, 3, 400), np.float32)
    shapedirs[:, :, 300] = rng.normal(0, 0.01, (n_verts, 3))
    kintree = np.array([[4294967295, *PARENTS[1:]], list(range(joints))], np.int64)
    np.savez_compressed(
        path, v_template=v_template, f=rng.integers(0, n_verts, (16, 3)).astype(np.uint32),
        J_regressor=np.full((joints, n_verts), 1.0 / n_verts, np.float32),
        kintree_table=kintree, weights=weights,
        posedirs=np.zeros((n_verts, 3, 486), np.float32), shapedirs=shapedirs,
        hands_componentsl=np.eye(45, dtype=np.float32),
        hands_componentsr=np.eye(45, dtype=np.float32),
        hands_meanl=np.zeros(45, np.float32), hands_meanr=np.zeros(45, np.float32),
        lmk_faces_idx=np.zeros(51, np.int64),
        lmk_bary_coords=np.full((51, 3), 1 / 3, np.float32))
    return shapedirs[:, :, 300]


def test_smplx_face_vertices_pose_only_jaw_and_expressions(tmp_path: Path) -> None:
    pytest.importorskip("smplx")
    from semtalk.body.skeleton import SMPLXBodyModel

    direction = write_face_smplx(tmp_path / "SMPLX_NEUTRAL_2020.npz")
    vertices_fn = smplx_face_vertices(SMPLXBodyModel(tmp_path))
    expressions = torch.zeros(2, 100)
    expressions[1, 0] = 1.0
    vertices = vertices_fn(torch.zeros(2, 3), expressions, None)
    assert vertices.shape == (2, 9930, 3)
    assert torch.allclose(vertices[1] - vertices[0], torch.from_numpy(direction), atol=1e-5)
    # the jaw rotation reaches joint 22: only the jaw vertices move
    jawed = vertices_fn(torch.tensor([[0.3, 0.0, 0.0]] * 2), expressions, None)
    moved = (jawed - vertices).norm(dim=-1).amax(dim=0) > 1e-4
    assert moved[:100].all() and not moved[100:].any()
    gt = FaceMotion(jaw=torch.zeros(2, 3), expressions=torch.zeros(2, 100))
    metrics = face_vertex_metrics([FaceMotion(torch.zeros(2, 3), expressions)], [gt],
                                  vertices_fn)
    assert metrics.mse == pytest.approx(float((direction**2).mean()) / 2, rel=1e-4)
    assert math.isfinite(metrics.lvd)


# ---------------------------------------------------------------------- does the face move?
def test_pearson_known_answers() -> None:
    t = np.linspace(0.0, 4.0 * np.pi, 200)
    signal = np.sin(t)
    assert pearson(signal, 3.0 * signal + 2.0) == pytest.approx(1.0)
    assert pearson(signal, -signal) == pytest.approx(-1.0)
    assert pearson(np.sin(t), np.cos(t)) == pytest.approx(0.0, abs=0.02)
    assert pearson(signal, np.full_like(signal, 0.3)) == 0.0  # a still signal follows nothing
    with pytest.raises(ValueError, match="one length"):
        pearson(signal, signal[:-1])


def test_speech_envelope_is_the_rms_around_each_frame() -> None:
    rate, fps, frames = 16_000, 30, 60
    audio = np.zeros(frames * rate // fps)
    loud = slice(20 * rate // fps, 40 * rate // fps)  # frames 20..39 at amplitude 0.5
    audio[loud] = 0.5 * np.where(np.arange(audio[loud].size) % 2, 1.0, -1.0)
    envelope = speech_envelope(audio, frames, rate, fps)
    assert envelope.shape == (frames,)
    assert envelope[25:35] == pytest.approx(0.5)  # whole window inside the loud part
    assert envelope[:19] == pytest.approx(0.0) and envelope[41:] == pytest.approx(0.0)
    assert envelope[20] == pytest.approx(0.5 / np.sqrt(2), abs=0.01)  # half the window loud
    assert speech_envelope(audio[:100], 5, rate, fps)[2:] == pytest.approx(0.0)  # past the end


def test_jaw_envelope_correlation_and_jaw_opening() -> None:
    t = np.linspace(0.0, 6.0, 180)
    envelope = 1.0 + np.sin(3.0 * t)
    axis = np.array([0.6, 0.0, 0.8])  # a unit axis: the angle is the coefficient
    following = np.outer(0.05 + 0.1 * envelope, axis)
    assert jaw_opening(following) == pytest.approx(0.05 + 0.1 * envelope)
    still = np.tile(following[:1], (len(t), 1))
    assert jaw_envelope_correlation([following], [envelope]) == pytest.approx(1.0)
    assert jaw_envelope_correlation([still], [envelope]) == 0.0
    # frame-weighted: 180 frames at r = 1 and 60 frames at r = 0
    weighted = jaw_envelope_correlation([following, still[:60]], [envelope, envelope[:60]])
    assert weighted == pytest.approx(180 / 240)
    with pytest.raises(ValueError, match="jaw frames"):
        jaw_envelope_correlation([following], [envelope[:-1]])


def test_expression_std_is_the_mean_channel_std_weighted_by_frames() -> None:
    frames = np.arange(100)
    square = np.where(frames % 2, 1.0, -1.0)  # std exactly 1
    first = np.outer(square, np.linspace(0.0, 2.0, 100))  # channel stds 0..2, mean 1
    assert expression_std([first]) == pytest.approx(1.0)
    assert expression_std([first + 5.0]) == pytest.approx(1.0)  # offsets do not move a face
    second = np.zeros((300, 100))
    assert expression_std([first, second]) == pytest.approx(100 / 400)
    assert expression_std([0.5 * first]) / expression_std([first]) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="expressions must be"):
        expression_std([np.zeros((10, 50))])
