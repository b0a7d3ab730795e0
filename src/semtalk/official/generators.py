"""The official base and sparse generators as semtalk models: configs and strict key maps.

The official ``semtalk_base`` / ``semtalk_sparse`` networks (spec §5-§6, fixture README §2) are
our :class:`~semtalk.models.base_generator.BaseMotionGenerator` and
:class:`~semtalk.models.sparse_generator.SparseMotionGenerator` with the official sizes and three
switches that reproduce the official computation:

- ``word_query_speaker=False``: the word-hints query is ``PE(x)`` (the official code adds the
  speaker embedding and then discards the sum);
- ``use_rhythmic_projection=False`` (base): the official ``face_cons_mlp`` / ``hands_cons_mlp``
  exist but are never applied (they only matter for training anyway);
- ``use_emotion=False``, ``blend_base=False`` (sparse): the semantic memory is the projected
  sentence embedding alone, and the paper's Eq. 5 blend is absent; ψ scales f_t (W_f).

Every official key lands in exactly one of our entries (:func:`base_key_map`,
:func:`sparse_key_map`), is one of the documented keys official inference never runs
(:data:`BASE_UNUSED`, :data:`SPARSE_UNUSED`), or is a stored buffer that our model computes
itself and that must equal ours (:data:`COMPUTED_BUFFERS`, checked value for value). Two entries
change layout on the way:

- ``mask_embeddings`` (1, 1, 337) -> ``seed_encoder.mask_embedding`` (337,);
- the per-channel fusion layers (``at_attn_face``, ``at_attn_body``, ``at_attn_bert``): the
  official code weighs its *first* stream with the odd output of each pair, ours with the even
  one, so the output rows of each pair are swapped (:func:`swap_pairs`; exactly invertible).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

import torch
from torch import nn

from semtalk.models.base_generator import BaseGeneratorConfig, BaseMotionGenerator
from semtalk.models.generator_common import CodeSpec
from semtalk.models.sparse_generator import SparseGeneratorConfig, SparseMotionGenerator

OFFICIAL_SPEECH_DIM = 1024
"""HuBERT-large features."""
OFFICIAL_BEAT_DIM = 3
"""Amplitude, energy, onset."""
OFFICIAL_VOCAB_SIZE = 11195
OFFICIAL_CLIP_DIM = 512
"""CLIP ViT-B/32 text embeddings (sentence and emotion label)."""

BODY = ("upper", "hands", "lower")


def official_base_config() -> BaseGeneratorConfig:
    """The official base generator (``configs/semtalk_base.yaml``, hidden 768)."""
    return BaseGeneratorConfig(speech_dim=OFFICIAL_SPEECH_DIM, beat_dim=OFFICIAL_BEAT_DIM,
                               codes=CodeSpec(), use_rhythmic_projection=False,
                               word_query_speaker=False)


def official_sparse_config(vocab_size: int = OFFICIAL_VOCAB_SIZE) -> SparseGeneratorConfig:
    """The official sparse generator (``configs/semtalk_sparse.yaml``)."""
    return SparseGeneratorConfig(speech_dim=OFFICIAL_SPEECH_DIM, vocab_size=vocab_size,
                                 sentence_dim=OFFICIAL_CLIP_DIM, emotion_dim=OFFICIAL_CLIP_DIM,
                                 codes=CodeSpec(), blend_base=False, use_emotion=False,
                                 word_query_speaker=False)


# ------------------------------------------------------------------------------- the maps
def _speech_encoder(official: str, ours: str) -> list[tuple[str, str]]:
    """``Sequential(Conv, BatchNorm, GELU, Conv)`` -> :class:`SpeechEncoder`."""
    return [(f"{official}.0.", f"{ours}.first."), (f"{official}.1.", f"{ours}.norm."),
            (f"{official}.3.", f"{ours}.second.")]


def _seed_encoder() -> list[tuple[str, str]]:
    """``VQEncoderV6`` (``main``: conv, LeakyReLU, ResBlock x 3) -> our seed encoder."""
    rules = []
    for block in (2, 5, 8):
        rules += [(f"motion_encoder.main.{block}.model.0.",
                   f"seed_encoder.encoder.net.{block}.first."),
                  (f"motion_encoder.main.{block}.model.2.",
                   f"seed_encoder.encoder.net.{block}.second.")]
    return rules + [(f"motion_encoder.main.{conv}.", f"seed_encoder.encoder.net.{conv}.")
                    for conv in (0, 3, 6)]


def _body_branch() -> list[tuple[str, str]]:
    """The body branch both generators share (spec §5.2 steps 6-8)."""
    rules = [("spearker_encoder_body.", "body.speaker."),
             ("bodyhints_body.mlp.", "body.seed.0."), ("feature2motion.", "body.seed.1."),
             ("motion_self_encoder.", "body.self_attention."),
             ("audio_feature2motion.", "body.word_memory."),
             ("wordhints_decoder.", "body.word_hints."),
             ("body1d.", "body.downsample.conv."),
             ("spearker_encoder_body1d.", "body.speaker_downsample.conv.")]
    for part in BODY:
        rules += [(f"motion2latent_{part}.mlp.", f"body.part_mlps.{part}."),
                  (f"{part}_decoder.", f"body.part_attention.{part}."),
                  (f"motion_down_{part}.", f"body.part_out.{part}.0."),
                  (f"{part}1d.", f"body.part_out.{part}.1.conv.")]
    return rules


def _code_heads(parts: Iterable[str]) -> list[tuple[str, str]]:
    """``{part}_classifier`` and ``predict_res_{part}`` -> :class:`ResidualCodeHeads`."""
    rules = []
    for part in parts:
        heads, residual = f"code_heads.{part}", f"predict_res_{part}"
        rules.append((f"{part}_classifier.mlp.", f"{heads}.first_logits."))
        for k in range(1, 6):
            rules += [(f"{residual}.cross_attn_{k}.", f"{heads}.decoders.{k - 1}."),
                      (f"{residual}.classfier_{k}.mlp.", f"{heads}.logits.{k - 1}.")]
        rules += [(f"{residual}.map_zq{k}.", f"{heads}.mixers.{k - 2}.") for k in range(2, 6)]
    return rules


BASE_RULES: tuple[tuple[str, str], ...] = (
    ("mask_embeddings", "seed_encoder.mask_embedding"),
    *_speech_encoder("hubert_encoder", "face_audio.speech"),
    *_speech_encoder("hubert_encoder_body", "body_audio.speech"),
    ("audio_pre_encoder_face.mlp.", "face_audio.beat."),
    ("audio_pre_encoder_body.mlp.", "body_audio.beat."),
    ("at_attn_face.", "face_audio.fusion.mix."), ("at_attn_body.", "body_audio.fusion.mix."),
    *_seed_encoder(),
    ("spearker_encoder_face.", "face.speaker."), ("bodyhints_face.mlp.", "face.seed."),
    ("feature2face.", "face.memory."), ("face_decoder.", "face.decoder."),
    ("face2latent.", "face.out.0."), ("face1d.", "face.out.1.conv."),
    ("face_latent_mlp.mlp.", "face.out.2."), ("face1d_2.", "face.out.3.conv."),
    *_body_branch(),
    ("hands_face_decoder.", "coarse2fine.decoders.hands."),
    ("face_hands_decoder.", "coarse2fine.decoders.face."),
    ("upper_hands_decoder.", "coarse2fine.decoders.upper."),
    ("lower_hands_decoder.", "coarse2fine.decoders.lower."),
    *_code_heads(("face", *BODY)))
"""``(official prefix, our prefix)``: an official key starting with the prefix maps to ours
with the prefix replaced (the longest matching prefix wins)."""

SPARSE_RULES: tuple[tuple[str, str], ...] = (
    ("mask_embeddings", "seed_encoder.mask_embedding"),
    ("text_pre_encoder_body.", "semantic.word_embedding."),
    ("text_encoder_body.", "semantic.word_projection."),
    ("clip_embedding.", "semantic.sentence_projection."),
    ("semantic_body_decoder.", "semantic.decoder."),
    ("at_attn_bert.", "semantic.speech_fusion.mix."),
    ("gate.", "gate.classifier."), ("body_semantic_mlp.mlp.", "semantic_feature."),
    *_speech_encoder("hubert_encoder_body", "semantic.speech"),
    *_seed_encoder(), *_body_branch(),
    ("hands_face_decoder.", "coarse2fine.decoders.hands."),
    ("upper_hands_decoder.", "coarse2fine.decoders.upper."),
    ("lower_hands_decoder.", "coarse2fine.decoders.lower."),
    *_code_heads(BODY))

_PROTOTYPES = ("transformer_de_layer.", "transformer_de_fu_layer.", "transformer_en_layer.")
BASE_UNUSED: tuple[str, ...] = (
    *_PROTOTYPES, "face_cons_mlp.", "hands_cons_mlp.",
    *(f"predict_res_{part}.cross_layer." for part in ("face", *BODY)))
"""Key prefixes of the base file that official inference never runs: the layer prototypes every
``nn.TransformerDecoder``/``Encoder`` deep-copies (they keep their own weights), the rhythmic
projection MLPs (defined, never applied) and each residual predictor's prototype layer."""
SPARSE_UNUSED: tuple[str, ...] = (
    *_PROTOTYPES, "face_cons_mlp.", "hands_cons_mlp.", "audio_pre_encoder_body.",
    "at_attn_face_semantic.", "gate_face.", "gate_body.", "emotion_embedding.",
    "at_attn_body_semantic.", *(f"predict_res_{part}.cross_layer." for part in BODY))
