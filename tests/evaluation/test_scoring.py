"""The scorer: known answers when the "generated" motion is the ground truth, controls, gaps."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from semtalk.body.motion import Motion
from semtalk.evaluation.data import token_labels
from semtalk.evaluation.scoring import ScoredSet, Scorer, ScoringOptions
from semtalk.metrics import beat_consistency


@pytest.fixture(scope="module")
def scorer(synth_cache: Path, fgd_encoder_dir: Path) -> Scorer:
    return Scorer(synth_cache, ScoringOptions(fgd_encoder=fgd_encoder_dir))


def _label_psi(scorer: Scorer, invert: bool = False) -> list[np.ndarray]:
    psi = []
    for label, motion in zip(scorer.labels, scorer.motions, strict=True):
        assert label is not None
        semantic = token_labels(label, -(-motion.num_frames // 4)) > 0
        psi.append(np.where(semantic != invert, 0.9, 0.1))
    return psi


def test_ground_truth_as_generated_gives_the_known_answers(scorer: Scorer) -> None:
    result = scorer.score(ScoredSet(scorer.motions, _label_psi(scorer)))
    values, truth = result["values"], scorer.ground_truth()["values"]
    assert abs(values["fgd"]) < 1e-4  # 24 latents of 240 channels: sqrtm round-off
    assert values["expression_mse"] == 0 and values["jaw_angle_deg"] == pytest.approx(0, abs=1e-5)
    assert values["bc"] == pytest.approx(truth["bc"]) and 0 < values["bc"] < 1
    assert values["div"] == pytest.approx(truth["div"]) and values["div"] > 1
    assert values["sem_accuracy"] == 1.0 and values["sem_f1"] == 1.0
    assert values["expression_std_ratio"] == pytest.approx(1.0)
    assert values["expression_std"] == pytest.approx(truth["expression_std"])
    assert truth["expression_std"] > 0.05
    # the synthetic speaker's jaw follows its speech envelope
    assert values["jaw_envelope_corr"] == pytest.approx(truth["jaw_envelope_corr"])
    assert truth["jaw_envelope_corr"] > 0.5
    assert truth["expression_std_ratio"] is None  # GT against itself
    inverted = scorer.score(ScoredSet(scorer.motions, _label_psi(scorer, invert=True)))
    assert inverted["values"]["sem_accuracy"] == 0.0
    assert result["per_clip"][0]["clip_id"] == scorer.clip_ids[0]
    assert result["per_clip"][0]["bc"] == pytest.approx(values["bc"])  # one test clip


def test_still_motion_has_no_diversity_no_beats_and_a_larger_fgd(scorer: Scorer) -> None:
    still = [Motion(np.repeat(m.poses[:1], m.num_frames, 0),
                    np.repeat(m.expressions[:1], m.num_frames, 0), m.trans, m.betas)
             for m in scorer.motions]
    values = scorer.score(ScoredSet(still))["values"]
    assert values["expression_std_ratio"] == 0.0 and values["jaw_envelope_corr"] == 0.0
    assert values["div"] == pytest.approx(0, abs=1e-9) and values["bc"] == 0.0
    assert values["fgd"] > 1e-3
    assert values["sem_accuracy"] is None  # no ψ given


def test_bc_matches_the_metric_and_its_control_rotates_the_audio(scorer: Scorer) -> None:
    joints = scorer.gt_joints[0]
    audio = scorer.audio[0]
    expected = beat_consistency(joints, audio, scorer.mean_speed, scorer.bc_config)
    assert scorer.ground_truth()["values"]["bc"] == pytest.approx(expected)
    rotated = np.roll(audio, audio.size // 2)  # a single test clip: its own audio, rotated
    control = beat_consistency(joints, rotated, scorer.mean_speed, scorer.bc_config)
    assert scorer.ground_truth()["bc_shuffled"] == pytest.approx(control)
    assert control != pytest.approx(expected)


def test_joints_that_never_move_are_left_out_of_bc(scorer: Scorer) -> None:
    # the synthetic speaker's global orientation is constant: the spine base (3) stays still
    # once translation is removed, so it has no speed normaliser
    assert scorer.bc_excluded == [3]
    assert 3 not in scorer.bc_config.joints and len(scorer.bc_config.joints) == 12
    assert scorer.describe()["bc"]["excluded_joints"] == [3]


def test_what_is_not_computed_says_why(scorer: Scorer, synth_cache: Path) -> None:
    assert "--body-model" in scorer.not_computed["face_mse"]
    assert "fgd" not in scorer.not_computed
    values = scorer.score(ScoredSet(scorer.motions))["values"]
    assert values["face_mse"] is None and values["face_lvd"] is None
    bare = Scorer(synth_cache, ScoringOptions())
    assert "--fgd-encoder" in bare.not_computed["fgd"]
    assert bare.score(ScoredSet(scorer.motions))["values"]["fgd"] is None
    with pytest.raises(ValueError, match="not both"):
        ScoringOptions(fgd_encoder="a", fgd_official="b")


def test_mismatched_sets_are_rejected(scorer: Scorer) -> None:
    with pytest.raises(ValueError, match="motions for"):
        scorer.score(ScoredSet([]))
    short = [dataclasses.replace(m).crop(0, m.num_frames - 4) for m in scorer.motions]
    with pytest.raises(ValueError, match="generated frames vs"):
        scorer.score(ScoredSet(short))
