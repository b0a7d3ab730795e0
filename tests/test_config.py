from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import ClassVar

import pytest

from semtalk.config import ConfigError, apply_overrides, from_dict, load_config, to_dict
from semtalk.errors import DataError


class Mode(str, Enum):
    FAST = "fast"
    EXACT = "exact"


@dataclass(frozen=True)
class Inner:
    width: int = 8
    rate: float = 0.5
    layers: tuple[int, ...] = (1, 2)


@dataclass(frozen=True)
class Outer:
    name: str = "tiny"
    inner: Inner = field(default_factory=Inner)
    mode: Mode = Mode.FAST
    path: Path | None = None
    weights: dict[str, float] = field(default_factory=lambda: {"a": 1.0})

    def __post_init__(self) -> None:
        if self.inner.width <= 0:
            raise ValueError("inner.width must be positive")


def test_round_trip_and_conversion():
    config = Outer(inner=Inner(width=4, layers=(3,)), mode=Mode.EXACT, path=Path("x"))
    data = to_dict(config)
    assert data == {"name": "tiny", "inner": {"width": 4, "rate": 0.5, "layers": [3]},
                    "mode": "exact", "path": "x", "weights": {"a": 1.0}}
    assert from_dict(Outer, data) == config
    assert from_dict(Outer, {"inner": {"rate": 1}}).inner.rate == 1.0  # int -> float


@pytest.mark.parametrize(("data", "message"), [
    ({"inner": {"widht": 3}}, r"inner: unknown key\(s\) \['widht'\]"),
    ({"inner": {"width": "8"}}, "inner.width: expected int"),
    ({"inner": {"width": True}}, "inner.width: expected int"),
    ({"mode": "slow"}, r"mode: 'slow' is not one of \['fast', 'exact'\]"),
    ({"inner": {"layers": "12"}}, "inner.layers: expected a list"),
    ({"inner": {"width": 0}}, "inner.width must be positive"),
    ({"extra": 1}, r"unknown key\(s\) \['extra'\] for Outer"),
])
def test_errors_name_the_key(data, message):
    with pytest.raises(ConfigError, match=message):
        from_dict(Outer, data)


def test_overrides_and_yaml(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("name: paper\ninner:\n  width: 256\n")
    config = load_config(Outer, path, ["inner.rate=0.1", "inner.layers=[4, 5]", "path=null"])
    assert config == Outer(name="paper", inner=Inner(width=256, rate=0.1, layers=(4, 5)))
    assert load_config(Outer).name == "tiny"
    with pytest.raises(ConfigError, match="must look like"):
        apply_overrides({}, ["nonsense"])
    with pytest.raises(ConfigError, match="'name' is not a section"):
        apply_overrides(to_dict(Outer()), ["name.x=1"])
    with pytest.raises(DataError, match="config file not found"):
        load_config(Outer, tmp_path / "missing.yaml")
    path.write_text("- a list\n")
    with pytest.raises(DataError, match="must hold a mapping"):
        load_config(Outer, path)


@dataclass(frozen=True)
class Renamed:
    inner: Inner = field(default_factory=Inner)
    other: Inner = field(default_factory=Inner)

    renamed_keys: ClassVar[dict[str, str]] = {"width": "inner.width and other.width"}


def test_aliases_are_copies_and_renamed_keys_are_named(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("inner: &shared\n  width: 4\nother: *shared\n")
    config = load_config(Renamed, path, ["inner.width=6"])  # one section only
    assert config.inner.width == 6 and config.other.width == 4
    with pytest.raises(ConfigError, match=r"^width is now inner\.width and other\.width$"):
        load_config(Renamed, path, ["width=3"])


def test_an_override_adds_a_missing_section():
    assert load_config(Outer, {"name": "x"}, ["inner.width=3"]).inner.width == 3
    with pytest.raises(ConfigError, match=r"unknown key\(s\) \['innr'\] for Outer"):
        load_config(Outer, {"name": "x"}, ["innr.width=3"])
