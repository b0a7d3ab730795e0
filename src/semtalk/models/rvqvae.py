"""RVQ-VAE motion tokenizer for one body part: conv encoder, residual VQ, conv decoder.

``[B, T, D]`` part features are encoded to ``[B, T/4, code_dim]`` latents (``down_t=2``),
quantised into ``[B, T/4, Q]`` codes and decoded back to ``[B, T, D]`` (spec §3.1). A trained
model is released as a folder holding ``config.json`` (the :class:`RVQVAEConfig`) and
``model.safetensors`` (all parameters and buffers, codebooks included) through
:class:`semtalk.models.pretrained.PretrainedModel`.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import ClassVar

import torch

from semtalk.body.parts import BodyPart
from semtalk.models.pretrained import PretrainedModel
from semtalk.modules.conv import ConvDecoder, ConvEncoder
from semtalk.modules.quantizer import QuantizerConfig, ResidualVQ


@dataclass(frozen=True)
class RVQVAEConfig:
    """Configuration of :class:`RVQVAE`.

    The packaged presets are the ``model`` sections of ``semtalk/configs/tokenizer_*.yaml``
    (:func:`semtalk.training.presets.load_preset`); the defaults are the paper's sizes.

    Attributes:
        input_dim: channels D of the part features (face 106, upper 78, hands 180, lower 61).
            ``None`` in an architecture shared by all parts (a training config's ``model``, a
            preset): :meth:`for_part` fills it in; a model needs it set.
        width: channels of the conv stacks.
        code_dim: latent channels; must equal ``quantizer.codebook_dim``.
        down_t: number of stride-2 stages; the sequence is shortened by ``2**down_t``.
        depth: residual blocks per Resnet1D stack.
        dilation_growth: dilation factor between residual blocks.
        dropout: dropout inside the residual blocks.
        quantizer: the residual quantiser.
    """

    input_dim: int | None = None
    width: int = 256
    code_dim: int = 256
    down_t: int = 2
    depth: int = 3
    dilation_growth: int = 3
    dropout: float = 0.2
    quantizer: QuantizerConfig = field(default_factory=QuantizerConfig)

    required_in_release: ClassVar[tuple[str, ...]] = ("input_dim",)
    """Fields a release's ``config.json`` must set (a shared architecture leaves them unset)."""

    def __post_init__(self) -> None:
        problems = []
        if self.input_dim is not None and self.input_dim < 1:
            problems.append(f"input_dim must be >= 1, got {self.input_dim}")
        for name in ("width", "code_dim", "depth", "dilation_growth"):
            if getattr(self, name) < 1:
                problems.append(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.down_t < 0:
            problems.append(f"down_t must be >= 0, got {self.down_t}")
        if not 0.0 <= self.dropout < 1.0:
            problems.append(f"dropout must be in [0, 1), got {self.dropout}")
        if self.code_dim != self.quantizer.codebook_dim:
            problems.append(f"code_dim ({self.code_dim}) must equal quantizer.codebook_dim "
                            f"({self.quantizer.codebook_dim})")
        if problems:
            raise ValueError("; ".join(problems))

    @property
    def downsample_factor(self) -> int:
        """Frames per code: ``2**down_t`` (4 for the paper)."""
        return 2**self.down_t

    def for_part(self, part: BodyPart) -> RVQVAEConfig:
        """This architecture with the channels of ``part`` (``input_dim = part.dim``)."""
        return replace(self, input_dim=part.dim)


@dataclass
class RVQVAEOutput:
    """What :meth:`RVQVAE.forward` returns.

    Attributes:
        reconstruction: ``[B, T, D]`` decoded features.
        codes: ``[B, T/4, Q]`` code indices (-1 where quantizer dropout dropped a layer).
        commitment_loss: scalar, already multiplied by ``quantizer.commitment_weight``.
        perplexity: ``[Q]`` per-layer code perplexity in this batch.
        usage: ``[Q]`` per-layer fraction of the codebook used in this batch.
    """

    reconstruction: torch.Tensor
    codes: torch.Tensor
    commitment_loss: torch.Tensor
    perplexity: torch.Tensor
    usage: torch.Tensor


class RVQVAE(PretrainedModel):
    """Residual-VQ autoencoder of one body part's motion features (spec §3.1)."""

    model_name = "RVQVAE"
    format_version = 1
    config_class = RVQVAEConfig

    feature_mean: torch.Tensor
    feature_std: torch.Tensor

    def __init__(self, config: RVQVAEConfig) -> None:
        super().__init__()
        if config.input_dim is None:
            raise ValueError("RVQVAE needs config.input_dim set (RVQVAEConfig.for_part fills "
                             "it in for a body part)")
        input_dim = config.input_dim
        self.config = config
        self.encoder = ConvEncoder(input_dim, width=config.width, code_dim=config.code_dim,
                                   down_t=config.down_t, depth=config.depth,
                                   dilation_growth=config.dilation_growth,
                                   dropout=config.dropout)
        self.quantizer = ResidualVQ(config.quantizer)
        self.decoder = ConvDecoder(input_dim, width=config.width, code_dim=config.code_dim,
                                   up_t=config.down_t, depth=config.depth,
                                   dilation_growth=config.dilation_growth,
                                   dropout=config.dropout)
        # Feature normalisation (set from training data by :meth:`set_normalization`): the
        # encoder sees ``(x - mean) / std`` and the decoder's output is mapped back. Rotation
        # features vary by a few hundredths around large constant 6D values; without this a
        # small model spends most of its training learning the mean pose.
        self.register_buffer("feature_mean", torch.zeros(input_dim))
        self.register_buffer("feature_std", torch.ones(input_dim))

    @torch.no_grad()
    def set_normalization(self, mean: torch.Tensor, std: torch.Tensor,
                          min_std: float = 1e-2) -> None:
        """Use per-channel statistics ``[D]`` of the training features; ``std`` is floored at
        ``min_std`` so near-constant channels are not blown up."""
        if mean.shape != (self.config.input_dim,) or std.shape != (self.config.input_dim,):
            raise ValueError(f"normalisation statistics must have shape "
                             f"({self.config.input_dim},), got {tuple(mean.shape)} and "
                             f"{tuple(std.shape)}")
        self.feature_mean.copy_(mean)
        self.feature_std.copy_(std.clamp_min(min_std))

    def _decode_latents(self, latents: torch.Tensor) -> torch.Tensor:
        return self.decoder(latents) * self.feature_std + self.feature_mean

    def _latents(self, x: torch.Tensor) -> torch.Tensor:
        """Encoder output ``[B, T/4, code_dim]`` of ``x [B, T, D]`` after shape checks."""
        factor = self.config.downsample_factor
        if x.dim() != 3 or x.shape[-1] != self.config.input_dim:
            raise ValueError(f"RVQVAE expects [B, T, {self.config.input_dim}] input, "
                             f"got shape {tuple(x.shape)}")
        if x.shape[1] == 0 or x.shape[1] % factor:
            raise ValueError(f"RVQVAE needs a sequence length that is a positive multiple of "
                             f"{factor}, got T={x.shape[1]}")
        return self.encoder((x - self.feature_mean) / self.feature_std)

    def forward(self, x: torch.Tensor) -> RVQVAEOutput:
        """Encode, quantise and decode ``x [B, T, D]`` (T a multiple of 4)."""
        quantized = self.quantizer(self._latents(x))
        return RVQVAEOutput(
            reconstruction=self._decode_latents(quantized.quantized),
            codes=quantized.codes,
            commitment_loss=quantized.commitment_loss,
            perplexity=quantized.perplexity,
            usage=quantized.usage,
        )

    @torch.no_grad()
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Nearest codes of every layer: ``[B, T, D] -> [B, T/4, Q]`` (long)."""
        return self.quantizer.encode(self._latents(x))

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """Features from codes: ``[B, T/4, Q'] -> [B, T, D]`` (Q' <= Q, -1 entries ignored)."""
        return self._decode_latents(self.quantizer.decode(codes))

    def codes_to_vectors(self, codes: torch.Tensor) -> torch.Tensor:
        """Per-layer code vectors ``[Q', B, T/4, code_dim]`` (the official ``map2zq``)."""
        return self.quantizer.codes_to_vectors(codes)
