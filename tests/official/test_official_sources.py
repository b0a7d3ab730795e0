"""Finding, verifying and reading the official weight files (semtalk.official.sources)."""

from __future__ import annotations

import hashlib
import io
import os
import pickle
import re
import subprocess
import sys
import zipfile
from collections import OrderedDict
from pathlib import Path

import pytest
import torch

from semtalk.errors import DataError
from semtalk.official.sources import (
    OFFICIAL_FILES,
    load_official_state_dict,
    open_official_source,
)

SHARED = Path(__file__).resolve().parents[2].parent / "shared"
FIXTURE_SCRIPT = SHARED / "official-fixture" / "make_checkpoints.py"

# Official relative paths (as the releases and the fixture lay them out).
LAYOUT = {
    "rvq_face_600.bin": "weights/pretrained_vq/rvq_face_600.bin",
    "rvq_upper_500.bin": "weights/pretrained_vq/rvq_upper_500.bin",
    "rvq_hands_500.bin": "weights/pretrained_vq/rvq_hands_500.bin",
    "rvq_lower_600.bin": "weights/pretrained_vq/rvq_lower_600.bin",
    "last_1700_foot.bin": "weights/pretrained_vq/last_1700_foot.bin",
    "best_semtalk_base.bin": "weights/best_semtalk_base.bin",
    "best_semtalk_sparse.bin": "weights/best_semtalk_sparse.bin",
    "vocab.pkl": "BEAT2/beat_english_v2.0.0/weights/vocab.pkl",
}
VOCAB_BYTES = b"VOCAB-PLACEHOLDER-" * 64


def fake_bin(index: int) -> bytes:
    """A tiny official-format checkpoint (prefixed keys); its bytes."""
    state = OrderedDict([("module.layer.weight", torch.full((2, 3), float(index))),
                         ("module.layer.bias", torch.arange(3, dtype=torch.float32) + index)])
    buffer = io.BytesIO()
    torch.save({"model_state": state}, buffer)
    return buffer.getvalue()


def official_files() -> dict[str, bytes]:
    """Bytes of every required file, keyed by the official relative path."""
    files = {}
    for index, (name, rel) in enumerate(LAYOUT.items()):
        files[rel] = VOCAB_BYTES if name == "vocab.pkl" else fake_bin(index)
    return files


def sums_text(files: dict[str, bytes], prefix: str = "", star: bool = False) -> str:
    """A SHA256SUMS listing of ``files`` (paths relative to the listing's folder)."""
    sep = " *" if star else "  "
    return "".join(f"{hashlib.sha256(data).hexdigest()}{sep}{prefix}{rel}\n"
                    for rel, data in files.items())


def write_folder(root: Path, files: dict[str, bytes]) -> Path:
    """Write ``files`` (relative path -> bytes) under ``root``."""
    for rel, data in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return root


def write_zip(path: Path, files: dict[str, bytes],
              compression: int = zipfile.ZIP_DEFLATED) -> Path:
    """A zip holding ``files`` (member name -> bytes)."""
    with zipfile.ZipFile(path, "w", compression=compression) as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return path


def nested(files: dict[str, bytes], top: str) -> dict[str, bytes]:
    """``files`` moved under the folder ``top``."""
    return {f"{top}/{rel}": data for rel, data in files.items()}


# ------------------------------------------------------------------------------ discovery


def test_folder_found_at_any_depth_hashed_in_place(tmp_path: Path) -> None:
    files = official_files()
    root = write_folder(tmp_path / "dl", nested(files, "a/b/c"))
    with open_official_source(root) as source:
        assert list(source.paths) == list(OFFICIAL_FILES)
        assert source.origin == str(root)
        assert source.checked_sums is False
        for name, rel in LAYOUT.items():
            assert source.member_names[name] == f"a/b/c/{rel}"
            assert source.paths[name] == root / "a/b/c" / rel  # in place, not copied
            assert source.sha256[name] == hashlib.sha256(files[rel]).hexdigest()


