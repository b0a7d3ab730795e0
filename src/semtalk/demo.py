"""``semtalk demo``: the whole pipeline on the embedded synthetic speaker, offline, in minutes.

:func:`run_demo` builds everything in one folder ``DIR`` (default ``semtalk-demo/``)::

    DIR/semtalk-demo.json   the demo's settings and its last timings (marks DIR as a demo folder)
    DIR/data/               1. synthetic-speaker dataset, BEAT2 layout   (semtalk synth)
    DIR/cache/              2. feature cache, offline extractors          (semtalk prepare)
    DIR/runs/               3-5. training OUT: tokenizer/, base/, sparse/ releases and the run
                            folders face/ upper/ hands/ lower/ base_run/ sparse_run/
    DIR/release/            6. the three stages assembled into one release (semtalk.json)
    DIR/output/             7. npz + JSON + ψ plot + mp4 of a held-out (test-split) clip

Every step is skipped when its output is complete (the dataset validates; the cache holds every
clip with the same extractors; a training run resumes from its checkpoint, which for a finished
run is a no-op; the release matches the trained stages file for file; the outputs are newer than
the release), so a second run reuses what the first built and a killed run continues where it
stopped. The four tokenizer parts train in parallel processes (one per CPU core, at most two by
default); everything else runs in this process with one torch thread, which is fastest for
these tiny models.
"""

from __future__ import annotations

import filecmp
import hashlib
import json
import os
import shutil
import time
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import torch

from semtalk.body.parts import BodyPart
from semtalk.constants import __version__
from semtalk.errors import DataError
from semtalk.fileio import write_text_atomic

STAMP = "semtalk-demo.json"
FOLDERS = ("data", "cache", "runs", "release", "output")
"""What the demo writes under DIR (``--fresh`` removes exactly these and the stamp)."""
TOKENIZER_ORDER = (BodyPart.HANDS, BodyPart.LOWER, BodyPart.UPPER, BodyPart.FACE)
"""Parts in the order they are handed to the worker processes (largest first)."""
DOWNSTREAM = {"tokenizer": ("base_run", "base", "sparse_run", "sparse"),
              "base": ("sparse_run", "sparse"), "sparse": ()}
"""Run folders (under DIR/runs) trained on a stage's release."""
POLL_SECONDS = 0.5


@dataclass(frozen=True)
class DemoConfig:
    """What ``semtalk demo`` builds.

    Attributes:
        out: the demo folder ``DIR``.
        minutes: length of the synthetic speaker dataset.
        seed: the dataset's random seed.
        clip_seconds: length of each synthetic clip (10 % of the clips are val, 10 % test).
        tokenizer_preset, generator_preset: packaged presets (``demo``, ``tiny``, ``paper``).
        tokenizer_steps, base_steps, sparse_steps: ``solver.max_steps`` per stage (``None``:
            the preset's).
        tokenizer_overrides, generator_overrides: more ``key=value`` overrides of the
            tokenizer stage / the base and sparse stages.
        workers: processes that train tokenizer parts at once (``None``: one per CPU core, at
            most two; 1 trains them one after another in this process).
        video: render the preview mp4 of the held-out clip.
    """

    out: str = "semtalk-demo"
    minutes: float = 10.0
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
class StepReport:
    """How one step went: wall seconds, whether it only reused earlier work, a summary."""

    name: str
    reused: bool
    summary: str = ""
    seconds: float = 0.0
    """Wall-clock time."""
    cpu_seconds: float = 0.0
    """CPU time of this process and of the worker processes it waited for."""


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
def _open_folder(config: DemoConfig, fresh: bool) -> DemoPaths:
    """Check that ``config.out`` is a demo folder (or new/empty), clear it when ``fresh``."""
    paths = DemoPaths(Path(config.out))
    root = paths.root
    if root.exists() and not root.is_dir():
        raise DataError(root, "exists and is not a folder; choose another --out")
    stamp = root / STAMP
    if root.is_dir() and any(root.iterdir()) and not stamp.is_file():
        raise DataError(root, "is not empty and was not made by `semtalk demo`; choose a new "
                              "or empty --out folder")
    if fresh:
        for name in FOLDERS:
            shutil.rmtree(root / name, ignore_errors=True)
        stamp.unlink(missing_ok=True)
    _check_dataset_settings(paths, config)
    root.mkdir(parents=True, exist_ok=True)
    _write_stamp(paths, config, [])
    return paths


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