"""As :data:`BASE_UNUSED` for the sparse file, plus the beat encoder (the sparse model ignores
beat features), the face-side semantic gate layers (no face output) and the emotion branch
(``emotion_embedding`` and its fusion run in the official forward, but their result is
discarded: the emotion input has no effect on any output)."""
COMPUTED_BUFFERS: dict[str, str] = {
    "position_embeddings.pe": "the periodic positional encoding (hidden width)",
    "semantic_position_embeddings.pe": "the periodic positional encoding (latent width)",
}
"""Stored buffers our models compute themselves; the file's must equal ours (checked)."""


def swap_pairs(tensor: torch.Tensor) -> torch.Tensor:
    """Swap rows ``2c`` and ``2c + 1`` of a per-channel fusion layer's weight or bias (its own
    inverse)."""
    rows = tensor.shape[0]
    return tensor.reshape(rows // 2, 2, *tensor.shape[1:]).flip(1).reshape(tensor.shape)


def _reshape_mask(tensor: torch.Tensor) -> torch.Tensor:
    return tensor.reshape(-1)


TRANSFORMS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "seed_encoder.mask_embedding": _reshape_mask,
    "face_audio.fusion.mix.weight": swap_pairs, "face_audio.fusion.mix.bias": swap_pairs,
    "body_audio.fusion.mix.weight": swap_pairs, "body_audio.fusion.mix.bias": swap_pairs,
    "semantic.speech_fusion.mix.weight": swap_pairs,
    "semantic.speech_fusion.mix.bias": swap_pairs,
}
"""``{our key: official tensor -> ours}`` for the entries whose layout differs."""


