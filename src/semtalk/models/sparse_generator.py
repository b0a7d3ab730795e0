"""Sparse (semantic) motion generator f_s (paper §3.4, spec §6): semantic codes and score ψ.

Upper body, hands and lower body only; the face always comes from the base model.

1. Semantic speech encoding: word embeddings φ_l ``[B, T, L]``; the window's sentence
   embedding φ_g and emotion features φ_e are each projected to L and mixed per channel
   (:class:`~semtalk.modules.fusion.ChannelFusion`) into the semantic memory, which a decoder
   reads: ``body_sem = Decoder(tgt=PE(φ_l), memory=mix(φ_g, φ_e))``. (The official code
   computes the emotion branch and then uses φ_g alone; we use both, as the paper says.)
2. Its own speech encoder γ_h, fused per channel with ``body_sem``.
3. Sem-gate (:class:`~semtalk.modules.gate.SemanticGate`): ψ per token from the fused stream.
4. Semantic feature ``f_t = MLP(fusion)``, times ψ (repeated to frame rate) when
   ``feature_weighting`` (W_f).
5. The shared body branch with ``f_t`` as word-hints memory (when ``use_word``) -> f_s per
   part, body-only Coarse2Fine (hands <- upper + lower, upper <- hands' + lower,
   lower <- upper + hands').
6. Eq. 5 (``blend_base``): ``f = MLP(ψ f_s + (1 - ψ) f_b)`` per part, with f_b the frozen
   base model's features for the same window (:attr:`GeneratorOutput.features`).
7. Residual code heads per part, conditioned on ``f_t``.

Gate modes (config ``gate``):

- ``"learned"``: the paper's sem-gate; ``gate_logits`` are returned for the classification
  loss against the semantic labels.
- ``"random"``: ψ ~ U(0, 1) per token, no gradient, no logits (Table 2 "Random ψ").
- ``"none"``: no gate; ψ = 1, so f_t is the unweighted feature and Eq. 5 reduces to
  ``MLP(f_s)`` (Table 2 "w/o Sem-gate": f_t and γ_h enter directly). ``psi`` is returned as
  ones, so a ψ > β fusion at generation takes the sparse codes for every token.

Semantic accuracy for the "random" gate is computed from ``psi > 0.5`` (the learned gate's
``argmax(gate_logits) == 1`` is the same test).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import ClassVar

import torch
from torch import nn

from semtalk.body.parts import FULL_DIM, BodyPart
from semtalk.models.base_generator import BaseGeneratorConfig
from semtalk.models.body_branch import BODY_PARTS, BodyBranch, BodyTrunk
from semtalk.models.generator_common import (
    FRAMES_PER_TOKEN,
    CodeSpec,
    GeneratorInputs,
    GeneratorOutput,
    GeneratorSizes,
    check_inputs,
    generator_config_problems,
    missing_data_error,
    unset_data_fields,
)
from semtalk.models.pretrained import PretrainedModel
from semtalk.modules.attention import PeriodicPositionalEncoding, transformer_decoder
from semtalk.modules.audio_encoder import SpeechEncoder
from semtalk.modules.coarse2fine import CoarseToFine
from semtalk.modules.code_heads import CodeHeads, ResidualCodeHeads
from semtalk.modules.fusion import MLP, ChannelFusion
from semtalk.modules.gate import GATE_MODES, SemanticGate
from semtalk.modules.motion_encoder import SeedMotionEncoder
from semtalk.modules.temporal import tokens_to_frames

UPPER, HANDS, LOWER = BodyPart.UPPER, BodyPart.HANDS, BodyPart.LOWER

SPARSE_COARSE_TO_FINE = (
    (HANDS, ((UPPER, False), (LOWER, False))),
    (UPPER, ((HANDS, True), (LOWER, False))),
    (LOWER, ((UPPER, False), (HANDS, True))),
)
"""Body-only Coarse2Fine: hands' <- upper + lower; upper' <- hands' + lower;
lower' <- upper + hands'."""


@dataclass(frozen=True)
class SparseGeneratorConfig:
    """Configuration of :class:`SparseMotionGenerator`; the defaults are the paper's sizes.

    The only description of the sparse generator's architecture: a training config embeds
    one (``GeneratorTrainConfig.sparse_model``, the ``sparse_model:`` section of
    ``semtalk/configs/generator_NAME.yaml``) with the data-derived fields (:attr:`data_fields`)
    unset; training fills them in (see
    :class:`~semtalk.models.base_generator.BaseGeneratorConfig`). A preset:
    ``load_preset("sparse_generator", NAME, speech_dim=..., vocab_size=..., sentence_dim=...,
    emotion_dim=...)``.

    Attributes:
        speech_dim: channels of the speech features γ_h; from the data.
        vocab_size: rows of the word embedding (the vocabulary's length); from the data.
        sentence_dim: channels of the sentence embedding φ_g; from the data.
        emotion_dim: channels of the emotion features φ_e; from the data.
        word_dim: word-embedding width (300 = the official fastText vectors).
        motion_dim, num_speakers, window, codes, sizes, dropout: as in the base config
            (``codes`` from the tokenizer).
        gate: ``"learned"``, ``"random"`` or ``"none"`` (see the module docstring).
        gate_context: ``(before, after)`` tokens the learned gate reads around each token
            (:class:`~semtalk.modules.gate.SemanticGate`); ``(0, 0)``: the paper's per-token
            gate.
        gate_encoder: the learned gate reads its own semantic encoder (same architecture as
            the shared one, trained by the gate's losses) instead of the fused stream the
            motion branch reads; False: the paper's shared stream.
        feature_weighting: W_f, multiply f_t by ψ.
        blend_base: Eq. 5, blend the part features with the base model's before the heads.
        use_coarse2fine: False skips the body Coarse2Fine cross-attention.
        use_emotion: mix the emotion features into the semantic memory (paper); False: the
            memory is the projected sentence embedding alone, as the official code computes it
            (the emotion input is then accepted and has no effect).
        word_query_speaker: as in the base config.
        memory_position: as in the base config (here the word-hints memory is f_t).
    """

    speech_dim: int | None = None
    vocab_size: int | None = None
    sentence_dim: int | None = None
    emotion_dim: int | None = None
    word_dim: int = 300
    motion_dim: int = FULL_DIM
    num_speakers: int = 25
    window: int = 64
    codes: CodeSpec | None = None
    sizes: GeneratorSizes = field(default_factory=GeneratorSizes)
    dropout: float = 0.1
    gate: str = "learned"
    gate_context: tuple[int, int] = (0, 0)
    gate_encoder: bool = False
    feature_weighting: bool = True
    blend_base: bool = True
    use_coarse2fine: bool = True
    use_emotion: bool = True
    word_query_speaker: bool = True
    memory_position: bool = False

    data_fields: ClassVar[tuple[str, ...]] = ("speech_dim", "vocab_size", "sentence_dim",
                                              "emotion_dim", "codes")
    """Fields the data and the tokenizer decide: None (unset) in a training config."""
    required_in_release: ClassVar[tuple[str, ...]] = data_fields
    """Fields a release's ``config.json`` must set."""

    def __post_init__(self) -> None:
        problems = generator_config_problems(self)
        problems += [f"{name} must be >= 1, got {getattr(self, name)}"
                     for name in ("vocab_size", "sentence_dim", "emotion_dim", "word_dim")
                     if getattr(self, name) is not None and getattr(self, name) < 1]
        if self.gate not in GATE_MODES:
            problems.append(f"gate must be one of {GATE_MODES}, got {self.gate!r}")
        if len(self.gate_context) != 2 or min(self.gate_context) < 0:
            problems.append(f"gate_context must be two token counts >= 0 (before, after), "
                            f"got {self.gate_context!r}")
        if problems:
            raise ValueError("; ".join(problems))

    def base_mismatches(self, base: BaseGeneratorConfig) -> list[str]:
        """How a base generator config differs where this model needs it to agree.

        Empty when the base model's features can be blended (Eq. 5) and its codes fused with
        ours: same code layout, latent width, motion window layout, speakers and window.
        """
        pairs = {"codes": (base.codes, self.codes),
                 "sizes.latent": (base.sizes.latent, self.sizes.latent),
                 "motion_dim": (base.motion_dim, self.motion_dim),
                 "num_speakers": (base.num_speakers, self.num_speakers),
                 "window": (base.window, self.window)}
        return [f"{name}: base {theirs!r} vs sparse {ours!r}"
                for name, (theirs, ours) in pairs.items() if theirs != ours]


@dataclass
class SemanticScore:
    """What :meth:`SparseMotionGenerator.score` computes before the body branch.

    Attributes:
        psi: ``[B, N]`` the semantic score ψ (after ``psi_edit``).
        semantic: ``[B, T, L]`` the semantic feature f_t (times ψ when ``feature_weighting``).
        gate_logits: ``[B, N, 2]`` with the learned gate, else None.
    """

    psi: torch.Tensor
    semantic: torch.Tensor
    gate_logits: torch.Tensor | None = None


class SemanticEncoder(nn.Module):
    """Word ids, sentence and emotion vectors, speech -> fused semantic/speech ``[B, T, L]``."""

    def __init__(self, config: SparseGeneratorConfig) -> None:
        super().__init__()
        if (config.vocab_size is None or config.sentence_dim is None
                or config.emotion_dim is None or config.speech_dim is None):
            raise missing_data_error(config, "SemanticEncoder")
        sizes, latent = config.sizes, config.sizes.latent
        self.word_embedding = nn.Embedding(config.vocab_size, config.word_dim)
        self.word_projection = nn.Linear(config.word_dim, latent)
        self.sentence_projection = nn.Linear(config.sentence_dim, latent)
        # emotion_projection and context_fusion exist only with config.use_emotion
        self.emotion_projection: nn.Linear | None = None
        self.context_fusion: ChannelFusion | None = None
        if config.use_emotion:
            self.emotion_projection = nn.Linear(config.emotion_dim, latent)
            self.context_fusion = ChannelFusion(latent)
        self.position = PeriodicPositionalEncoding(latent, config.window, config.dropout)
        self.decoder = transformer_decoder(latent, sizes.latent_heads, sizes.latent_feedforward,
                                           sizes.semantic_layers, config.dropout)
        self.speech = SpeechEncoder(config.speech_dim, latent)
        self.speech_fusion = ChannelFusion(latent)

    def forward(self, word_ids: torch.Tensor, sentence: torch.Tensor, emotion: torch.Tensor,
                speech: torch.Tensor) -> torch.Tensor:
        """``[B, T]``, ``[B, Dg]``, ``[B, De]``, ``[B, T, S]`` -> ``[B, T, L]``."""
        words = self.word_projection(self.word_embedding(word_ids))  # φ_l [B, T, L]
        context = self.sentence_projection(sentence)
        if self.context_fusion is not None and self.emotion_projection is not None:
            context = self.context_fusion(context, self.emotion_projection(emotion))
        context = context[:, None]  # [B, 1, L]
        semantic = self.decoder(self.position(words), context)
        return self.speech_fusion(semantic, self.speech(speech))


class SparseMotionGenerator(PretrainedModel):
    """Semantic codes, semantic score ψ and gate logits for upper, hands and lower (spec §6)."""

    model_name = "SparseMotionGenerator"
    format_version = 1
    config_class = SparseGeneratorConfig
    parts: tuple[BodyPart, ...] = BODY_PARTS

    def __init__(self, config: SparseGeneratorConfig) -> None:
        super().__init__()
        if unset_data_fields(config) or config.codes is None:
            raise missing_data_error(config, "SparseMotionGenerator")
        self.config = config
        sizes, codes = config.sizes, config.codes
        hidden, latent = sizes.hidden, sizes.latent
        self.semantic = SemanticEncoder(config)
        self.gate = SemanticGate(latent, FRAMES_PER_TOKEN, config.gate, config.gate_context)
        # gate_semantic exists only with config.gate_encoder and a learned gate
        self.gate_semantic = (SemanticEncoder(config)
                              if config.gate_encoder and config.gate == "learned" else None)
        self.semantic_feature = MLP(latent, latent, latent)
        self.seed_encoder = SeedMotionEncoder(config.motion_dim, latent,
                                              sizes.motion_encoder_layers,
                                              init_scale=hidden**-0.5)
        self.body = BodyBranch(sizes, config.num_speakers, config.window, config.dropout,
                               config.word_query_speaker, config.memory_position)
        self.coarse2fine = (
            CoarseToFine(SPARSE_COARSE_TO_FINE, latent, sizes.latent_heads,
                         sizes.latent_feedforward, sizes.coarse2fine_layers, config.dropout)
            if config.use_coarse2fine else None)
        self.blend = (nn.ModuleDict({part.value: MLP(latent, hidden, latent)
                                     for part in self.parts})
                      if config.blend_base else None)
        self.code_heads = CodeHeads({
            part.value: ResidualCodeHeads(latent, hidden, codes.codebook_size,
                                          codes.num_quantizers, sizes.residual_layers,
                                          sizes.residual_heads, sizes.residual_feedforward,
                                          config.dropout)
            for part in self.parts})

    @torch.no_grad()
    def init_word_embedding(self, vectors: torch.Tensor) -> None:
        """Copy ``[vocab_size, word_dim]`` word vectors into the (trainable) word embedding
        (and the gate encoder's, with ``gate_encoder``)."""
        weight = self.semantic.word_embedding.weight
        if tuple(vectors.shape) != tuple(weight.shape):
            raise ValueError(f"word vectors must be {tuple(weight.shape)} (vocab_size, "
                             f"word_dim), got {tuple(vectors.shape)}")
        weight.copy_(vectors)
        if self.gate_semantic is not None:  # the gate's own encoder reads the same words
            self.gate_semantic.word_embedding.weight.copy_(vectors)

    def forward(self, inputs: GeneratorInputs,
                base_features: Mapping[BodyPart, torch.Tensor] | None = None,
                use_word: bool = True,
                psi_edit: Callable[[torch.Tensor], torch.Tensor] | None = None
                ) -> GeneratorOutput:
        """Semantic codes for the body parts, ψ ``[B, N]`` and (learned gate) gate logits.

        Args:
            inputs: needs ``speech``, ``motion``, ``mask``, ``speaker``, ``word_ids``,
                ``sentence`` and ``emotion`` (``beat`` is not read).
            base_features: ``{part: [B, N, L]}`` for upper, hands and lower: the frozen base
                model's :attr:`GeneratorOutput.features` on the same inputs. Required when
                ``config.blend_base`` (Eq. 5), ignored otherwise.
            use_word: False drops the body's f_t word-hints decoder (the "self" pass); the
                code heads still read f_t and the gate is still computed.
            psi_edit: maps the gate's ψ ``[B, N]`` to the ψ used everywhere after it (W_f, the
                Eq. 5 blend, the returned ``psi``); generation's emphasis control. The gate
                logits stay the model's own.
        """
        return self.predict(inputs, self.score(inputs, psi_edit), base_features, use_word)

    def score(self, inputs: GeneratorInputs,
              psi_edit: Callable[[torch.Tensor], torch.Tensor] | None = None) -> SemanticScore:
        """Steps 1-4: ψ and f_t, without the body branch (cheap: generation decides from ψ
        whether it needs this window's sparse codes at all). Arguments as in :meth:`forward`."""
        config = self.config
        check_inputs(inputs, config, words=True)
        fusion = self.semantic(inputs.word_ids, inputs.sentence, inputs.emotion, inputs.speech)
        gate_input = fusion if self.gate_semantic is None else self.gate_semantic(
            inputs.word_ids, inputs.sentence, inputs.emotion, inputs.speech)
        gate_logits, psi = self.gate(gate_input)
        if psi_edit is not None:
            psi = psi_edit(psi)
        semantic = self.semantic_feature(fusion)
        if config.feature_weighting:
            semantic = semantic * tokens_to_frames(psi, FRAMES_PER_TOKEN)[..., None]  # f_t
        return SemanticScore(psi=psi, semantic=semantic, gate_logits=gate_logits)

    def predict(self, inputs: GeneratorInputs, score: SemanticScore,
                base_features: Mapping[BodyPart, torch.Tensor] | None = None,
                use_word: bool = True) -> GeneratorOutput:
        """Steps 5-7 on a :meth:`score` of the same inputs; :meth:`forward` is
        ``predict(inputs, score(inputs))``, and this is :meth:`encode`, :meth:`blend_base`
        (with ``config.blend_base``) and :meth:`predict_codes`."""
        features = self.encode(inputs, score, use_word)
        if self.blend is not None:
            features = self.blend_base(features, base_features, score.psi)
        logits, latents = self.predict_codes(features, score)
        return GeneratorOutput(logits=logits, latents=latents, features=features,
                               gate_logits=score.gate_logits, psi=score.psi)

    def encode(self, inputs: GeneratorInputs, score: SemanticScore,
               use_word: bool = True) -> dict[BodyPart, torch.Tensor]:
        """Steps 5-6, the body features ``{part: [B, N, L]}`` after Coarse2Fine (before the
        Eq. 5 blend): they need no base model, so generation runs them beside it.

        :meth:`encode_trunk`, the body branch's part step of every part, then :meth:`refine`
        (generation runs these as separate jobs)."""
        trunk = self.encode_trunk(inputs, score, use_word)
        return self.refine({part: self.body.part(trunk, part) for part in self.parts})

    def encode_trunk(self, inputs: GeneratorInputs, score: SemanticScore,
                     use_word: bool = True) -> BodyTrunk:
        """The seed encoder and the body branch's trunk (:meth:`BodyBranch.trunk`)."""
        seed = self.seed_encoder(inputs.motion, inputs.mask)
        return self.body.trunk(seed, inputs.speaker, score.semantic if use_word else None)

    def refine(self, features: dict[BodyPart, torch.Tensor]) -> dict[BodyPart, torch.Tensor]:
        """The body-only Coarse2Fine (identity when ``use_coarse2fine`` is off)."""
        return features if self.coarse2fine is None else self.coarse2fine(features)

    def predict_codes(self, features: Mapping[BodyPart, torch.Tensor], score: SemanticScore,
                      parts: Sequence[BodyPart] | None = None
                      ) -> tuple[dict[BodyPart, torch.Tensor], dict[BodyPart, torch.Tensor]]:
        """Step 7, the code heads of ``parts`` (default all three), attending to f_t."""
        parts = self.parts if parts is None else parts
        return self.code_heads(features, dict.fromkeys(parts, score.semantic), parts)

    def blend_base(self, sparse: Mapping[BodyPart, torch.Tensor],
                   base: Mapping[BodyPart, torch.Tensor] | None,
                   psi: torch.Tensor) -> dict[BodyPart, torch.Tensor]:
        """Eq. 5: ``MLP(ψ f_s + (1 - ψ) f_b)`` per part."""
        if self.blend is None:
            raise ValueError("this sparse model has no Eq. 5 blend (config.blend_base is off)")
        if base is None:
            raise ValueError("blend_base is on (paper Eq. 5): pass base_features, the frozen "
                             "base model's output.features for the same inputs")
        weight = psi[..., None]  # [B, N, 1]
        blended = {}
        for part in self.parts:
            f_b = base.get(part)
            if f_b is None or f_b.shape != sparse[part].shape:
                raise ValueError(f"base_features[{part.value}] must be "
                                 f"{tuple(sparse[part].shape)}, got "
                                 f"{None if f_b is None else tuple(f_b.shape)}")
            mixed = weight * sparse[part] + (1 - weight) * f_b.to(sparse[part].dtype)
            blended[part] = self.blend[part.value](mixed)
        return blended
