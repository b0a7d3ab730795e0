"""The shared solver: exact resume, refusal of foreign checkpoints, selection, logs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn
from torch.utils.data import Dataset

from semtalk.errors import DataError
from semtalk.training.metric_log import read_log
from semtalk.training.solver import CHECKPOINT_FILE, Solver, SolverConfig


class _Pairs(Dataset):
    def __init__(self, n: int, seed: int) -> None:
        g = torch.Generator().manual_seed(seed)
        self.x = torch.randn(n, 8, generator=g)
        self.y = self.x @ torch.randn(8, 1, generator=g) + 0.1 * torch.randn(n, 1, generator=g)

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"x": self.x[i], "y": self.y[i]}


class _Regression(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Dropout(0.3), nn.Linear(16, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def save_pretrained(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        torch.save(self.state_dict(), folder / "weights.pt")


class _ToySolver(Solver):
    """Regression with dropout and a random noise term, so RNG state matters."""

    stage = "toy"

    def __init__(self, config: SolverConfig, out: Path, val: bool = True) -> None:
        super().__init__(config, out)
        self.with_val = val

    def identity(self) -> dict[str, Any]:
        return {"data": "pairs-0"}

    def build_model(self) -> nn.Module:
        return _Regression()

    def train_dataset(self) -> Dataset:
        return _Pairs(50, 0)

    def val_dataset(self) -> Dataset | None:
        return _Pairs(20, 1) if self.with_val else None

    def training_loss(self, model: nn.Module, batch: dict[str, torch.Tensor],
                      step: int) -> tuple[torch.Tensor, dict[str, float]]:
        noise = 0.01 * torch.randn_like(batch["y"])
        loss = (model(batch["x"]) - batch["y"] - noise).pow(2).mean()
        return loss, {}

    def validation_metrics(self, model: nn.Module,
                           batch: dict[str, torch.Tensor]) -> dict[str, float]:
        torch.randn(3)  # validation must not disturb the training RNG
        return {"loss": (model(batch["x"]) - batch["y"]).pow(2).mean().item()}

    def save_release(self, model: nn.Module, folder: Path) -> None:
        model.save_pretrained(folder)  # type: ignore[operator]


def _config(**changes: Any) -> SolverConfig:
    base = dict(max_steps=12, batch_size=8, lr=0.01, validate_every=4, checkpoint_every=5,
                log_every=1, tensorboard=False)
    return SolverConfig(**{**base, **changes})


def _losses(folder: Path) -> dict[int, float]:
    return {r["step"]: r["loss"] for r in read_log(folder) if r["split"] == "train"}


def test_resume_gives_the_identical_next_losses(tmp_path: Path) -> None:
    _ToySolver(_config(), tmp_path / "straight").fit(progress=False)
    _ToySolver(_config(max_steps=5), tmp_path / "resumed").fit(progress=False)
    # A fresh solver object (as after a kill) continues from the checkpoint at step 5.
    _ToySolver(_config(), tmp_path / "resumed").fit(progress=False)
    straight, resumed = _losses(tmp_path / "straight"), _losses(tmp_path / "resumed")
    assert sorted(resumed) == list(range(1, 13))  # no duplicated or missing rows
    assert straight == resumed  # exact, including steps 6..12 after the resume


def test_resume_mid_epoch_matches(tmp_path: Path) -> None:
    # 50 windows / batch 8 = 6 steps per epoch; stopping at 3 resumes inside epoch 0.
    _ToySolver(_config(max_steps=8), tmp_path / "a").fit(progress=False)
    _ToySolver(_config(max_steps=3, checkpoint_every=3), tmp_path / "b").fit(progress=False)
    _ToySolver(_config(max_steps=8, checkpoint_every=3), tmp_path / "b").fit(progress=False)
    assert _losses(tmp_path / "a") == _losses(tmp_path / "b")


def test_checkpoint_of_another_run_is_refused_with_the_difference(tmp_path: Path) -> None:
    _ToySolver(_config(max_steps=5), tmp_path).fit(progress=False)
    with pytest.raises(DataError, match=r"solver\.lr: checkpoint has 0\.01, needed 0\.02"):
        _ToySolver(_config(lr=0.02), tmp_path).fit(progress=False)


def test_corrupt_checkpoint_is_reported(tmp_path: Path) -> None:
    tmp_path.mkdir(exist_ok=True)
    (tmp_path / CHECKPOINT_FILE).write_bytes(b"not a checkpoint")
    with pytest.raises(DataError, match="cannot read the training checkpoint"):
        _ToySolver(_config(), tmp_path).fit(progress=False)


def test_best_release_follows_the_validation_metric(tmp_path: Path) -> None:
    best = _ToySolver(_config(), tmp_path).fit(progress=False)
    assert (best / "weights.pt").is_file()
    val = [r for r in read_log(tmp_path) if r["split"] == "val"]
    assert [r["step"] for r in val] == [4, 8, 12]
    checkpoint = torch.load(tmp_path / CHECKPOINT_FILE, weights_only=True)
    state = json.loads(checkpoint["state"])
    assert state["best_value"] == min(r["loss"] for r in val)
    assert state["best_step"] == min(val, key=lambda r: r["loss"])["step"]
    run = json.loads((tmp_path / "run.json").read_text())
    assert run["stage"] == "toy" and run["solver"]["lr"] == 0.01


def test_without_validation_data_the_last_model_is_released(tmp_path: Path) -> None:
    best = _ToySolver(_config(max_steps=3), tmp_path, val=False).fit(progress=False)
    assert (best / "weights.pt").is_file()


def test_csv_log_has_long_format_rows(tmp_path: Path) -> None:
    _ToySolver(_config(max_steps=4), tmp_path).fit(progress=False)
    rows = (tmp_path / "log.csv").read_text().splitlines()
    assert rows[0] == "step,split,name,value"
    assert "4,val,loss," in "\n".join(rows)


def test_lr_schedule_warmup_and_decay() -> None:
    config = SolverConfig(lr=1.0, warmup_steps=4, lr_decay_steps=(10, 20), lr_decay_rate=0.5)
    assert [config.lr_factor(s) for s in (0, 3, 9, 10, 25)] == [0.25, 1.0, 1.0, 0.5, 0.25]
    with pytest.raises(ValueError, match="precision"):
        SolverConfig(precision="fp8")


def test_a_second_run_into_a_folder_in_use_is_refused(tmp_path: Path) -> None:
    import subprocess
    import sys

    holder = subprocess.Popen(  # stands for a training run that holds OUT
        [sys.executable, "-c", "import sys; from semtalk.fileio import FileLock; "
         "FileLock(sys.argv[1]).acquire(exclusive=True, wait=False); print('held', flush=True);"
         " sys.stdin.read()", str(tmp_path / ".lock")],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        with pytest.raises(DataError, match=rf"{tmp_path}: training folder is in use by PID "
                                            rf"{holder.pid} \(another `semtalk train`\)"):
            _ToySolver(_config(max_steps=2), tmp_path).fit(progress=False)
        assert not (tmp_path / CHECKPOINT_FILE).exists()
    finally:
        holder.communicate("", timeout=30)  # the holder ends; its lock goes with it
    _ToySolver(_config(max_steps=2), tmp_path).fit(progress=False)
    assert (tmp_path / CHECKPOINT_FILE).is_file()
