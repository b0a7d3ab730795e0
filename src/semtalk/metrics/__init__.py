"""Evaluation metrics (spec §8): FGD, BC, DIV, face MSE / LVD and semantic accuracy.

Every function returns raw values; papers scale some of them (FGD x 10^-1, BC x 10^-1,
MSE x 10^-8, LVD x 10^-5), which report writers should label.
"""

from __future__ import annotations

from semtalk.metrics.beat import (
    BeatConsistencyConfig,
    aggregate_beat_consistency,
    audio_onsets,
    beat_alignment,
    beat_consistency,
    joint_speed,
    mean_beat_consistency,
    mean_joint_speed,
    motion_beats,
)
from semtalk.metrics.diversity import l1_deviation_sum, l1_diversity
from semtalk.metrics.face import (
    FaceMotion,
    FaceParamErrors,
    FaceVertexMetrics,
    VerticesFn,
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
from semtalk.metrics.fgd_encoder import (
    FGDAutoencoder,
    FGDAutoencoderOutput,
    FGDEncoderConfig,
    FGDLossWeights,
)
from semtalk.metrics.fgd_official import load_official_fgd_encoder
from semtalk.metrics.frechet import (
    encode_sequences,
    fgd,
    frechet_distance,
    frechet_distance_from_statistics,
    gaussian_statistics,
)
from semtalk.metrics.semantic import SEMANTIC_THRESHOLD, SemanticScores, semantic_accuracy

__all__ = [
    "SEMANTIC_THRESHOLD",
    "BeatConsistencyConfig",
    "FGDAutoencoder",
    "FGDAutoencoderOutput",
    "FGDEncoderConfig",
    "FGDLossWeights",
    "FaceMotion",
    "FaceParamErrors",
    "FaceVertexMetrics",
    "SemanticScores",
    "VerticesFn",
    "aggregate_beat_consistency",
    "audio_onsets",
    "beat_alignment",
    "beat_consistency",
    "encode_sequences",
    "expression_std",
    "face_param_error",
    "face_vertex_metrics",
    "fgd",
    "frechet_distance",
    "frechet_distance_from_statistics",
    "gaussian_statistics",
    "jaw_envelope_correlation",
    "jaw_opening",
    "joint_speed",
    "l1_deviation_sum",
    "l1_diversity",
    "load_official_fgd_encoder",
    "mean_beat_consistency",
    "mean_joint_speed",
    "motion_beats",
    "pearson",
    "semantic_accuracy",
    "smplx_face_vertices",
    "speech_envelope",
    "vertex_lvd",
    "vertex_mse",
    "vertex_velocity_l1",
]
