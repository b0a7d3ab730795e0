"""The motion autoencoder whose latents FGD compares: a port of EMAGE's ``VAESKConv``.

FGD (spec §8.1) is the Fréchet distance between Gaussian fits of *latents* of generated and
ground-truth motion. The latents come from the encoder of a motion autoencoder trained on
BEAT2: a skeleton-convolution network (``LocalEncoder``) followed, for training only, by a
plain convolutional decoder. :class:`FGDAutoencoder` reproduces both with the same parameter
layout, so the public checkpoint loads (:func:`semtalk.metrics.fgd_official.
load_official_fgd_encoder`); it can also be trained from scratch on any dataset.

Encoder (input ``[B, T, 330]``: 55 joints x 6D rotation, joint ``j`` at channels
``6j:6j+6``; no translation, no normalisation):

- the channels are read per skeleton edge (:mod:`semtalk.metrics.skeleton_topology`);
- 4 skeleton residual layers, each: ``tanh(pool(GroupNorm(SkConv_k4_s2(x)) + SkConv_k1_s2(x)))``
  where a skeleton convolution is a ``Conv1d`` whose weight is masked so each edge's output
  channels read only edges within graph distance 2, and ``pool`` averages pairs of edges along
  chains (skipped when it would change nothing);
- per-edge channels 6 -> 6 -> 6 -> 12 -> 12 (``growth = (1, 1, 2, 1)``), edges
  55 -> 35 -> 20 -> 20 -> 20, time halved by each layer;
- output ``[B, T/16, 240]`` (20 edges x 12 channels per 16 frames).

Decoder (``[B, T/16, 240] -> [B, T, 330]``): 2 residual blocks (Conv3, LeakyReLU 0.2, Conv3,
plus the input), then 4 x (nearest upsample x2, Conv3, LeakyReLU 0.2) with widths
240 -> 240 -> 240 -> 240 -> 330, then a final Conv3 (EMAGE's ``VQDecoderV3``).

The masks and pooling matrices are derived from the config, not stored: they are
non-persistent buffers, so a release folder holds only the trained tensors.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from semtalk.body.parts import PARENTS, ROT6D_DIM
from semtalk.metrics.skeleton_topology import LayerTopology, encoder_topology
from semtalk.models.pretrained import PretrainedModel


@dataclass(frozen=True)
class FGDLossWeights:
    """Weights of :meth:`FGDAutoencoder.reconstruction_loss` terms (all L1 on 6D channels).

    Attributes:
        rotation: the 6D rotations themselves.
        velocity: their first difference over time.
        acceleration: their second difference over time.
    """

    rotation: float = 1.0
    velocity: float = 1.0
    acceleration: float = 1.0


@dataclass(frozen=True)
class FGDEncoderConfig:
    """Configuration of :class:`FGDAutoencoder`; the defaults are the official evaluator's.

    Attributes:
        parents: kinematic tree; ``parents[j]`` is joint ``j``'s parent (-1 for the root).
            Defaults to the SMPL-X 55-joint tree; the input has ``6 * len(parents)`` channels.
        growth: per-layer multiplier of the channels per edge (one entry per layer; the
            official ``vae_grow``). Channels per edge start at 6.
        kernel_size: temporal kernel of the strided skeleton convolutions.
        skeleton_distance: edges within this graph distance feed each edge's outputs.
        norm_groups: groups of the GroupNorm in each layer; must divide every layer's width.
        decoder_resblocks: residual blocks at the start of the decoder.
        loss_weights: weights of the training reconstruction loss.
    """

    parents: tuple[int, ...] = PARENTS
    growth: tuple[int, ...] = (1, 1, 2, 1)
    kernel_size: int = 4
    skeleton_distance: int = 2
    norm_groups: int = 10
    decoder_resblocks: int = 2
    loss_weights: FGDLossWeights = field(default_factory=FGDLossWeights)

    def __post_init__(self) -> None:
        problems = []
        if not self.growth or any(g < 1 for g in self.growth):
            problems.append(f"growth needs at least one entry, all >= 1, got {self.growth}")
        for name in ("kernel_size", "skeleton_distance", "norm_groups"):
            if getattr(self, name) < 1:
                problems.append(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.decoder_resblocks < 0:
            problems.append(f"decoder_resblocks must be >= 0, got {self.decoder_resblocks}")
        if problems:
            raise ValueError("; ".join(problems))
        for layer, width in enumerate(self.layer_widths):
            if width % self.norm_groups:
                raise ValueError(f"layer {layer} has {width} channels, not divisible by "
                                 f"norm_groups={self.norm_groups}")

    @property
    def num_layers(self) -> int:
        """Skeleton residual layers (4 officially)."""
        return len(self.growth)

    @property
    def downsample_factor(self) -> int:
        """Frames per latent step: ``2**num_layers`` (16 officially)."""
        return 2**self.num_layers

    @property
    def input_dim(self) -> int:
        """Channels of the 6D input: ``6 * len(parents)`` (330 for SMPL-X)."""
        return ROT6D_DIM * len(self.parents)

    @property
    def channels_per_edge(self) -> tuple[int, ...]:
        """Channels per edge before the first layer and after each layer (6, 6, 6, 12, 12)."""
        channels = [ROT6D_DIM]
        for g in self.growth:
            channels.append(channels[-1] * g)
        return tuple(channels)

    @property
    def topology(self) -> tuple[LayerTopology, ...]:
        """Per-layer skeleton topology (edges, neighbourhoods, pooling groups)."""
        return encoder_topology(tuple(self.parents), self.num_layers, self.skeleton_distance)

    @property
    def layer_widths(self) -> tuple[int, ...]:
        """Output channels of each layer's convolutions (before pooling)."""
        per_edge = self.channels_per_edge
        return tuple(per_edge[i + 1] * layer.num_edges for i, layer in enumerate(self.topology))

    @property
    def latent_dim(self) -> int:
        """Channels of one latent step: final edges x final channels per edge (240)."""
        return self.channels_per_edge[-1] * self.topology[-1].num_output_edges


