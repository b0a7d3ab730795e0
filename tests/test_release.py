"""The release contract: FeatureSpec on disk, the compatibility check, atomic publishing."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from semtalk.errors import DataError
from semtalk.models.pretrained import write_checksums
from semtalk.models.tokenizer import MotionTokenizer
from semtalk.release import (
    FEATURES_FILE,
    MANIFEST,
    STAGES,
    FeatureSpec,
    IncompatibleStagesError,
    Manifest,
    Release,
    assemble_release,
    check_compatible,
    copy_folder,
    publish,
)
from semtalk.training.presets import load_preset


def spec_dict() -> dict:
    identity = {"name": "x", "version": 1, "dim": 4, "config": {"n_mels": 128}}
    return {"speech_feature": "spectral",
            "audio_features": {"beat": dict(identity, name="beat"), "spectral": identity},
            "window_features": {"sentence": {"config": {"encoder": "pooled"}},
                                "emotion": {"config": {"method": "prosody"}}},
            "window": 64, "hop": 4, "body_model": "builtin", "cache_fingerprint": "abc"}


# ---------------------------------------------------------------------------- FeatureSpec
def test_feature_spec_round_trips_the_json_byte_for_byte(tiny_release: Path,
                                                         tmp_path: Path) -> None:
    for stage in ("base", "sparse"):
        path = tiny_release / stage / FEATURES_FILE
        spec = FeatureSpec.load(path)
        assert spec.source == str(path) and spec.speech_feature == "spectral"
        assert spec.to_dict() == json.loads(path.read_text())
        written = spec.save(tmp_path / stage)  # a folder: features.json inside
        assert written.read_bytes() == path.read_bytes()
        assert FeatureSpec.load(tmp_path / stage) == spec
    assert FeatureSpec.from_dict(spec_dict()).to_dict() == spec_dict()


@pytest.mark.parametrize(("change", "says"), [
    (lambda d: d.pop("hop"), r"missing \['hop'\]"),
    (lambda d: d.update(extra=1), r"unknown keys \['extra'\]"),
    (lambda d: d.update(window=0), "window must be an integer >= 1, got 0"),
    (lambda d: d.update(hop="4"), "hop must be an integer"),
    (lambda d: d.update(speech_feature="hubert"), "audio_features lacks 'hubert'"),
    (lambda d: d["window_features"].pop("emotion"), "window_features lacks 'emotion'"),
    (lambda d: d.update(audio_features=[]), "audio_features must map names"),
])
def test_feature_spec_validates(change, says: str, tmp_path: Path) -> None:
    data = spec_dict()
    change(data)
    path = tmp_path / FEATURES_FILE
    path.write_text(json.dumps(data))
    with pytest.raises(DataError, match=says) as error:
        FeatureSpec.load(path)
    assert error.value.path == path  # the message names the file


def test_unreadable_features_name_the_file(tmp_path: Path) -> None:
    path = tmp_path / FEATURES_FILE
    with pytest.raises(DataError, match="not found"):
        FeatureSpec.load(path)
    path.write_text("{")
    with pytest.raises(DataError, match="cannot read"):
        FeatureSpec.load(path)
    path.write_text("[]")
    with pytest.raises(DataError, match="expected an object"):
        FeatureSpec.load(path)


# ---------------------------------------------------------------------------- compatibility
def test_check_compatible_lists_every_difference(tmp_path: Path) -> None:
    tokenizer = MotionTokenizer.from_config(load_preset("tokenizer", "tiny"))
    base = load_preset("base_generator", "tiny", speech_dim=32, beat_dim=4)
    sparse = load_preset("sparse_generator", "tiny", speech_dim=32, vocab_size=10,
                         sentence_dim=8, emotion_dim=8)
    check_compatible(tmp_path, "these", codes=base.codes, base=base, sparse=sparse)
    other_base = load_preset("base_generator", "tiny", speech_dim=16, beat_dim=4,
                             num_speakers=7)
    changed = spec_dict()
    changed["audio_features"]["spectral"]["config"]["n_mels"] = 64
    base_features = FeatureSpec.from_dict(changed, tmp_path / "base" / FEATURES_FILE)
    features = FeatureSpec.from_dict(spec_dict(), tmp_path / "sparse" / FEATURES_FILE)
    with pytest.raises(IncompatibleStagesError) as error:
        check_compatible(tmp_path / "release", "the stages of this release",
                         codes=tokenizer.code_spec, base=other_base, sparse=sparse,
                         base_features=base_features, features=features)
    message = str(error.value)
    assert error.value.path == tmp_path / "release"
    assert "the stages of this release do not fit together: " in message
    assert "num_speakers: base 7 vs sparse 25" in message
    assert "speech_dim: base 16 vs sparse 32" in message
    assert (f"audio_features.spectral.config.n_mels: {tmp_path / 'base' / FEATURES_FILE} has "
            f"64, needed 128 (in {tmp_path / 'sparse' / FEATURES_FILE})") in message


def test_release_with_stages_on_other_features_is_refused(tiny_release: Path,
                                                          tmp_path: Path) -> None:
    folder = Path(shutil.copytree(tiny_release, tmp_path / "release"))
    path = folder / "base" / FEATURES_FILE
    data = json.loads(path.read_text())
    data["audio_features"]["beat"]["version"] = "other"
    path.write_text(json.dumps(data))
    write_checksums(path.parent)  # re-recorded: the compatibility check itself must refuse
    with pytest.raises(IncompatibleStagesError,
                       match=r"do not fit together: audio_features\.beat\.version: .*base"):
        Release.load(folder)


# ---------------------------------------------------------------------------- publish
def test_publish_replaces_a_folder_whole(tmp_path: Path) -> None:
    out = tmp_path / "release"

    def fill(version: str):
        def write(staging: Path) -> None:
            (staging / "sub").mkdir()
            (staging / "sub" / "file.txt").write_text(version)
        return write

    assert publish(out, fill("v1")) == out
    assert (out / "sub" / "file.txt").read_text() == "v1"
    publish(out, fill("v2"))
    assert (out / "sub" / "file.txt").read_text() == "v2"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["release"]  # no temporary left


@pytest.mark.parametrize("fails_in", ["fill", "verify"])
def test_a_failed_publish_leaves_no_partial_release(tmp_path: Path, fails_in: str) -> None:
    out = tmp_path / "release"
    publish(out, lambda s: (s / "old.txt").write_text("old"))

    def fill(staging: Path) -> None:
        (staging / "half.txt").write_text("half")
        if fails_in == "fill":
            raise RuntimeError("killed")

    def verify(staging: Path) -> None:
        raise DataError(staging, "does not load")

    with pytest.raises((RuntimeError, DataError)):
        publish(out, fill, verify)
    assert sorted(p.name for p in out.iterdir()) == ["old.txt"]  # untouched
    assert sorted(p.name for p in tmp_path.iterdir()) == ["release"]
    with pytest.raises(RuntimeError):
        publish(tmp_path / "new", lambda s: (_ for _ in ()).throw(RuntimeError("x")))
    assert not (tmp_path / "new").exists()


def test_a_failed_final_rename_puts_the_old_folder_back(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "release"
    publish(out, lambda s: (s / "old.txt").write_text("old"))
    real_replace = os.replace

    def replace(source: object, target: object) -> None:
        if Path(str(source)).name.endswith(".tmp"):  # the staged folder's rename fails
            raise OSError(28, "No space left on device")
        real_replace(source, target)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(OSError, match="No space"):
        publish(out, lambda s: (s / "new.txt").write_text("new"))
    assert sorted(p.name for p in out.iterdir()) == ["old.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["release"]


def test_publish_removes_what_a_killed_writer_left(tmp_path: Path) -> None:
    (tmp_path / ".stage.abc123.tmp").mkdir()
    (tmp_path / ".other.abc123.tmp").mkdir()
    publish(tmp_path / "stage", copy_folder(tmp_path / ".other.abc123.tmp"))
    assert sorted(p.name for p in tmp_path.iterdir()) == [".other.abc123.tmp", "stage"]


def test_assemble_release_checks_before_it_publishes(tiny_release: Path, tmp_path: Path) -> None:
    stages = {s: tmp_path / "stages" / s for s in STAGES}
    for name, folder in stages.items():
        shutil.copytree(tiny_release / name, folder)
    release = assemble_release(tmp_path / "out", **stages, speakers={1: 2})
    assert Manifest.load(release).speakers == {1: 2}
    assert json.loads((release / MANIFEST).read_text())["format"] == 1
    (stages["sparse"] / "vocab.json").write_text(json.dumps(["<pad>"]))
    with pytest.raises(DataError):
        assemble_release(tmp_path / "broken", **stages)
    assert not (tmp_path / "broken").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "stages"]


def _write_manifest(folder: Path, **changes: object) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    data = {**Manifest(speakers={0: 2}).to_dict(), **changes}
    (folder / "semtalk.json").write_text(json.dumps(data))
    return folder / "semtalk.json"


@pytest.mark.parametrize("speakers", [["2"], {"zero": 2}, {"0": None}, "2"])
def test_a_malformed_speakers_map_names_the_manifest(tmp_path: Path, speakers: object) -> None:
    path = _write_manifest(tmp_path / "release", speakers=speakers)
    with pytest.raises(DataError, match=rf"{path}: 'speakers' must map speaker classes"):
        Manifest.load(tmp_path / "release")


def test_a_release_by_a_newer_semtalk_warns(tmp_path: Path) -> None:
    from semtalk.constants import __version__

    major, minor, *_ = __version__.split(".")
    _write_manifest(tmp_path / "same", semtalk_version=__version__)
    _write_manifest(tmp_path / "older", semtalk_version="0.0.1")
    path = _write_manifest(tmp_path / "newer", semtalk_version=f"{major}.{int(minor) + 1}.0rc1")
    with pytest.warns(UserWarning, match=rf"{path}: written by semtalk {major}\.{int(minor) + 1}"
                                         rf"\.0rc1, newer than this semtalk"):
        assert Manifest.load(tmp_path / "newer") is not None
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert Manifest.load(tmp_path / "same").speakers == {0: 2}
        assert Manifest.load(tmp_path / "older").semtalk_version == "0.0.1"
