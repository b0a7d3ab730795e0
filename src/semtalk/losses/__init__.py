"""Training losses: part reconstruction (tokenizers) and the generators' objectives."""

from semtalk.losses.reconstruction import (
    LossOutput,
    PartLossWeights,
    joint_position_error_mm,
    part_reconstruction_loss,
    rotation_error_degrees,
)

__all__ = [
    "LossOutput",
    "PartLossWeights",
    "joint_position_error_mm",
    "part_reconstruction_loss",
    "rotation_error_degrees",
]