class SkeletonConv(nn.Module):
    """``Conv1d`` on ``[B, E*C_in, T]`` whose weight is masked to each edge's neighbourhood.

    Output channels ``[e*C_out, (e+1)*C_out)`` belong to edge ``e`` and read only the input
    channels of the edges in ``neighbours[e]``. Zero padding of ``padding`` frames each side.
    """

    mask: torch.Tensor

    def __init__(self, neighbours: tuple[tuple[int, ...], ...], in_per_edge: int,
                 out_per_edge: int, kernel_size: int, stride: int, padding: int) -> None:
        super().__init__()
        num_edges = len(neighbours)
        self.stride = stride
        self.padding = padding
        mask = torch.zeros(num_edges * out_per_edge, num_edges * in_per_edge, kernel_size)
        for edge, reads in enumerate(neighbours):
            rows = slice(edge * out_per_edge, (edge + 1) * out_per_edge)
            for other in reads:
                mask[rows, other * in_per_edge:(other + 1) * in_per_edge] = 1.0
        self.register_buffer("mask", mask, persistent=False)
        self.weight = nn.Parameter(torch.empty_like(mask))
        self.bias = nn.Parameter(torch.empty(num_edges * out_per_edge))
        self._neighbourhood_sizes = [len(reads) * in_per_edge * kernel_size
                                     for reads in neighbours]
        self._out_per_edge = out_per_edge
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """Kaiming-uniform weights and uniform biases scaled by each edge's own fan-in."""
        self.weight.zero_()
        for edge, fan_in in enumerate(self._neighbourhood_sizes):
            rows = slice(edge * self._out_per_edge, (edge + 1) * self._out_per_edge)
            bound = 1.0 / math.sqrt(fan_in)  # kaiming_uniform with a = sqrt(5)
            self.weight[rows].uniform_(-bound, bound)
            self.bias[rows].uniform_(-bound, bound)
        self.weight.mul_(self.mask)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, E*C_in, T] -> [B, E*C_out, T']``."""
        return F.conv1d(x, self.weight * self.mask, self.bias, self.stride, self.padding)


class SkeletonResidualLayer(nn.Module):
    """``tanh(pool(GroupNorm(conv(x)) + shortcut(x)))``: halves time, may merge edges."""

    pool: torch.Tensor | None

    def __init__(self, topology: LayerTopology, in_per_edge: int, out_per_edge: int,
                 kernel_size: int, norm_groups: int) -> None:
        super().__init__()
        width = out_per_edge * topology.num_edges
        self.conv = SkeletonConv(topology.neighbours, in_per_edge, out_per_edge, kernel_size,
                                 stride=2, padding=(kernel_size - 1) // 2)
        self.norm = nn.GroupNorm(norm_groups, width)
        self.shortcut = SkeletonConv(topology.neighbours, in_per_edge, out_per_edge, 1,
                                     stride=2, padding=0)
        pool = None
        if topology.pool_groups is not None:
            pool = torch.zeros(len(topology.pool_groups) * out_per_edge, width)
            for target, group in enumerate(topology.pool_groups):
                for source in group:
                    for c in range(out_per_edge):
                        pool[target * out_per_edge + c, source * out_per_edge + c] = 1 / len(group)
        self.register_buffer("pool", pool, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, E*C_in, T] -> [B, E'*C_out, T/2]``."""
        out = self.norm(self.conv(x)) + self.shortcut(x)
        if self.pool is not None:
            out = torch.matmul(self.pool, out)
        return torch.tanh(out)


class SkeletonEncoder(nn.Module):
    """``[B, T, 6J]`` joint rotations -> ``[B, T / 2**L, latent_dim]`` (EMAGE ``LocalEncoder``)."""

    def __init__(self, config: FGDEncoderConfig) -> None:
        super().__init__()
        per_edge = config.channels_per_edge
        self.layers = nn.ModuleList(
            SkeletonResidualLayer(topology, per_edge[i], per_edge[i + 1], config.kernel_size,
                                  config.norm_groups)
            for i, topology in enumerate(config.topology))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, T, 6J] -> [B, T / 2**L, latent_dim]``."""
        out = x.transpose(1, 2)
        for layer in self.layers:
            out = layer(out)
        return out.transpose(1, 2)


class ResidualBlock(nn.Module):
    """``x + Conv3(LeakyReLU_0.2(Conv3(x)))`` on ``[B, C, T]``."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv1d(width, width, 3, padding=1)
        self.conv2 = nn.Conv1d(width, width, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, C, T] -> [B, C, T]``."""
        return x + self.conv2(F.leaky_relu(self.conv1(x), 0.2))


class UpsamplingDecoder(nn.Module):
    """``[B, N, latent_dim] -> [B, N * 2**L, output_dim]`` (EMAGE ``VQDecoderV3``)."""

    def __init__(self, latent_dim: int, output_dim: int, num_layers: int,
                 num_resblocks: int) -> None:
        super().__init__()
        widths = [latent_dim] * num_layers + [output_dim]
        self.resblocks = nn.ModuleList(ResidualBlock(latent_dim) for _ in range(num_resblocks))
        self.upsample = nn.ModuleList(nn.Conv1d(widths[i], widths[i + 1], 3, padding=1)
                                      for i in range(num_layers))
        self.out = nn.Conv1d(output_dim, output_dim, 3, padding=1)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """``[B, N, latent_dim] -> [B, N * 2**L, output_dim]``."""
        out = z.transpose(1, 2)
        for block in self.resblocks:
            out = block(out)
        for conv in self.upsample:
            out = F.leaky_relu(conv(F.interpolate(out, scale_factor=2, mode="nearest")), 0.2)
        return self.out(out).transpose(1, 2)


@dataclass
class FGDAutoencoderOutput:
    """What :meth:`FGDAutoencoder.forward` returns.

    Attributes:
        reconstruction: ``[B, T, 6J]`` decoded 6D rotations.
        latents: ``[B, T / 2**L, latent_dim]`` encoder output (the FGD features).
    """

    reconstruction: torch.Tensor
    latents: torch.Tensor


class FGDAutoencoder(PretrainedModel):
    """Skeleton-convolution motion autoencoder; its encoder provides the FGD features."""

    model_name = "FGDAutoencoder"
    format_version = 1
    config_class = FGDEncoderConfig

    def __init__(self, config: FGDEncoderConfig) -> None:
        super().__init__()
        self.config = config
        self.encoder = SkeletonEncoder(config)
        self.decoder = UpsamplingDecoder(config.latent_dim, config.input_dim, config.num_layers,
                                         config.decoder_resblocks)

    def _check(self, rot6d: torch.Tensor) -> None:
        factor = self.config.downsample_factor
        if rot6d.dim() != 3 or rot6d.shape[-1] != self.config.input_dim:
            raise ValueError(f"FGDAutoencoder expects [B, T, {self.config.input_dim}] 6D "
                             f"rotations, got shape {tuple(rot6d.shape)}")
        if rot6d.shape[1] == 0 or rot6d.shape[1] % factor:
            raise ValueError(f"FGDAutoencoder needs a sequence length that is a positive "
                             f"multiple of {factor}, got T={rot6d.shape[1]}")

    @property
    def dtype(self) -> torch.dtype:
        """The float type of the weights (inputs are cast to it)."""
        return next(t.dtype for t in (*self.parameters(), *self.buffers())
                    if t.is_floating_point())

    def encode(self, rot6d: torch.Tensor) -> torch.Tensor:
        """FGD features: ``[B, T, 330] -> [B, T/16, 240]`` (T a multiple of 16)."""
        self._check(rot6d)
        return self.encoder(rot6d.to(self.dtype))

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """``[B, T/16, 240] -> [B, T, 330]``."""
        return self.decoder(latents)

    def forward(self, rot6d: torch.Tensor) -> FGDAutoencoderOutput:
        """Encode and decode ``rot6d [B, T, 330]``."""
        latents = self.encode(rot6d)
        return FGDAutoencoderOutput(reconstruction=self.decode(latents), latents=latents)

    def reconstruction_loss(self, rot6d: torch.Tensor,
                            output: FGDAutoencoderOutput | None = None) -> dict[str, torch.Tensor]:
        """Training loss of the autoencoder on ``rot6d [B, T, 330]``.

        L1 of the 6D rotations, of their velocity and of their acceleration, weighted by
        ``config.loss_weights``. Pass ``output`` to reuse a forward pass.

        Returns:
            ``{"rotation", "velocity", "acceleration", "total"}`` scalars.
        """
        out = self(rot6d) if output is None else output
        target = rot6d.to(out.reconstruction.dtype)
        prediction = out.reconstruction
        terms = {"rotation": F.l1_loss(prediction, target)}
        pred_vel, target_vel = prediction.diff(dim=1), target.diff(dim=1)
        terms["velocity"] = F.l1_loss(pred_vel, target_vel)
        terms["acceleration"] = F.l1_loss(pred_vel.diff(dim=1), target_vel.diff(dim=1))
        weights = self.config.loss_weights
        terms["total"] = sum(getattr(weights, name) * value for name, value in terms.items())
        return terms
