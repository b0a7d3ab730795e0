"""The SHOW reader: restricted unpickling, conversion to the BEAT2 schema, splits, inspect."""

from __future__ import annotations

import json
import os
import pickle
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

sys.path.insert(0, str(Path(__file__).parent))
from show_fixtures import show_record, write_show_clip

from semtalk.cli import main
from semtalk.data.show import (
    RefusedGlobalError,
    ShowDataset,
    is_show_root,
    load_hand_components,
    read_show_pkl,
)
from semtalk.errors import DataError

VIDEO = "Light_as_a_Wave-e27ZIIsvuys.mkv"
CLIPS = [("chemistry", VIDEO, "68991-00_00_23-00_00_26"),
         ("chemistry", VIDEO, "68992-00_00_30-00_00_33"),
         ("seth", "A_Closer_Look-irw3YQxiUOs.webm", "98201-00_04_32-00_04_35")]


@pytest.fixture()
def show_root(tmp_path: Path) -> Path:
    root = tmp_path / "show"
    for seed, (speaker, video, clip) in enumerate(CLIPS):
        write_show_clip(root, speaker, video, clip, frames=90, seed=seed)
    return root


@pytest.fixture()
def hands_npz(tmp_path: Path) -> Path:
    rng = np.random.default_rng(7)
    path = tmp_path / "SMPLX_NEUTRAL_2020.npz"
    np.savez(path, hands_componentsl=rng.standard_normal((45, 45)),
             hands_componentsr=rng.standard_normal((45, 45)),
             hands_meanl=np.zeros(45), hands_meanr=np.zeros(45))
    return path


def test_pkl_round_trip_with_torch_tensors(show_root: Path) -> None:
    path = show_root / CLIPS[0][0] / CLIPS[0][1] / CLIPS[0][2] / f"{CLIPS[0][2]}.pkl"
    raw = path.read_bytes()
    assert b"_rebuild_tensor_v2" in raw and b"_load_from_bytes" in raw  # real torch globals
    data = read_show_pkl(path)
    expected = show_record(90, seed=0)
    for key, value in expected.items():
        if isinstance(value, np.ndarray):
            np.testing.assert_array_equal(data[key], value)
            assert data[key].dtype == value.dtype
    assert data["width"] == 1280 and data["center"] == [640.0, 360.0]
    losses = data["losses_to_log"]
    assert isinstance(losses["loss_total"], np.ndarray) and float(losses["loss_total"]) == 1.25
    np.testing.assert_array_equal(losses["loss_matrix"], np.arange(6.0).reshape(2, 3).T)


class _Evil:
    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (os.system, ("touch pwned",))


def test_malicious_global_is_refused_and_nothing_runs(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    record = show_record(4)
    record["evil"] = _Evil()
    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps(record, protocol=2))
    with pytest.raises(RefusedGlobalError) as info:
        read_show_pkl(path)
    assert str(path) in str(info.value) and "system" in str(info.value)
    assert not (tmp_path / "pwned").exists()


def test_no_split_file_puts_every_clip_in_train(show_root: Path) -> None:
    dataset = ShowDataset(show_root)
    assert [c.key for c in dataset] == sorted(f"{s}/{v}/{c}" for s, v, c in CLIPS)
    assert {c.split for c in dataset} == {"train"}
    assert any("no split file" in w for w in dataset.warnings)
    assert dataset.speakers == ["chemistry", "seth"]
    assert is_show_root(show_root)


def test_split_file_assigns_and_filters(show_root: Path, tmp_path: Path) -> None:
    keys = [f"{s}/{v}/{c}" for s, v, c in CLIPS]
    split_file = tmp_path / "train_val_test.json"
    split_file.write_text(json.dumps({"train": [keys[0]], "test": [keys[2], "oliver/x/y"]}))
    dataset = ShowDataset(show_root, split_file=split_file)
    assert {c.key: c.split for c in dataset} == {keys[0]: "train", keys[2]: "test"}
    assert any("not in the split file" in w for w in dataset.warnings)
    assert any("not on disk" in w for w in dataset.warnings)
    assert [c.key for c in ShowDataset(show_root, split_file=split_file, splits=["test"])] \
        == [keys[2]]
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"train": ["no-slashes"]}))
    with pytest.raises(DataError, match="speaker/video_fn/clip"):
        ShowDataset(show_root, split_file=bad)


def test_motion_needs_the_hand_components(show_root: Path) -> None:
    dataset = ShowDataset(show_root)
    with pytest.raises(DataError, match="hand PCA components") as info:
        dataset.load_motion(dataset.clips[0])
    assert dataset.clips[0].motion_path.name in str(info.value)
    assert dataset.load_audio(dataset.clips[0]).shape == (48000,)  # audio-only work still runs


def test_motion_conversion(show_root: Path, hands_npz: Path) -> None:
    dataset = ShowDataset(show_root, body_model=hands_npz)
    info = dataset.clips[0]
    motion = dataset.load_motion(info)
    record = show_record(90, seed=0)
    hands = load_hand_components(hands_npz)
    assert motion.poses.shape == (90, 165) and motion.fps == 30
    np.testing.assert_allclose(motion.poses[:, :3], record["global_orient"].reshape(90, 3))
    np.testing.assert_allclose(motion.poses[:, 3:66], record["body_pose_axis"])
    np.testing.assert_allclose(motion.poses[:, 66:69], record["jaw_pose"])
    np.testing.assert_allclose(motion.poses[:, 69:72], record["leye_pose"])
    np.testing.assert_allclose(motion.poses[:, 72:75], record["reye_pose"])
    np.testing.assert_allclose(motion.poses[:, 75:120],
                               record["left_hand_pose"] @ hands.left[:12], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(motion.poses[:, 120:],
                               record["right_hand_pose"] @ hands.right[:12], rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(motion.expressions, record["expression"])
    np.testing.assert_array_equal(motion.trans, record["transl"])
    np.testing.assert_array_equal(motion.betas, record["betas"][0])


def test_audio_is_16k_mono(show_root: Path) -> None:
    dataset = ShowDataset(show_root)
    info = dataset.clips[0]
    stereo, rate = sf.read(info.audio_path, dtype="int16")
    assert rate == 22000 and stereo.ndim == 2
    audio = dataset.load_audio(info)
    assert audio.dtype == np.float32 and audio.ndim == 1 and len(audio) == 3 * 16000


def test_missing_key_is_an_error_naming_the_file(tmp_path: Path) -> None:
    record = show_record(10)
    del record["transl"]
    path = tmp_path / "a" / "v" / "c" / "c.pkl"
    path.parent.mkdir(parents=True)
    path.write_bytes(pickle.dumps(record, protocol=2))
    dataset = ShowDataset(tmp_path)
    check = dataset.check(dataset.clips[0])
    assert not check.ok and "transl" in str(check.issues[0]) and str(path) in str(check.issues[0])


def test_inspect_recognises_a_show_root(show_root: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["inspect", str(show_root)]) == 0
    out = capsys.readouterr().out
    assert "SHOW layout" in out and "chemistry" in out and "seth" in out
    broken = show_root / CLIPS[2][0] / CLIPS[2][1] / CLIPS[2][2] / f"{CLIPS[2][2]}.wav"
    broken.unlink()
    assert main(["inspect", str(show_root)]) == 1
    assert "audio file not found" in capsys.readouterr().out
