"""The release format shared by every model: ``config.json`` + ``model.safetensors``.

A model class opts in by subclassing :class:`PretrainedModel` and setting three class
attributes: ``model_name`` (written into both files and checked on load), ``format_version``
(bumped when the parameter layout changes) and ``config_class`` (the frozen dataclass its
constructor takes). ``save_pretrained(folder)`` writes both files atomically;
``from_pretrained(folder)`` rebuilds the model from the config and loads the tensors strictly,
raising :class:`~semtalk.errors.DataError` that names the file and lists every difference.

Loading checks before it builds anything big:

* ``checksums.json`` (written by ``save_pretrained``; :func:`write_checksums`) holds the
  sha256 of every file of the folder; each listed file is verified on load, so an edited
  config or a flipped bit is refused naming the file. Folders without it (older releases)
  load unverified.
* the config's sizes are bounded (:data:`MAX_SIZE`, :data:`MAX_LAYERS`), and the tensor names
  and shapes the config implies (the model built on the ``meta`` device: no memory) are
  compared with the weight file's header (:func:`read_weight_header`: no tensor is read), so a
  config that does not fit its weights is refused in well under a second, before the real
  model is built.

Weight files are byte-reproducible: the same tensors and metadata always give the same bytes
(the safetensors header is written with its metadata in sorted order).
"""

from __future__ import annotations

import dataclasses
import hashlib
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
CHECKSUMS_FILE = "checksums.json"
"""Per model folder: ``{"files": {NAME: {"sha256": HEX}}}`` for every other file in it."""
MAX_SIZE = 1 << 20
"""Largest integer a release config may hold (a width, a vocabulary, a window)."""
MAX_LAYERS = 1024
"""Largest layer count (a config field named ``*layers`` or ``depth``)."""
MAX_HEADER_BYTES = 100 << 20
"""Largest safetensors JSON header read (the format's own limit)."""

ModelT = TypeVar("ModelT", bound="PretrainedModel")


