"""BEAT2 reader: the real clip loads; each broken input gives its own precise message."""

import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from semtalk.body.motion import Motion, read_motion_npz
from semtalk.data.beat2 import Beat2Dataset, parse_clip_id, speaker_class
from semtalk.data.semantic import SemanticSegment, write_semantic
from semtalk.errors import DataError, Severity

CLIP = "2_scott_0_1_1"


def test_real_clip_loads_and_is_cropped_to_common_length(beat2_root):
    ds = Beat2Dataset(beat2_root, speakers=[2])
    assert ds.ids == [CLIP]
    clip = ds.load(CLIP)
    assert clip.num_frames == 1906
    assert clip.audio.dtype == np.float32 and clip.audio.shape == (round(1906 * 16000 / 30),)
    assert len(clip.words) == 199 and clip.words[0].text == "the"
    assert clip.words[-1].end <= clip.duration
    assert clip.info.speaker_id == 2 and clip.info.speaker_class == 1
    assert clip.emotion == "neutral"
    mismatch = [i for i in clip.issues if "apart" in i.problem]
    assert len(mismatch) == 1 and "63.53 s and audio 64.10 s" in mismatch[0].problem
    assert mismatch[0].severity is Severity.WARNING
    missing = {i.path.parent.name for i in clip.issues if "no " in i.problem}
    assert missing == {"sem", "emo"} and clip.semantic_scores is None


def test_crop_in_whole_seconds_like_the_official_code(beat2_root):
    clip = Beat2Dataset(beat2_root, crop="seconds").load(CLIP)
    assert clip.num_frames == 63 * 30


def test_speaker_and_split_filters(beat2_root):
    assert len(Beat2Dataset(beat2_root, speakers=[3])) == 0
    assert len(Beat2Dataset(beat2_root, splits=["train"])) == 0
    assert len(Beat2Dataset(beat2_root, splits=None)) == 1
    with pytest.raises(ValueError, match="unknown split"):
        Beat2Dataset(beat2_root, splits=["dev"])


def test_speaker_ids():
    assert parse_clip_id("2_scott_0_1_1") == (2, "scott")
    assert [speaker_class(i) for i in (1, 2, 27, 28, 30)] == [0, 1, 19, 14, 8]
    with pytest.raises(ValueError, match="speaker id"):
        parse_clip_id("scott_0_1_1")


def test_nested_beat2_download_folder_is_found(tmp_path, beat2_sample, beat2_root_maker):
    beat2_root_maker(tmp_path / "BEAT2" / "beat_english_v2.0.0", beat2_sample)
    assert Beat2Dataset(tmp_path / "BEAT2").ids == [CLIP]


def replace_with_copy(path: Path) -> Path:
    target = path.resolve()
    path.unlink()
    shutil.copy(target, path)
    return path


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        (lambda r: (r / "wave16k" / f"{CLIP}.wav").unlink(), "audio file of clip .* not found"),
        (lambda r: (r / "smplxflame_30" / f"{CLIP}.npz").unlink(),
         "motion file of clip .* not found"),
        (lambda r: _overwrite(r / "wave16k" / f"{CLIP}.wav", b"RIFF\x00garbage"),
         "cannot decode audio"),
        (lambda r: _overwrite(r / "wave16k" / f"{CLIP}.wav", b""), "audio file is empty"),
        (lambda r: _overwrite(r / "smplxflame_30" / f"{CLIP}.npz", b"PK\x03\x04broken"),
         "not a readable .npz"),
        (lambda r: _patch_npz(r, poses_nan=True), "'poses' contains NaN values .* frame 5"),
        (lambda r: _patch_npz(r, drop="trans"), r"missing required key\(s\) \['trans'\]"),
        (lambda r: _patch_npz(r, short_exp=True), "'expressions' must have shape"),
        (lambda r: _patch_npz(r, fps=60), "mocap_frame_rate is 60"),
        (lambda r: _patch_npz(r, frames=900), "more than the allowed 2.00 s"),
        (lambda r: _overwrite(r / "textgrid" / f"{CLIP}.TextGrid", b"hello"),
         "not a Praat TextGrid"),
        (lambda r: _overwrite(r / "sem" / f"{CLIP}.txt", b"beat\t1.0\tabc\t0.5\t0.3\n",
                              mkdir=True), "line 1: start/end/score must be numbers"),
        (lambda r: _silent_nan_audio(r), "audio contains NaN"),
    ],
    ids=["no-audio", "no-motion", "corrupt-audio", "empty-audio", "corrupt-npz", "nan-poses",
         "missing-key", "bad-shape", "wrong-fps", "duration-mismatch", "bad-textgrid",
         "bad-sem", "nan-audio"],
)
def test_each_broken_input_names_file_and_problem(beat2_root, setup, message):
    setup(beat2_root)
    ds = Beat2Dataset(beat2_root)
    with pytest.raises(DataError, match=message) as info:
        ds.load(CLIP)
    assert str(info.value).startswith(str(beat2_root))