def test_zip_found_at_any_depth_extracted_to_temp_and_removed(tmp_path: Path) -> None:
    files = official_files()
    members = nested(files, "weights_semtalk_no_smplx/deeper")
    members["weights_semtalk_no_smplx/README.txt"] = b"not needed"
    zpath = write_zip(tmp_path / "weights_semtalk_no_smplx.zip", members)
    work = tmp_path / "work"
    work.mkdir()
    with open_official_source(zpath, work_dir=work) as source:
        assert source.origin == str(zpath)
        assert source.checked_sums is False
        temp_dirs = {path.parent for path in source.paths.values()}
        assert len(temp_dirs) == 1
        temp_dir = temp_dirs.pop()
        assert temp_dir.parent == work
        # only the 8 required files were extracted, flat, by base name
        assert sorted(p.name for p in temp_dir.iterdir()) == sorted(OFFICIAL_FILES)
        for name, rel in LAYOUT.items():
            assert source.member_names[name] == f"weights_semtalk_no_smplx/deeper/{rel}"
            assert source.paths[name].read_bytes() == files[rel]
            assert source.sha256[name] == hashlib.sha256(files[rel]).hexdigest()
    assert not temp_dir.exists()
    assert list(work.iterdir()) == []


def test_temp_dir_removed_when_the_block_raises(tmp_path: Path) -> None:
    zpath = write_zip(tmp_path / "w.zip", official_files())
    with pytest.raises(KeyError), open_official_source(zpath, work_dir=tmp_path) as source:
        temp_dir = source.paths["vocab.pkl"].parent
        raise KeyError("boom")
    assert not temp_dir.exists()


def test_duplicate_name_lists_both_locations(tmp_path: Path) -> None:
    files = official_files()
    files["other/copy/best_semtalk_base.bin"] = fake_bin(99)
    for src in (write_folder(tmp_path / "dir", files), write_zip(tmp_path / "d.zip", files)):
        with pytest.raises(DataError) as info, open_official_source(src):
            pass
        message = str(info.value)
        assert message.startswith(str(src))
        assert "found 2 times" in message
        assert "weights/best_semtalk_base.bin" in message
        assert "other/copy/best_semtalk_base.bin" in message


def test_missing_name_lists_what_was_found(tmp_path: Path) -> None:
    files = official_files()
    del files[LAYOUT["best_semtalk_sparse.bin"]]
    del files[LAYOUT["vocab.pkl"]]
    for src in (write_folder(tmp_path / "dir", files), write_zip(tmp_path / "m.zip", files)):
        with pytest.raises(DataError) as info, open_official_source(src):
            pass
        message = str(info.value)
        assert "missing" in message
        assert "best_semtalk_sparse.bin (sparse (semantic) motion generator): missing" in message
        assert "vocab.pkl (word vocabulary): missing" in message
        assert f"rvq_face_600.bin (face RVQ-VAE tokenizer): {LAYOUT['rvq_face_600.bin']}" \
            in message
        assert "weights_semtalk_no_smplx.zip" in message
        assert "SemTalk_all_speakers_weights_25spk.zip" in message


def test_missing_path_and_non_zip_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="not found"), open_official_source(tmp_path / "nope"):
        pass
    other = tmp_path / "weights.tar"
    other.write_bytes(b"not a zip")
    with pytest.raises(DataError, match=r"neither a \.zip nor a folder"), \
            open_official_source(other):
        pass


# ------------------------------------------------------------------------------ zip safety


def test_zip_member_escaping_is_rejected_and_nothing_written(tmp_path: Path) -> None:
    files = official_files()
    del files[LAYOUT["best_semtalk_base.bin"]]
    files["../../evil/best_semtalk_base.bin"] = fake_bin(7)
    outer = tmp_path / "outer"
    inner = outer / "inner"
    inner.mkdir(parents=True)
    zpath = write_zip(inner / "evil.zip", files)
    work = inner / "work"
    work.mkdir()
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    with pytest.raises(DataError) as info, open_official_source(zpath, work_dir=work):
        pass
    message = str(info.value)
    assert "unsafe" in message
    assert "../../evil/best_semtalk_base.bin" in message
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before
    assert not (tmp_path / "evil").exists() and not (outer / "evil").exists()


def test_absolute_required_member_is_rejected(tmp_path: Path) -> None:
    files = official_files()
    del files[LAYOUT["vocab.pkl"]]
    files["/etc/vocab.pkl"] = VOCAB_BYTES
    zpath = write_zip(tmp_path / "abs.zip", files)
    with pytest.raises(DataError, match="unsafe"), open_official_source(zpath, work_dir=tmp_path):
        pass


