"""Packaged YAML presets (values validated against the config dataclasses).

A stage's presets are ``<stage>_<preset>.yaml`` files here; :func:`load_stage_config` reads
one, or a user's YAML file instead, and applies ``key.sub=value`` overrides. These files are
the only presets: a model's preset (:func:`semtalk.training.presets.load_preset`) is the model
config that training with that preset builds, read from the same files.
"""

from __future__ import annotations

from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import TypeVar

from semtalk.config import load_config
from semtalk.errors import DataError

PRESETS = ("tiny", "paper", "demo")
"""Packaged presets: every training stage ships ``tiny`` and ``paper``; the tokenizer and
the generators also ship ``demo`` (the sizes and steps of ``semtalk demo``)."""

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
