"""The one training loop every stage shares.

A stage subclasses :class:`Solver` and says what is specific to it: the model, the datasets,
the loss of a batch, the validation metrics and how to write a release. The base owns the rest:

- **Exact resume.** ``OUT/checkpoint.pt`` holds model, optimiser, scheduler, grad-scaler, step,
  the position inside the epoch, the RNG states and the best validation value; it is written
  atomically every ``checkpoint_every`` steps and at the end. A run started again in the same
  folder continues from it and produces the same next loss as the uninterrupted run would
  (batches come from a per-epoch permutation seeded by ``seed + epoch``, and validation runs
  with the training RNG state saved and restored). A checkpoint written under a different
  config is refused, listing the differences.
- **Model selection on validation data.** Every ``validate_every`` steps the stage's
  validation metrics are computed; when ``selection_metric`` improves, the release is written
  to ``OUT/best/`` (atomically: a temporary folder renamed into place).
- **Logs.** ``log.jsonl`` / ``log.csv`` (and TensorBoard when installed), a tqdm progress bar.
- **Devices and scale.** CPU, one GPU, or many processes under ``torchrun`` (DDP; gloo on CPU,
  NCCL on GPU); each process takes every ``world_size``-th window of the epoch's permutation,
  and only rank 0 validates and writes. ``precision`` ``bf16``/``fp16`` enables autocast on
  CUDA (fp16 with a gradient scaler); on CPU training stays fp32.

Checkpoints hold tensors and plain values only and are read with ``weights_only=True``.
"""

from __future__ import annotations

import contextlib
import copy
import json
import math
import os
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping, Sized
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader, Dataset

from semtalk.config import describe_difference, to_dict
from semtalk.devices import resolve_device
from semtalk.errors import DataError
from semtalk.fileio import FileLock, LockBusyError, atomic_path, write_text_atomic
from semtalk.inference import prepare_for_inference
from semtalk.release import copy_folder, publish
from semtalk.training.metric_log import MetricLogger

CHECKPOINT_FILE = "checkpoint.pt"
BEST_DIR = "best"
RUN_FILE = "run.json"
LOCK_FILE = ".lock"
CHECKPOINT_VERSION = 1
PRECISIONS = ("fp32", "bf16", "fp16")
BOOKKEEPING = ("max_steps", "validate_every", "checkpoint_every", "log_every", "num_workers",
               "tensorboard", "device")
"""Solver fields a resumed run may change."""


