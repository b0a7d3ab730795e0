"""`semtalk demo`: the whole pipeline end to end, reuse of finished steps, folder safety, CLI."""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from semtalk.body.motion import read_motion_npz
from semtalk.cli import main
from semtalk.data.audio import load_audio, num_frames_for
from semtalk.errors import DataError
from semtalk.pipeline import Outcome, Workspace
from semtalk.pipeline.demo import (
    DEMO_PIPELINE,
    STAMP,
    DemoConfig,
    DemoResult,
    held_out_clip,
    run_demo,
)
from semtalk.release import Release
from semtalk.training.metric_log import read_log

STEPS = ["synth", "prepare", "tokenizer", "base", "sparse", "release", "generate"]
RUNS = ["face", "upper", "hands", "lower", "base_run", "sparse_run"]
QUICK = ("solver.batch_size=8", "solver.tensorboard=false")


def quick_config(out: Path) -> DemoConfig:
    """Six 6-second clips (4 train, 1 val, 1 test) and two steps per stage: seconds."""
    return DemoConfig(out=str(out), minutes=0.6, clip_seconds=6.0, tokenizer_steps=2,
                      base_steps=2, sparse_steps=2, tokenizer_overrides=QUICK,
                      generator_overrides=(*QUICK, "sparse.batch_size=null"), workers=1)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[DemoConfig, DemoResult]:
    config = quick_config(tmp_path_factory.mktemp("demo") / "semtalk-demo")
    return config, run_demo(config, progress=False)


def copy_of(built: tuple[DemoConfig, DemoResult], tmp_path: Path) -> DemoConfig:
    """The built demo copied to ``tmp_path`` (tests that change it work on their own copy)."""
    config, result = built
    shutil.copytree(result.folder, tmp_path / "demo")
    return replace(config, out=str(tmp_path / "demo"))


def snapshot(folder: Path) -> dict[str, bytes | float]:
    """Run logs by content; checkpoints, releases and outputs by modification time."""
    state: dict[str, bytes | float] = {}
    for run in RUNS:
        state[f"{run}/log"] = (folder / "runs" / run / "log.jsonl").read_bytes()
        state[f"{run}/checkpoint"] = (folder / "runs" / run / "checkpoint.pt").stat().st_mtime
    for path in [*(folder / "output").iterdir(), folder / "release" / "semtalk.json"]:
        state[str(path.relative_to(folder))] = path.stat().st_mtime
    return state


def test_first_run_builds_every_step(built: tuple[DemoConfig, DemoResult]) -> None:
    config, result = built
    root = Path(config.out)
    assert [s.name for s in result.steps] == STEPS
    assert not any(s.reused for s in result.steps)
    assert set(result.timings) == set(STEPS) and all(t > 0 for t in result.timings.values())
    assert result.release == root / "release"
    stamp = json.loads((root / STAMP).read_text())
    assert stamp["config"]["minutes"] == config.minutes and len(stamp["steps"]) == len(STEPS)
    # Every stage trained for the requested steps (the demo preset's lower body half of
    # them, rounded up) and validated on the val clip.
    for run in RUNS:
        records = read_log(root / "runs" / run)
        assert max(r["step"] for r in records) == (1 if run == "lower" else 2)
        assert any(r["split"] == "val" for r in records)
    release = Release.load(result.release)
    assert release.speakers == {1: 2}  # BEAT2 speaker 2 is embedding row 1