class KeyMapError(ValueError):
    """An official state dict does not fit our model (the message lists every problem)."""


@dataclass(frozen=True)
class KeyMap:
    """Where each official key of one file goes.

    Attributes:
        mapped: ``{official key: our key}``.
        unused: official keys that official inference never runs (not converted).
        computed: official buffers our model computes itself (checked for equality).
    """

    mapped: dict[str, str]
    unused: tuple[str, ...]
    computed: tuple[str, ...]


def _target(key: str, rules: Iterable[tuple[str, str]]) -> str | None:
    best: tuple[str, str] | None = None
    for official, ours in rules:
        exact = official == key
        if (exact or (official.endswith(".") and key.startswith(official))) and (
                best is None or len(official) > len(best[0])):
            best = (official, ours)
    return None if best is None else best[1] + key[len(best[0]):]


def build_key_map(keys: Iterable[str], rules: Iterable[tuple[str, str]],
                  unused: Iterable[str], name: str) -> KeyMap:
    """Classify every official key (raise :class:`KeyMapError` listing the unknown ones)."""
    rules, unused = tuple(rules), tuple(unused)
    mapped: dict[str, str] = {}
    skipped, computed, unknown = [], [], []
    for key in keys:
        if key in COMPUTED_BUFFERS:
            computed.append(key)
        elif any(key.startswith(prefix) for prefix in unused):
            skipped.append(key)
        elif (target := _target(key, rules)) is not None:
            mapped[key] = target
        else:
            unknown.append(key)
    if unknown:
        raise KeyMapError(f"{name}: {len(unknown)} key(s) have no place in the semtalk model, "
                          f"e.g. {unknown[:5]}; is this the right file?")
    return KeyMap(mapped, tuple(skipped), tuple(computed))


