"""Model presets: the config of a model in a packaged preset, as training with that preset
builds it (the YAML files in :mod:`semtalk.configs` are the only presets)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from semtalk.models.generator_common import CodeSpec
from semtalk.training.fgd_encoder import load_fgd_config
from semtalk.training.generator import load_generator_config
from semtalk.training.tokenizer import load_tokenizer_config

PRESET_KINDS = ("tokenizer", "base_generator", "sparse_generator", "fgd_encoder")
"""The models :func:`load_preset` describes."""


def load_preset(kind: str, name: str = "tiny", **fields: Any) -> Any:
    """The config of model ``kind`` in packaged preset ``name`` (``tiny``, ``demo``, ``paper``).

    ``kind``:

    - ``"tokenizer"``: the :class:`~semtalk.models.rvqvae.RVQVAEConfig` of
      ``tokenizer_NAME.yaml`` (``input_dim`` unset unless given; see
      :meth:`~semtalk.models.tokenizer.MotionTokenizer.from_config`).
    - ``"base_generator"``: the :class:`~semtalk.models.base_generator.BaseGeneratorConfig`
      that ``generator_NAME.yaml`` trains (its ``base`` section) on tokenizers of
      ``tokenizer_NAME.yaml``; needs ``speech_dim`` and ``beat_dim``.
    - ``"sparse_generator"``: the same for
      :class:`~semtalk.models.sparse_generator.SparseGeneratorConfig` (the
      ``sparse_model`` section); needs ``speech_dim``,
      ``vocab_size``, ``sentence_dim`` and ``emotion_dim``.
    - ``"fgd_encoder"``: the :class:`~semtalk.metrics.fgd_encoder.FGDEncoderConfig` of
      ``fgd_encoder_NAME.yaml`` (``tiny`` and ``paper`` only).

    ``fields`` set fields of the config: the data's sizes, or changes such as ``dropout=0.0``.
    """
    if kind == "tokenizer":
        return replace(load_tokenizer_config(name).model, **fields)
    if kind in ("base_generator", "sparse_generator"):
        codes = fields.pop("codes", None) or CodeSpec.from_rvqvae(
            load_preset("tokenizer", name))
        generator = load_generator_config(name)
        build = generator.base_config if kind == "base_generator" else generator.sparse_config
        return build(codes, **fields)
    if kind == "fgd_encoder":
        return replace(load_fgd_config(name).model, **fields)
    raise ValueError(f"unknown preset kind {kind!r}; choose one of {PRESET_KINDS}")
