"""Every paper metric of generated motion against a cache's test split (spec §8, DESIGN §5).

:class:`Scorer` computes the ground-truth side once (joint positions, audio onsets, BC's speed
normaliser, FGD latents) and then scores any number of generated sets, so an ablation scores
all its variants against one ground truth.

What each metric reads:

- FGD: 55 joints x 6D of the whole pose (no translation), through an FGD encoder: a trained
  :class:`~semtalk.metrics.fgd_encoder.FGDAutoencoder` release or the official
  ``AESKConv_240_100.bin``; without either it is not computed (distances in an untrained
  network's space mean nothing).
- BC and DIV: joint positions from the body model (SMPL-X when given, else the built-in
  skeleton), with the GT betas, the generated pose, zero translation and neutral expressions.
  BC's per-joint speed normaliser is the mean joint speed of the cache's *train* split GT
  motion under the same body model (the role of BEAT2's ``mean_vel_smplxflame_30.npy``).
  BC reads the clips' audio from their dataset (the cache holds none).
- Face MSE / LVD: SMPL-X face vertices; without a model file they are not computed. The
  vertex-free expression MSE and jaw angle are always computed.
- Does the face move: the expression std (mean over the 100 coefficients of their std over
  time) of each row, and generated / GT as ``expression_std_ratio``; the jaw–envelope
  correlation (Pearson, per clip, jaw rotation angle against the speech RMS envelope at
  30 fps, frame-weighted) of generated and GT motion. See :mod:`semtalk.metrics.face`.
- Semantic accuracy: the model's per-token ψ against the clips' ``sem`` labels (a token is
  semantic when the mean score of its 4 frames is > 0), like the sparse stage's validation.

Controls: BC of motion scored against the audio of *another* test clip (each clip paired with
the next one, both cut to the shorter length; a single clip is paired with its own audio
rotated by half its length). The motion keeps its own beat statistics; only its alignment with
the speech is destroyed, so the gap to the real BC is what the motion owes to the audio.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from semtalk.body.motion import Motion
from semtalk.body.parts import JAW
from semtalk.body.rotation import axis_angle_to_rot6d
from semtalk.body.skeleton import BodyModel, SMPLXBodyModel, load_body_model
from semtalk.errors import DataError
from semtalk.evaluation.data import ClipAudio, dataset_root, ground_truth_motion, token_labels
from semtalk.features.cache import FeatureCache
from semtalk.metrics import (
    BeatConsistencyConfig,
    FaceMotion,
    FGDAutoencoder,
    aggregate_beat_consistency,
    audio_onsets,
    beat_alignment,
    encode_sequences,
    expression_std,
    face_param_error,
    face_vertex_metrics,
    frechet_distance,
    jaw_envelope_correlation,
    l1_diversity,
    load_official_fgd_encoder,
    mean_joint_speed,
    motion_beats,
    semantic_accuracy,
    smplx_face_vertices,
    speech_envelope,
)

METRICS: tuple[str, ...] = (
    "fgd", "bc", "div", "face_mse", "face_lvd", "face_velocity_l1", "expression_mse",
    "jaw_angle_deg", "expression_std", "expression_std_ratio", "jaw_envelope_corr",
    "sem_accuracy", "sem_balanced_accuracy", "sem_precision", "sem_recall",
    "sem_f1",
)
"""Keys of a scored row (raw values; ``None`` where not computed)."""

MIN_MEAN_SPEED = 1e-6
"""A BC joint slower than this on average (m/s) in the training GT counts as never moving."""

SEMANTIC_KEYS = ("accuracy", "balanced_accuracy", "precision", "recall", "f1")


@dataclass(frozen=True)
class ScoringOptions:
    """Where the optional evaluation assets are.

    Attributes:
        split: the cache split to score (``test``).
        fgd_encoder: a trained FGD encoder release (``semtalk train fgd-encoder``).
        fgd_official: the official ``AESKConv_240_100.bin`` (paper-comparable FGD).
        body_model: ``SMPLX_NEUTRAL_2020.npz`` for exact joints and face vertices; ``None``
            uses the built-in skeleton and skips the vertex metrics.
        dataset: the dataset (BEAT2 layout or SHOW) with the clips' audio (default: the cache's
            ``source.root``).
        bc_official_quirks: reproduce the official BC's threshold offset and audio end trim
            (:class:`~semtalk.metrics.beat.BeatConsistencyConfig`), for published numbers.
        device: where the FGD encoder runs.
    """

    split: str = "test"
    fgd_encoder: str | Path | None = None
    fgd_official: str | Path | None = None
    body_model: str | Path | None = None
    dataset: str | Path | None = None
    bc_official_quirks: bool = False
    device: str = "cpu"

    def __post_init__(self) -> None:
        if self.fgd_encoder is not None and self.fgd_official is not None:
            raise ValueError("give a trained FGD encoder or the official checkpoint, not both")


@dataclass
class ScoredSet:
    """The motion of one row, one entry per test clip, in the scorer's clip order.

    Attributes:
        motions: the motion of every clip (``T`` frames each, as the GT).
        token_psi: per-token ψ ``[ceil(T/4)]`` per clip, or ``None`` (ground truth).
    """

    motions: list[Motion]
    token_psi: list[np.ndarray] | None = None


def _nan_to_none(value: float | None) -> float | None:
    return None if value is None or math.isnan(value) else float(value)


def _rot6d(motion: Motion) -> np.ndarray:
    """``[T, 330]``: the 55 joint rotations as 6D (FGD's input)."""
    poses = torch.from_numpy(motion.poses).double().reshape(motion.num_frames, -1, 3)
    return axis_angle_to_rot6d(poses).reshape(motion.num_frames, -1).numpy()


def _face(motion: Motion) -> FaceMotion:
    return FaceMotion(motion.poses[:, 3 * JAW:3 * JAW + 3], motion.expressions)


class Scorer:
    """Scores generated motion of a cache split against its ground truth.

    Args:
        cache: the feature cache (clips, train-split GT for BC's normaliser).
        options: split and evaluation assets.

    Raises:
        DataError: no clip in the split, the audio cannot be found, an FGD encoder file is bad.
    """

    def __init__(self, cache: FeatureCache | str | Path, options: ScoringOptions) -> None:
        self.cache = cache if isinstance(cache, FeatureCache) else FeatureCache(cache)
        self.options = options
        self.clip_ids = self.cache.ids(options.split)
        if not self.clip_ids:
            raise DataError(self.cache.path, f"no complete {options.split!r} clips to evaluate")
        self.body: BodyModel = load_body_model(options.body_model)
        self.bc_config = BeatConsistencyConfig(official_quirks=options.bc_official_quirks)
        self.not_computed: dict[str, str] = {}
        clips = [self.cache.load(i) for i in self.clip_ids]
        self.motions = [ground_truth_motion(c) for c in clips]
        self.labels = [None if c.semantic is None else np.array(c.semantic) for c in clips]
        self.betas = [torch.from_numpy(m.betas).double() for m in self.motions]
        self.audio_root = dataset_root(self.cache, options.dataset)
        audio = ClipAudio(self.cache, self.audio_root)
        self.audio = [audio.load(i, m.num_frames) for i, m in zip(self.clip_ids, self.motions,
                                                                   strict=True)]
        self.onsets = [audio_onsets(a, m.num_frames, self.bc_config)
                       for a, m in zip(self.audio, self.motions, strict=True)]
        self.envelopes = [speech_envelope(a, m.num_frames, self.bc_config.sample_rate)
                          for a, m in zip(self.audio, self.motions, strict=True)]
        self.gt_expression_std = expression_std([m.expressions for m in self.motions])
        self.train_clips = self.cache.ids("train")
        if not self.train_clips:
            raise DataError(self.cache.path, "BC's speed normaliser comes from the train split, "
                                             "and this cache has no train clips")
        self.mean_speed = mean_joint_speed(
            self.joints(ground_truth_motion(self.cache.load(i))) for i in self.train_clips)
        self.bc_config, self.bc_excluded = self._moving_joints(self.bc_config)
        self.gt_joints = [self.joints(m, b) for m, b in zip(self.motions, self.betas,
                                                             strict=True)]
        self.fgd_encoder, self.fgd_source = self._fgd_encoder()
        self.gt_latents = (None if self.fgd_encoder is None else
                           encode_sequences(self.fgd_encoder, [_rot6d(m) for m in self.motions]))
        self.face_vertices = (smplx_face_vertices(self.body)
                              if isinstance(self.body, SMPLXBodyModel) else None)
        if self.face_vertices is None:
            reason = ("needs SMPL-X face vertices: give --body-model SMPLX_NEUTRAL_2020.npz "
                      "(the built-in skeleton has no mesh)")
            for key in ("face_mse", "face_lvd", "face_velocity_l1"):
                self.not_computed[key] = reason
        if not any(label is not None for label in self.labels):
            for key in SEMANTIC_KEYS:
                self.not_computed[f"sem_{key}"] = f"no {options.split} clip has semantic labels"

    # ------------------------------------------------------------------ set-up
    def _fgd_encoder(self) -> tuple[FGDAutoencoder | None, dict[str, Any] | None]:
        options = self.options
        if options.fgd_official is not None:
            encoder = load_official_fgd_encoder(options.fgd_official, device=options.device)
            return encoder, {"kind": "official", "path": str(options.fgd_official)}
        if options.fgd_encoder is not None:
            encoder = FGDAutoencoder.from_pretrained(options.fgd_encoder, options.device)
            return encoder.eval(), {"kind": "trained", "path": str(options.fgd_encoder)}
        self.not_computed["fgd"] = ("no FGD encoder: give --fgd-encoder DIR (semtalk train "
                                    "fgd-encoder) or --fgd-official AESKConv_240_100.bin")
        return None, None

    def _moving_joints(self, config: BeatConsistencyConfig
                       ) -> tuple[BeatConsistencyConfig, list[int]]:
        """``config`` restricted to the BC joints that move in the training GT.

        A joint whose mean speed is 0 (e.g. the spine base when the recorded global orientation
        never changes, as with the synthetic speaker) has no speed normaliser; it is left out
        of the BC average rather than dividing by zero.
        """
        moving = tuple(j for j in config.joints if self.mean_speed[j] > MIN_MEAN_SPEED)
        if not moving:
            raise DataError(self.cache.path, f"none of the BC joints {list(config.joints)} "
                                             f"moves in the train split's motion")
        return replace(config, joints=moving), [j for j in config.joints if j not in moving]

    @torch.no_grad()
    def joints(self, motion: Motion, betas: torch.Tensor | None = None) -> np.ndarray:
        """``[T, 55, 3]`` joints of the pose with zero translation and neutral expressions."""
        poses = torch.from_numpy(motion.poses).double()
        if betas is None:
            betas = torch.from_numpy(motion.betas).double()
        return self.body.joints(poses, None, betas).double().cpu().numpy()

    def describe(self) -> dict[str, Any]:
        """What the scores were computed with (JSON-ready)."""
        return {
            "split": self.options.split, "clips": self.clip_ids,
            "frames": [m.num_frames for m in self.motions],
            "body_model": self.body.name,
            "fgd_encoder": self.fgd_source,
            "bc": {"speed_normaliser": f"mean joint speed of the cache's train split GT "
                                       f"({len(self.train_clips)} clips, {self.body.name} "
                                       f"body, zero translation)",
                   "joints": list(self.bc_config.joints), "excluded_joints":
                       self.bc_excluded,
                   "audio": str(self.audio_root), "official_quirks":
                       self.options.bc_official_quirks,
                   "shuffled_control": "each clip's motion against the next test clip's "
                                       "audio (both cut to the shorter; one clip: its own "
                                       "audio rotated by half)"},
            "not_computed": dict(self.not_computed),
        }

    # ------------------------------------------------------------------ beat consistency
    def _bc(self, joints: np.ndarray, onsets: np.ndarray) -> float:
        """BC of one clip from precomputed onsets (same as ``metrics.beat_consistency``)."""
        if onsets.size == 0:
            return float("nan")
        beats = motion_beats(joints, self.mean_speed, self.bc_config)
        return float(np.mean([beat_alignment(onsets, b, self.bc_config.sigma) for b in beats]))

    def _usable(self, frames: int) -> bool:
        return frames > 2 * self.bc_config.trim_frames

    def beat_consistency(self, joints: Sequence[np.ndarray]) -> tuple[float, list[float]]:
        """Dataset BC (window-length weighted) and the per-clip scores (NaN: too short or
        no onset)."""
        scores = [self._bc(j, o) if self._usable(j.shape[0]) else float("nan")
                  for j, o in zip(joints, self.onsets, strict=True)]
        return aggregate_beat_consistency(scores, [j.shape[0] for j in joints],
                                          self.bc_config), scores

    def shuffled_beat_consistency(self, joints: Sequence[np.ndarray]) -> float:
        """BC of each clip's motion against another clip's audio (the control)."""
        count = len(joints)
        scores, lengths = [], []
        for index, motion_joints in enumerate(joints):
            if count == 1:
                audio = np.roll(self.audio[0], self.audio[0].size // 2)
            else:
                audio = self.audio[(index + 1) % count]
            audio_frames = self.motions[(index + 1) % count].num_frames
            frames = min(motion_joints.shape[0], audio_frames)
            if not self._usable(frames):
                continue
            onsets = audio_onsets(audio, frames, self.bc_config)
            scores.append(self._bc(motion_joints[:frames], onsets))
            lengths.append(frames)
        return aggregate_beat_consistency(scores, lengths, self.bc_config)

    # ------------------------------------------------------------------ rows
    def _check(self, scored: ScoredSet) -> None:
        if len(scored.motions) != len(self.motions):
            raise ValueError(f"{len(scored.motions)} motions for {len(self.motions)} clips")
        for clip_id, motion, gt in zip(self.clip_ids, scored.motions, self.motions,
                                       strict=True):
            if motion.num_frames != gt.num_frames:
                raise ValueError(f"clip {clip_id}: {motion.num_frames} generated frames vs "
                                 f"{gt.num_frames} ground-truth frames")

    def _face_motion(self, motions: Sequence[Motion]) -> dict[str, float | None]:
        """Expression std and jaw–envelope correlation of a row's motion."""
        return {"expression_std": expression_std([m.expressions for m in motions]),
                "jaw_envelope_corr": jaw_envelope_correlation(
                    [_face(m).jaw for m in motions], self.envelopes)}

    def _semantic(self, token_psi: list[np.ndarray]) -> dict[str, float | None]:
        psi, labels = [], []
        for label, tokens in zip(self.labels, token_psi, strict=True):
            if label is not None:
                psi.append(np.clip(np.asarray(tokens, dtype=np.float64), 0.0, 1.0))
                labels.append(token_labels(label, len(tokens)))
        if not psi:
            return {f"sem_{k}": None for k in SEMANTIC_KEYS}
        scores = semantic_accuracy(np.concatenate(psi), np.concatenate(labels))
        return {f"sem_{k}": _nan_to_none(getattr(scores, k)) for k in SEMANTIC_KEYS}

    def score(self, scored: ScoredSet) -> dict[str, Any]:
        """Every metric of a generated set (raw units; ``None`` where not computed).

        Returns:
            ``{"values": {metric: value}, "bc_shuffled": value, "per_clip": [...]}``.
        """
        self._check(scored)
        joints = [self.joints(m, b) for m, b in zip(scored.motions, self.betas, strict=True)]
        values: dict[str, float | None] = dict.fromkeys(METRICS)
        bc, per_clip_bc = self.beat_consistency(joints)
        values["bc"] = _nan_to_none(bc)
        values["div"] = l1_diversity(joints)
        if self.fgd_encoder is not None and self.gt_latents is not None:
            latents = encode_sequences(self.fgd_encoder, [_rot6d(m) for m in scored.motions])
            values["fgd"] = frechet_distance(latents, self.gt_latents)
        faces, gt_faces = [_face(m) for m in scored.motions], [_face(m) for m in self.motions]
        params = face_param_error(faces, gt_faces)
        values["expression_mse"] = params.expression_mse
        values["jaw_angle_deg"] = math.degrees(params.jaw_angle)
        values.update(self._face_motion(scored.motions))
        values["expression_std_ratio"] = (
            None if self.gt_expression_std <= 0 else
            values["expression_std"] / self.gt_expression_std)  # type: ignore[operator]
        if self.face_vertices is not None:
            vertex = face_vertex_metrics(faces, gt_faces, self.face_vertices, self.betas)
            values.update(face_mse=vertex.mse, face_lvd=vertex.lvd,
                          face_velocity_l1=vertex.velocity_l1)
        if scored.token_psi is not None:
            values.update(self._semantic(scored.token_psi))
        per_clip = [{"clip_id": c, "frames": m.num_frames, "bc": _nan_to_none(b),
                     "div": l1_diversity([j])}
                    for c, m, b, j in zip(self.clip_ids, scored.motions, per_clip_bc, joints,
                                          strict=True)]
        return {"values": values,
                "bc_shuffled": _nan_to_none(self.shuffled_beat_consistency(joints)),
                "per_clip": per_clip}

    def ground_truth(self) -> dict[str, Any]:
        """The "upper bound" row: GT scored where that means something (BC, DIV, the BC
        control, expression std, jaw–envelope correlation); distances of GT to itself (FGD,
        face errors, the std ratio) are left out."""
        bc, per_clip_bc = self.beat_consistency(self.gt_joints)
        values: dict[str, float | None] = dict.fromkeys(METRICS)
        values.update(bc=_nan_to_none(bc), div=l1_diversity(self.gt_joints))
        values.update(self._face_motion(self.motions))
        per_clip = [{"clip_id": c, "frames": m.num_frames, "bc": _nan_to_none(b),
                     "div": l1_diversity([j])}
                    for c, m, b, j in zip(self.clip_ids, self.motions, per_clip_bc,
                                          self.gt_joints, strict=True)]
        return {"values": values,
                "bc_shuffled": _nan_to_none(self.shuffled_beat_consistency(self.gt_joints)),
                "per_clip": per_clip}