# ------------------------------------------------------------------------------ steps
def _dataset_problems(root: Path, config: DemoConfig) -> list[str]:
    """Why ``root`` is not the complete, valid synthetic dataset of ``config`` (empty: it is)."""
    from semtalk.data.beat2 import SPLIT_FILE, Beat2Dataset
    from semtalk.data.synthetic.dataset import MANIFEST

    synth = _synth_config(config)
    if not (root / MANIFEST).is_file() or not (root / SPLIT_FILE).is_file():
        return ["not generated yet"]
    if json.loads((root / MANIFEST).read_text()).get("config") != asdict(synth):
        return ["made with other settings"]
    dataset = Beat2Dataset(root, splits=None)
    if len(dataset) != synth.num_clips:
        return [f"{len(dataset)} of {synth.num_clips} clips"]
    checks = [dataset.check(info) for info in dataset]
    return [str(issue) for check in checks if not check.ok for issue in check.issues]


def _step_synth(paths: DemoPaths, config: DemoConfig, progress: bool) -> StepReport:
    from semtalk.data.synthetic.dataset import generate_dataset

    if not _dataset_problems(paths.data, config):
        return StepReport("synth", True, "dataset complete and valid")
    manifest = generate_dataset(paths.data, _synth_config(config), progress=progress)
    problems = _dataset_problems(paths.data, config)
    if problems:
        raise DataError(paths.data, "the synthetic dataset does not validate: "
                                    + "; ".join(problems[:5]))
    clips = manifest["clips"]
    minutes = sum(c["frames"] for c in clips) / 30 / 60
    gestures = sum(c["semantic_gestures"] for c in clips)
    return StepReport("synth", False,
                      f"{len(clips)} clips, {minutes:.1f} min, {gestures} semantic gestures")


def _extractors() -> tuple[list[Any], list[Any]]:
    """The offline extractors (pooled sentence vectors whatever is installed: reproducible)."""
    from semtalk.features.registry import FeatureSpec, build_extractors

    return build_extractors(FeatureSpec(sentence_encoder="pooled"))


def _cache_complete(paths: DemoPaths, audio: list[Any], window: list[Any]) -> bool:
    from semtalk.data.beat2 import Beat2Dataset
    from semtalk.features.cache import MANIFEST, FeatureCache

    if not (paths.cache / MANIFEST).is_file():
        return False
    cache = FeatureCache(paths.cache)
    if cache.missing() or cache.ids() != Beat2Dataset(paths.data).ids:
        return False
    try:
        cache.require({e.name: e.identity() for e in audio},
                      {e.name: e.identity() for e in window})
    except DataError:
        return False
    return True


def _step_prepare(paths: DemoPaths, config: DemoConfig, progress: bool) -> StepReport:
    from semtalk.features.cache import prepare_cache

    audio, window = _extractors()
    names = ", ".join(f"{e.name}({e.dim})" for e in [*audio, *window])
    if _cache_complete(paths, audio, window):
        return StepReport("prepare", True, f"cache complete: {names}")
    cache = prepare_cache(paths.data, paths.cache, audio_extractors=audio,
                          window_extractors=window, progress=progress)
    return StepReport("prepare", False, f"{len(cache.ids())} clips: {names}")


def _steps_override(steps: int | None) -> tuple[str, ...]:
    return () if steps is None else (f"solver.max_steps={steps}",)


def _tokenizer_config(config: DemoConfig) -> Any:
    from semtalk.training.tokenizer import load_tokenizer_config

    return load_tokenizer_config(config.tokenizer_preset, overrides=(
        *config.tokenizer_overrides, *_steps_override(config.tokenizer_steps)))


def _generator_config(config: DemoConfig, steps: int | None) -> Any:
    from semtalk.training.generator import load_generator_config

    return load_generator_config(config.generator_preset, overrides=(
        *config.generator_overrides, *_steps_override(steps)))


def _logged_step(run: Path) -> int:
    """The last step in ``run/log.jsonl`` (0 when there is none); tolerates a partial line."""
    path = run / "log.jsonl"
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError:
        return 0
    for line in reversed(lines):
        try:
            return int(json.loads(line)["step"])
        except (ValueError, KeyError, TypeError):
            continue
    return 0


