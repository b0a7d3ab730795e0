"""Training the FGD motion autoencoder (``semtalk train fgd-encoder``).

FGD compares latents of an :class:`~semtalk.metrics.fgd_encoder.FGDAutoencoder`. The public
BEAT2 evaluator can be loaded when a user has it; this stage trains one from scratch on any
cache (the synthetic speaker included), so that FGD means something on that data.

Examples are ``window``-frame windows of the cache's training clips every ``stride`` frames,
as 55 joints x 6D rotations ``[window, 330]`` (no translation, no normalisation, the recorded
eyes included: the evaluator's input for ground truth). Validation windows (the ``val`` clips,
or held-out clip tails) select the best model by the autoencoder's loss. The selected model is
released to ``OUT/best/`` and copied to ``OUT/fgd_encoder/``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import Dataset

from semtalk.body.rotation import axis_angle_to_rot6d, geodesic_angle, rot6d_to_matrix
from semtalk.config import to_dict
from semtalk.configs import load_stage_config
from semtalk.errors import DataError
from semtalk.features.cache import FeatureCache
from semtalk.metrics.fgd_encoder import FGDAutoencoder, FGDEncoderConfig
from semtalk.training.solver import Solver, SolverConfig, install_release
from semtalk.training.windows import (
    CachedWindows,
    Segment,
    cut_windows,
    read_rows,
    training_segments,
)

RELEASE_DIR = "fgd_encoder"


@dataclass(frozen=True)
class FGDTrainConfig:
    """Everything ``semtalk train fgd-encoder`` needs besides the data.

    Attributes:
        model: the autoencoder architecture (defaults: the official evaluator's).
        window: frames per training window; a multiple of the encoder's downsampling factor
            (16 officially), since the decoder restores exactly ``window`` frames.
        stride: frames between training-window starts.
        val_stride: frames between validation-window starts.
        holdout_fraction: share of each training clip held out for validation when the cache
            has no ``val`` clips.
        solver: optimisation and bookkeeping.
    """

    model: FGDEncoderConfig = field(default_factory=FGDEncoderConfig)
    window: int = 64
    stride: int = 20
    val_stride: int = 32
    holdout_fraction: float = 0.1
    solver: SolverConfig = field(default_factory=SolverConfig)

    def __post_init__(self) -> None:
        factor = self.model.downsample_factor
        if self.window < factor or self.window % factor:
            raise ValueError(f"window must be a positive multiple of the encoder's downsampling "
                             f"factor {factor}, got {self.window}")
        if self.stride < 1 or self.val_stride < 1:
            raise ValueError(f"stride and val_stride must be >= 1, got {self.stride}, "
                             f"{self.val_stride}")


def load_fgd_config(preset: str = "tiny", config: str | Path | None = None,
                    overrides: tuple[str, ...] | list[str] = ()) -> FGDTrainConfig:
    """The packaged preset (``tiny`` or ``paper``) or a YAML file, then ``key=value`` overrides."""
    return load_stage_config(FGDTrainConfig, "fgd_encoder", preset, config, overrides)


class RotationWindows(CachedWindows):
    """``{"rot6d": [window, 6J]}`` examples: a cache's poses ``[T, 3J]`` (axis-angle) as 6D."""

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        window = self.windows[index]
        poses = read_rows(self.clip(window).poses, slice(window.start, window.stop))
        joints = poses.reshape(window.length, -1, 3)  # [window, J, 3]
        return {"rot6d": axis_angle_to_rot6d(joints).flatten(-2)}  # [window, 6J]


class FGDEncoderSolver(Solver):
    """Trains the FGD autoencoder; the best validation loss selects the release."""

    stage = "fgd_encoder"
    selection_metric = "loss"

    def __init__(self, config: FGDTrainConfig, data: str | Path, out: str | Path,
                 segments: tuple[list[Segment], list[Segment]] | None = None) -> None:
        """``segments``: explicit ``(train, validation)`` frame ranges instead of the cache's
        splits (:func:`~semtalk.training.windows.training_segments`)."""
        super().__init__(config.solver, out)
        self.config = config
        self.cache = FeatureCache(data)
        self._train, self._val = segments or training_segments(
            self.cache, config.holdout_fraction, config.window)
        self._check_joints()

    def _check_joints(self) -> None:
        if not self._train:
            raise DataError(self.cache.path, "no training segments to train the FGD encoder on")
        clip = self.cache.load(self._train[0].clip_id)
        have = clip.poses.shape[1] // 3
        want = len(self.config.model.parents)
        if have != want:
            raise DataError(self.cache.path, f"poses have {have} joints but the FGD encoder's "
                                             f"skeleton (model.parents) has {want}")

    def identity(self) -> dict[str, Any]:
        config = {k: v for k, v in to_dict(self.config).items() if k != "solver"}
        return {"config": config, "cache": self.cache.fingerprint,
                "train_segments": [[s.clip_id, s.start, s.stop] for s in self._train],
                "val_segments": [[s.clip_id, s.start, s.stop] for s in self._val]}

    def build_model(self) -> nn.Module:
        return FGDAutoencoder(self.config.model)

    def _windows(self, segments: list[Segment], stride: int) -> RotationWindows:
        return RotationWindows(self.cache, cut_windows(segments, self.config.window, stride))

    def train_dataset(self) -> Dataset:
        return self._windows(self._train, self.config.stride)

    def val_dataset(self) -> Dataset | None:
        return self._windows(self._val, self.config.val_stride) if self._val else None

    @staticmethod
    def _terms(model: nn.Module, rot6d: torch.Tensor) -> dict[str, torch.Tensor]:
        """Loss terms of ``rot6d [B, T, 330]``; ``model`` may be DDP-wrapped."""
        autoencoder = model.module if isinstance(model, nn.parallel.DistributedDataParallel) \
            else model
        # The forward pass goes through ``model`` so DDP sees it; the loss reuses the output.
        return autoencoder.reconstruction_loss(rot6d, model(rot6d))  # type: ignore[operator]

    def training_loss(self, model: nn.Module, batch: dict[str, torch.Tensor],
                      step: int) -> tuple[torch.Tensor, dict[str, float]]:
        terms = self._terms(model, batch["rot6d"])
        total = terms.pop("total")
        return total, {name: value.item() for name, value in terms.items()}

    def validation_metrics(self, model: nn.Module,
                           batch: dict[str, torch.Tensor]) -> dict[str, float]:
        x = batch["rot6d"]
        out = model(x)
        terms = model.reconstruction_loss(x, out)  # type: ignore[operator]
        values = {name: value.item() for name, value in terms.items() if name != "total"}
        values["loss"] = terms["total"].item()
        shape = (*x.shape[:-1], -1, 6)  # [B, T, J, 6]
        angles = geodesic_angle(rot6d_to_matrix(out.reconstruction.reshape(shape).float()),
                                rot6d_to_matrix(x.reshape(shape).float()))
        values["angle_deg"] = torch.rad2deg(angles).mean().item()
        return values

    def save_release(self, model: nn.Module, folder: Path) -> None:
        model.save_pretrained(folder)  # type: ignore[operator]


def train_fgd_encoder(config: FGDTrainConfig, data: str | Path, out: str | Path, *,
                      progress: bool = True) -> Path:
    """Train (or resume) the FGD autoencoder on a cache; returns the release folder.

    The run lives in ``OUT/`` (checkpoint, logs, ``best/``); the selected model is copied to
    ``OUT/fgd_encoder/``, which :meth:`FGDAutoencoder.from_pretrained` loads (by rank 0 only
    when several processes train).
    """
    out = Path(out)
    best = FGDEncoderSolver(config, data, out).fit(progress=progress)
    return install_release(best, out / RELEASE_DIR)
