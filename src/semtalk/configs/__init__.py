"""Packaged YAML presets (values validated against the config dataclasses).

A stage's presets are ``<stage>_<preset>.yaml`` files here; :func:`load_stage_config` reads
one, or a user's YAML file instead, and applies ``key.sub=value`` overrides. These files are
the only presets: a model's preset (:func:`load_preset`) is the model config that training
with that preset builds, read from the same files.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

from semtalk.config import load_config
from semtalk.errors import DataError

PRESETS = ("tiny", "paper", "demo")
"""Packaged presets: every training stage ships ``tiny`` and ``paper``; the tokenizer and
the generators also ship ``demo`` (the sizes and steps of ``semtalk demo``)."""

PRESET_KINDS = ("tokenizer", "base_generator", "sparse_generator", "fgd_encoder")
"""The models :func:`load_preset` describes."""

T = TypeVar("T")


def load_stage_config(config_class: type[T], stage: str, preset: str = "tiny",
                      config: str | Path | None = None,
                      overrides: Sequence[str] = ()) -> T:
    """``config_class`` from the packaged ``<stage>_<preset>.yaml`` (``tiny`` or ``paper``) or
    from the YAML file ``config`` when given, then ``key=value`` overrides."""
    if config is not None:
        return load_config(config_class, config, overrides)
    if preset not in PRESETS:
        raise DataError(Path(preset), f"unknown preset; choose one of {PRESETS} or give --config")
    with resources.as_file(resources.files(__name__).joinpath(f"{stage}_{preset}.yaml")) as path:
        return load_config(config_class, path, overrides)


def load_preset(kind: str, name: str = "tiny", **fields: Any) -> Any:
    """The config of model ``kind`` in packaged preset ``name`` (``tiny``, ``demo``, ``paper``).

    ``kind``:

    - ``"tokenizer"``: the :class:`~semtalk.models.rvqvae.RVQVAEConfig` of
      ``tokenizer_NAME.yaml`` (``input_dim`` unset unless given; see
      :meth:`~semtalk.models.tokenizer.MotionTokenizer.from_config`).
    - ``"base_generator"``: the :class:`~semtalk.models.base_generator.BaseGeneratorConfig`
      that ``generator_NAME.yaml`` trains on tokenizers of ``tokenizer_NAME.yaml``; needs
      ``speech_dim``.
    - ``"sparse_generator"``: the same for
      :class:`~semtalk.models.sparse_generator.SparseGeneratorConfig`; needs ``speech_dim``,
      ``vocab_size``, ``sentence_dim`` and ``emotion_dim``.
    - ``"fgd_encoder"``: the :class:`~semtalk.metrics.fgd_encoder.FGDEncoderConfig` of
      ``fgd_encoder_NAME.yaml`` (``tiny`` and ``paper`` only).

    ``fields`` set fields of the config: the data's sizes, or changes such as ``dropout=0.0``.
    """
    # Imported here: the training modules read their presets through this module.
    if kind == "tokenizer":
        from semtalk.training.tokenizer import load_tokenizer_config

        return replace(load_tokenizer_config(name).model, **fields)
    if kind in ("base_generator", "sparse_generator"):
        from semtalk.models.generator_common import CodeSpec
        from semtalk.training.generator import load_generator_config

        codes = fields.pop("codes", None) or CodeSpec.from_rvqvae(
            load_preset("tokenizer", name))
        generator = load_generator_config(name)
        build = generator.base_config if kind == "base_generator" else generator.sparse_config
        return build(codes, **fields)
    if kind == "fgd_encoder":
        from semtalk.training.fgd_encoder import load_fgd_config

        return replace(load_fgd_config(name).model, **fields)
    raise ValueError(f"unknown preset kind {kind!r}; choose one of {PRESET_KINDS}")
