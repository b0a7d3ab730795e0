"""Base motion generator f_r (paper §3.3, spec §5.2): rhythm-aligned codes for all four parts.

Inputs are speech features γ_h, beat features γ_b, a masked seed-motion window and a speaker id.

1. Face and body copies of the rhythmic audio encoder: speech latent ``[B, T, L]`` and its
   per-channel fusion with the beat latent.
2. The masked motion window goes through the seed encoder (learned mask embedding first).
3. Face branch ("MLP-based face enhancement"): ``Decoder(tgt=PE(spk_face),
   memory=Linear([fused face audio, MLP(seed)]))``, halved twice in time -> f_e ``[B, N, L]``
   (with ``memory_position``: ``Linear(PE([...]))``).
4. Body branch (:class:`~semtalk.models.body_branch.BodyBranch`) with the fused body audio as
   word-hints memory when ``use_word`` -> f_u, f_h, f_l.
5. Rhythm pairs for the rhythmic consistency loss: ``h(f_e)`` vs the token-pooled face speech
   latent and ``h(f_h)`` vs the token-pooled body speech latent, where ``h`` is a projection
   MLP (identity when ``use_rhythmic_projection`` is False).
6. Coarse2Fine cross-attention face -> hands -> upper -> lower (skipped when
   ``use_coarse2fine`` is False).
7. Residual code heads per part, conditioned on the fused face (face) or body (others) audio.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import ClassVar

import torch
from torch import nn

from semtalk.body.parts import FULL_DIM, BodyPart
from semtalk.models.body_branch import BodyBranch
from semtalk.models.generator_common import (
    FRAMES_PER_TOKEN,
    CodeSpec,
    GeneratorInputs,
    GeneratorOutput,
    GeneratorSizes,
    check_inputs,
    generator_config_problems,
    missing_data_error,
)
from semtalk.models.pretrained import PretrainedModel
from semtalk.modules.attention import PeriodicPositionalEncoding, transformer_decoder
from semtalk.modules.audio_encoder import RhythmAudioEncoder
from semtalk.modules.coarse2fine import CoarseToFine
from semtalk.modules.code_heads import CodeHeads, ResidualCodeHeads
from semtalk.modules.fusion import MLP
from semtalk.modules.motion_encoder import SeedMotionEncoder
from semtalk.modules.temporal import TemporalDownsample, frames_to_tokens

FACE, UPPER, HANDS, LOWER = BodyPart.FACE, BodyPart.UPPER, BodyPart.HANDS, BodyPart.LOWER

BASE_COARSE_TO_FINE = (
    (HANDS, ((FACE, False),)),
    (FACE, ((HANDS, False),)),
    (UPPER, ((HANDS, True), (LOWER, False))),
    (LOWER, ((UPPER, False), (HANDS, True))),
)
"""hands' <- face; face' <- hands; upper' <- hands' + lower; lower' <- upper + hands' (official
order; ``(part, True)`` reads the part's refined feature)."""

RHYTHM_PARTS: tuple[BodyPart, ...] = (FACE, HANDS)
"""Parts whose latents the rhythmic consistency loss aligns with speech (paper Eq. 4)."""


@dataclass(frozen=True)
class BaseGeneratorConfig:
    """Configuration of :class:`BaseMotionGenerator`; the defaults are the paper's sizes.

    The only description of the base generator's architecture: a training config embeds one
    (``GeneratorTrainConfig.base``, the ``base:`` section of
    ``semtalk/configs/generator_NAME.yaml``) with the data-derived fields (:attr:`data_fields`)
    unset, and training fills them in from the feature cache and the tokenizer
    (``semtalk.training.presets.load_preset("base_generator", NAME, speech_dim=...)`` does the
    same for a preset). A model needs them set.

    Attributes:
        speech_dim: channels of the speech features γ_h (240 spectral, 1024 HuBERT); from the
            data.
        beat_dim: channels of the beat features γ_b; from the data.
        motion_dim: channels of the seed-motion window (337 = BEAT2 whole body).
        num_speakers: rows of the speaker embeddings.
        window: training window in frames; also the positional-encoding period. Any length
            that is a multiple of 4 can be generated.
        codes: the tokenizers' code layout; from the tokenizer.
        sizes: widths and layer counts.
        dropout: dropout of the transformer layers and positional encodings.
        use_coarse2fine: False skips the Coarse2Fine cross-attention (paper ablation C2F).
        use_rhythmic_projection: projection heads h(.) on the motion side of the rhythmic
            consistency pairs (paper Eq. 4); False uses the latents as they are. Training
            applies the rhythmic consistency loss exactly when this is True (paper ablation
            RC: "w/o RC" has neither the heads nor the loss).
        word_query_speaker: the body's word-hints query includes the speaker embedding
            (False: the official code's query, which drops it).
        memory_position: add the periodic positional encoding to the per-frame audio memories
            the face decoder and the body's word-hints decoder attend to (before their memory
            Linear). Without it (the official code) the memories carry no position, so a
            query can find its own frame only through position cues inside the features;
            the tiny and demo presets' spectral features have none, and their face and beats
            did not follow the speech (jaw–envelope r 0.02).
    """

    speech_dim: int | None = None
    beat_dim: int | None = None
    motion_dim: int = FULL_DIM
    num_speakers: int = 25
    window: int = 64
    codes: CodeSpec | None = None
    sizes: GeneratorSizes = field(default_factory=GeneratorSizes)
    dropout: float = 0.1
    use_coarse2fine: bool = True
    use_rhythmic_projection: bool = True
    word_query_speaker: bool = True
    memory_position: bool = False

    data_fields: ClassVar[tuple[str, ...]] = ("speech_dim", "beat_dim", "codes")
    """Fields the data and the tokenizer decide: None (unset) in a training config."""
    required_in_release: ClassVar[tuple[str, ...]] = data_fields
    """Fields a release's ``config.json`` must set."""

    def __post_init__(self) -> None:
        problems = generator_config_problems(self)
        if self.beat_dim is not None and self.beat_dim < 1:
            problems.append(f"beat_dim must be >= 1, got {self.beat_dim}")
        if problems:
            raise ValueError("; ".join(problems))


class FaceBranch(nn.Module):
    """``seed [B, T, L]``, ``audio [B, T, L]``, ``speaker [B]`` -> f_e ``[B, T/4, L]``."""

    # swapped for fast modules in inference (FastFaceBranch: prepared copies of seed and out,
    # a FastDecoder)
    seed: nn.Module
    decoder: nn.Module
    out: nn.Module

    def __init__(self, sizes: GeneratorSizes, num_speakers: int, period: int,
                 dropout: float, memory_position: bool = False) -> None:
        super().__init__()
        hidden, latent = sizes.hidden, sizes.latent
        self.speaker = nn.Embedding(num_speakers, hidden)
        self.seed = MLP(latent, hidden, latent)
        # memory_position exists only with the config switch (no parameters either way)
        self.memory_position = (PeriodicPositionalEncoding(2 * latent, period, dropout)
                                if memory_position else None)
        self.memory = nn.Linear(2 * latent, hidden)
        self.position = PeriodicPositionalEncoding(hidden, period, dropout)
        self.decoder = transformer_decoder(hidden, sizes.heads, sizes.feedforward,
                                           sizes.face_layers, dropout)
        self.out = nn.Sequential(nn.Linear(hidden, latent), TemporalDownsample(latent),
                                 MLP(latent, hidden, latent), TemporalDownsample(latent))

    def forward(self, seed: torch.Tensor, audio: torch.Tensor,
                speaker: torch.Tensor) -> torch.Tensor:
        """f_e ``[B, T/4, L]``."""
        memory = self.memory(self.memory_input(seed, audio))  # [B, T, 2L] -> H
        return self.out(self.decoder(self.query(speaker, seed.shape[1]), memory))

    def memory_input(self, seed: torch.Tensor, audio: torch.Tensor) -> torch.Tensor:
        """``[audio, MLP(seed)]`` ``[B, T, 2L]``, plus the positional encoding with
        ``memory_position``: what the memory Linear reads."""
        memory = torch.cat([audio, self.seed(seed)], dim=-1)
        return memory if self.memory_position is None else self.memory_position(memory)

    def query(self, speaker: torch.Tensor, frames: int) -> torch.Tensor:
        """The decoder's target ``PE(spk)``: ``[B, T, H]`` (the same in every window)."""
        return self.position(self.speaker(speaker)[:, None].expand(len(speaker), frames, -1))


@dataclass
class BaseAudio:
    """Step 1, the audio latents (they do not depend on the seed motion).

    Attributes:
        face_speech, body_speech: ``[B, T, L]`` the speech latents of the face and body copies
            of the rhythmic audio encoder (for the rhythmic consistency pairs).
        face, body: ``[B, T, L]`` the same fused with the beat latent (the conditions).
    """

    face_speech: torch.Tensor
    face: torch.Tensor
    body_speech: torch.Tensor
    body: torch.Tensor


@dataclass
class BaseEncoding:
    """What :meth:`BaseMotionGenerator.encode` computes before the code heads.

    Attributes:
        features: ``{part: [B, N, L]}`` of all four parts, after Coarse2Fine (the features the
            code heads read and the sparse model blends).
        conditions: ``{part: [B, T, L]}`` the per-frame condition each part's code heads attend
            to (the fused face audio for the face, the fused body audio otherwise).
        rhythm: the rhythmic consistency pairs (see :attr:`GeneratorOutput.rhythm`).
    """

    features: dict[BodyPart, torch.Tensor]
    conditions: dict[BodyPart, torch.Tensor]
    rhythm: dict[str, tuple[torch.Tensor, torch.Tensor]]


def _projection_head(latent: int, enabled: bool) -> nn.Module:
    return MLP(latent, latent, latent) if enabled else nn.Identity()


class BaseMotionGenerator(PretrainedModel):
    """Rhythm-aligned base motion codes for face, upper, hands and lower (spec §5.2)."""

    model_name = "BaseMotionGenerator"
    format_version = 1
    config_class = BaseGeneratorConfig
    parts: tuple[BodyPart, ...] = (FACE, UPPER, HANDS, LOWER)

    def __init__(self, config: BaseGeneratorConfig) -> None:
        super().__init__()
        if config.speech_dim is None or config.beat_dim is None or config.codes is None:
            raise missing_data_error(config, "BaseMotionGenerator")
        self.config = config
        sizes, codes = config.sizes, config.codes
        hidden, latent = sizes.hidden, sizes.latent
        self.face_audio = RhythmAudioEncoder(config.speech_dim, config.beat_dim, hidden, latent)
        self.body_audio = RhythmAudioEncoder(config.speech_dim, config.beat_dim, hidden, latent)
        self.seed_encoder = SeedMotionEncoder(config.motion_dim, latent,
                                              sizes.motion_encoder_layers,
                                              init_scale=hidden**-0.5)
        self.face = FaceBranch(sizes, config.num_speakers, config.window, config.dropout,
                               config.memory_position)
        self.body = BodyBranch(sizes, config.num_speakers, config.window, config.dropout,
                               config.word_query_speaker, config.memory_position)
        self.rhythm_projection = nn.ModuleDict({
            part.value: _projection_head(latent, config.use_rhythmic_projection)
            for part in RHYTHM_PARTS})
        self.coarse2fine = (
            CoarseToFine(BASE_COARSE_TO_FINE, latent, sizes.latent_heads,
                         sizes.latent_feedforward, sizes.coarse2fine_layers, config.dropout)
            if config.use_coarse2fine else None)
        self.code_heads = CodeHeads({
            part.value: ResidualCodeHeads(latent, hidden, codes.codebook_size,
                                          codes.num_quantizers, sizes.residual_layers,
                                          sizes.residual_heads, sizes.residual_feedforward,
                                          config.dropout)
            for part in self.parts})

    def forward(self, inputs: GeneratorInputs, use_word: bool = True) -> GeneratorOutput:
        """Codes logits, code vectors, features and rhythm pairs of all four parts.

        ``use_word`` False drops the body's audio word-hints decoder (the official "self"
        pass: body parts from seed and speaker only; the code heads still read the audio).
        ``forward`` is :meth:`encode` then :meth:`predict_codes` of every part.
        """
        encoding = self.encode(inputs, use_word)
        logits, latents = self.predict_codes(encoding)
        return GeneratorOutput(logits=logits, latents=latents, features=encoding.features,
                               rhythm=encoding.rhythm)

    def encode(self, inputs: GeneratorInputs, use_word: bool = True,
               audio: BaseAudio | None = None, rhythm: bool = True) -> BaseEncoding:
        """Steps 1-6: everything before the code heads (``use_word`` as in :meth:`forward`).

        :meth:`encode_audio` (skipped when ``audio`` is given: it does not depend on the
        motion), the seed encoder, the body and face branches, then :meth:`refine` (``rhythm``
        as there); generation runs these pieces as separate jobs."""
        if audio is None:
            audio = self.encode_audio(inputs)
        seed = self.seed_encoder(inputs.motion, inputs.mask)
        features = self.body(seed, inputs.speaker, audio.body if use_word else None)
        features[FACE] = self.face(seed, audio.face, inputs.speaker)
        return self.refine(features, audio, rhythm)

    def encode_audio(self, inputs: GeneratorInputs) -> BaseAudio:
        """Step 1 (after checking ``inputs``)."""
        check_inputs(inputs, self.config, beat=True)
        face_speech, face = self.face_audio(inputs.speech, inputs.beat)
        body_speech, body = self.body_audio(inputs.speech, inputs.beat)
        return BaseAudio(face_speech=face_speech, face=face, body_speech=body_speech, body=body)

    def refine(self, features: dict[BodyPart, torch.Tensor], audio: BaseAudio,
               rhythm: bool = True) -> BaseEncoding:
        """Steps 5-6 on the branches' features ``{part: [B, N, L]}`` of all four parts;
        ``rhythm`` False skips the rhythmic consistency pairs (a training loss's inputs)."""
        speech = {FACE: audio.face_speech, HANDS: audio.body_speech}
        pairs = ({part.value: (self.rhythm_projection[part.value](features[part]),
                               frames_to_tokens(speech[part], FRAMES_PER_TOKEN))
                  for part in RHYTHM_PARTS} if rhythm else {})
        if self.coarse2fine is not None:
            features = self.coarse2fine(features)
        return BaseEncoding(
            features={part: features[part] for part in self.parts},
            conditions={part: audio.face if part is FACE else audio.body for part in self.parts},
            rhythm=pairs)

    def predict_codes(self, encoding: BaseEncoding,
                      parts: Sequence[BodyPart] | None = None
                      ) -> tuple[dict[BodyPart, torch.Tensor], dict[BodyPart, torch.Tensor]]:
        """Step 7, the residual code heads of ``parts`` (default all four): ``(logits, latents)``
        as in :class:`GeneratorOutput`. Generation skips the parts it will not use."""
        return self.code_heads(encoding.features, encoding.conditions,
                               self.parts if parts is None else parts)