@dataclass(frozen=True)
class SolverConfig:
    """Optimisation and bookkeeping settings shared by every stage.

    Attributes:
        max_steps: optimiser steps to train for.
        batch_size: windows per step and process.
        lr: Adam learning rate.
        betas: Adam betas (the official code uses (0.5, 0.999)).
        weight_decay: Adam weight decay.
        warmup_steps: linear warm-up from 0 to ``lr``.
        lr_decay_steps: steps at which the rate is multiplied by ``lr_decay_rate``.
        lr_decay_rate: the step-decay factor.
        grad_clip: maximum gradient norm (``None`` disables clipping).
        seed: seeds model initialisation, batch order and every random choice in training.
        validate_every: steps between validations (0: only at the end).
        checkpoint_every: steps between training checkpoints (the last step always writes one).
        log_every: steps between training-log rows.
        num_workers: data-loader worker processes.
        device: ``auto`` (CUDA when available), ``cpu``, ``cuda`` or ``cuda:N``.
        precision: ``fp32``, ``bf16`` or ``fp16`` (the latter two take effect on CUDA only).
        tensorboard: also write TensorBoard event files when the package is installed.
    """

    max_steps: int = 1000
    batch_size: int = 64
    lr: float = 1.5e-4
    betas: tuple[float, float] = (0.5, 0.999)
    weight_decay: float = 0.0
    warmup_steps: int = 0
    lr_decay_steps: tuple[int, ...] = ()
    lr_decay_rate: float = 0.3
    grad_clip: float | None = None
    seed: int = 2021
    validate_every: int = 200
    checkpoint_every: int = 200
    log_every: int = 10
    num_workers: int = 0
    device: str = "auto"
    precision: str = "fp32"
    tensorboard: bool = True

    def __post_init__(self) -> None:
        problems = []
        for name in ("max_steps", "batch_size", "checkpoint_every", "log_every"):
            if getattr(self, name) < 1:
                problems.append(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("validate_every", "warmup_steps", "num_workers"):
            if getattr(self, name) < 0:
                problems.append(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.lr <= 0:
            problems.append(f"lr must be > 0, got {self.lr}")
        if self.precision not in PRECISIONS:
            problems.append(f"precision must be one of {PRECISIONS}, got {self.precision!r}")
        if self.grad_clip is not None and self.grad_clip <= 0:
            problems.append(f"grad_clip must be > 0 or null, got {self.grad_clip}")
        if problems:
            raise ValueError("; ".join(problems))

    def lr_factor(self, step: int) -> float:
        """Multiplier of ``lr`` for optimiser step ``step`` (0-based)."""
        factor = min(1.0, (step + 1) / self.warmup_steps) if self.warmup_steps else 1.0
        return factor * self.lr_decay_rate ** sum(step >= s for s in self.lr_decay_steps)


@dataclass
class Distributed:
    """This process's place in a (possibly single-process) run."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    initialized_here: bool = False

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @classmethod
    def from_environment(cls, device_kind: str) -> Distributed:
        """Join the process group ``torchrun`` describes in the environment, if any."""
        world = int(os.environ.get("WORLD_SIZE", "1"))
        if world <= 1:
            return cls()
        rank = int(os.environ["RANK"])
        local = int(os.environ.get("LOCAL_RANK", "0"))
        initialized = False
        if not dist.is_initialized():
            dist.init_process_group(backend="nccl" if device_kind == "cuda" else "gloo")
            initialized = True
        return cls(rank, world, local, initialized)

    def barrier(self) -> None:
        if self.world_size > 1:
            dist.barrier()

    def close(self) -> None:
        if self.initialized_here and dist.is_initialized():
            dist.destroy_process_group()


def dataset_size(dataset: Dataset) -> int:
    """Examples in ``dataset`` (the solver's datasets are map-style, with a length)."""
    return len(cast(Sized, dataset))


class _Batches(torch.utils.data.Sampler[list[int]]):
    """The remaining batches of one epoch: fixed index lists, in order."""

    def __init__(self, batches: list[list[int]]) -> None:
        self.batches = batches

    def __iter__(self) -> Iterator[list[int]]:
        return iter(self.batches)

    def __len__(self) -> int:
        return len(self.batches)


@dataclass
class TrainState:
    """Where training stands; everything needed to continue exactly."""

    step: int = 0
    epoch: int = 0
    batch_in_epoch: int = 0
    best_value: float | None = None
    best_step: int | None = None


class Solver(ABC):
    """Shared training loop; see the module docstring. Subclasses implement the abstract hooks."""

    stage: str = "stage"
    """Name written into checkpoints and logs."""
    selection_metric: str = "loss"
    """Validation metric that selects the best model (lower is better)."""
    find_unused_parameters: bool = False
    """Passed to DDP when some parameters do not take part in every forward pass."""
    validate_prepared: bool = False
    """Validate on a copy of the model prepared for inference
    (:func:`~semtalk.inference.prepare_for_inference`: faster, equal up to float rounding)."""

    batch_size_key = "solver.batch_size"
    """The config key that sets this stage's batch size (named in errors)."""

    def __init__(self, solver_config: SolverConfig, out: str | Path) -> None:
        self.solver_config = solver_config
        self.out = Path(out)
        self.model: nn.Module | None = None
        self.device = torch.device("cpu")

    # ----------------------------------------------------------------- stage hooks
    @abstractmethod
    def identity(self) -> dict[str, Any]:
        """Everything that defines this run (configs, data fingerprint); checked on resume."""

    @abstractmethod
    def build_model(self) -> nn.Module:
        """The trainable model, freshly initialised (the global RNG is already seeded)."""

    @abstractmethod
    def train_dataset(self) -> Dataset:
        """Training examples; items are dicts of tensors (default collation)."""

    @abstractmethod
    def val_dataset(self) -> Dataset | None:
        """Validation examples, or ``None`` when there are none."""

    @abstractmethod
    def training_loss(self, model: nn.Module, batch: dict[str, torch.Tensor],
                      step: int) -> tuple[torch.Tensor, dict[str, float]]:
        """``(loss to minimise, values to log)`` of one batch (``model`` may be DDP-wrapped)."""

    @abstractmethod
    def validation_metrics(self, model: nn.Module,
                           batch: dict[str, torch.Tensor]) -> dict[str, float]:
        """Metrics of one validation batch (``model`` is unwrapped, in eval mode)."""

    @abstractmethod
    def save_release(self, model: nn.Module, folder: Path) -> None:
        """Write the released form of ``model`` (``config.json`` + ``model.safetensors``...)."""

    def trainable_parameters(self, model: nn.Module) -> list[nn.Parameter]:
        """Parameters the optimiser updates (default: all that require gradients)."""
        return [p for p in model.parameters() if p.requires_grad]

    # ----------------------------------------------------------------- the loop
    def fit(self, *, progress: bool = True, stop_at: int | None = None) -> Path:
        """Train (or resume) to ``max_steps``; returns the folder of the selected release.

        ``stop_at`` leaves after that step with a checkpoint written, as an interruption
        would (a later ``fit`` continues exactly); schedules still follow ``max_steps``.
        """
        cfg = self.solver_config
        requested = resolve_device(cfg.device, local_rank=0)
        ddp = Distributed.from_environment(requested.type)
        try:
            self.device = resolve_device(cfg.device, ddp.local_rank)
            with self._hold_out(ddp):
                return self._fit(ddp, progress, stop_at)
        finally:
            ddp.close()

    @contextlib.contextmanager
    def _hold_out(self, ddp: Distributed) -> Iterator[None]:
        """Lock ``OUT`` for this run (rank 0): a second run into it stops with "in use by PID".

        Two runs in one folder would interleave checkpoints and logs and delete each other's
        temporary release folders; the ``flock`` dies with its process, so a killed run never
        blocks the next one.
        """
        if not ddp.is_main:
            yield
            return
        self.out.mkdir(parents=True, exist_ok=True)
        lock = FileLock(self.out / LOCK_FILE)
        try:
            lock.acquire(exclusive=True, wait=False)
        except LockBusyError as exc:
            lock.release()
            holder = exc.holder or "another process"
            raise DataError(self.out, f"training folder is in use by {holder} (another "
                                      f"`semtalk train`); wait for it to finish or choose "
                                      f"another output folder") from None
        try:
            yield
        finally:
            lock.release()

    def _fit(self, ddp: Distributed, progress: bool, stop_at: int | None) -> Path:
        cfg = self.solver_config
        self.out.mkdir(parents=True, exist_ok=True)
        identity = self._full_identity()
        checkpoint = self._read_checkpoint(identity)
        torch.manual_seed(cfg.seed)
        model = self.build_model().to(self.device)
        self.model = model
        optimizer = torch.optim.Adam(self.trainable_parameters(model), lr=cfg.lr,
                                     betas=cfg.betas, weight_decay=cfg.weight_decay)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, cfg.lr_factor)
        scaler = torch.amp.GradScaler("cuda", enabled=self._precision() == torch.float16)
        state = TrainState()
        if checkpoint is not None:
            model.load_state_dict(checkpoint["model"], strict=True)
            optimizer.load_state_dict(checkpoint["optimizer"])
            scheduler.load_state_dict(checkpoint["scheduler"])
            scaler.load_state_dict(checkpoint["scaler"])
            state = TrainState(**json.loads(checkpoint["state"]))
        elif ddp.is_main:
            write_text_atomic(self.out / RUN_FILE, json.dumps(identity, indent=1) + "\n")
        train_model: nn.Module = model
        if ddp.world_size > 1:
            device_ids = [self.device.index] if self.device.type == "cuda" else None
            train_model = nn.parallel.DistributedDataParallel(
                model, device_ids=device_ids, find_unused_parameters=self.find_unused_parameters)
        dataset = self.train_dataset()
        val = self.val_dataset() if ddp.is_main else None
        size = dataset_size(dataset)
        steps_per_epoch = size // (cfg.batch_size * ddp.world_size)
        if steps_per_epoch == 0:
            raise DataError(self.out, f"{size} training windows are fewer than one batch "
                                      f"({cfg.batch_size} x {ddp.world_size} processes); "
                                      f"lower {self.batch_size_key} or add data")
        logger = MetricLogger(self.out, enabled=ddp.is_main,
                              resume_step=state.step if checkpoint is not None else None,
                              tensorboard=cfg.tensorboard)
        if checkpoint is not None:
            torch.set_rng_state(checkpoint["rng"])
            if torch.cuda.is_available() and len(checkpoint["cuda_rng"]):
                torch.cuda.set_rng_state_all(list(checkpoint["cuda_rng"]))
        bar = _progress(progress and ddp.is_main, cfg.max_steps, state.step, self.stage)
        try:
            while state.step < cfg.max_steps and state.step != stop_at:
                for batch in self._epoch_batches(dataset, state, steps_per_epoch, ddp):
                    model.train()
                    with self._autocast():
                        loss, values = self.training_loss(train_model, batch, state.step)
                    if not torch.isfinite(loss):
                        raise FloatingPointError(
                            f"{self.stage}: loss became {loss.item()} at step {state.step}; "
                            f"lower solver.lr or check the data")
                    optimizer.zero_grad(set_to_none=True)
                    scaler.scale(loss).backward()
                    if cfg.grad_clip is not None:
                        scaler.unscale_(optimizer)
                        nn.utils.clip_grad_norm_(self.trainable_parameters(model), cfg.grad_clip)
                    scaler.step(optimizer)
                    scaler.update()
                    scheduler.step()
                    state.step += 1
                    state.batch_in_epoch += 1
                    if state.step % cfg.log_every == 0 or state.step == 1:
                        logger.log(state.step, "train", {
                            "loss": loss.item(), **values, "lr": float(scheduler.get_last_lr()[0])})
                    bar.update(1)
                    bar.set_postfix(loss=f"{loss.item():.4f}")
                    final = state.step >= cfg.max_steps
                    leaving = final or state.step == stop_at
                    if final or (cfg.validate_every and state.step % cfg.validate_every == 0):
                        self._validate(model, val, state, logger, ddp)
                    if leaving or state.step % cfg.checkpoint_every == 0:
                        self._write_checkpoint(model, optimizer, scheduler, scaler, state,
                                               identity, ddp)
                    if leaving:
                        break
                else:
                    state.epoch += 1
                    state.batch_in_epoch = 0
        finally:
            bar.close()
            logger.close()
        ddp.barrier()
        best = self.out / BEST_DIR
        if not best.is_dir():  # no validation data: the last model is the release
            if ddp.is_main:
                self._publish(model, best)
            ddp.barrier()
        return best

    # ----------------------------------------------------------------- helpers
    def _full_identity(self) -> dict[str, Any]:
        return {"stage": self.stage, "checkpoint_version": CHECKPOINT_VERSION,
                "solver": to_dict(self.solver_config), **self.identity()}

    def _precision(self) -> torch.dtype | None:
        if self.device.type != "cuda":
            return None
        return {"bf16": torch.bfloat16, "fp16": torch.float16}.get(self.solver_config.precision)

    def _autocast(self) -> contextlib.AbstractContextManager:
        dtype = self._precision()
        if dtype is None:
            return contextlib.nullcontext()
        return torch.autocast("cuda", dtype=dtype)

    def _epoch_batches(self, dataset: Dataset, state: TrainState, steps_per_epoch: int,
                       ddp: Distributed) -> Iterator[dict[str, torch.Tensor]]:
        """The batches of ``state.epoch`` from ``state.batch_in_epoch`` on, on the device."""
        cfg = self.solver_config
        generator = torch.Generator().manual_seed(cfg.seed * 1_000_003 + state.epoch)
        order = torch.randperm(dataset_size(dataset), generator=generator).tolist()
        mine = order[ddp.rank::ddp.world_size]
        batches = [mine[i * cfg.batch_size:(i + 1) * cfg.batch_size]
                   for i in range(state.batch_in_epoch, steps_per_epoch)]
        # The loader's own generator keeps it from drawing on the global RNG (which a resumed
        # run would otherwise draw from at a different point).
        loader = DataLoader(dataset, batch_sampler=_Batches(batches),
                            num_workers=cfg.num_workers,
                            generator=torch.Generator().manual_seed(cfg.seed + state.epoch))
        for batch in loader:
            yield {k: v.to(self.device, non_blocking=True) if torch.is_tensor(v) else v
                   for k, v in batch.items()}

    @torch.no_grad()
    def evaluate(self, model: nn.Module, dataset: Dataset) -> dict[str, float]:
        """Validation metrics over ``dataset``.

        Scalar values of :meth:`validation_metrics` are averaged weighted by batch size;
        tensor values are concatenated over batches and handed, with the averages, to
        :meth:`summarize_validation` (e.g. for classification scores over the whole set).
        """
        was_training = model.training
        model.eval()
        evaluated = (prepare_for_inference(copy.deepcopy(model)) if self.validate_prepared
                     else model)
        rng = torch.get_rng_state()
        totals: dict[str, float] = {}
        collected: dict[str, list[torch.Tensor]] = {}
        count = 0
        loader = DataLoader(dataset, batch_size=self.solver_config.batch_size, shuffle=False,
                            generator=torch.Generator())
        try:
            for batch in loader:
                batch = {k: v.to(self.device) if torch.is_tensor(v) else v
                         for k, v in batch.items()}
                size = len(next(iter(batch.values())))
                with self._autocast():
                    values = self.validation_metrics(evaluated, batch)
                for name, value in values.items():
                    if torch.is_tensor(value) and value.dim() > 0:
                        collected.setdefault(name, []).append(value.detach().float().cpu())
                    else:
                        totals[name] = totals.get(name, 0.0) + float(value) * size
                count += size
        finally:
            torch.set_rng_state(rng)
            model.train(was_training)
        means = {name: total / max(count, 1) for name, total in totals.items()}
        arrays = {name: torch.cat(parts) for name, parts in collected.items()}
        return self.summarize_validation(means, arrays)

    def summarize_validation(self, means: dict[str, float],
                             arrays: dict[str, torch.Tensor]) -> dict[str, float]:
        """Final validation metrics from batch-averaged scalars and concatenated tensors."""
        return means

    def _validate(self, model: nn.Module, val: Dataset | None, state: TrainState,
                  logger: MetricLogger, ddp: Distributed) -> None:
        if ddp.is_main and val is not None and dataset_size(val) > 0:
            metrics = self.evaluate(model, val)
            logger.log(state.step, "val", metrics)
            value = metrics.get(self.selection_metric)
            if value is None:
                raise KeyError(f"{self.stage}: validation metrics {sorted(metrics)} lack the "
                               f"selection metric {self.selection_metric!r}")
            if math.isfinite(value) and (state.best_value is None or value < state.best_value):
                state.best_value, state.best_step = value, state.step
                self._publish(model, self.out / BEST_DIR)
        ddp.barrier()

    def _publish(self, model: nn.Module, folder: Path) -> None:
        """Write the release to ``folder`` atomically (:func:`semtalk.release.publish`)."""
        publish(folder, lambda staging: self.save_release(model, staging))

    def _write_checkpoint(self, model: nn.Module, optimizer: torch.optim.Optimizer,
                          scheduler: Any, scaler: Any, state: TrainState,
                          identity: dict[str, Any], ddp: Distributed) -> None:
        if ddp.is_main:
            cuda_rng = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []
            payload = {
                "version": CHECKPOINT_VERSION,
                "identity": json.dumps(identity, sort_keys=True),
                "state": json.dumps(state.__dict__),
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
                "scaler": scaler.state_dict(),
                "rng": torch.get_rng_state(),
                "cuda_rng": cuda_rng,
            }
            with atomic_path(self.out / CHECKPOINT_FILE) as tmp:
                torch.save(payload, tmp)
        ddp.barrier()

    def _read_checkpoint(self, identity: dict[str, Any]) -> Mapping[str, Any] | None:
        path = self.out / CHECKPOINT_FILE
        if not path.is_file():
            return None
        try:
            checkpoint = torch.load(path, map_location=self.device, weights_only=True)
        except Exception as exc:  # a truncated or foreign file: say so, never continue blindly
            raise DataError(path, f"cannot read the training checkpoint ({exc}); delete it to "
                                  f"start over") from exc
        if checkpoint.get("version") != CHECKPOINT_VERSION:
            raise DataError(path, f"checkpoint version {checkpoint.get('version')} is not "
                                  f"{CHECKPOINT_VERSION}; use a new output folder")
        saved = json.loads(checkpoint["identity"])
        want = json.loads(json.dumps(identity, sort_keys=True))
        differences = describe_difference(saved, want, source="checkpoint")
        # Training longer, or validating/logging/checkpointing at other intervals, is a
        # legitimate resume; everything that changes the optimisation must match.
        differences = [d for d in differences
                       if not d.startswith(tuple(f"solver.{k}:" for k in BOOKKEEPING))]
        if differences:
            raise DataError(path, "was written by a different run and cannot be resumed: "
                                  + "; ".join(differences)
                                  + ". Use a new output folder or delete the checkpoint")
        return checkpoint


def install_release(best: Path, release: Path) -> Path:
    """Copy a stage's selected model ``best`` to ``release`` with
    :func:`semtalk.release.publish` (atomic; under ``torchrun`` only rank 0 copies, every rank
    gets the path)."""
    return publish(release, copy_folder(best))


def _progress(enabled: bool, total: int, initial: int, stage: str) -> Any:
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, desc=f"train {stage}", unit="step",
                disable=not enabled, dynamic_ncols=True)