def test_unsafe_member_with_other_name_is_ignored(tmp_path: Path) -> None:
    files = official_files()
    files["../../evil/README.txt"] = b"ignored"
    zpath = write_zip(tmp_path / "ok.zip", files)
    with open_official_source(zpath, work_dir=tmp_path) as source:
        assert set(source.paths) == set(OFFICIAL_FILES)
    assert not (tmp_path.parent / "evil").exists()


def test_corrupt_zip_names_the_zip(tmp_path: Path) -> None:
    zpath = tmp_path / "weights_semtalk_no_smplx.zip"
    zpath.write_bytes(b"PK\x03\x04 this is not really a zip" * 10)
    with pytest.raises(DataError) as info, open_official_source(zpath, work_dir=tmp_path):
        pass
    assert str(info.value).startswith(str(zpath))
    assert "not a readable zip" in str(info.value)


def test_crc_error_names_the_zip_and_member(tmp_path: Path) -> None:
    zpath = write_zip(tmp_path / "crc.zip", official_files(), compression=zipfile.ZIP_STORED)
    data = bytearray(zpath.read_bytes())
    at = data.index(VOCAB_BYTES) + 100
    data[at] ^= 0xFF
    zpath.write_bytes(bytes(data))
    work = tmp_path / "work"
    work.mkdir()
    with pytest.raises(DataError) as info, open_official_source(zpath, work_dir=work):
        pass
    message = str(info.value)
    assert message.startswith(str(zpath))
    assert LAYOUT["vocab.pkl"] in message
    assert "CRC" in message
    assert list(work.iterdir()) == []


# ------------------------------------------------------------------------------ SHA256SUMS


@pytest.mark.parametrize("as_zip", [False, True])
def test_sums_verified(tmp_path: Path, as_zip: bool) -> None:
    files = official_files()
    listed = dict(files)
    listed["weights/some_other_speaker.bin"] = b"not shipped here"  # ignored
    members = nested(files, "SemTalk_all")
    members["SemTalk_all/SHA256SUMS"] = sums_text(listed, star=True).encode()
    src = (write_zip(tmp_path / "SemTalk_all_speakers_weights_25spk.zip", members) if as_zip
           else write_folder(tmp_path / "dir", members))
    with open_official_source(src, work_dir=tmp_path) as source:
        assert source.checked_sums is True


@pytest.mark.parametrize("as_zip", [False, True])
def test_sums_mismatch_names_file_expected_and_actual(tmp_path: Path, as_zip: bool) -> None:
    files = official_files()
    members = dict(files)
    wrong = "0" * 64
    text = sums_text(files).replace(
        hashlib.sha256(files[LAYOUT["rvq_hands_500.bin"]]).hexdigest(), wrong)
    members["SHA256SUMS"] = text.encode()
    src = (write_zip(tmp_path / "w.zip", members) if as_zip
           else write_folder(tmp_path / "dir", members))
    with pytest.raises(DataError) as info, open_official_source(src, work_dir=tmp_path):
        pass
    message = str(info.value)
    actual = hashlib.sha256(files[LAYOUT["rvq_hands_500.bin"]]).hexdigest()
    assert "rvq_hands_500.bin" in message
    assert wrong in message and actual in message


def test_sums_listed_from_a_parent_folder_match_by_base_name(tmp_path: Path) -> None:
    files = official_files()
    members = nested(files, "x/y")
    members["SHA256SUMS"] = sums_text(files, prefix="elsewhere/").encode()
    src = write_folder(tmp_path / "dir", members)
    with open_official_source(src) as source:
        assert source.checked_sums is True


def test_malformed_sums_is_an_error(tmp_path: Path) -> None:
    members = official_files()
    members["SHA256SUMS"] = b"this is not a digest line\n"
    src = write_folder(tmp_path / "dir", members)
    with pytest.raises(DataError, match="line 1"), open_official_source(src):
        pass


# ------------------------------------------------------------------------------ state dicts


def save(path: Path, obj: object) -> Path:
    """``torch.save`` ``obj`` to ``path``."""
    torch.save(obj, path)
    return path


