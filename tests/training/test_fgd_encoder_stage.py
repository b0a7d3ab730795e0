"""`semtalk train fgd-encoder` on the synthetic speaker: release, resume, and FGD behaviour."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from semtalk.body.parts import EYE_JOINTS
from semtalk.body.rotation import axis_angle_to_rot6d
from semtalk.cli import main
from semtalk.errors import DataError
from semtalk.features.cache import FeatureCache
from semtalk.metrics.fgd_encoder import FGDAutoencoder, FGDEncoderConfig
from semtalk.metrics.frechet import fgd
from semtalk.training.fgd_encoder import (
    FGDEncoderSolver,
    FGDTrainConfig,
    RotationWindows,
    load_fgd_config,
)
from semtalk.training.metric_log import read_log
from semtalk.training.windows import Window

STEPS = 60


@pytest.fixture(scope="module")
def cli_run(synth_cache: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A short CLI run of the tiny preset: its run folder."""
    out = tmp_path_factory.mktemp("fgd_run")
    code = main(["train", "fgd-encoder", "--data", str(synth_cache), "--out", str(out),
                 "--quiet", f"solver.max_steps={STEPS}", "solver.batch_size=8",
                 f"solver.validate_every={STEPS // 2}", "solver.log_every=1",
                 "solver.tensorboard=false"])
    assert code == 0
    return out


def _clip_rot6d(cache: FeatureCache, split: str) -> list[torch.Tensor]:
    """Whole clips of ``split`` as ``[T, 330]`` 6D rotations."""
    clips = []
    for clip_id in cache.ids(split):
        poses = torch.from_numpy(np.array(cache.load(clip_id).poses, dtype=np.float32))
        clips.append(axis_angle_to_rot6d(poses.reshape(len(poses), -1, 3)).flatten(-2))
    return clips


def test_cli_release_loads_and_loss_falls(cli_run: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    model = FGDAutoencoder.from_pretrained(cli_run / "fgd_encoder")
    assert model.config == FGDEncoderConfig()
    best = FGDAutoencoder.from_pretrained(cli_run / "best")
    for name, value in model.state_dict().items():
        assert torch.equal(value, best.state_dict()[name]), name
    log = read_log(cli_run)
    train = [r["loss"] for r in log if r["split"] == "train"]
    assert len(train) == STEPS
    assert np.mean(train[-5:]) < 0.5 * np.mean(train[:5])
    val = [r for r in log if r["split"] == "val"]
    assert [r["step"] for r in val] == [STEPS // 2, STEPS]
    assert {"loss", "rotation", "velocity", "acceleration", "angle_deg"} <= set(val[0])
    assert val[-1]["loss"] == pytest.approx(
        val[-1]["rotation"] + val[-1]["velocity"] + val[-1]["acceleration"], rel=1e-5)


def test_trained_encoder_fgd_separates_altered_motion(cli_run: Path, synth_cache: Path) -> None:
    encoder = FGDAutoencoder.from_pretrained(cli_run / "fgd_encoder")
    val = _clip_rot6d(FeatureCache(synth_cache), "val")
    same = fgd(encoder, val, val)
    reversed_ = fgd(encoder, [v.flip(0) for v in val], val)
    generator = torch.Generator().manual_seed(0)
    noisy = fgd(encoder, [v + 0.05 * torch.randn(v.shape, generator=generator) for v in val],
                val)
    assert abs(same) < 1e-5
    # Time reversal keeps every frame's pose; only the encoder's temporal context sees it.
    assert reversed_ > 1e-4 and reversed_ > 100 * abs(same)
    assert noisy > 1e-4 and noisy > 100 * abs(same)


def test_windows_are_55_joint_6d_with_recorded_eyes(synth_cache: Path) -> None:
    cache = FeatureCache(synth_cache)
    clip_id = cache.ids("train")[0]
    item = RotationWindows(cache, [Window(clip_id, 10, 64)])[0]["rot6d"]
    assert item.shape == (64, 330) and item.dtype == torch.float32
    poses = torch.tensor(np.array(cache.load(clip_id).poses[10:74]), dtype=torch.float64)
    expected = axis_angle_to_rot6d(poses.reshape(64, 55, 3))
    torch.testing.assert_close(item.reshape(64, 55, 6).double(), expected, atol=1e-6, rtol=0)
    eye = EYE_JOINTS[0]
    assert poses[:, eye].abs().max() > 0  # the fixture's eyes move, and the windows keep them
    torch.testing.assert_close(item[:, 6 * eye:6 * eye + 6].double(), expected[:, eye],
                               atol=1e-6, rtol=0)


def test_resume_gives_identical_next_loss(synth_cache: Path, tmp_path: Path) -> None:
    config = load_fgd_config("tiny", overrides=[
        "solver.max_steps=6", "solver.batch_size=8", "solver.validate_every=6",
        "solver.checkpoint_every=6", "solver.log_every=1", "solver.tensorboard=false"])
    FGDEncoderSolver(config, synth_cache, tmp_path / "a").fit(progress=False)
    FGDEncoderSolver(config, synth_cache, tmp_path / "b").fit(progress=False, stop_at=3)
    FGDEncoderSolver(config, synth_cache, tmp_path / "b").fit(progress=False)

    def losses(folder: Path) -> dict[int, float]:
        return {r["step"]: r["loss"] for r in read_log(folder) if r["split"] == "train"}

    assert len(losses(tmp_path / "a")) == 6
    assert losses(tmp_path / "a") == losses(tmp_path / "b")
    a = FGDAutoencoder.from_pretrained(tmp_path / "a" / "best")
    b = FGDAutoencoder.from_pretrained(tmp_path / "b" / "best")
    for name, value in a.state_dict().items():
        assert torch.equal(value, b.state_dict()[name]), name
    # A different architecture in the same folder is refused, naming what differs.
    other = load_fgd_config("tiny", overrides=["model.growth=[1,1,1,1]",
                                               "solver.tensorboard=false"])
    with pytest.raises(DataError, match="growth"):
        FGDEncoderSolver(other, synth_cache, tmp_path / "a").fit(progress=False)


def test_config_checks_and_presets(synth_cache: Path, tmp_path: Path,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(ValueError, match="multiple of the encoder's downsampling factor 16"):
        FGDTrainConfig(window=40)
    assert FGDTrainConfig(window=48).window == 48
    tiny, paper = load_fgd_config("tiny"), load_fgd_config("paper")
    assert tiny.model == paper.model == FGDEncoderConfig()  # the official evaluator's layout
    assert paper.solver.batch_size == 64 and paper.solver.betas == (0.5, 0.999)
    args = ["train", "fgd-encoder", "--data", str(synth_cache), "--out", str(tmp_path)]
    assert main([*args, "--preset", "huge"]) == 2
    assert "unknown preset" in capsys.readouterr().err
    assert main([*args, "windowz=64"]) == 2
    assert "windowz" in capsys.readouterr().err
    # A skeleton with another joint count than the cache's poses is refused up front.
    small = replace(tiny, model=replace(tiny.model, parents=(-1, 0, 1, 2, 3), norm_groups=1))
    with pytest.raises(DataError, match="poses have 55 joints"):
        FGDEncoderSolver(small, synth_cache, tmp_path / "small")
