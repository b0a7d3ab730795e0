"""The release format of every model: reproducible bytes, checksums, and configs checked
against the weight file's header before the model is built."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import torch

from semtalk.errors import DataError
from semtalk.models.base_generator import BaseMotionGenerator
from semtalk.models.pretrained import CHECKSUMS_FILE, read_weight_header
from semtalk.training.presets import load_preset

SPEECH = 20


def _saved(folder: Path) -> Path:
    torch.manual_seed(0)
    config = load_preset("base_generator", "tiny", speech_dim=SPEECH, beat_dim=4)
    return BaseMotionGenerator(config).save_pretrained(folder)


def _header_metadata_keys(path: Path) -> list[str]:
    raw = path.read_bytes()
    header = json.loads(raw[8:8 + int.from_bytes(raw[:8], "little")])
    return list(header["__metadata__"])


def _edit_config(folder: Path, **sizes: int) -> None:
    """Change sizes in config.json and drop the checksums (an old or hand-edited folder)."""
    path = folder / "config.json"
    header = json.loads(path.read_text())
    header["config"]["sizes"].update(sizes)
    path.write_text(json.dumps(header))
    (folder / CHECKSUMS_FILE).unlink()


def test_saving_twice_gives_identical_bytes(tmp_path: Path) -> None:
    folders = [_saved(tmp_path / f"copy{i}") for i in range(6)]
    for name in ("config.json", "model.safetensors", CHECKSUMS_FILE):
        contents = {(f / name).read_bytes() for f in folders}
        assert len(contents) == 1, name
    keys = _header_metadata_keys(folders[0] / "model.safetensors")
    assert keys == sorted(keys) == ["format_version", "model"]


def test_checksums_cover_every_file_and_catch_a_flipped_bit(tmp_path: Path) -> None:
    folder = _saved(tmp_path / "base")
    (folder / "features.json").write_text("{}")
    record = json.loads((folder / CHECKSUMS_FILE).read_text())
    assert sorted(record["files"]) == ["config.json", "model.safetensors"]
    weights = folder / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-5] ^= 0x01  # one bit of one tensor: the header still parses
    weights.write_bytes(bytes(data))
    with pytest.raises(DataError, match=r"sha256 differs from checksums\.json") as info:
        BaseMotionGenerator.from_pretrained(folder)
    assert info.value.path == weights


def test_folder_without_checksums_still_loads(tmp_path: Path) -> None:
    folder = _saved(tmp_path / "base")
    (folder / CHECKSUMS_FILE).unlink()
    loaded = BaseMotionGenerator.from_pretrained(folder)
    assert isinstance(loaded, BaseMotionGenerator)


def test_absurd_layer_count_is_refused_within_a_second(tmp_path: Path) -> None:
    folder = _saved(tmp_path / "base")
    _edit_config(folder, self_layers=100_000)
    start = time.perf_counter()
    with pytest.raises(DataError, match=r"config\.sizes\.self_layers = 100000") as info:
        BaseMotionGenerator.from_pretrained(folder)
    assert time.perf_counter() - start < 1.0
    assert info.value.path == folder / "config.json"


def test_config_that_does_not_fit_the_weights_is_refused_before_the_model_is_built(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = _saved(tmp_path / "base")
    _edit_config(folder, feedforward=1_000_000)  # within bounds: ~4 GB per layer if built
    built: list[str] = []
    original = BaseMotionGenerator.__init__

    def spy(self: BaseMotionGenerator, config: object) -> None:
        built.append(str(torch.empty(0).device))
        original(self, config)  # type: ignore[arg-type]

    monkeypatch.setattr(BaseMotionGenerator, "__init__", spy)
    start = time.perf_counter()
    with pytest.raises(DataError, match=r"mis-shaped tensors \[") as info:
        BaseMotionGenerator.from_pretrained(folder)
    elapsed = time.perf_counter() - start
    assert built == ["meta"]  # only the shapes were built, never the real model
    assert elapsed < 1.0
    assert info.value.path == folder / "model.safetensors"
    assert "linear1.weight: file (" in str(info.value)


def test_truncated_weight_file_is_refused_from_its_header(tmp_path: Path) -> None:
    folder = _saved(tmp_path / "base")
    weights = folder / "model.safetensors"
    assert read_weight_header(weights)
    weights.write_bytes(weights.read_bytes()[:-100])
    with pytest.raises(DataError, match="truncated or padded file"):
        read_weight_header(weights)