def _validations(run: Path) -> tuple[dict[str, float], dict[str, float]] | None:
    """The run's first and best (lowest ``loss``) validation rows; ``None`` without any."""
    from semtalk.training.metric_log import read_log

    rows = [r for r in read_log(run) if r.get("split") == "val" and "loss" in r]
    if not rows:
        return None
    return rows[0], min(rows, key=lambda r: r["loss"])


def _tokenizer_summary(runs: Path) -> str:
    errors = []
    for part in BodyPart:
        rows = _validations(runs / part.value)
        if rows is not None:
            best = rows[1]
            mm = f" {best['joint_mm']:.1f} mm" if "joint_mm" in best else ""
            errors.append(f"{part.value} {best['angle_deg']:.2f}°{mm}")
    return "val reconstruction error " + ", ".join(errors)


def _generator_summary(run: Path, codebook_size: int) -> str:
    rows = _validations(run)
    if rows is None:
        return "no validation logged"
    first, best = rows
    text = (f"val loss {first['loss']:.3g} -> {best['loss']:.3g}, code accuracy "
            f"{best['code_acc']:.2f} (chance {1 / codebook_size:.2f})")
    if "sem_balanced_accuracy" in best:
        text += f", sem-gate balanced accuracy {best['sem_balanced_accuracy']:.2f}"
    return text


def _train_part(tokenizer_config: Any, part: str, cache: str,
                runs: str) -> tuple[str, str] | None:
    """Worker-process entry: train (or resume) one tokenizer part, quietly. A DataError comes
    back as ``(path, problem)`` (it does not survive pickling as an exception)."""
    from semtalk.training.tokenizer import train_tokenizer

    torch.set_num_threads(1)
    try:
        train_tokenizer(tokenizer_config, BodyPart(part), cache, runs, progress=False)
    except DataError as exc:
        return str(exc.path), exc.problem
    return None


def _parallel_parts(tokenizer_config: Any, parts: list[BodyPart], paths: DemoPaths,
                    workers: int, progress: bool) -> None:
    """Train ``parts`` in ``workers`` processes; one progress bar fed by their logs."""
    from tqdm.auto import tqdm

    steps = tokenizer_config.solver.max_steps
    bar = tqdm(total=steps * len(parts), desc=f"train tokenizer ({len(parts)} parts, "
               f"{workers} processes)", unit="step", disable=not progress, dynamic_ncols=True)
    pool = ProcessPoolExecutor(workers, mp_context=get_context("spawn"))
    try:
        futures: dict[Future, BodyPart] = {
            pool.submit(_train_part, tokenizer_config, p.value, str(paths.cache),
                        str(paths.runs)): p for p in parts}
        pending = set(futures)
        while pending:
            done, pending = wait(pending, timeout=POLL_SECONDS, return_when=FIRST_COMPLETED)
            for future in done:
                error = future.result()  # other exceptions surface here with their traceback
                if error is not None:
                    raise DataError(*error)
            finished = sum(steps for f in futures if f.done())
            running = sum(min(_logged_step(paths.runs / futures[f].value), steps)
                          for f in pending)
            bar.update(finished + running - bar.n)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        bar.close()


def _worker_count(config: DemoConfig, jobs: int) -> int:
    if config.workers is not None:
        wanted = config.workers
    elif hasattr(os, "sched_getaffinity"):  # the cores this process may run on
        wanted = min(2, len(os.sched_getaffinity(0)))
    else:
        wanted = min(2, os.cpu_count() or 1)
    return max(1, min(wanted, jobs))


def _digest(folder: Path) -> str | None:
    """A hash of every file name and byte under ``folder`` (``None`` when it does not exist)."""
    if not folder.is_dir():
        return None
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(folder)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def _train_stage(paths: DemoPaths, stage: str, train: Callable[[], object]) -> bool:
    """Run ``train`` (which trains or resumes ``stage``); True when it left the stage's release
    as it was. A changed release makes the later stages' runs stale: they are removed, so they
    train again on it (their checkpoints would refuse it anyway)."""
    before = _digest(paths.runs / stage)
    train()
    if _digest(paths.runs / stage) == before:
        return True
    for name in DOWNSTREAM[stage]:
        shutil.rmtree(paths.runs / name, ignore_errors=True)
    return False


def _finished(run: Path, release: Path, steps: int) -> bool:
    """The run looks finished (only used to keep the progress bars of no-op resumes quiet)."""
    return release.is_dir() and _logged_step(run) >= steps