def _overwrite(path: Path, data: bytes, mkdir: bool = False) -> None:
    if mkdir:
        path.parent.mkdir(parents=True, exist_ok=True)
    if path.is_symlink():
        path.unlink()
    path.write_bytes(data)


def _patch_npz(root: Path, *, poses_nan=False, drop=None, short_exp=False, fps=30,
               frames=None, extra=None) -> None:
    path = root / "smplxflame_30" / f"{CLIP}.npz"
    data = dict(np.load(path.resolve()))
    if poses_nan:
        data["poses"][5, 7] = np.nan
    if drop:
        del data[drop]
    if short_exp:
        data["expressions"] = data["expressions"][:, :50]
    if frames:
        for key in ("poses", "expressions", "trans"):
            data[key] = data[key][:frames]
    if extra:
        data.update(extra)
    data["mocap_frame_rate"] = np.array(fps)
    path.unlink()
    np.savez(path, **data)


def _silent_nan_audio(root: Path) -> None:
    audio = np.zeros(16000 * 64, np.float32)
    audio[100] = np.nan
    path = root / "wave16k" / f"{CLIP}.wav"
    path.unlink()
    sf.write(path, audio, 16000, subtype="FLOAT")


def test_unknown_keys_warn_by_default_and_fail_when_strict(beat2_root):
    _patch_npz(beat2_root, extra={"poses_smoothed": np.zeros(3)})
    clip = Beat2Dataset(beat2_root).load(CLIP)
    assert any("unknown key(s) ['poses_smoothed']" in i.problem for i in clip.issues)
    with pytest.raises(DataError, match="unknown key"):
        Beat2Dataset(beat2_root, strict=True).load(CLIP)


def test_split_table_errors(tmp_path, beat2_sample, beat2_root_maker):
    root = beat2_root_maker(tmp_path / "r", beat2_sample)
    (root / "train_test_split.csv").unlink()
    with pytest.raises(DataError, match="split table not found"):
        Beat2Dataset(root)
    (root / "train_test_split.csv").write_text("name,kind\nx,train\n")
    with pytest.raises(DataError, match="columns 'id' and 'type'"):
        Beat2Dataset(root)
    (root / "train_test_split.csv").write_text(f"id,type\n{CLIP},dev\n")
    with pytest.raises(DataError, match="line 2: unknown split 'dev'"):
        Beat2Dataset(root)
    (root / "train_test_split.csv").write_text(f"id,type\n{CLIP},train\n{CLIP},test\n")
    with pytest.raises(DataError, match="listed twice"):
        Beat2Dataset(root)
    with pytest.raises(DataError, match="dataset root not found"):
        Beat2Dataset(tmp_path / "missing")


def test_audio_of_any_rate_and_channels_is_converted(beat2_root):
    path = beat2_root / "wave16k" / f"{CLIP}.wav"
    mono, _ = sf.read(path.resolve(), dtype="float32")
    path.unlink()
    stereo = np.stack([mono, mono], axis=1)
    from scipy.signal import resample_poly

    sf.write(path, resample_poly(stereo, 441, 160, axis=0), 44100, subtype="PCM_16")
    clip = Beat2Dataset(beat2_root).load(CLIP)
    reference = mono[: clip.audio.shape[0]]
    assert clip.audio.shape == (round(1906 * 16000 / 30),)
    assert np.corrcoef(clip.audio, reference)[0, 1] > 0.99


def test_semantic_scores_follow_the_sem_rules(beat2_root):
    segments = [SemanticSegment("deictic", 1.0, 2.0, 0.8),
                SemanticSegment("beat", 1.5, 3.0, 0.6),   # overlapped: first row wins
                SemanticSegment("weak", 4.0, 5.0, 0.1)]   # <= 0.1 counts as none
    (beat2_root / "sem").mkdir()
    write_semantic(beat2_root / "sem" / f"{CLIP}.txt", segments)
    scores = Beat2Dataset(beat2_root).load(CLIP).semantic_scores
    assert scores.shape == (1906,)
    assert scores[30] == pytest.approx(0.8) and scores[60] == pytest.approx(0.8)
    assert scores[61] == pytest.approx(0.6) and scores[90] == pytest.approx(0.6)
    assert scores[29] == 0 and scores[91] == 0 and scores[120:151].max() == 0


def test_motion_npz_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    motion = Motion(rng.normal(size=(10, 165)), rng.normal(size=(10, 100)),
                    rng.normal(size=(10, 3)))
    path = motion.save_npz(tmp_path / "m.npz")
    back, issues = read_motion_npz(path)
    assert issues == []
    assert np.array_equal(back.poses, motion.poses) and np.array_equal(back.trans, motion.trans)
    with np.load(path) as data:
        assert data["poses"].dtype == np.float32 and data["expressions"].dtype == np.float64
        assert str(data["model"]) == "smplx2020" and int(data["mocap_frame_rate"]) == 30
    assert not list(tmp_path.glob(".*tmp*"))  # atomic write left no temporary file


def test_directory_instead_of_file(tmp_path):
    with pytest.raises(DataError, match="is a directory"):
        read_motion_npz(tmp_path)
