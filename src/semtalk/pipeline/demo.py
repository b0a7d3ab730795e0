"""``semtalk demo``: the whole pipeline on the embedded synthetic speaker, offline, in minutes.

:func:`run_demo` builds everything in one folder ``DIR`` (default ``semtalk-demo/``)::

    DIR/semtalk-demo.json   the demo's settings and its last timings (marks DIR as a demo folder)
    DIR/data/               1. synthetic-speaker dataset, BEAT2 layout   (semtalk synth)
    DIR/cache/              2. feature cache, offline extractors          (semtalk prepare)
    DIR/runs/               3-5. training OUT: tokenizer/, base/, sparse/ releases and the run
                            folders face/ upper/ hands/ lower/ base_run/ sparse_run/
    DIR/release/            6. the three stages assembled into one release (semtalk.json)
    DIR/output/             7. npz + JSON + ψ plot + mp4 of a held-out (test-split) clip

The steps are the stages of :data:`semtalk.pipeline.stages.PIPELINE` (with their resume
rules) plus the demo's ``generate``: every step is skipped when its output is complete (the
dataset validates; the cache holds every clip with the same extractors; a training run resumes
from its checkpoint, which for a finished run is a no-op; the release matches the trained
stages file for file; the outputs are newer than the release), so a second run reuses what the
first built and a killed run continues where it stopped. The four tokenizer parts train in
parallel processes (one per CPU core, at most two by default); the base and sparse stages run
in this process with as many torch threads (a step of either is 1.3x faster on two threads
than on one), everything else with one thread, which is fastest for the rest.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from semtalk.constants import __version__
from semtalk.errors import DataError
from semtalk.fileio import FileLock, LockBusyError, write_text_atomic
from semtalk.pipeline.graph import Graph, Outcome, Stage, StepReport
from semtalk.pipeline.stages import PIPELINE, TOKENIZER_ORDER, Workspace, worker_count

if TYPE_CHECKING:
    import numpy as np

    from semtalk.body.motion import Motion

THREADED_STAGES = ("base", "sparse")
"""Stages that run with one torch thread per worker (the others with one)."""
STAMP = "semtalk-demo.json"
FOLDERS = ("data", "cache", "runs", "release", "output")
LOCK_FILE = ".lock"
"""What the demo writes under DIR (``--fresh`` removes exactly these and the stamp)."""


@dataclass(frozen=True)
class DemoConfig:
    """What ``semtalk demo`` builds.

    Attributes:
        out: the demo folder ``DIR``.
        minutes: length of the synthetic speaker dataset (40: the sem-gate generalises to
            held-out clips with more keyword contexts, held-out ψ balanced accuracy 0.88 at 20
            minutes and 0.91 at 40; training steps do not depend on it, only synth's and
            prepare's time does).
        seed: the dataset's random seed.
        clip_seconds: length of each synthetic clip (10 % of the clips are val, 10 % test).
        tokenizer_preset, generator_preset: packaged presets (``demo``, ``tiny``, ``paper``).
        tokenizer_steps, base_steps, sparse_steps: ``solver.max_steps`` per stage (``None``:
            the preset's).
        tokenizer_overrides, generator_overrides: more ``key=value`` overrides of the
            tokenizer stage / the base and sparse stages.
        workers: processes that train tokenizer parts at once, and torch threads of the base
            and sparse stages (``None``: one per CPU core, at most two; 1 trains the parts one
            after another in this process and the generators on one thread).
        video: render the preview mp4 of the held-out clip.
    """

    out: str = "semtalk-demo"
    minutes: float = 40.0
    seed: int = 0
    clip_seconds: float = 30.0
    tokenizer_preset: str = "demo"
    generator_preset: str = "demo"
    tokenizer_steps: int | None = None
    base_steps: int | None = None
    sparse_steps: int | None = None
    tokenizer_overrides: tuple[str, ...] = ()
    generator_overrides: tuple[str, ...] = ()
    workers: int | None = None
    video: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "out", str(self.out))  # a Path is welcome; stored as text
        for name in ("tokenizer_steps", "base_steps", "sparse_steps", "workers"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"{name} must be >= 1, got {value}")


@dataclass(frozen=True)
class DemoPaths:
    """The folders of a demo under ``root``."""

    root: Path

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def cache(self) -> Path:
        return self.root / "cache"

    @property
    def runs(self) -> Path:
        return self.root / "runs"

    @property
    def release(self) -> Path:
        return self.root / "release"

    @property
    def output(self) -> Path:
        return self.root / "output"


@dataclass
class DemoResult:
    """What a demo run produced.

    Attributes:
        folder: the demo folder.
        release: the trained release (usable with ``semtalk generate --model``).
        clip_id: the held-out clip the outputs were generated for.
        outputs: ``{kind: path}`` of the generated files (npz, json, plot, video).
        steps: one report per step, in order.
    """

    folder: Path
    release: Path
    clip_id: str
    outputs: dict[str, Path]
    steps: list[StepReport] = field(default_factory=list)

    @property
    def timings(self) -> dict[str, float]:
        """Wall seconds per step."""
        return {s.name: s.seconds for s in self.steps}

    @property
    def seconds(self) -> float:
        return sum(s.seconds for s in self.steps)


# ------------------------------------------------------------------------------ the folder
def _open_folder(config: DemoConfig, fresh: bool) -> tuple[DemoPaths, FileLock]:
    """Check that ``config.out`` is a demo folder (or new/empty), lock it for this run, clear
    it when ``fresh``; returns the paths and the held lock (release it at the end).

    A second demo in the same folder would remove the stages the first is building (stale
    outputs are deleted when an upstream stage changes), so it stops with "in use by PID".
    """
    paths = DemoPaths(Path(config.out))
    root = paths.root
    if root.exists() and not root.is_dir():
        raise DataError(root, "exists and is not a folder; choose another --out")
    stamp = root / STAMP
    if root.is_dir() and any(p.name != LOCK_FILE for p in root.iterdir()) \
            and not stamp.is_file():
        raise DataError(root, "is not empty and was not made by `semtalk demo`; choose a new "
                              "or empty --out folder")
    root.mkdir(parents=True, exist_ok=True)
    lock = FileLock(root / LOCK_FILE)
    try:
        lock.acquire(exclusive=True, wait=False)
    except LockBusyError as exc:
        lock.release()
        holder = exc.holder or "another process"
        raise DataError(root, f"demo folder is in use by {holder} (another `semtalk demo`); "
                              f"wait for it to finish or choose another --out") from None
    try:
        _clear_and_stamp(paths, config, fresh)
    except BaseException:
        lock.release()
        raise
    return paths, lock


def _clear_and_stamp(paths: DemoPaths, config: DemoConfig, fresh: bool) -> None:
    """Remove what an earlier demo built when ``fresh``, check the dataset settings, write
    the stamp."""
    root, stamp = paths.root, paths.root / STAMP
    if fresh:
        for name in FOLDERS:
            shutil.rmtree(root / name, ignore_errors=True)
        stamp.unlink(missing_ok=True)
    _check_dataset_settings(paths, config)
    _write_stamp(paths, config, [])


def _synth_config(config: DemoConfig) -> Any:
    from semtalk.data.synthetic.dataset import SynthConfig

    return SynthConfig(minutes=config.minutes, seed=config.seed,
                       clip_seconds=config.clip_seconds)


def _check_dataset_settings(paths: DemoPaths, config: DemoConfig) -> None:
    """Refuse a demo folder whose dataset was made with other settings (say how to proceed)."""
    from semtalk.data.synthetic.dataset import MANIFEST

    manifest = paths.data / MANIFEST
    if not manifest.is_file():
        return
    have = json.loads(manifest.read_text()).get("config")
    want = asdict(_synth_config(config))
    if have != want:
        changed = ", ".join(f"{k} {have.get(k) if have else None} -> {v}"
                            for k, v in want.items() if not have or have.get(k) != v)
        raise DataError(paths.root, f"was built with other dataset settings ({changed}); use "
                                    f"another --out folder, or --fresh to rebuild this one")


def _write_stamp(paths: DemoPaths, config: DemoConfig, steps: list[StepReport]) -> None:
    record = {"semtalk_version": __version__, "config": asdict(config),
              "steps": [asdict(s) for s in steps]}
    write_text_atomic(paths.root / STAMP, json.dumps(record, indent=1) + "\n")


# ------------------------------------------------------------------------------ generate
def held_out_clip(data: str | Path) -> str:
    """The id of the clip the demo generates for: the dataset's first test clip."""
    from semtalk.data.beat2 import Beat2Dataset

    test = Beat2Dataset(data, splits=["test"])
    if not len(test):
        raise DataError(Path(data), "the dataset has no test clip to generate for")
    return test.ids[0]


def _outputs_current(outputs: dict[str, Path], release: Path) -> bool:
    """All outputs exist and were written after the release was assembled."""
    from semtalk.release import MANIFEST

    made = (release / MANIFEST).stat().st_mtime
    return all(p.is_file() and p.stat().st_size > 0 and p.stat().st_mtime >= made
               for p in outputs.values())


def _generate(ws: Workspace) -> Outcome:
    """The demo's last stage: generate for the held-out clip (skipped when its outputs are
    newer than the release). Runs in a :class:`DemoWorkspace`."""
    if not isinstance(ws, DemoWorkspace):
        raise TypeError(f"the generate stage needs a DemoWorkspace, got {type(ws).__name__}")
    from tqdm.auto import tqdm

    from semtalk.data.beat2 import Beat2Dataset
    from semtalk.generation.engine import SemTalk
    from semtalk.generation.outputs import output_paths, save_outputs
    from semtalk.metrics.semantic import semantic_accuracy

    data, release = ws.need(ws.data, "dataset folder"), ws.need(ws.release, "release folder")
    clip_id = held_out_clip(data)
    ws.generated["clip_id"] = clip_id
    outputs = output_paths(ws.output, clip_id, video=ws.video)
    ws.generated["outputs"] = outputs
    if _outputs_current(outputs, release):
        return Outcome(f"outputs of {clip_id} are current", reused=True)
    dataset = Beat2Dataset(data, splits=["test"])
    info = dataset.info(clip_id)
    clip = dataset.load(info)
    model = SemTalk.from_pretrained(release)
    gen = model.generate(clip.audio, words=clip.words, speaker=info.speaker_id)
    if gen.num_frames != clip.num_frames:
        raise RuntimeError(f"generated {gen.num_frames} frames for a {clip.num_frames}-frame "
                           f"clip")
    source = {"audio": str(info.path("audio")), "textgrid": str(info.path("words")),
              "words_source": "textgrid", "clip": clip_id, "split": "test",
              "speaker_id": info.speaker_id}
    with tqdm(total=gen.num_frames, desc=f"video {clip_id}", unit="frame", leave=False,
              disable=not (ws.progress and ws.video), dynamic_ncols=True) as bar:
        save_outputs(gen, ws.output, clip_id, video=ws.video, extra={"input": source},
                     progress=lambda done, total: bar.update(done - bar.n))
    fused = int(gen.sparse_tokens.sum())
    summary = (f"{clip_id}: {gen.num_frames} frames ({gen.num_frames / gen.fps:.1f} s), "
               f"ψ > β on {fused} of {len(gen.sparse_tokens)} tokens")
    summary += "; " + _face_summary(gen.motion, clip.motion, clip.audio)
    if clip.semantic_scores is not None and (clip.semantic_scores > 0).any():
        scores = semantic_accuracy(gen.psi_model, clip.semantic_scores)
        summary += (f"; ψ vs annotated semantic frames: balanced accuracy "
                    f"{scores.balanced_accuracy:.2f}")
    return Outcome(summary, reused=False)


def _face_summary(generated: Motion, truth: Motion, audio: np.ndarray) -> str:
    """Whether the generated face moves: expression std against the GT's, and the jaw's
    correlation with the speech envelope (generated and GT), as ``semtalk evaluate`` reports."""
    from semtalk.body.parts import JAW
    from semtalk.metrics.face import expression_std, jaw_envelope_correlation, speech_envelope

    frames = truth.num_frames
    envelope = speech_envelope(audio, frames)
    ratio = expression_std([generated.expressions]) / max(expression_std([truth.expressions]),
                                                          1e-12)
    jaw = slice(3 * JAW, 3 * JAW + 3)
    r_gen = jaw_envelope_correlation([generated.poses[:, jaw]], [envelope])
    r_gt = jaw_envelope_correlation([truth.poses[:, jaw]], [envelope])
    return (f"face: expression std {ratio:.2f} x GT, jaw-envelope r {r_gen:.2f} "
            f"(GT {r_gt:.2f})")


# ------------------------------------------------------------------------------ the run
@dataclass
class DemoWorkspace(Workspace):
    """The pipeline's workspace plus what the ``generate`` stage needs and records."""

    output: Path = Path("output")
    video: bool = True
    generated: dict[str, Any] = field(default_factory=dict)

    def folders(self) -> dict[str, str]:
        return {**super().folders(), "output": str(self.output)}


DEMO_PIPELINE: Graph[Workspace] = PIPELINE.add(Stage(
    "generate", _generate, needs=("release",), title="generate for a held-out clip -> {output}"))
"""The pipeline's stages plus the demo's ``generate`` (the demo runs what ``generate`` needs)."""


def _steps_override(steps: int | None) -> tuple[str, ...]:
    return () if steps is None else (f"solver.max_steps={steps}",)


def workspace(paths: DemoPaths, config: DemoConfig, progress: bool) -> DemoWorkspace:
    """The pipeline workspace of a demo folder: its folders and the stages' configs."""
    from semtalk.training.generator import load_generator_config
    from semtalk.training.tokenizer import load_tokenizer_config

    def generator(steps: int | None) -> Any:
        return load_generator_config(config.generator_preset, overrides=(
            *config.generator_overrides, *_steps_override(steps)))

    return DemoWorkspace(
        cache=paths.cache, runs=paths.runs, data=paths.data, release=paths.release,
        synth=_synth_config(config),
        tokenizer_config=load_tokenizer_config(config.tokenizer_preset, overrides=(
            *config.tokenizer_overrides, *_steps_override(config.tokenizer_steps))),
        base_config=generator(config.base_steps), sparse_config=generator(config.sparse_steps),
        parts=TOKENIZER_ORDER, workers=config.workers, progress=progress,
        output=paths.output, video=config.video)


@contextmanager
def _torch_threads(count: int) -> Iterator[None]:
    previous = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _say(progress: bool, text: str) -> None:
    if progress:
        print(text, flush=True)


def run_demo(config: DemoConfig = DemoConfig(), progress: bool = True, *,
             fresh: bool = False) -> DemoResult:
    """Build (or complete) the demo in ``config.out``; see the module docstring.

    Args:
        config: what to build.
        progress: print a header and the time of every step, and progress bars.
        fresh: first remove what an earlier demo built in ``config.out``.

    Returns:
        the release, the generated files and a report per step.
    """
    paths, lock = _open_folder(config, fresh)
    try:
        return _run(paths, config, progress)
    finally:
        lock.release()


def _run(paths: DemoPaths, config: DemoConfig, progress: bool) -> DemoResult:
    """The steps of :func:`run_demo` in an opened, locked folder."""
    ws = workspace(paths, config, progress)
    reports: list[StepReport] = []
    threads = worker_count(config.workers, 2)

    def before(index: int, count: int, stage: Stage[Workspace]) -> None:
        torch.set_num_threads(threads if stage.name in THREADED_STAGES else 1)
        _say(progress, f"[{index}/{count}] {stage.title.format(**ws.folders())}")

    def after(report: StepReport) -> None:
        reports.append(report)
        _write_stamp(paths, config, reports)
        verb = "reused" if report.reused else "done"
        _say(progress, f"      {verb} in {_duration(report.seconds)} (CPU "
                       f"{report.cpu_seconds:.0f} s): {report.summary}")

    _say(progress, f"semtalk demo: {config.minutes:g} min synthetic speaker (seed "
                   f"{config.seed}) -> {paths.root}")
    with _torch_threads(1):
        DEMO_PIPELINE.run(ws, ["generate"], before=before, after=after)
    result = DemoResult(paths.root, paths.release, ws.generated["clip_id"],
                        ws.generated["outputs"], reports)
    _say(progress, _closing(result))
    return result


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f} s"
    return f"{int(seconds // 60)} min {seconds % 60:02.0f} s"


def _closing(result: DemoResult) -> str:
    data = result.folder / "data"
    lines = [f"demo complete in {_duration(result.seconds)}; everything is in {result.folder}/",
             *(f"  {kind:6s} {path}" for kind, path in result.outputs.items()),
             f"  release {result.release}",
             "use the trained model on your own speech:",
             f"  semtalk generate AUDIO --model {result.release}",
             "for example, the held-out clip with its word timings:",
             f"  semtalk generate {data}/wave16k/{result.clip_id}.wav --textgrid "
             f"{data}/textgrid/{result.clip_id}.TextGrid --model {result.release}"]
    return "\n".join(lines)
