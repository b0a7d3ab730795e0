"""Typed configuration: dataclasses built strictly from YAML/JSON values and overrides.

Every component takes its own ``@dataclass`` config. :func:`from_dict` builds one from plain
values (as read from YAML or ``config.json``), recursing into nested dataclasses, and rejects
unknown keys and wrongly typed values with the full key path. :func:`apply_overrides` applies
``key.sub=value`` strings from the command line (values parsed as YAML: ``3``, ``0.5``,
``true``, ``[1, 2]``, ``null``).

YAML anchors and aliases (``sizes: &sizes`` ... ``sizes: *sizes``) write a value once for two
sections; each section still gets its own copy, so an override changes one section only. A
dataclass may list keys it no longer has in a ``renamed_keys`` class attribute
(``{old key: where it is now}``): a config or override naming one is told the new key.
"""

from __future__ import annotations

import dataclasses
import enum
import types
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import yaml

from semtalk.errors import DataError

T = TypeVar("T")


class ConfigError(ValueError):
    """A configuration value or key is wrong; the message names the key path."""


def _type_name(kind: Any) -> str:
    return getattr(kind, "__name__", None) or str(kind).replace("typing.", "")


def _convert(kind: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(kind)
    args = typing.get_args(kind)
    if kind is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        for option in (a for a in args if a is not type(None)):
            try:
                return _convert(option, value, where)
            except ConfigError:
                continue
        raise ConfigError(f"{where}: {value!r} matches none of {_type_name(kind)}")
    if isinstance(kind, type) and dataclasses.is_dataclass(kind):
        if isinstance(value, kind):
            return value
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where}: expected a mapping for {kind.__name__}, got {value!r}")
        return from_dict(kind, value, where)
    if origin in (tuple, list):
        if isinstance(value, str) or not isinstance(value, Sequence):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(args) != len(value):
                raise ConfigError(f"{where}: expected {len(args)} values, got {len(value)}")
            items = [_convert(a, v, f"{where}[{i}]") for i, (a, v) in
                     enumerate(zip(args, value, strict=True))]
        else:
            item_kind = args[0] if args else Any
            items = [_convert(item_kind, v, f"{where}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        key_kind, value_kind = args or (Any, Any)
        return {_convert(key_kind, k, f"{where}.{k}"): _convert(value_kind, v, f"{where}.{k}")
                for k, v in value.items()}
    if isinstance(kind, type) and issubclass(kind, enum.Enum):
        try:
            return kind(value)
        except ValueError:
            allowed = [m.value for m in kind]
            raise ConfigError(f"{where}: {value!r} is not one of {allowed}") from None
    if kind is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if kind is Path:
        if not isinstance(value, str | Path):
            raise ConfigError(f"{where}: expected a path, got {value!r}")
        return Path(value)
    if kind in (int, str, bool):
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise ConfigError(f"{where}: expected {kind.__name__}, got {value!r}")
        return value
    raise ConfigError(f"{where}: unsupported config type {_type_name(kind)}")


def from_dict(cls: type[T], data: Mapping[str, Any], where: str = "") -> T:
    """Build dataclass ``cls`` from ``data``; unknown keys and bad values raise ConfigError."""
    if not dataclasses.is_dataclass(cls):
        raise TypeError(f"{cls!r} is not a dataclass")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - set(fields))
    renamed: Mapping[str, str] = getattr(cls, "renamed_keys", {})
    moved = [key for key in unknown if key in renamed]
    if moved:
        raise ConfigError("; ".join(f"{where + '.' if where else ''}{key} is now {renamed[key]}"
                                    for key in moved))
    if unknown:
        prefix = f"{where}: " if where else ""
        raise ConfigError(f"{prefix}unknown key(s) {unknown} for {cls.__name__}; "
                          f"allowed: {sorted(fields)}")
    kwargs = {name: _convert(hints[name], value, f"{where}.{name}" if where else name)
              for name, value in data.items()}
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{where or cls.__name__}: {exc}") from exc


def to_dict(config: Any) -> Any:
    """Plain JSON/YAML-ready values of a (nested) dataclass config."""
    if dataclasses.is_dataclass(config) and not isinstance(config, type):
        return {f.name: to_dict(getattr(config, f.name)) for f in dataclasses.fields(config)}
    if isinstance(config, tuple | list):
        return [to_dict(v) for v in config]
    if isinstance(config, dict):
        return {str(k): to_dict(v) for k, v in config.items()}
    if isinstance(config, enum.Enum):
        return config.value
    if isinstance(config, Path):
        return str(config)
    return config


class _UnsharedDumper(yaml.SafeDumper):
    """Writes a value shared by two keys (a YAML alias) twice, so the copy shares nothing."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def apply_overrides(data: dict[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """A copy of ``data`` with ``a.b.c=value`` overrides applied (values parsed as YAML).

    A section the data leaves out is added (``from_dict`` then checks its keys).
    """
    # deep copy of plain values, sharing nothing: an override of one alias's section changes
    # that section only
    result = yaml.safe_load(yaml.dump(data, Dumper=_UnsharedDumper))
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"override {item!r} must look like key.sub=value")
        node = result
        *parents, leaf = key.strip().split(".")
        for part in parents:
            if isinstance(node, dict) and part not in node:
                node[part] = {}
            child = node.get(part) if isinstance(node, dict) else None
            if not isinstance(child, dict):
                raise ConfigError(f"override {item!r}: '{part}' is not a section")
            node = child
        node[leaf] = yaml.safe_load(raw)
    return result


def load_config(cls: type[T], source: str | Path | Mapping[str, Any] | None = None,
                overrides: Sequence[str] = ()) -> T:
    """``cls`` from a YAML file, a mapping or its defaults, then ``overrides``."""
    if source is None:
        data: dict[str, Any] = to_dict(cls())
    elif isinstance(source, Mapping):
        data = dict(source)
    else:
        path = Path(source)
        try:
            loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise DataError(path, "config file not found") from None
        except yaml.YAMLError as exc:
            raise DataError(path, f"not valid YAML: {exc}") from exc
        if not isinstance(loaded, dict):
            raise DataError(path, "a config file must hold a mapping of keys to values")
        data = loaded
    return from_dict(cls, apply_overrides(data, overrides))


def describe_difference(have: Mapping[str, Any], want: Mapping[str, Any], prefix: str = "",
                        source: str = "cache") -> list[str]:
    """Human-readable differences between two nested identity dictionaries.

    ``have`` is what ``source`` (e.g. ``"cache"``, ``"checkpoint"``) holds, ``want``
    what is needed; one line per differing leaf, keys joined with dots.
    """
    import json

    lines = []
    for key in sorted(set(have) | set(want)):
        name = f"{prefix}{key}"
        if key not in have:
            lines.append(f"{name}: missing in {source} (needed: {json.dumps(want[key])})")
        elif key not in want:
            lines.append(f"{name}: in {source} but not expected ({json.dumps(have[key])})")
        elif isinstance(have[key], Mapping) and isinstance(want[key], Mapping):
            lines += describe_difference(have[key], want[key], f"{name}.", source)
        elif have[key] != want[key]:
            lines.append(f"{name}: {source} has {json.dumps(have[key])}, "
                         f"needed {json.dumps(want[key])}")
    return lines
