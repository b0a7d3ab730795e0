"""Global-motion (translation) network: lower-body motion -> root velocity, height, contacts.

The EMAGE/SemTalk ``VAEConvZero`` (spec §3.5): a conv encoder and a conv decoder with no
temporal resampling and no quantiser. ``[B, T, 61]`` lower vectors (9 x 6D, translation
channels zeroed, contacts) map to ``[B, T, 61]`` whose channels 54:57 are (v_x, y, v_z): the
horizontal root velocity in m/s and the absolute root height (see
:func:`semtalk.official.motion.integrate_translation`).

Layout (``width`` channels, LeakyReLU slope 0.2, every conv k3 s1 p1):

- encoder: ``layers`` x [Conv, LeakyReLU, ResBlock1D] (input_dim -> width, then width);
- decoder: 2 x ResBlock1D, ``layers`` x [Conv, LeakyReLU] (width ... width -> input_dim), then
  a final Conv(input_dim -> input_dim).

A release is a folder with ``config.json`` (the :class:`GlobalMotionConfig`) and
``model.safetensors`` through :class:`semtalk.models.pretrained.PretrainedModel`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from semtalk.models.pretrained import PretrainedModel
from semtalk.modules.motion_encoder import MotionConvEncoder, ResBlock1D

LEAKY_SLOPE = 0.2


@dataclass(frozen=True)
class GlobalMotionConfig:
    """Configuration of :class:`GlobalMotionNet` (defaults: the official ``last_1700_foot``).

    Attributes:
        input_dim: channels of the lower vector, in and out.
        width: channels of the hidden convs.
        layers: conv layers of the encoder, and of the decoder's conv stack.
    """

    input_dim: int = 61
    width: int = 256
    layers: int = 4

    def __post_init__(self) -> None:
        problems = [f"{name} must be >= 1, got {getattr(self, name)}"
                    for name in ("input_dim", "width", "layers") if getattr(self, name) < 1]
        if problems:
            raise ValueError("; ".join(problems))


def _decoder(config: GlobalMotionConfig) -> nn.Sequential:
    """2 x ResBlock1D, ``layers`` x [Conv3, LeakyReLU], Conv3 (see the module docstring)."""
    width, out_dim = config.width, config.input_dim
    channels = [width] * config.layers + [out_dim]
    layers: list[nn.Module] = [ResBlock1D(width), ResBlock1D(width)]
    for index in range(config.layers):
        layers += [nn.Conv1d(channels[index], channels[index + 1], 3, padding=1),
                   nn.LeakyReLU(LEAKY_SLOPE)]
    layers.append(nn.Conv1d(out_dim, out_dim, 3, padding=1))
    return nn.Sequential(*layers)


class GlobalMotionNet(PretrainedModel):
    """The official global-motion net ``VAEConvZero``: ``[B, T, D] -> [B, T, D]``."""

    model_name = "GlobalMotionNet"
    format_version = 1
    config_class = GlobalMotionConfig

    def __init__(self, config: GlobalMotionConfig) -> None:
        super().__init__()
        self.config = config
        self.encoder = MotionConvEncoder(config.input_dim, config.width, config.layers)
        self.decoder = _decoder(config)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x [B, T, input_dim]`` -> the official ``rec_pose`` ``[B, T, input_dim]``."""
        if x.dim() != 3 or x.shape[-1] != self.config.input_dim:
            raise ValueError(f"GlobalMotionNet expects [B, T, {self.config.input_dim}] input, "
                             f"got shape {tuple(x.shape)}")
        latent = self.encoder(x)  # [B, T, width]
        return self.decoder(latent.transpose(1, 2)).transpose(1, 2)
