"""The release format shared by every model: ``config.json`` + ``model.safetensors``.

A model class opts in by subclassing :class:`PretrainedModel` and setting three class
attributes: ``model_name`` (written into both files and checked on load), ``format_version``
(bumped when the parameter layout changes) and ``config_class`` (the frozen dataclass its
constructor takes). ``save_pretrained(folder)`` writes both files atomically;
``from_pretrained(folder)`` rebuilds the model from the config and loads the tensors strictly,
raising :class:`~semtalk.errors.DataError` that names the file and lists every difference.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import torch
from torch import nn

from semtalk.config import ConfigError, from_dict, to_dict
from semtalk.errors import DataError
from semtalk.fileio import atomic_path

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"

ModelT = TypeVar("ModelT", bound="PretrainedModel")


class PretrainedModel(nn.Module):
    """Base of every released model; subclasses take ``config`` as their only argument."""

    model_name: ClassVar[str]
    format_version: ClassVar[int] = 1
    config_class: ClassVar[type]
    config: Any

    def save_pretrained(self, folder: str | Path) -> Path:
        """Write ``config.json`` and ``model.safetensors`` into ``folder`` (created if needed).

        Each file is written under a temporary name and renamed, so a crash never leaves a
        half-written file. Returns the folder.
        """
        from safetensors.torch import save_file

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        header = {"model": self.model_name, "format_version": self.format_version,
                  "config": to_dict(self.config)}
        with atomic_path(folder / CONFIG_FILE) as tmp:
            tmp.write_text(json.dumps(header, indent=2) + "\n", encoding="utf-8")
        tensors = {name: value.detach().cpu().contiguous()
                   for name, value in self.state_dict().items()}
        metadata = {"model": self.model_name, "format_version": str(self.format_version)}
        with atomic_path(folder / WEIGHTS_FILE) as tmp:
            save_file(tensors, str(tmp), metadata=metadata)
        return folder

    @classmethod
    def read_config(cls, folder: str | Path) -> Any:
        """The validated config of the release in ``folder`` (no weights are read)."""
        return read_config(Path(folder) / CONFIG_FILE, cls.model_name, cls.format_version,
                           cls.config_class)

    @classmethod
    def from_pretrained(cls: type[ModelT], folder: str | Path,
                        device: torch.device | str = "cpu") -> ModelT:
        """Rebuild from ``folder/config.json`` and load ``model.safetensors`` strictly.

        Returns the model in eval mode on ``device``. Raises :class:`DataError` naming the file
        when a file is missing or unreadable, the config belongs to another model or version,
        or the tensors differ from the model the config describes (missing, unexpected and
        mis-shaped names are all listed).
        """
        folder = Path(folder)
        model = cls(cls.read_config(folder))
        state = read_weights(folder / WEIGHTS_FILE, device)
        check_state(folder / WEIGHTS_FILE, model.state_dict(), state)
        model.load_state_dict(state, strict=True)
        return model.to(device).eval()


def read_config(path: Path, model_name: str, format_version: int, config_class: type) -> Any:
    """Parse and validate a release ``config.json`` written for ``model_name``."""
    try:
        header = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(path, "not found: a release folder needs config.json") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(path, f"cannot read config: {exc}") from exc
    if not isinstance(header, dict):
        raise DataError(path, "config.json must hold a JSON object")
    if header.get("model") != model_name:
        raise DataError(path, f"holds a {header.get('model')!r} model, expected {model_name!r}")
    if header.get("format_version") != format_version:
        raise DataError(path, f"format_version {header.get('format_version')!r} is not "
                              f"supported by this semtalk (expected {format_version}); "
                              f"use the semtalk version that wrote it or retrain")
    extra = sorted(set(header) - {"model", "format_version", "config"})
    if extra:
        raise DataError(path, f"unknown top-level key(s) {extra}")
    if not isinstance(header.get("config"), dict):
        raise DataError(path, "missing the 'config' object")
    try:
        config: Any = from_dict(config_class, header["config"], "config")
    except (ConfigError, ValueError, TypeError) as exc:
        raise DataError(path, str(exc)) from exc
    unset = [name for name in getattr(config_class, "required_in_release", ())
             if getattr(config, name) is None]
    if unset:
        raise DataError(path, f"config: {unset} must be set in a release")
    return config


def read_weights(path: Path, device: torch.device | str = "cpu") -> dict[str, torch.Tensor]:
    """All tensors of a safetensors file, on ``device``."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    if not path.is_file():
        raise DataError(path, "not found: a release folder needs model.safetensors")
    try:
        return load_file(str(path), device=str(device))
    except (SafetensorError, OSError) as exc:
        raise DataError(path, f"cannot read weights: {exc}") from exc


def check_state(path: Path, expected: dict[str, torch.Tensor],
                found: dict[str, torch.Tensor], *, optional: Iterable[str] = (),
                ignored_prefixes: tuple[str, ...] = (),
                context: str = "does not match the model its config.json describes") -> None:
    """Raise naming every missing, unexpected and mis-shaped tensor of ``found``.

    ``optional`` names may be absent; names starting with ``ignored_prefixes`` may be present
    without being expected. The message is ``path: context: problems``.
    """
    optional = set(optional)
    missing = sorted(set(expected) - set(found) - optional)
    unexpected = sorted(k for k in set(found) - set(expected)
                        if not (ignored_prefixes and k.startswith(ignored_prefixes)))
    misshaped = [f"{name}: file {tuple(found[name].shape)} vs model {tuple(value.shape)}"
                 for name, value in expected.items()
                 if name in found and found[name].shape != value.shape]
    problems = []
    if missing:
        problems.append(f"missing tensors {missing}")
    if unexpected:
        problems.append(f"unexpected tensors {unexpected}")
    if misshaped:
        problems.append("mis-shaped tensors [" + "; ".join(misshaped) + "]")
    if problems:
        raise DataError(path, f"{context}: " + ", ".join(problems))