class PretrainedModel(nn.Module):
    """Base of every released model; subclasses take ``config`` as their only argument."""

    model_name: ClassVar[str]
    format_version: ClassVar[int] = 1
    config_class: ClassVar[type]
    config: Any

    def save_pretrained(self, folder: str | Path) -> Path:
        """Write ``config.json``, ``model.safetensors`` and ``checksums.json`` into ``folder``
        (created if needed).

        Each file is written under a temporary name and renamed, so a crash never leaves a
        half-written file; the same model always gives the same bytes. ``checksums.json``
        covers every file then in ``folder``: whoever adds files afterwards calls
        :func:`write_checksums` again. Returns the folder.
        """
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
            tmp.write_bytes(safetensors_bytes(tensors, metadata))
        write_checksums(folder)
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
        when a file is missing or unreadable, differs from its ``checksums.json`` record, the
        config belongs to another model or version or holds absurd sizes, or the tensors
        differ from the model the config describes (missing, unexpected and mis-shaped names
        are listed; checked from the file header before the model is built).
        """
        folder = Path(folder)
        verify_checksums(folder)
        config = cls.read_config(folder)
        check_config_sizes(folder / CONFIG_FILE, config)
        header = read_weight_header(folder / WEIGHTS_FILE)
        with torch.device("meta"):
            expected = cls(config).state_dict()
        check_header(folder / WEIGHTS_FILE, expected, header)
        model = cls(config)
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
    without being expected. The message is ``path: context: problems``; each list shows its
    first :data:`SHOWN_NAMES` names and how many there are in all.
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
        problems.append(f"missing tensors {_first(missing)}")
    if unexpected:
        problems.append(f"unexpected tensors {_first(unexpected)}")
    if misshaped:
        problems.append("mis-shaped tensors [" + "; ".join(misshaped[:SHOWN_NAMES])
                        + (f"; ... {len(misshaped)} in all" if len(misshaped) > SHOWN_NAMES
                           else "") + "]")
    if problems:
        raise DataError(path, f"{context}: " + ", ".join(problems))


SHOWN_NAMES = 10
"""How many names of each kind a :func:`check_state` message lists."""


def _first(names: list[str]) -> str:
    shown = "[" + ", ".join(repr(n) for n in names[:SHOWN_NAMES])
    return shown + (f", ... {len(names)} in all]" if len(names) > SHOWN_NAMES else "]")


# ---------------------------------------------------------------------------------- bytes
def safetensors_bytes(tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> bytes:
    """A safetensors file as bytes, identical for identical tensors and metadata.

    The ``safetensors`` library writes ``__metadata__`` in hash order (different bytes from
    run to run); its header is rewritten here with the metadata keys sorted, the tensor
    entries and data unchanged (so the header keeps its length and padding).
    """
    from safetensors.torch import save

    raw = save(tensors, metadata=metadata)
    length = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8:8 + length])
    ordered = {"__metadata__": dict(sorted(header.pop("__metadata__", {}).items())), **header}
    text = json.dumps(ordered, separators=(",", ":")).encode("utf-8")
    if len(text) > length:  # never: the same entries in another order
        raise RuntimeError("safetensors header grew when sorted")
    return raw[:8] + text.ljust(length, b" ") + raw[8 + length:]


# ---------------------------------------------------------------------------------- checksums
def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_checksums(folder: str | Path) -> Path:
    """Record the sha256 of every file directly in ``folder`` in ``folder/checksums.json``."""
    folder = Path(folder)
    files = {p.name: {"sha256": _sha256(p)} for p in sorted(folder.iterdir())
             if p.is_file() and p.name != CHECKSUMS_FILE and not p.name.startswith(".")}
    path = folder / CHECKSUMS_FILE
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps({"files": files}, indent=1, sort_keys=True) + "\n",
                       encoding="utf-8")
    return path


def verify_checksums(folder: str | Path) -> None:
    """Check every file ``folder/checksums.json`` lists; nothing to do without one.

    Raises:
        DataError: naming the file that is missing or whose bytes differ from the record
            (an edit or a bit flip), or ``checksums.json`` itself when it is unreadable.
    """
    folder = Path(folder)
    path = folder / CHECKSUMS_FILE
    if not path.is_file():
        return
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(path, f"cannot read checksums: {exc}") from exc
    files = record.get("files") if isinstance(record, dict) else None
    if not isinstance(files, dict) or not all(
            isinstance(v, dict) and isinstance(v.get("sha256"), str) for v in files.values()):
        raise DataError(path, 'expected {"files": {NAME: {"sha256": HEX}}}')
    for name, entry in sorted(files.items()):
        target = folder / name
        if Path(name).name != name:
            raise DataError(path, f"lists {name!r}, which is not a file of this folder")
        if not target.is_file():
            raise DataError(target, f"missing: {CHECKSUMS_FILE} lists it")
        if _sha256(target) != entry["sha256"]:
            raise DataError(target, f"sha256 differs from {CHECKSUMS_FILE}: the file was "
                                    f"changed or corrupted after it was written (an edit or "
                                    f"a flipped bit); restore it from the release")


# ---------------------------------------------------------------------------------- early checks
def check_config_sizes(path: Path, config: Any) -> None:
    """Refuse a config whose integers are absurd (before anything is built).

    Every integer must lie in ``[0, MAX_SIZE]`` and every layer count (a field named
    ``*layers`` or ``depth``) in ``[0, MAX_LAYERS]``; nested config dataclasses are walked.
    """
    problems = list(_size_problems(config, "config"))
    if problems:
        raise DataError(path, "config sizes out of range (an edited or corrupt config?): "
                              + "; ".join(problems[:5]))


def _size_problems(config: Any, prefix: str) -> Iterable[str]:
    if not dataclasses.is_dataclass(config) or isinstance(config, type):
        return
    for item in dataclasses.fields(config):
        value = getattr(config, item.name)
        name = f"{prefix}.{item.name}"
        if dataclasses.is_dataclass(value):
            yield from _size_problems(value, name)
        elif isinstance(value, int) and not isinstance(value, bool):
            layers = item.name.endswith("layers") or item.name == "depth"
            limit = MAX_LAYERS if layers else MAX_SIZE
            if not 0 <= value <= limit:
                yield f"{name} = {value} (must be in [0, {limit}])"


def read_weight_header(path: Path) -> dict[str, tuple[str, tuple[int, ...]]]:
    """``{name: (dtype, shape)}`` of a safetensors file from its header alone (no tensor is
    read), after checking that the header's data offsets match the file's size.

    Raises:
        DataError: the file is missing, truncated, or its header is malformed.
    """
    if not path.is_file():
        raise DataError(path, "not found: a release folder needs model.safetensors")
    size = path.stat().st_size
    try:
        with path.open("rb") as handle:
            prefix = handle.read(8)
            length = int.from_bytes(prefix, "little") if len(prefix) == 8 else -1
            if not 0 < length <= min(size - 8, MAX_HEADER_BYTES):
                raise DataError(path, f"cannot read weights: not a safetensors file (header "
                                      f"length {length} in a file of {size} bytes)")
            header = json.loads(handle.read(length))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(path, f"cannot read weights: bad safetensors header: {exc}") from exc
    if not isinstance(header, dict):
        raise DataError(path, "cannot read weights: the safetensors header is not an object")
    header.pop("__metadata__", None)
    found: dict[str, tuple[str, tuple[int, ...]]] = {}
    end = 0
    for name, entry in header.items():
        try:
            dtype, shape, (_, stop) = entry["dtype"], entry["shape"], entry["data_offsets"]
            dims = tuple(int(n) for n in shape)
            if any(n < 0 for n in dims):
                raise ValueError(f"negative size in shape {dims}")
            found[name] = (str(dtype), dims)
            end = max(end, int(stop))
        except (KeyError, TypeError, ValueError) as exc:
            raise DataError(path, f"cannot read weights: bad header entry {name!r}") from exc
    if end != size - 8 - length:
        raise DataError(path, f"cannot read weights: the header describes {end} bytes of "
                              f"tensors but the file holds {size - 8 - length} (truncated or "
                              f"padded file)")
    return found


def check_header(path: Path, expected: dict[str, torch.Tensor],
                 header: dict[str, tuple[str, tuple[int, ...]]]) -> None:
    """:func:`check_state` against a weight file's header (names and shapes only)."""
    found = {name: torch.empty(shape, device="meta") for name, (_, shape) in header.items()}
    check_state(path, expected, found)