def test_outputs_are_valid(built: tuple[DemoConfig, DemoResult]) -> None:
    config, result = built
    data = Path(config.out) / "data"
    assert result.clip_id == held_out_clip(data)
    assert set(result.outputs) == {"npz", "json", "plot", "video"}
    frames = num_frames_for(len(load_audio(data / "wave16k" / f"{result.clip_id}.wav")))
    motion, _ = read_motion_npz(result.outputs["npz"], strict=True)
    assert motion.num_frames == frames > 150  # a 6 s clip, one frame per 1/30 s of audio
    assert np.isfinite(motion.poses).all() and motion.poses.std(axis=0).max() > 0
    report = json.loads(result.outputs["json"].read_text())
    psi = np.array(report["psi"])
    assert report["num_frames"] == frames and psi.shape == (frames,)
    assert ((psi >= 0) & (psi <= 1)).all()
    assert report["input"]["clip"] == result.clip_id and report["input"]["split"] == "test"
    assert result.outputs["plot"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    video = result.outputs["video"].read_bytes()
    assert len(video) > 1000 and video[4:8] == b"ftyp"


def test_generator_stages_run_on_one_thread_per_worker(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """The base and sparse stages get one torch thread per worker (two workers: two), the
    other steps one; the caller's thread count comes back afterwards."""
    import torch

    from semtalk.pipeline import stages

    seen: dict[str, int] = {}

    def recording(name: str, train: Callable[..., Any]) -> Callable[..., Any]:
        def run(*args: Any, **kwargs: Any) -> Any:
            seen[name] = torch.get_num_threads()
            return train(*args, **kwargs)
        return run

    monkeypatch.setattr(stages, "train_base", recording("base", stages.train_base))
    monkeypatch.setattr(stages, "train_sparse", recording("sparse", stages.train_sparse))
    from semtalk.features import cache  # prepare imports it when it runs

    monkeypatch.setattr(cache, "prepare_cache", recording("prepare", cache.prepare_cache))
    before = torch.get_num_threads()
    run_demo(replace(quick_config(tmp_path / "demo"), workers=2, video=False), progress=False)
    assert seen == {"prepare": 1, "base": 2, "sparse": 2}
    assert torch.get_num_threads() == before


def test_second_run_reuses_everything(built: tuple[DemoConfig, DemoResult],
                                      tmp_path: Path) -> None:
    config = copy_of(built, tmp_path)
    before = snapshot(Path(config.out))
    start = time.perf_counter()
    again = run_demo(config, progress=False)
    elapsed = time.perf_counter() - start
    assert all(s.reused for s in again.steps), [(s.name, s.summary) for s in again.steps]
    assert snapshot(Path(config.out)) == before  # no step trained, wrote a release or output
    assert again.outputs == {k: Path(config.out) / p.relative_to(built[1].folder)
                             for k, p in built[1].outputs.items()}
    assert elapsed < 30  # a few seconds of checks, not a rebuild


def test_interrupted_run_continues(built: tuple[DemoConfig, DemoResult],
                                   tmp_path: Path) -> None:
    """A run killed after training base: sparse, release and outputs are (re)built."""
    config = replace(copy_of(built, tmp_path), video=False)
    root = Path(config.out)
    base_log = (root / "runs" / "base_run" / "log.jsonl").read_bytes()
    for name in ("runs/sparse_run", "runs/sparse", "release", "output"):
        shutil.rmtree(root / name)
    result = run_demo(config, progress=False)
    reused = {s.name: s.reused for s in result.steps}
    assert reused == {"synth": True, "prepare": True, "tokenizer": True, "base": True,
                      "sparse": False, "release": False, "generate": False}
    assert (root / "runs" / "base_run" / "log.jsonl").read_bytes() == base_log
    assert max(r["step"] for r in read_log(root / "runs" / "sparse_run")) == 2
    assert all(p.is_file() for p in result.outputs.values())


def test_a_changed_stage_makes_the_later_runs_stale(tmp_path: Path) -> None:
    """A stage whose release changed removes the runs trained on it; an unchanged one does
    not (e.g. a finished tokenizer resumed, or trained longer without a better model)."""
    runs = tmp_path / "runs"
    for name in ("tokenizer/face", "base_run", "base", "sparse_run", "sparse"):
        (runs / name).mkdir(parents=True)
        (runs / name / "model.safetensors").write_bytes(b"v1")

    def stage(content: bytes):  # the demo's stages, with a tokenizer "training" that writes
        def rewrite(ws: Workspace) -> Outcome:
            (ws.runs / "tokenizer" / "face" / "model.safetensors").write_bytes(content)
            return Outcome("trained")
        return DEMO_PIPELINE.replace("tokenizer", run=rewrite)

    ws = Workspace(cache=tmp_path / "cache", runs=runs)
    assert stage(b"v1").run_stage(ws, "tokenizer").reused  # same bytes: reused
    assert (runs / "sparse_run").is_dir()
    assert not stage(b"v2").run_stage(ws, "tokenizer").reused
    assert sorted(p.name for p in runs.iterdir()) == ["tokenizer"]


def test_refuses_folders_it_did_not_make(tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    with pytest.raises(DataError, match="not made by `semtalk demo`"):
        run_demo(quick_config(foreign), progress=False)
    assert main(["demo", "--out", str(foreign)]) == 2
    assert "not made by `semtalk demo`" in capsys.readouterr().err
    assert sorted(p.name for p in foreign.iterdir()) == ["notes.txt"]


def test_other_dataset_settings_need_fresh(built: tuple[DemoConfig, DemoResult],
                                           tmp_path: Path) -> None:
    config = replace(copy_of(built, tmp_path), seed=5)
    with pytest.raises(DataError, match=r"seed 0 -> 5.*--fresh"):
        run_demo(config, progress=False)


def test_cli_maps_arguments_to_the_config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    import semtalk.pipeline.demo

    calls: list[tuple[DemoConfig, bool, bool]] = []

    def fake_run(config: DemoConfig, progress: bool = True, *, fresh: bool = False) -> DemoResult:
        calls.append((config, progress, fresh))
        out = Path(config.out)
        return DemoResult(out, out / "release", "clip", {})

    monkeypatch.setattr(semtalk.pipeline.demo, "run_demo", fake_run)
    out = tmp_path / "d"
    assert main(["demo", "--out", str(out), "--minutes", "3", "--seed", "4", "--preset", "tiny",
                 "--base-steps", "7", "--workers", "1", "--no-video", "--fresh",
                 "--quiet"]) == 0
    config, progress, fresh = calls[-1]
    assert config == DemoConfig(out=str(out), minutes=3.0, seed=4, tokenizer_preset="tiny",
                                generator_preset="tiny", base_steps=7, workers=1, video=False)
    assert not progress and fresh
    assert str(out / "release") in capsys.readouterr().out
    assert main(["demo"]) == 0
    assert calls[-1] == (DemoConfig(), True, False)
    with pytest.raises(SystemExit):
        main(["demo", "--sparse-steps", "0"])


def test_demo_presets_load() -> None:
    from semtalk.training.generator import load_generator_config
    from semtalk.training.tokenizer import load_tokenizer_config

    tokenizer = load_tokenizer_config("demo")
    generator = load_generator_config("demo")
    for model in (generator.base, generator.sparse_model):
        assert model.sizes.latent == tokenizer.model.code_dim  # the generators fit the codes
        assert model.dropout == 0.0
    assert generator.sparse.gate_class_weights == (1.0, 4.0)
    assert tokenizer.solver.max_steps < load_tokenizer_config("tiny").solver.max_steps
    with pytest.raises(ValueError, match="must be >= 1"):
        DemoConfig(base_steps=0)


def test_worker_errors_come_back_as_data_errors(tmp_path: Path) -> None:
    from semtalk.pipeline.stages import train_part
    from semtalk.training.tokenizer import load_tokenizer_config

    error = train_part(load_tokenizer_config("demo"), "face", str(tmp_path / "nowhere"),
                        str(tmp_path / "runs"))
    assert error is not None and error[0] == str(tmp_path / "nowhere")
    assert "not a feature cache" in str(DataError(*error))


@pytest.mark.slow
def test_default_demo(tmp_path: Path) -> None:
    """The default demo as the README runs it: learns, and a second run reuses it."""
    config = DemoConfig(out=str(tmp_path / "semtalk-demo"))
    result = run_demo(config, progress=False)
    root = Path(config.out)
    motion, _ = read_motion_npz(result.outputs["npz"])
    audio = load_audio(root / "data" / "wave16k" / f"{result.clip_id}.wav")
    assert motion.num_frames == num_frames_for(len(audio))
    assert result.outputs["video"].stat().st_size > 10_000
    # It learned: codes far above chance, and the sem-gate separates semantic tokens.
    base = [r for r in read_log(root / "runs" / "base_run") if r["split"] == "val"]
    sparse = [r for r in read_log(root / "runs" / "sparse_run") if r["split"] == "val"]
    assert max(r["code_acc"] for r in base) > 5 / 64
    assert base[-1]["loss"] < base[0]["loss"]
    assert max(r["sem_balanced_accuracy"] for r in sparse) > 0.6
    before = snapshot(root)
    again = run_demo(config, progress=False)
    assert all(s.reused for s in again.steps) and snapshot(root) == before
    assert again.seconds < 60



def test_a_second_demo_into_a_folder_in_use_is_refused(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    import subprocess
    import sys

    import semtalk.pipeline.demo as demo

    def must_not_run(*args: object, **kwargs: object) -> None:
        raise AssertionError("the second demo started building")

    monkeypatch.setattr(demo, "workspace", must_not_run)
    out = tmp_path / "demo"
    out.mkdir()
    holder = subprocess.Popen(  # stands for a demo that is building in ``out``
        [sys.executable, "-c", "import sys; from semtalk.fileio import FileLock; "
         "FileLock(sys.argv[1]).acquire(exclusive=True, wait=False); print('held', flush=True);"
         " sys.stdin.read()", str(out / ".lock")],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        with pytest.raises(DataError, match=rf"{out}: demo folder is in use by PID "
                                            rf"{holder.pid} \(another `semtalk demo`\)"):
            run_demo(quick_config(out), progress=False, fresh=True)
    finally:
        holder.communicate("", timeout=30)
    assert sorted(p.name for p in out.iterdir()) == [".lock"]  # nothing cleared or written