def _step_tokenizer(paths: DemoPaths, config: DemoConfig, progress: bool) -> StepReport:
    from semtalk.training.tokenizer import train_tokenizer

    tokenizer_config = _tokenizer_config(config)
    steps = tokenizer_config.solver.max_steps
    release = paths.runs / "tokenizer"

    def train() -> None:
        new = [p for p in TOKENIZER_ORDER if not (release / p.value).is_dir()]
        workers = _worker_count(config, len(new))
        if workers > 1:
            _parallel_parts(tokenizer_config, new, paths, workers, progress)
        for part in TOKENIZER_ORDER:  # resumes (no-ops when finished), or trains one by one
            if workers == 1 or part not in new:
                quiet = _finished(paths.runs / part.value, release / part.value, steps)
                train_tokenizer(tokenizer_config, part, paths.cache, paths.runs,
                                progress=progress and not quiet)

    reused = _train_stage(paths, "tokenizer", train)
    return StepReport("tokenizer", reused, _tokenizer_summary(paths.runs))


def _codebook_size(config: DemoConfig) -> int:
    return int(_tokenizer_config(config).model.quantizer.codebook_size)


def _step_base(paths: DemoPaths, config: DemoConfig, progress: bool) -> StepReport:
    from semtalk.training.generator import train_base

    generator_config = _generator_config(config, config.base_steps)
    run = paths.runs / "base_run"
    quiet = _finished(run, paths.runs / "base", generator_config.solver.max_steps)
    reused = _train_stage(paths, "base", lambda: train_base(
        generator_config, paths.cache, paths.runs, progress=progress and not quiet))
    return StepReport("base", reused, _generator_summary(run, _codebook_size(config)))


def _step_sparse(paths: DemoPaths, config: DemoConfig, progress: bool) -> StepReport:
    from semtalk.training.generator import train_sparse

    generator_config = _generator_config(config, config.sparse_steps)
    run = paths.runs / "sparse_run"
    quiet = _finished(run, paths.runs / "sparse", generator_config.solver.max_steps)
    reused = _train_stage(paths, "sparse", lambda: train_sparse(
        generator_config, paths.cache, paths.runs, progress=progress and not quiet))
    return StepReport("sparse", reused, _generator_summary(run, _codebook_size(config)))


def _same_files(a: Path, b: Path) -> bool:
    """True when folders ``a`` and ``b`` hold the same files with the same bytes."""
    if not b.is_dir():
        return False
    files_a = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    files_b = sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file())
    return files_a == files_b and all(filecmp.cmp(a / f, b / f, shallow=False)
                                      for f in files_a)


def _step_release(paths: DemoPaths, config: DemoConfig, progress: bool) -> StepReport:
    from semtalk.generation.release import MANIFEST, STAGES, assemble_release, cache_speakers

    speakers = cache_speakers(paths.cache)
    manifest = paths.release / MANIFEST
    if manifest.is_file():
        recorded = json.loads(manifest.read_text()).get("speakers") or {}
        if {int(k): int(v) for k, v in recorded.items()} == speakers and all(
                _same_files(paths.runs / s, paths.release / s) for s in STAGES):
            return StepReport("release", True, "release matches the trained stages")
    assemble_release(paths.release, tokenizer=paths.runs / "tokenizer",
                     base=paths.runs / "base", sparse=paths.runs / "sparse", speakers=speakers)
    return StepReport("release", False,
                      f"speakers {sorted(speakers.values())}, stages {', '.join(STAGES)}")


def held_out_clip(data: str | Path) -> str:
    """The id of the clip the demo generates for: the dataset's first test clip."""
    from semtalk.data.beat2 import Beat2Dataset

    test = Beat2Dataset(data, splits=["test"])
    if not len(test):
        raise DataError(Path(data), "the dataset has no test clip to generate for")
    return test.ids[0]


def _outputs_current(outputs: dict[str, Path], release: Path) -> bool:
    """All outputs exist and were written after the release was assembled."""
    from semtalk.generation.release import MANIFEST

    made = (release / MANIFEST).stat().st_mtime
    return all(p.is_file() and p.stat().st_size > 0 and p.stat().st_mtime >= made
               for p in outputs.values())


