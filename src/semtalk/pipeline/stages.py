"""The SemTalk pipeline, defined once: synth -> prepare -> tokenizer -> base -> sparse -> release
(and fgd-encoder beside the tokenizer), with each stage's inputs, outputs and resume rules.

Every stage reads and writes the folders of a :class:`Workspace`::

    data/                       synth: the synthetic-speaker dataset (BEAT2 layout)
    cache/                      prepare: the feature cache
    runs/tokenizer/<part>/      tokenizer: the four part releases (run folders runs/<part>/)
    runs/base/                  base: the base generator release (run folder runs/base_run/)
    runs/sparse/                sparse: the sparse generator release (runs/sparse_run/)
    runs/fgd_encoder/           fgd-encoder: the FGD autoencoder (its run files in runs/)
    release/                    release: the three stages assembled (semtalk.release layout)

Resume rules: the dataset and the cache are skipped when complete and valid; a training stage
resumes from its checkpoint (a finished run: a no-op) and counts as reused when its release did
not change; a changed release removes the runs trained on it; the release is skipped when it
matches the trained stages file for file. ``semtalk demo``, ``semtalk train`` and
``semtalk ablate`` all run :data:`PIPELINE`.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import asdict, dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import torch

from semtalk.body.parts import BodyPart
from semtalk.errors import DataError
from semtalk.features import registry
from semtalk.pipeline.graph import Graph, Outcome, Stage
from semtalk.release import (
    BASE,
    SPARSE,
    STAGES,
    TOKENIZER,
    assemble_release,
    cache_speakers,
    release_matches,
)
from semtalk.training.fgd_encoder import RELEASE_DIR as FGD_ENCODER
from semtalk.training.fgd_encoder import train_fgd_encoder
from semtalk.training.generator import train_base, train_sparse
from semtalk.training.tokenizer import train_tokenizer

BASE_RUN = "base_run"
SPARSE_RUN = "sparse_run"
TOKENIZER_ORDER = (BodyPart.HANDS, BodyPart.LOWER, BodyPart.UPPER, BodyPart.FACE)
"""Parts in the order they are handed to worker processes (largest first)."""
POLL_SECONDS = 0.5


@dataclass
class Workspace:
    """Where the stages read and write, and how each is configured.

    Attributes:
        cache: the feature cache (prepare's output, every training stage's input).
        runs: the training ``OUT`` folder.
        data: the dataset root (synth's output, prepare's input).
        release: where the release stage assembles the three stages.
        synth: the synthetic dataset's settings (:class:`~semtalk.data.synthetic.dataset.
            SynthConfig`).
        extractors: the feature extractors prepare runs (default: offline, reproducible).
        tokenizer_config, base_config, sparse_config, fgd_config: the training configs.
        tokenizer, base, sparse: stage releases to use instead of ``runs/tokenizer``,
            ``runs/base``, ``runs/sparse`` (the training stages read the first two, the
            release stage all three).
        parts: the tokenizer parts to train, in this order.
        workers: processes training new tokenizer parts at once (``None``: one per CPU
            core, at most two; 1: one after another in this process).
        progress: progress bars.
    """

    cache: Path
    runs: Path
    data: Path | None = None
    release: Path | None = None
    synth: Any = None
    extractors: registry.ExtractorChoice = field(
        default_factory=lambda: registry.ExtractorChoice(sentence_encoder="pooled"))
    tokenizer_config: Any = None
    base_config: Any = None
    sparse_config: Any = None
    fgd_config: Any = None
    tokenizer: Path | None = None
    base: Path | None = None
    sparse: Path | None = None
    parts: tuple[BodyPart, ...] = tuple(BodyPart)
    workers: int | None = 1
    progress: bool = True

    def __post_init__(self) -> None:
        for name in ("cache", "runs", "data", "release", "tokenizer", "base", "sparse"):
            value = getattr(self, name)
            if value is not None:
                setattr(self, name, Path(value))

    @property
    def tokenizer_release(self) -> Path:
        return self.tokenizer or self.runs / TOKENIZER

    @property
    def base_release(self) -> Path:
        return self.base or self.runs / BASE

    @property
    def sparse_release(self) -> Path:
        return self.sparse or self.runs / SPARSE

    @property
    def fgd_release(self) -> Path:
        return self.runs / FGD_ENCODER

    def folders(self) -> dict[str, str]:
        """The folders by name (the ``str.format`` fields of stage titles)."""
        return {"data": str(self.data), "cache": str(self.cache), "runs": str(self.runs),
                "release": str(self.release)}

    def need(self, value: Any, what: str) -> Any:
        """``value`` (a field of this workspace), or ValueError naming ``what`` when it is None."""
        if value is None:
            raise ValueError(f"this workspace has no {what}")
        return value


# ------------------------------------------------------------------------------ synth
def dataset_problems(ws: Workspace) -> list[str]:
    """Why ``ws.data`` is not the complete, valid dataset of ``ws.synth`` (empty: it is)."""
    from semtalk.data.beat2 import SPLIT_FILE, Beat2Dataset
    from semtalk.data.synthetic.dataset import MANIFEST

    root, synth = ws.need(ws.data, "dataset folder"), ws.need(ws.synth, "synth config")
    if not (root / MANIFEST).is_file() or not (root / SPLIT_FILE).is_file():
        return ["not generated yet"]
    if json.loads((root / MANIFEST).read_text()).get("config") != asdict(synth):
        return ["made with other settings"]
    dataset = Beat2Dataset(root, splits=None)
    if len(dataset) != synth.num_clips:
        return [f"{len(dataset)} of {synth.num_clips} clips"]
    checks = [dataset.check(info) for info in dataset]
    return [str(issue) for check in checks if not check.ok for issue in check.issues]


def _synth_complete(ws: Workspace) -> str | None:
    return None if dataset_problems(ws) else "dataset complete and valid"


def _synth(ws: Workspace) -> Outcome:
    from semtalk.data.synthetic.dataset import generate_dataset

    manifest = generate_dataset(ws.need(ws.data, "dataset folder"), ws.synth,
                                progress=ws.progress)
    problems = dataset_problems(ws)
    if problems:
        raise DataError(ws.need(ws.data, "dataset folder"),
                        "the synthetic dataset does not validate: " + "; ".join(problems[:5]))
    clips = manifest["clips"]
    minutes = sum(c["frames"] for c in clips) / 30 / 60
    gestures = sum(c["semantic_gestures"] for c in clips)
    return Outcome(f"{len(clips)} clips, {minutes:.1f} min, {gestures} semantic gestures")


# ------------------------------------------------------------------------------ prepare
def _extractor_names(audio: list[Any], window: list[Any]) -> str:
    return ", ".join(f"{e.name}({e.dim})" for e in [*audio, *window])


def _prepare_complete(ws: Workspace) -> str | None:
    from semtalk.data.beat2 import Beat2Dataset
    from semtalk.features.cache import MANIFEST, FeatureCache

    audio, window = registry.build_extractors(ws.extractors)
    if not (ws.cache / MANIFEST).is_file():
        return None
    cache = FeatureCache(ws.cache)
    if cache.missing() or cache.ids() != Beat2Dataset(ws.need(ws.data, "dataset folder")).ids:
        return None
    try:
        cache.require({e.name: e.identity() for e in audio},
                      {e.name: e.identity() for e in window})
    except DataError:
        return None
    return f"cache complete: {_extractor_names(audio, window)}"


def _prepare(ws: Workspace) -> Outcome:
    from semtalk.features.cache import prepare_cache

    audio, window = registry.build_extractors(ws.extractors)
    cache = prepare_cache(ws.need(ws.data, "dataset folder"), ws.cache, audio_extractors=audio,
                          window_extractors=window, progress=ws.progress)
    return Outcome(f"{len(cache.ids())} clips: {_extractor_names(audio, window)}")


# ------------------------------------------------------------------------------ training
def logged_step(run: Path) -> int:
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


def _generator_summary(ws: Workspace, run: Path) -> str:
    rows = _validations(run)
    if rows is None:
        return "no validation logged"
    first, best = rows
    text = f"val loss {first['loss']:.3g} -> {best['loss']:.3g}, code accuracy " \
           f"{best['code_acc']:.2f}"
    if ws.tokenizer_config is not None:
        codebook_size = int(ws.tokenizer_config.model.quantizer.codebook_size)
        text += f" (chance {1 / codebook_size:.2f})"
    if "sem_balanced_accuracy" in best:
        text += f", sem-gate balanced accuracy {best['sem_balanced_accuracy']:.2f}"
    return text


def train_part(tokenizer_config: Any, part: str, cache: str,
               runs: str) -> tuple[str, str] | None:
    """Worker-process entry: train (or resume) one tokenizer part, quietly. A DataError comes
    back as ``(path, problem)`` (it does not survive pickling as an exception)."""
    torch.set_num_threads(1)
    try:
        train_tokenizer(tokenizer_config, BodyPart(part), cache, runs, progress=False)
    except DataError as exc:
        return str(exc.path), exc.problem
    return None


def _parallel_parts(ws: Workspace, parts: list[BodyPart], workers: int) -> None:
    """Train ``parts`` in ``workers`` processes; one progress bar fed by their logs."""
    from tqdm.auto import tqdm

    config = ws.tokenizer_config
    steps = {part: config.solver_for(part).max_steps for part in parts}
    bar = tqdm(total=sum(steps.values()), desc=f"train tokenizer ({len(parts)} parts, "
               f"{workers} processes)", unit="step", disable=not ws.progress, dynamic_ncols=True)
    pool = ProcessPoolExecutor(workers, mp_context=get_context("spawn"))
    try:
        futures: dict[Future, BodyPart] = {
            pool.submit(train_part, config, p.value, str(ws.cache), str(ws.runs)): p
            for p in parts}
        pending = set(futures)
        while pending:
            done, pending = wait(pending, timeout=POLL_SECONDS, return_when=FIRST_COMPLETED)
            for future in done:
                error = future.result()  # other exceptions surface here with their traceback
                if error is not None:
                    raise DataError(*error)
            finished = sum(steps[futures[f]] for f in futures if f.done())
            running = sum(min(logged_step(ws.runs / futures[f].value), steps[futures[f]])
                          for f in pending)
            bar.update(finished + running - bar.n)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        bar.close()


def worker_count(wanted: int | None, jobs: int) -> int:
    """Processes for ``jobs`` parts: ``wanted``, or one per usable CPU core (at most two)."""
    if wanted is None:
        if hasattr(os, "sched_getaffinity"):  # the cores this process may run on
            wanted = min(2, len(os.sched_getaffinity(0)))
        else:
            wanted = min(2, os.cpu_count() or 1)
    return max(1, min(wanted, jobs))


def _finished(run: Path, release: Path, steps: int) -> bool:
    """The run looks finished (only used to keep the progress bars of no-op resumes quiet)."""
    return release.is_dir() and logged_step(run) >= steps


def folder_digest(folder: Path) -> str | None:
    """A hash of every file name and byte under ``folder`` (``None`` when it does not exist)."""
    if not folder.is_dir():
        return None
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(folder)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def _tokenizer(ws: Workspace) -> Outcome:
    config = ws.need(ws.tokenizer_config, "tokenizer config")
    release = ws.runs / TOKENIZER
    new = [p for p in ws.parts if not (release / p.value).is_dir()]
    workers = worker_count(ws.workers, len(new))
    if workers > 1:
        _parallel_parts(ws, new, workers)
    for part in ws.parts:  # resumes (no-ops when finished), or trains one by one
        if workers == 1 or part not in new:
            quiet = _finished(ws.runs / part.value, release / part.value,
                              config.solver_for(part).max_steps)
            train_tokenizer(config, part, ws.cache, ws.runs, progress=ws.progress and not quiet)
    return Outcome(_tokenizer_summary(ws.runs))


def _base(ws: Workspace) -> Outcome:
    config = ws.need(ws.base_config, "base config")
    run = ws.runs / BASE_RUN
    quiet = _finished(run, ws.runs / BASE, config.solver.max_steps)
    train_base(config, ws.cache, ws.runs, ws.tokenizer, progress=ws.progress and not quiet)
    return Outcome(_generator_summary(ws, run))


def _sparse(ws: Workspace) -> Outcome:
    config = ws.need(ws.sparse_config, "sparse config")
    run = ws.runs / SPARSE_RUN
    quiet = _finished(run, ws.runs / SPARSE, config.solver.max_steps)
    train_sparse(config, ws.cache, ws.runs, ws.tokenizer, ws.base,
                 progress=ws.progress and not quiet)
    return Outcome(_generator_summary(ws, run))


def _fgd_encoder(ws: Workspace) -> Outcome:
    train_fgd_encoder(ws.need(ws.fgd_config, "FGD encoder config"), ws.cache, ws.runs,
                      progress=ws.progress)
    return Outcome(f"FGD encoder -> {ws.fgd_release}")


# ------------------------------------------------------------------------------ release
def _stage_releases(ws: Workspace) -> dict[str, Path]:
    return {TOKENIZER: ws.tokenizer_release, BASE: ws.base_release, SPARSE: ws.sparse_release}


def _release_complete(ws: Workspace) -> str | None:
    release = ws.need(ws.release, "release folder")
    if release_matches(release, _stage_releases(ws), cache_speakers(ws.cache)):
        return "release matches the trained stages"
    return None


def _release(ws: Workspace) -> Outcome:
    speakers = cache_speakers(ws.cache)
    assemble_release(ws.need(ws.release, "release folder"), **_stage_releases(ws),
                     speakers=speakers)
    return Outcome(f"speakers {sorted(speakers.values())}, stages {', '.join(STAGES)}",
                   reused=False)


def _runs(*names: str) -> Any:
    def stale(ws: Workspace) -> Sequence[Path]:
        return [ws.runs / n for n in names]
    return stale


PIPELINE: Graph[Workspace] = Graph([
    Stage("synth", _synth, title="synthetic speaker dataset -> {data}",
          complete=_synth_complete),
    Stage("prepare", _prepare, needs=("synth",), title="features -> {cache}",
          complete=_prepare_complete),
    Stage("tokenizer", _tokenizer, needs=("prepare",),
          title="train the motion tokenizer (4 body parts) -> {runs}/tokenizer",
          fingerprint=lambda ws: folder_digest(ws.runs / TOKENIZER)),
    Stage("base", _base, needs=("tokenizer",),
          title="train the base motion generator -> {runs}/base",
          fingerprint=lambda ws: folder_digest(ws.runs / BASE), stale=_runs(BASE_RUN, BASE)),
    Stage("sparse", _sparse, needs=("base",),
          title="train the sparse generator and sem-gate -> {runs}/sparse",
          fingerprint=lambda ws: folder_digest(ws.runs / SPARSE),
          stale=_runs(SPARSE_RUN, SPARSE)),
    Stage("release", _release, needs=("tokenizer", "base", "sparse"),
          title="assemble the release -> {release}", complete=_release_complete),
    Stage("fgd-encoder", _fgd_encoder, needs=("prepare",),
          title="train the FGD encoder -> {runs}/fgd_encoder"),
])
"""The stage graph every command runs (``semtalk demo`` adds its ``generate`` stage)."""


def train(ws: Workspace, stage: str) -> Path:
    """Train (or resume) one stage in ``ws`` (``semtalk train``); returns its release."""
    PIPELINE.run(ws, [stage], needs=False, track=False)
    return {"tokenizer": ws.runs / TOKENIZER, "base": ws.runs / BASE,
            "sparse": ws.runs / SPARSE, "fgd-encoder": ws.fgd_release}[stage]