def test_module_prefix_stripped_and_order_kept(tmp_path: Path) -> None:
    keys = ["mask_embeddings", "b.module.weight", "a.weight", "module.x"]
    state = OrderedDict((f"module.{k}", torch.full((1,), float(i))) for i, k in enumerate(keys))
    loaded = load_official_state_dict(save(tmp_path / "p.bin", {"model_state": state}))
    assert list(loaded) == keys
    assert all(loaded[k].item() == i for i, k in enumerate(keys))


def test_no_prefix_kept_as_is(tmp_path: Path) -> None:
    state = OrderedDict([("z", torch.zeros(1)), ("a", torch.ones(2))])
    loaded = load_official_state_dict(save(tmp_path / "p.bin", {"model_state": state}))
    assert list(loaded) == ["z", "a"]


def test_mixed_prefix_rejected_with_examples(tmp_path: Path) -> None:
    state = OrderedDict([("module.a", torch.zeros(1)), ("b", torch.zeros(1))])
    path = save(tmp_path / "mixed.bin", {"model_state": state})
    with pytest.raises(DataError) as info:
        load_official_state_dict(path)
    message = str(info.value)
    assert message.startswith(str(path))
    assert "'module.a'" in message and "'b'" in message


@pytest.mark.parametrize("container, expect", [
    ({"state_dict": OrderedDict(a=torch.zeros(1))}, "'state_dict'"),
    ({"model_state": OrderedDict(a=torch.zeros(1)), "epoch": 3}, "'epoch'"),
    (OrderedDict(a=torch.zeros(1)), "'a'"),
    ([torch.zeros(1)], "holds a list"),
    ({"model_state": {"a": 3}}, "expected str -> Tensor"),
    ({"model_state": torch.zeros(1)}, "is a Tensor"),
    ({"model_state": OrderedDict()}, "empty"),
])
def test_wrong_container_rejected(tmp_path: Path, container: object, expect: str) -> None:
    path = save(tmp_path / "c.bin", container)
    with pytest.raises(DataError) as info:
        load_official_state_dict(path)
    assert str(info.value).startswith(str(path))
    assert expect in str(info.value)


def test_non_torch_and_truncated_files(tmp_path: Path) -> None:
    text = tmp_path / "notes.bin"
    text.write_text("definitely not a checkpoint\n")
    with pytest.raises(DataError, match="cannot be read as a torch checkpoint") as info:
        load_official_state_dict(text)
    assert str(info.value).startswith(str(text))
    good = save(tmp_path / "good.bin", {"model_state": OrderedDict(a=torch.zeros(1000))})
    cut = tmp_path / "cut.bin"
    cut.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(DataError, match=re.escape(str(cut))):
        load_official_state_dict(cut)
    empty = tmp_path / "empty.bin"
    empty.write_bytes(b"")
    with pytest.raises(DataError, match="empty"):
        load_official_state_dict(empty)


class _Exploit:
    """Unpickles to a call of os.system (a malicious checkpoint)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return os.system, (f"touch {self.marker}",)


def test_malicious_pickle_refused_without_executing(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    path = save(tmp_path / "evil.bin",
                {"model_state": OrderedDict(a=torch.zeros(1)), "x": _Exploit(marker)})
    raw = tmp_path / "evil_raw.bin"
    raw.write_bytes(pickle.dumps(_Exploit(marker), protocol=2))
    for bad in (path, raw):
        with pytest.raises(DataError) as info:
            load_official_state_dict(bad)
        message = str(info.value)
        assert message.startswith(str(bad))
        assert "refused" in message and "nothing was executed" in message
        assert "system" in message
    assert not marker.exists()


def test_real_fixture_format(tmp_path: Path) -> None:
    if not FIXTURE_SCRIPT.is_file():
        pytest.skip(f"official fixture not found at {FIXTURE_SCRIPT} (it lives in ../shared "
                    "beside the repository)")
    subprocess.run([sys.executable, str(FIXTURE_SCRIPT), str(tmp_path), "--only",
                    "rvq_face_600.bin"], check=True, capture_output=True)
    path = tmp_path / "weights" / "pretrained_vq" / "rvq_face_600.bin"
    state = load_official_state_dict(path)
    assert len(state) == 72
    assert not any(key.startswith("module.") for key in state)
    assert all(t.device.type == "cpu" for t in state.values())