def _step_generate(paths: DemoPaths, config: DemoConfig, progress: bool,
                   result: dict[str, Any]) -> StepReport:
    from tqdm.auto import tqdm

    from semtalk.data.beat2 import Beat2Dataset
    from semtalk.generation.engine import SemTalk
    from semtalk.generation.outputs import output_paths, save_outputs
    from semtalk.metrics.semantic import semantic_accuracy

    clip_id = held_out_clip(paths.data)
    result["clip_id"] = clip_id
    outputs = output_paths(paths.output, clip_id, video=config.video)
    result["outputs"] = outputs
    if _outputs_current(outputs, paths.release):
        return StepReport("generate", True, f"outputs of {clip_id} are current")
    dataset = Beat2Dataset(paths.data, splits=["test"])
    info = dataset.info(clip_id)
    clip = dataset.load(info)
    model = SemTalk.from_pretrained(paths.release)
    gen = model.generate(clip.audio, words=clip.words, speaker=info.speaker_id)
    if gen.num_frames != clip.num_frames:
        raise RuntimeError(f"generated {gen.num_frames} frames for a {clip.num_frames}-frame "
                           f"clip")
    source = {"audio": str(info.path("audio")), "textgrid": str(info.path("words")),
              "words_source": "textgrid", "clip": clip_id, "split": "test",
              "speaker_id": info.speaker_id}
    with tqdm(total=gen.num_frames, desc=f"video {clip_id}", unit="frame", leave=False,
              disable=not (progress and config.video), dynamic_ncols=True) as bar:
        save_outputs(gen, paths.output, clip_id, video=config.video, extra={"input": source},
                     progress=lambda done, total: bar.update(done - bar.n))
    fused = int(gen.sparse_tokens.sum())
    summary = (f"{clip_id}: {gen.num_frames} frames ({gen.num_frames / gen.fps:.1f} s), "
               f"ψ > β on {fused} of {len(gen.sparse_tokens)} tokens")
    if clip.semantic_scores is not None and (clip.semantic_scores > 0).any():
        scores = semantic_accuracy(gen.psi_model, clip.semantic_scores)
        summary += (f"; ψ vs annotated semantic frames: balanced accuracy "
                    f"{scores.balanced_accuracy:.2f}")
    return StepReport("generate", False, summary)


# ------------------------------------------------------------------------------ the run
STEP_TITLES = {
    "synth": "synthetic speaker dataset -> {data}",
    "prepare": "features -> {cache}",
    "tokenizer": "train the motion tokenizer (4 body parts) -> {runs}/tokenizer",
    "base": "train the base motion generator -> {runs}/base",
    "sparse": "train the sparse generator and sem-gate -> {runs}/sparse",
    "release": "assemble the release -> {release}",
    "generate": "generate for a held-out clip -> {output}",
}


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
    paths = _open_folder(config, fresh)
    folders = {k: str(getattr(paths, k)) for k in ("data", "cache", "runs", "release",
                                                     "output")}
    generated: dict[str, Any] = {}
    steps: list[tuple[str, Callable[[], StepReport]]] = [
        ("synth", lambda: _step_synth(paths, config, progress)),
        ("prepare", lambda: _step_prepare(paths, config, progress)),
        ("tokenizer", lambda: _step_tokenizer(paths, config, progress)),
        ("base", lambda: _step_base(paths, config, progress)),
        ("sparse", lambda: _step_sparse(paths, config, progress)),
        ("release", lambda: _step_release(paths, config, progress)),
        ("generate", lambda: _step_generate(paths, config, progress, generated)),
    ]
    reports: list[StepReport] = []
    _say(progress, f"semtalk demo: {config.minutes:g} min synthetic speaker (seed "
                   f"{config.seed}) -> {paths.root}")
    with _torch_threads(1):
        for index, (name, step) in enumerate(steps, start=1):
            _say(progress, f"[{index}/{len(steps)}] {STEP_TITLES[name].format(**folders)}")
            start, cpu = time.perf_counter(), _cpu_seconds()
            report = step()
            report.seconds = time.perf_counter() - start
            report.cpu_seconds = _cpu_seconds() - cpu
            reports.append(report)
            _write_stamp(paths, config, reports)
            verb = "reused" if report.reused else "done"
            _say(progress, f"      {verb} in {_duration(report.seconds)} (CPU "
                           f"{report.cpu_seconds:.0f} s): {report.summary}")
    result = DemoResult(paths.root, paths.release, generated["clip_id"], generated["outputs"],
                        reports)
    _say(progress, _closing(result))
    return result


def _cpu_seconds() -> float:
    times = os.times()
    return times.user + times.system + times.children_user + times.children_system


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