def convert_state(official: Mapping[str, torch.Tensor], model: nn.Module,
                  rules: Iterable[tuple[str, str]], unused: Iterable[str],
                  name: str) -> tuple[dict[str, torch.Tensor], KeyMap]:
    """Our state dict for ``model`` from an ``official`` one (``module.`` already stripped).

    Strict: every official key is mapped, unused or a computed buffer equal to ours; every entry
    of ``model.state_dict()`` is filled exactly once; a shape mismatch names both keys.
    """
    key_map = build_key_map(official, rules, unused, name)
    expected = model.state_dict()
    problems: list[str] = []
    state: dict[str, torch.Tensor] = {}
    sources: dict[str, str] = {}
    for off_key, our_key in key_map.mapped.items():
        if our_key not in expected:
            problems.append(f"{off_key} -> {our_key}: no such entry in the semtalk model")
            continue
        if our_key in sources:
            problems.append(f"{off_key} and {sources[our_key]} both map to {our_key}")
            continue
        tensor = official[off_key]
        transform = TRANSFORMS.get(our_key)
        if transform is not None and tensor.numel() == expected[our_key].numel():
            tensor = transform(tensor)
        if tuple(tensor.shape) != tuple(expected[our_key].shape):
            problems.append(f"{off_key} {tuple(official[off_key].shape)} does not fit "
                            f"{our_key} {tuple(expected[our_key].shape)}")
            continue
        sources[our_key] = off_key
        state[our_key] = tensor.to(expected[our_key].dtype).clone()
    missing = [key for key in expected if key not in state]
    if missing:
        problems.append(f"{len(missing)} semtalk entries got no official tensor, e.g. "
                        f"{missing[:5]}")
    buffers = dict(model.named_buffers())
    for off_key in key_map.computed:
        ours = _computed_table(model, off_key, buffers)
        theirs = official[off_key].reshape(-1, official[off_key].shape[-1])
        if ours is None or not torch.equal(theirs[:len(ours)], ours.to(theirs.dtype)):
            problems.append(f"{off_key} ({COMPUTED_BUFFERS[off_key]}) differs from the table "
                            f"semtalk computes")
    if problems:
        raise KeyMapError(f"{name}: " + "; ".join(problems))
    return state, key_map


def _computed_table(model: nn.Module, key: str,
                    buffers: Mapping[str, torch.Tensor]) -> torch.Tensor | None:
    """Our positional table that stands for the official buffer ``key`` (its first period)."""
    owner = ("semantic.position.table" if key.startswith("semantic_")
             else "body.position.table")
    return buffers.get(owner)


def base_from_official(official: Mapping[str, torch.Tensor]) -> tuple[BaseMotionGenerator, KeyMap]:
    """The official base generator as a :class:`BaseMotionGenerator` (eval mode)."""
    model = BaseMotionGenerator(official_base_config())
    state, key_map = convert_state(official, model, BASE_RULES, BASE_UNUSED,
                                   "best_semtalk_base.bin")
    model.load_state_dict(state, strict=True)
    return model.eval(), key_map


def sparse_from_official(official: Mapping[str, torch.Tensor]
                         ) -> tuple[SparseMotionGenerator, KeyMap]:
    """The official sparse generator as a :class:`SparseMotionGenerator` (eval mode); the word
    embedding is the trained one stored in this file (``text_pre_encoder_body``)."""
    words = official.get("text_pre_encoder_body.weight")
    vocab_size = OFFICIAL_VOCAB_SIZE if words is None else int(words.shape[0])
    model = SparseMotionGenerator(official_sparse_config(vocab_size))
    state, key_map = convert_state(official, model, SPARSE_RULES, SPARSE_UNUSED,
                                   "best_semtalk_sparse.bin")
    model.load_state_dict(state, strict=True)
    return model.eval(), key_map
