"""Training stage 0: one RVQ-VAE tokenizer per body part (``semtalk train tokenizer``).

One solver serves all four parts; the part picks the input channels and the loss table
(:mod:`semtalk.losses.reconstruction`). Examples are 64-frame windows of the cache's training
clips every ``stride`` frames, in the tokenizer representation (:mod:`semtalk.body.representation`).
Validation windows (the ``val`` clips, or held-out clip tails) select the best model by its
validation loss. The selected model is released to ``OUT/best/`` and copied to
``TOKENIZER/<part>/`` of the run's tokenizer release.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import Dataset

from semtalk.body.parts import BodyPart
from semtalk.body.representation import motion_to_tokenizer_parts
from semtalk.body.skeleton import BodyModel, load_body_model
from semtalk.config import to_dict
from semtalk.configs import load_stage_config
from semtalk.features.cache import FeatureCache
from semtalk.losses.reconstruction import (
    PartLossWeights,
    joint_position_error_mm,
    part_reconstruction_loss,
    rotation_error_degrees,
)
from semtalk.models.rvqvae import RVQVAE, RVQVAEConfig
from semtalk.release import TOKENIZER
from semtalk.training.solver import Solver, SolverConfig, install_release
from semtalk.training.windows import (
    CachedWindows,
    Segment,
    Window,
    cut_windows,
    read_rows,
    training_segments,
)


@dataclass(frozen=True)
class TokenizerTrainConfig:
    """Everything ``semtalk train tokenizer`` needs besides the part and the data.

    Attributes:
        model: the RVQ-VAE architecture shared by all parts; its ``input_dim`` is left unset
            (each part's model gets the part's channels, :meth:`RVQVAEConfig.for_part`).
        losses: weights of the reconstruction terms.
        window: frames per training window.
        stride: frames between training-window starts.
        val_stride: frames between validation-window starts.
        holdout_fraction: share of each training clip held out for validation when the cache
            has no ``val`` clips.
        body_model: SMPL-X model file for the joint terms (``null``: built-in skeleton).
        face_commitment_weight: the face tokenizer's ``quantizer.commitment_weight`` (``null``:
            the shared ``model.quantizer`` value, 1 as in the official code). The face's
            reconstruction terms are an order of magnitude smaller than the other parts' (the
            jaw turns by hundredths of a radian, an expression error of a frozen face is ~std^2,
            0.03 on the synthetic speaker), while the commitment loss lives in the normalised
            latent space: at weight 1 it can win and collapse the face encoder to one code (it
            froze an earlier synthetic speaker's face, whose expressions were mostly noise:
            reconstructed expression std 0.07 % of the data's, the jaw's 0.1 %; today's
            speech-driven face keeps 66 % at 1). 0.1: on the real BEAT2 clip (tiny preset, 400
            steps, ``benchmarks/tokenizer_real_clip.py``'s split) the test-tail expression RMSE
            is 0.280 at 0.1, 0.305 at 0.02 (T2M-GPT's and MoMask's weight), 0.289 at 0.3 and
            at 1; the synthetic speaker's face keeps 86 % of its expression std at 0.1.
        part_steps: fractions of ``solver.max_steps`` for single parts (``{lower: 0.5}``: the
            lower body trains half the steps, rounded up); parts not named train them all.
        solver: optimisation and bookkeeping.
    """

    model: RVQVAEConfig = field(default_factory=RVQVAEConfig)
    losses: PartLossWeights = field(default_factory=PartLossWeights)
    window: int = 64
    stride: int = 20
    val_stride: int = 32
    holdout_fraction: float = 0.1
    body_model: str | None = None
    face_commitment_weight: float | None = 0.1
    part_steps: dict[str, float] = field(default_factory=dict)
    solver: SolverConfig = field(default_factory=SolverConfig)

    def __post_init__(self) -> None:
        if self.model.input_dim is not None:
            raise ValueError(f"model.input_dim is the body part's channels, set per part; "
                             f"leave it out (got {self.model.input_dim})")
        if self.face_commitment_weight is not None and not self.face_commitment_weight >= 0:
            raise ValueError(f"face_commitment_weight must be >= 0 or null, got "
                             f"{self.face_commitment_weight}")
        parts = [part.value for part in BodyPart]
        for name, fraction in self.part_steps.items():
            if name not in parts:
                raise ValueError(f"part_steps.{name}: not a body part (one of {parts})")
            if not 0 < fraction <= 1:
                raise ValueError(f"part_steps.{name} must be in (0, 1], got {fraction}")

    def solver_for(self, part: BodyPart) -> SolverConfig:
        """:attr:`solver` with ``max_steps`` of ``part`` (:attr:`part_steps`)."""
        fraction = self.part_steps.get(part.value)
        if fraction is None:
            return self.solver
        return replace(self.solver, max_steps=max(1, math.ceil(fraction * self.solver.max_steps)))

    def model_for(self, part: BodyPart) -> RVQVAEConfig:
        """The RVQ-VAE architecture of ``part``: :attr:`model` with the part's channels and,
        for the face, :attr:`face_commitment_weight`."""
        config = self.model.for_part(part)
        if part is BodyPart.FACE and self.face_commitment_weight is not None:
            quantizer = replace(config.quantizer, commitment_weight=self.face_commitment_weight)
            config = replace(config, quantizer=quantizer)
        return config


def load_tokenizer_config(preset: str = "tiny", config: str | Path | None = None,
                          overrides: tuple[str, ...] | list[str] = ()) -> TokenizerTrainConfig:
    """The packaged preset (``tiny`` or ``paper``) or a YAML file, then ``key=value`` overrides."""
    return load_stage_config(TokenizerTrainConfig, "tokenizer", preset, config, overrides)


class PartWindows(CachedWindows):
    """``{"features": [window, part.dim]}`` examples of one part from a cache."""

    def __init__(self, cache: FeatureCache, windows: list[Window], part: BodyPart) -> None:
        super().__init__(cache, windows)
        self.part = part

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        window = self.windows[index]
        clip = self.clip(window)
        frames = slice(window.start, window.stop)
        parts = motion_to_tokenizer_parts(
            read_rows(clip.poses, frames), read_rows(clip.expressions, frames),
            read_rows(clip.trans, frames), read_rows(clip.contacts, frames))
        return {"features": parts[self.part]}


class TokenizerSolver(Solver):
    """Trains the RVQ-VAE of one body part."""

    stage = "tokenizer"
    selection_metric = "loss"
    validate_prepared = True

    def __init__(self, config: TokenizerTrainConfig, part: BodyPart, data: str | Path,
                 out: str | Path,
                 segments: tuple[list[Segment], list[Segment]] | None = None) -> None:
        """``segments``: explicit ``(train, validation)`` frame ranges instead of the cache's
        splits (:func:`~semtalk.training.windows.training_segments`)."""
        super().__init__(config.solver_for(part), out)
        self.config = config
        self.part = part
        self.cache = FeatureCache(data)
        self._body: BodyModel | None = None
        self._train, self._val = segments or training_segments(
            self.cache, config.holdout_fraction, config.window)

    @property
    def body(self) -> BodyModel:
        if self._body is None:
            self._body = load_body_model(self.config.body_model)
        return self._body

    def identity(self) -> dict[str, Any]:
        config = {k: v for k, v in to_dict(self.config).items() if k != "solver"}
        del config["model"]["input_dim"]  # always unset: the part decides it
        return {"part": self.part.value, "config": config,
                "cache": self.cache.fingerprint,
                "train_segments": [[s.clip_id, s.start, s.stop] for s in self._train],
                "val_segments": [[s.clip_id, s.start, s.stop] for s in self._val]}

    def build_model(self) -> nn.Module:
        model = RVQVAE(self.config.model_for(self.part))
        model.set_normalization(*feature_statistics(self.train_dataset()))
        return model

    def _windows(self, segments: list[Segment], stride: int) -> PartWindows:
        return PartWindows(self.cache, cut_windows(segments, self.config.window, stride),
                           self.part)

    def train_dataset(self) -> Dataset:
        return self._windows(self._train, self.config.stride)

    def val_dataset(self) -> Dataset | None:
        return self._windows(self._val, self.config.val_stride) if self._val else None

    def _losses(self, model: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, Any]]:
        out = model(x)
        rec = part_reconstruction_loss(self.part, out.reconstruction, x, self.config.losses,
                                       self.body)
        values: dict[str, Any] = {f"rec_{k}": v.item() for k, v in rec.terms.items()}
        values.update(commitment=out.commitment_loss.item(),
                      perplexity=out.perplexity.mean().item(), usage=out.usage.mean().item())
        return rec.total + out.commitment_loss, {**values, "_out": out}

    def training_loss(self, model: nn.Module, batch: dict[str, torch.Tensor],
                      step: int) -> tuple[torch.Tensor, dict[str, float]]:
        loss, values = self._losses(model, batch["features"])
        values.pop("_out")
        return loss, values

    def validation_metrics(self, model: nn.Module,
                           batch: dict[str, torch.Tensor]) -> dict[str, float]:
        x = batch["features"]
        loss, values = self._losses(model, x)
        out = values.pop("_out")
        values["loss"] = loss.item()
        values["angle_deg"] = rotation_error_degrees(out.reconstruction, x, self.part).item()
        if self.part is not BodyPart.FACE:
            values["joint_mm"] = joint_position_error_mm(out.reconstruction, x, self.part,
                                                         self.body).item()
        return values

    def save_release(self, model: nn.Module, folder: Path) -> None:
        model.save_pretrained(folder)  # type: ignore[operator]


@torch.no_grad()
def feature_statistics(dataset: Dataset, max_windows: int = 2048) -> tuple[torch.Tensor,
                                                                          torch.Tensor]:
    """Per-channel ``(mean, std)`` ``[D]`` of the ``features`` of up to ``max_windows``
    evenly spaced windows of ``dataset``."""
    count = len(dataset)  # type: ignore[arg-type]
    if count == 0:
        raise ValueError("no training windows to compute feature statistics from")
    step = max(1, count // max_windows)
    frames = torch.cat([dataset[i]["features"] for i in range(0, count, step)], dim=0)
    return frames.mean(dim=0), frames.std(dim=0, unbiased=False)


def train_tokenizer(config: TokenizerTrainConfig, part: BodyPart, data: str | Path,
                    out: str | Path, *, progress: bool = True) -> Path:
    """Train (or resume) the tokenizer of ``part``; returns the release folder.

    The run lives in ``OUT/<part>/`` (checkpoint, logs, ``best/``); the selected model is
    copied to ``OUT/tokenizer/<part>/`` so that once every part is trained ``OUT/tokenizer``
    is a :class:`~semtalk.models.tokenizer.MotionTokenizer` release.
    """
    out = Path(out)
    solver = TokenizerSolver(config, part, data, out / part.value)
    best = solver.fit(progress=progress)
    return install_release(best, out / TOKENIZER / part.value)


def with_solver(config: TokenizerTrainConfig, **changes: Any) -> TokenizerTrainConfig:
    """``config`` with some solver fields replaced."""
    return replace(config, solver=replace(config.solver, **changes))
