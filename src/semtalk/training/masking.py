"""Seed masks for generator training.

Three kinds of mask per step (spec §5.4), all ``[B, T, D]`` bool with True = hidden:

- **seed**: the first ``seed_frames`` frames visible, the rest hidden (the inference
  condition);
- **random**: a share ``ratio`` of the motion hidden at random, the ratio growing with training
  (paper: "gradually increasing masked frames from 0 to 40 % over 120 epochs"). ``unit``
  ``"frame"`` hides whole frames (paper); ``"element"`` hides single channels of frames
  (official code).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

MASK_UNITS = ("frame", "element")


@dataclass(frozen=True)
class MaskSchedule:
    """Random-mask ratio over training.

    Attributes:
        max_ratio: share of the motion hidden once the ramp is over (paper 0.4).
        ramp_fraction: share of training over which the ratio grows linearly from 0
            (paper: 120 of 200 epochs = 0.6).
        unit: ``"frame"`` (paper) or ``"element"`` (official code).
        seed_frames: visible frames of the seed mask (4).
    """

    max_ratio: float = 0.4
    ramp_fraction: float = 0.6
    unit: str = "frame"
    seed_frames: int = 4

    def __post_init__(self) -> None:
        if not 0.0 <= self.max_ratio <= 1.0:
            raise ValueError(f"max_ratio must be in [0, 1], got {self.max_ratio}")
        if not 0.0 <= self.ramp_fraction <= 1.0:
            raise ValueError(f"ramp_fraction must be in [0, 1], got {self.ramp_fraction}")
        if self.unit not in MASK_UNITS:
            raise ValueError(f"unit must be one of {MASK_UNITS}, got {self.unit!r}")
        if self.seed_frames < 0:
            raise ValueError(f"seed_frames must be >= 0, got {self.seed_frames}")

    def ratio(self, step: int, max_steps: int) -> float:
        """Random-mask ratio at ``step`` of ``max_steps``."""
        ramp = self.ramp_fraction * max_steps
        if ramp <= 0:
            return self.max_ratio
        return self.max_ratio * min(1.0, step / ramp)

    def seed_mask(self, shape: torch.Size | tuple[int, ...],
                  device: torch.device | str = "cpu") -> torch.Tensor:
        """Everything hidden but the first ``seed_frames`` frames."""
        mask = torch.ones(shape, dtype=torch.bool, device=device)
        mask[:, : self.seed_frames] = False
        return mask

    def random_mask(self, shape: torch.Size | tuple[int, ...], ratio: float,
                    device: torch.device | str = "cpu") -> torch.Tensor:
        """A share ``ratio`` of frames (or elements) hidden, drawn from the global RNG."""
        batch, frames, dim = shape
        if self.unit == "frame":
            hidden = torch.rand(batch, frames, 1, device=device) < ratio
            return hidden.expand(batch, frames, dim).contiguous()
        return torch.rand(batch, frames, dim, device=device) < ratio
