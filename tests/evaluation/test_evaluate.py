"""``semtalk evaluate``: generation from cached clips, resume, base-only, reports, the CLI."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from semtalk.cli import main
from semtalk.evaluation.data import check_cache_features, load_eval_clips
from semtalk.evaluation.evaluate import (
    GENERATED_DIR,
    METRICS_JSON,
    METRICS_MD,
    TAIL_REPEAT,
    TAIL_SILENCE,
    EvaluationResult,
    clip_seed,
    evaluate_release,
    load_engine,
    tail_padding,
)
from semtalk.evaluation.scoring import Scorer, ScoringOptions
from semtalk.features.cache import CacheMismatchError, FeatureCache
from semtalk.generation.engine import SemTalk
from semtalk.release import FeatureSpec

ROWS = ["generated", "generated_shuffled_audio", "ground_truth", "ground_truth_shuffled_audio"]


@pytest.fixture(scope="module")
def scorer(synth_cache: Path, fgd_encoder_dir: Path) -> Scorer:
    return Scorer(synth_cache, ScoringOptions(fgd_encoder=fgd_encoder_dir))


@pytest.fixture(scope="module")
def evaluation(tiny_release: Path, synth_cache: Path, scorer: Scorer,
               tmp_path_factory: pytest.TempPathFactory) -> EvaluationResult:
    out = tmp_path_factory.mktemp("evaluation")
    return evaluate_release(tiny_release, synth_cache, out, scorer=scorer, progress=False)


def test_evaluation_writes_every_row_and_resumes(tiny_release: Path, synth_cache: Path,
                                                 scorer: Scorer, evaluation: EvaluationResult,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    result, out = evaluation, evaluation.json_path.parent
    report = json.loads((out / METRICS_JSON).read_text())
    assert [r["name"] for r in report["rows"]] == ROWS
    assert report["generation"]["beta"] == 0.5 and not report["generation"]["base_only"]
    generated = result.values("generated")
    assert generated["fgd"] is not None and generated["fgd"] > 0
    assert 0 <= generated["sem_accuracy"] <= 1 and 0 <= generated["bc"] <= 1
    assert generated["face_mse"] is None and "face_mse" in report["scoring"]["not_computed"]
    truth = result.values("ground_truth")
    assert truth["fgd"] is None and truth["div"] > 0
    row = report["rows"][0]
    assert row["paper_units"]["fgd"] == pytest.approx(10 * generated["fgd"])
    control = report["rows"][1]["values"]
    assert control["bc"] is not None and control["div"] is None
    markdown = (out / METRICS_MD).read_text()
    assert "## Paper units" in markdown and "FGD ×10⁻¹" in markdown and "n/c" in markdown
    assert "--body-model" in markdown
    ids = FeatureCache(synth_cache).ids("test")
    assert sorted(p.stem for p in (out / GENERATED_DIR).glob("*.npz")) == sorted(ids)

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("a finished clip was generated again")

    monkeypatch.setattr(SemTalk, "generate_features", refuse)
    again = evaluate_release(tiny_release, synth_cache, out, scorer=scorer, progress=False)
    assert again.values("generated") == result.values("generated")


def test_saved_clips_are_the_engines_output(tiny_release: Path, synth_cache: Path,
                                            evaluation: EvaluationResult) -> None:
    engine = load_engine(tiny_release)
    cache = FeatureCache(synth_cache)
    clip = load_eval_clips(cache, "test", "spectral", tail=True)[0]
    assert clip.features.num_frames == clip.num_frames + cache.tail
    torch.manual_seed(clip_seed(clip.clip_id))
    direct = engine.generate_features(clip.features, speaker=clip.speaker,
                                      seed=clip.motion.crop(0, 4), num_frames=clip.num_frames)
    folder = evaluation.json_path.parent / GENERATED_DIR
    with np.load(folder / f"{clip.clip_id}.npz") as saved:
        assert np.array_equal(saved["poses"], direct.motion.poses)
        assert np.array_equal(saved["token_psi"], direct.token_psi_model)
    assert direct.num_frames == clip.num_frames
    assert evaluation.report["generation"]["tail_padding"] == "silence features (cache tails)"
    # the last window reads the silence after the clip, not its last row repeated
    untailed = load_eval_clips(cache, "test", "spectral")[0]
    torch.manual_seed(clip_seed(clip.clip_id))
    repeated = engine.generate_features(untailed.features, speaker=clip.speaker,
                                        seed=clip.motion.crop(0, 4))
    last = -(-(clip.num_frames % 60 or 60) // 4)  # tokens of the last window inside the clip
    assert np.array_equal(repeated.token_psi_model[:-last - 2], direct.token_psi_model[:-last - 2])
    assert not np.array_equal(repeated.token_psi_model[-last:], direct.token_psi_model[-last:])
    assert np.array_equal(direct.motion.betas, clip.motion.betas)  # from the GT seed


def test_base_only_never_takes_sparse_codes(tiny_release: Path, synth_cache: Path,
                                            scorer: Scorer, evaluation: EvaluationResult,
                                            tmp_path: Path) -> None:
    full = evaluation
    base = evaluate_release(tiny_release, synth_cache, tmp_path, scorer=scorer, progress=False,
                            base_only=True, label="w/o SE")
    assert base.report["generation"]["beta"] == 1.0
    assert base.report["generation"]["sparse_token_share"] == 0.0
    assert full.report["generation"]["sparse_token_share"] > 0  # untrained gate: ψ ≈ 0.5
    assert base.values("generated")["sem_accuracy"] is None
    assert base.report["rows"][0]["label"] == "w/o SE"
    assert base.values("generated")["div"] != full.values("generated")["div"]  # regenerated


def test_cache_with_other_features_is_refused(tiny_release: Path, synth_cache: Path) -> None:
    features = load_engine(tiny_release).release.features
    cache = FeatureCache(synth_cache)
    check_cache_features(cache, features)
    changed = copy.deepcopy(features.to_dict())
    changed["audio_features"]["spectral"]["config"]["n_mels"] = 128
    other = FeatureSpec.from_dict(changed)
    with pytest.raises(CacheMismatchError, match="n_mels"):
        check_cache_features(cache, other)


def test_cli_evaluates_and_reports_missing_audio(tiny_release: Path, synth_cache: Path,
                                                 tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "cli"
    code = main(["evaluate", "--model", str(tiny_release), "--data", str(synth_cache),
                 "--out", str(out), "--quiet"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "ground truth (upper bound)" in printed and (out / METRICS_JSON).is_file()
    code = main(["evaluate", "--model", str(tiny_release), "--data", str(synth_cache),
                 "--out", str(out), "--dataset", str(tmp_path / "nowhere"), "--quiet"])
    assert code == 2
    assert "--dataset" in capsys.readouterr().err


def test_reports_are_replaced_both_or_neither(tiny_release: Path, synth_cache: Path,
                                              scorer: Scorer, evaluation: EvaluationResult,
                                              tmp_path: Path, monkeypatch) -> None:
    from semtalk.evaluation import evaluate

    out = tmp_path / "out"
    out.mkdir()
    (out / METRICS_JSON).write_text("old json")
    (out / METRICS_MD).write_text("old md")

    def disk_full(path, text):  # type: ignore[no-untyped-def]
        raise OSError(28, "No space left on device", str(path))

    monkeypatch.setattr(evaluate, "write_markdown", disk_full)
    with pytest.raises(OSError, match="No space"):
        evaluate_release(tiny_release, synth_cache, out, scorer=scorer, progress=False)
    assert (out / METRICS_JSON).read_text() == "old json"
    assert (out / METRICS_MD).read_text() == "old md"
    assert sorted(p.name for p in out.iterdir()) == sorted([GENERATED_DIR, METRICS_JSON,
                                                            METRICS_MD])


def test_official_releases_and_old_caches_repeat_the_last_row(synth_cache: Path) -> None:
    """The official family pads as the official code does; a cache without tails cannot
    pad with silence."""
    from types import SimpleNamespace

    cache = FeatureCache(synth_cache)
    engine = SimpleNamespace(release=SimpleNamespace(family="paper"))
    assert tail_padding(cache, engine) == TAIL_SILENCE  # type: ignore[arg-type]
    engine.release.family = "official"
    assert tail_padding(cache, engine) == TAIL_REPEAT  # type: ignore[arg-type]
    engine.release.family = "paper"
    cache.manifest = {k: v for k, v in cache.manifest.items() if k != "tail"}
    assert tail_padding(cache, engine) == TAIL_REPEAT  # type: ignore[arg-type]
