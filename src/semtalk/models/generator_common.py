"""What the base and sparse generators share: code spec, sizes, inputs, outputs, input checks.

Shapes: ``B`` batch, ``T`` frames (a multiple of ``CodeSpec.downsample`` = 4), ``N = T / 4``
tokens, ``Q`` RVQ layers, ``K`` codes per layer, ``D`` code/latent channels.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from semtalk.body.parts import BodyPart
from semtalk.models.rvqvae import RVQVAEConfig

FRAMES_PER_TOKEN = 4
"""The generators halve the frame rate twice (two stride-2 convs), so a token is 4 frames."""


@dataclass(frozen=True)
class CodeSpec:
    """The tokenizers' code layout, the same for every body part.

    Attributes:
        num_quantizers: RVQ layers Q.
        codebook_size: codes per layer K.
        code_dim: channels D of a code vector (must equal the generators' latent size).
        downsample: frames per token (the generators support 4 only).
    """

    num_quantizers: int = 6
    codebook_size: int = 256
    code_dim: int = 256
    downsample: int = 4

    def __post_init__(self) -> None:
        bad = [f"{f.name} must be >= 1, got {getattr(self, f.name)}"
               for f in dataclasses.fields(self) if getattr(self, f.name) < 1]
        if bad:
            raise ValueError("; ".join(bad))

    @classmethod
    def from_rvqvae(cls, config: RVQVAEConfig) -> CodeSpec:
        """The spec of a tokenizer config."""
        quantizer = config.quantizer
        return cls(num_quantizers=quantizer.num_quantizers,
                   codebook_size=quantizer.codebook_size, code_dim=quantizer.codebook_dim,
                   downsample=config.downsample_factor)


@dataclass(frozen=True)
class GeneratorSizes:
    """Widths and layer counts of the generators; the defaults are the official sizes (spec §9).

    Attributes:
        hidden: width H of the frame-level transformers (768).
        latent: width L of audio/part latents; must equal ``CodeSpec.code_dim`` (256).
        heads, feedforward: attention heads and feed-forward width of the H-wide layers.
        latent_heads, latent_feedforward: the same for the L-wide layers (Coarse2Fine and the
            sparse model's word/sentence decoder).
        face_layers: face-branch decoder layers (4).
        self_layers: body self-attention encoder layers (1).
        word_layers: body word-hints decoder layers (8).
        part_layers: intra-body cross-attention decoder layers per part (1).
        coarse2fine_layers: decoder layers per Coarse2Fine step (1).
        semantic_layers: sparse model's word/sentence decoder layers (1).
        residual_layers, residual_heads, residual_feedforward: each residual-code predictor's
            decoder (3 layers, 8 heads, 1024).
        motion_encoder_layers: conv layers of the seed-motion encoder (3).
    """

    hidden: int = 768
    latent: int = 256
    heads: int = 4
    feedforward: int = 1536
    latent_heads: int = 4
    latent_feedforward: int = 512
    face_layers: int = 4
    self_layers: int = 1
    word_layers: int = 8
    part_layers: int = 1
    coarse2fine_layers: int = 1
    semantic_layers: int = 1
    residual_layers: int = 3
    residual_heads: int = 8
    residual_feedforward: int = 1024
    motion_encoder_layers: int = 3

    def __post_init__(self) -> None:
        problems = [f"{f.name} must be >= 1, got {getattr(self, f.name)}"
                    for f in dataclasses.fields(self) if getattr(self, f.name) < 1]
        for width, heads in (("hidden", "heads"), ("latent", "latent_heads"),
                             ("latent", "residual_heads")):
            if getattr(self, width) % getattr(self, heads):
                problems.append(f"{width} ({getattr(self, width)}) must be divisible by "
                                f"{heads} ({getattr(self, heads)})")
        for width in ("hidden", "latent"):
            if getattr(self, width) % 2:
                problems.append(f"{width} must be even (positional encoding), got "
                                f"{getattr(self, width)}")
        if problems:
            raise ValueError("; ".join(problems))


def generator_config_problems(config: Any) -> list[str]:
    """Problems with the fields both generator configs share (empty when fine).

    The data-derived fields (``config.data_fields``) may be None (unset: filled in from the
    data and the tokenizer at training time); set ones are checked.
    """
    problems = [f"{name} must be >= 1, got {getattr(config, name)}"
                for name in ("speech_dim", "motion_dim", "num_speakers", "window")
                if getattr(config, name) is not None and getattr(config, name) < 1]
    codes = config.codes
    if codes is not None and codes.downsample != FRAMES_PER_TOKEN:
        problems.append(f"codes.downsample must be {FRAMES_PER_TOKEN} (two stride-2 stages), "
                        f"got {codes.downsample}")
    if config.window % FRAMES_PER_TOKEN:
        problems.append(f"window must be a multiple of {FRAMES_PER_TOKEN}, got {config.window}")
    if codes is not None and config.sizes.latent != codes.code_dim:
        problems.append(f"sizes.latent ({config.sizes.latent}) must equal codes.code_dim "
                        f"({codes.code_dim}): the heads regress code vectors")
    if not 0.0 <= config.dropout < 1.0:
        problems.append(f"dropout must be in [0, 1), got {config.dropout}")
    return problems


def unset_data_fields(config: Any) -> list[str]:
    """The data-derived fields of a generator config (``config.data_fields``) still None."""
    return [name for name in config.data_fields if getattr(config, name) is None]


def missing_data_error(config: Any, model: str) -> ValueError:
    """The error for building ``model`` from ``config`` with data-derived fields unset.

    A training config's model sections leave them unset (None): the data and the tokenizer
    decide them, and training fills them in before it builds the model.
    """
    return ValueError(f"{model} needs config {', '.join(unset_data_fields(config))} set: "
                      f"they come from the data and the tokenizer (training fills them in; a "
                      f"training config's model sections leave them unset)")


@dataclass
class GeneratorInputs:
    """One batch of windows for a generator.

    Attributes:
        speech: ``[B, T, speech_dim]`` float speech features γ_h.
        beat: ``[B, T, beat_dim]`` float beat features γ_b (base model only).
        motion: ``[B, T, motion_dim]`` float seed / ground-truth motion; only entries where
            ``mask`` is False can influence the output.
        mask: ``[B, T, motion_dim]`` bool, True = hidden (replaced by the learned embedding).
        speaker: ``[B]`` long speaker ids.
        word_ids: ``[B, T]`` long vocabulary ids φ_l (sparse model).
        sentence: ``[B, sentence_dim]`` float sentence embedding φ_g of the window (sparse).
        emotion: ``[B, emotion_dim]`` float emotion features φ_e of the window (sparse).
    """

    speech: torch.Tensor
    beat: torch.Tensor
    motion: torch.Tensor
    mask: torch.Tensor
    speaker: torch.Tensor
    word_ids: torch.Tensor | None = None
    sentence: torch.Tensor | None = None
    emotion: torch.Tensor | None = None

    def to(self, device: torch.device | str) -> GeneratorInputs:
        """A copy with every tensor on ``device``."""
        return dataclasses.replace(self, **{
            f.name: getattr(self, f.name).to(device) for f in dataclasses.fields(self)
            if getattr(self, f.name) is not None})


@dataclass
class GeneratorOutput:
    """What a generator's ``forward`` returns.

    Attributes:
        logits: ``{part: [B, N, Q, K]}`` code logits of every RVQ layer.
        latents: ``{part: [B, Q, N, D]}`` predicted per-layer code vectors ``z_0 .. z_{Q-1}``
            (regressed onto the tokenizer's per-layer code vectors).
        features: ``{part: [B, N, D]}`` the features the code heads read: after Coarse2Fine
            (base; these are the f_b the sparse model blends), after the Eq. 5 blend (sparse).
        rhythm: base only, ``{"face": (motion, audio), "hands": (motion, audio)}``, each
            ``[B, N, D]``: projected motion latents h(f) and token-pooled speech latents for
            the rhythmic consistency loss. Empty for the sparse model.
        gate_logits: sparse model with the learned gate only, ``[B, N, 2]``.
        psi: sparse model only, ``[B, N]`` semantic score in [0, 1].
    """

    logits: dict[BodyPart, torch.Tensor]
    latents: dict[BodyPart, torch.Tensor]
    features: dict[BodyPart, torch.Tensor]
    rhythm: dict[str, tuple[torch.Tensor, torch.Tensor]] = field(default_factory=dict)
    gate_logits: torch.Tensor | None = None
    psi: torch.Tensor | None = None

    def codes(self) -> dict[BodyPart, torch.Tensor]:
        """Most likely code of every layer: ``{part: [B, N, Q]}`` long."""
        return {part: logits.argmax(dim=-1) for part, logits in self.logits.items()}


def _describe(tensor: object) -> str:
    if not isinstance(tensor, torch.Tensor):
        return f"a {type(tensor).__name__}"
    return f"{tuple(tensor.shape)} {tensor.dtype}"


def _check_tensor(name: str, tensor: object, shape: tuple[int, ...], kind: str) -> None:
    """Raise unless ``tensor`` has ``shape`` and a dtype of ``kind`` (float / integer / bool)."""
    dtype_ok = isinstance(tensor, torch.Tensor) and {
        "float": tensor.is_floating_point(),
        "integer": not tensor.is_floating_point() and not tensor.is_complex()
        and tensor.dtype != torch.bool,
        "bool": tensor.dtype == torch.bool,
    }[kind]
    if not isinstance(tensor, torch.Tensor) or not dtype_ok or tuple(tensor.shape) != shape:
        wanted = "[" + ", ".join(str(s) for s in shape) + "]"
        article = "an" if kind == "integer" else "a"
        raise ValueError(f"inputs.{name} must be {article} {kind} tensor of shape {wanted}, "
                         f"got {_describe(tensor)}")


def _check_ids(name: str, ids: torch.Tensor, count: int) -> None:
    if ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= count):
        raise ValueError(f"inputs.{name} must lie in [0, {count}), got values in "
                         f"[{int(ids.min())}, {int(ids.max())}]")


def check_inputs(inputs: GeneratorInputs, config: Any, *, beat: bool = False,
                 words: bool = False) -> None:
    """Raise ValueError naming the first input with a wrong shape, dtype or value range.

    ``config`` is the model's (built: its data fields are set). Speech, motion, mask and
    speaker are always checked; ``beat`` adds the beat features (base model), ``words`` the
    word ids, sentence and emotion inputs (sparse model).
    """
    speech_dim, motion_dim = config.speech_dim, config.motion_dim
    speech = inputs.speech
    if not isinstance(speech, torch.Tensor) or speech.dim() != 3:
        raise ValueError(f"inputs.speech must be [B, T, {speech_dim}], got {_describe(speech)}")
    batch, frames = speech.shape[:2]
    if batch == 0 or frames == 0 or frames % FRAMES_PER_TOKEN:
        raise ValueError(f"inputs need B >= 1 and T a positive multiple of {FRAMES_PER_TOKEN} "
                         f"frames, got B={batch}, T={frames}")
    _check_tensor("speech", speech, (batch, frames, speech_dim), "float")
    _check_tensor("motion", inputs.motion, (batch, frames, motion_dim), "float")
    _check_tensor("mask", inputs.mask, (batch, frames, motion_dim), "bool")
    _check_tensor("speaker", inputs.speaker, (batch,), "integer")
    _check_ids("speaker", inputs.speaker, config.num_speakers)
    if beat:
        _check_tensor("beat", inputs.beat, (batch, frames, config.beat_dim), "float")
    if words:
        _check_tensor("word_ids", inputs.word_ids, (batch, frames), "integer")
        _check_ids("word_ids", inputs.word_ids, config.vocab_size)  # type: ignore[arg-type]
        _check_tensor("sentence", inputs.sentence, (batch, config.sentence_dim), "float")
        _check_tensor("emotion", inputs.emotion, (batch, config.emotion_dim), "float")


def parameter_counts(model: nn.Module) -> dict[str, int]:
    """Trainable-or-not parameter count of each top-level child, plus ``"total"``."""
    counts = {name: sum(p.numel() for p in child.parameters())
              for name, child in model.named_children()}
    counts["total"] = sum(p.numel() for p in model.parameters())
    return counts
