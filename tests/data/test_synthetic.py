"""The synthetic speaker: BEAT2 layout, ground truth that means something, determinism."""

import json
import shutil

import librosa
import numpy as np
import pytest
import torch
from scipy.ndimage import binary_dilation
from scipy.signal import argrelextrema

from semtalk.body.parts import FOOT_JOINTS, HEAD
from semtalk.body.skeleton import BuiltinSkeleton, foot_contacts
from semtalk.cli import main
from semtalk.data.beat2 import Beat2Dataset
from semtalk.data.synthetic.dataset import (
    MANIFEST,
    SynthConfig,
    assign_splits,
    build_clip,
    generate_dataset,
)
from semtalk.data.synthetic.script import EMOTION_STYLES, KEYWORD_CLASS, sample_script
from semtalk.errors import DataError

CONFIG = SynthConfig(minutes=1.5, seed=7, clip_seconds=15)


@pytest.fixture(scope="module")
def synth_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth") / "data"
    generate_dataset(root, CONFIG, workers=1, progress=False)
    return root


@pytest.fixture(scope="module")
def clips(synth_root):
    dataset = Beat2Dataset(synth_root, splits=None)
    return [dataset.load(info) for info in dataset]


@pytest.fixture(scope="module")
def manifest(synth_root):
    return {c["id"]: c for c in json.loads((synth_root / MANIFEST).read_text())["clips"]}


def test_layout_loads_with_the_beat2_reader(synth_root, clips, manifest):
    assert len(clips) == CONFIG.num_clips == 6
    assert sorted({c.info.split for c in clips}) == ["test", "train", "val"]
    for clip in clips:
        assert clip.issues == [], clip.issues
        assert clip.info.speaker_id == 2 and clip.info.speaker_name == "synth"
        assert 12 < clip.duration < 19
        assert clip.audio.shape[0] == round(clip.num_frames * 16000 / 30)
        assert clip.words and clip.semantic is not None and clip.emotion_segments
        assert clip.emotion == clip.emotion_segments[0].label == manifest[clip.info.clip_id][
            "emotion"]
        assert clip.motion.trans[:, 1].mean() == pytest.approx(1.3, abs=0.05)


def test_semantic_annotations_sit_on_keywords(clips):
    covered = total = 0
    sem_frames = frames = 0
    for clip in clips:
        for seg in clip.semantic:
            keyword = [w for w in clip.words if w.text == seg.keywords
                       and seg.start <= w.start <= seg.end]
            assert keyword, f"{seg} has no keyword inside it"
            assert KEYWORD_CLASS[seg.keywords] == seg.name
            assert seg.start >= keyword[0].start - 0.2 and seg.end <= keyword[0].end + 1.0
            assert 0.1 < seg.score <= 1.0
        for word in clip.words:
            if word.text in KEYWORD_CLASS:
                total += 1
                covered += clip.semantic_scores[int((word.start + word.end) * 15)] > 0
        sem_frames += (clip.semantic_scores > 0).sum()
        frames += clip.num_frames
    assert covered / total > 0.6  # the rest fall in a previous gesture's refractory gap
    assert 0.05 < sem_frames / frames < 0.4  # sparse, as semantic gestures are


def _nearest(a, b):
    return np.abs(np.asarray(a)[:, None] - np.asarray(b)[None]).min(axis=1)


def test_beat_strokes_land_on_audio_onsets(clips, manifest):
    true_hits, shifted_hits, n = 0, 0, 0
    for clip in clips:
        onsets = librosa.onset.onset_detect(y=clip.audio, sr=16000, hop_length=160,
                                            units="time")
        strokes = np.array(manifest[clip.info.clip_id]["stroke_times"])
        assert len(strokes) > clip.duration / 3  # beats are frequent
        true_hits += (_nearest(strokes, onsets) < 0.06).sum()
        shifted_hits += (_nearest(strokes, onsets + 0.25) < 0.06).sum()
        n += len(strokes)
    assert true_hits / n > 0.75
    assert true_hits / n > shifted_hits / n + 0.25


def test_strokes_are_visible_as_hand_speed_minima(clips, manifest):
    skeleton = BuiltinSkeleton()
    aligned, shifted = [], []
    for clip in clips:
        joints = skeleton.joints(torch.from_numpy(clip.motion.poses).double()).numpy()
        hands = joints[:, [20, 21]]
        speed = np.linalg.norm(np.gradient(hands, axis=0), axis=-1).sum(axis=1) * 30
        minima = argrelextrema(speed, np.less, order=4)[0] / 30
        strokes = np.array(manifest[clip.info.clip_id]["stroke_times"])
        aligned.append(np.exp(-_nearest(strokes, minima) ** 2 / 0.02).mean())
        shifted.append(np.exp(-_nearest(strokes + 0.2, minima) ** 2 / 0.02).mean())
    assert np.mean(aligned) > np.mean(shifted) + 0.15


def test_feet_plant_and_step_without_sliding(clips):
    skeleton = BuiltinSkeleton()
    contact_fractions = []
    for clip in clips:
        joints = skeleton.joints(torch.from_numpy(clip.motion.poses).double(),
                                 torch.from_numpy(clip.motion.trans).double())
        contact_fractions.append(foot_contacts(joints).mean().item())
        joints = joints.numpy()
        feet = joints[:, list(FOOT_JOINTS)]
        assert feet[..., 1].min() > 0.0 and feet[..., 1].max() < 0.2  # on or just above floor
        assert 1.5 < np.median(joints[:, HEAD, 1] - feet[..., 1].min(axis=1)) < 1.9
        for ankle in (7, 8):
            moved = np.linalg.norm(np.diff(joints[:, ankle], axis=0), axis=-1)
            stepping = binary_dilation(moved > 2e-3, iterations=8)
            assert moved[~stepping].max() < 1e-5  # a standing foot does not slide at all
    assert 0.9 < min(contact_fractions) < 1.0  # mostly standing, and some clips step
    pelvis_x = [np.ptp(clip.motion.trans[:, 0]) for clip in clips]
    assert max(pelvis_x) > 0.015  # weight shifts move the pelvis sideways


def test_jaw_and_mouth_follow_the_speech_envelope(clips):
    for clip in clips:
        rms = librosa.feature.rms(y=clip.audio, frame_length=1066, hop_length=533)[0]
        n = min(len(rms), clip.num_frames)
        jaw = np.linalg.norm(clip.motion.poses[:n, 66:69], axis=1)
        assert np.corrcoef(jaw, rms[:n])[0, 1] > 0.8
        assert np.corrcoef(clip.motion.expressions[:n, 0], rms[:n])[0, 1] > 0.5


def _speech_features(audio: np.ndarray, frames: int) -> np.ndarray:
    """Log-mel energies at the motion frame rate with +-3 frames of context, and a bias."""
    mel = librosa.feature.melspectrogram(y=audio, sr=16000, n_fft=1024, hop_length=533,
                                         n_mels=24)
    logmel = np.log(mel + 1e-6).T
    logmel = np.pad(logmel[:frames], ((0, max(0, frames - len(logmel))), (0, 0)), mode="edge")
    shifted = [np.roll(logmel, k, axis=0) for k in range(-3, 4)]
    return np.concatenate([*shifted, np.ones((frames, 1))], axis=1)


def test_expressions_are_predictable_from_the_speech(clips):
    """The face is mostly speech-driven, as a real one: a linear map from log-mel features
    fitted on the other clips explains most of each held-out clip's expression variance (the
    emotion's constant offsets taken out per clip)."""
    def data(clip):
        frames = clip.num_frames
        target = clip.motion.expressions - clip.motion.expressions.mean(axis=0)
        return _speech_features(clip.audio, frames), target
    explained = []
    for held_out in range(len(clips)):
        train = [data(c) for k, c in enumerate(clips) if k != held_out]
        x = np.concatenate([t[0] for t in train])
        y = np.concatenate([t[1] for t in train])
        ridge = np.linalg.solve(x.T @ x + 1.0 * np.eye(x.shape[1]), x.T @ y)
        x_test, y_test = data(clips[held_out])
        residual = y_test - x_test @ ridge
        explained.append(1.0 - residual.var(axis=0).sum() / y_test.var(axis=0).sum())
    assert np.mean(explained) > 0.5, explained


def test_emotions_change_the_voice():
    rng = np.random.default_rng(0)
    sad = sample_script(rng, 10, "sadness").prosody
    angry = sample_script(rng, 10, "anger").prosody
    assert sad.rate_wpm < angry.rate_wpm and sad.volume < angry.volume
    assert EMOTION_STYLES["sadness"].motion_scale < EMOTION_STYLES["anger"].motion_scale


def test_clips_are_deterministic(tmp_path, synth_root):
    entry = build_clip(CONFIG, 2, tmp_path)
    for folder in ("smplxflame_30", "wave16k", "textgrid", "sem", "emo"):
        [made] = (tmp_path / folder).iterdir()
        assert made.read_bytes() == (synth_root / folder / made.name).read_bytes(), folder
    assert entry["id"] in (synth_root / "train_test_split.csv").read_text()


def test_parallel_generation_matches_serial(tmp_path, synth_root):
    generate_dataset(tmp_path, CONFIG, workers=2, progress=False)
    for path in sorted(synth_root.rglob("*.npz")):
        assert (tmp_path / path.relative_to(synth_root)).read_bytes() == path.read_bytes()


def test_rerun_completes_an_interrupted_dataset(tmp_path, synth_root):
    root = tmp_path / "copy"
    shutil.copytree(synth_root, root)
    victim = sorted((root / "wave16k").iterdir())[1]
    original = victim.read_bytes()
    victim.unlink()
    generate_dataset(root, CONFIG, workers=1, progress=False)
    assert victim.read_bytes() == original
    with pytest.raises(DataError, match="made with"):
        generate_dataset(root, SynthConfig(minutes=1.5, seed=8, clip_seconds=15), workers=1,
                         progress=False)
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    with pytest.raises(DataError, match="not empty"):
        generate_dataset(tmp_path / "other", CONFIG, workers=1, progress=False)


def test_splits():
    assert assign_splits(2, 0.1, 0.1) == ["train", "train"]
    assert assign_splits(3, 0.1, 0.1) == ["train", "val", "test"]
    splits = assign_splits(40, 0.1, 0.1)
    assert splits.count("test") == 4 and splits.count("val") == 4


def test_cli_synth_and_inspect(tmp_path, capsys):
    out = tmp_path / "cli"
    assert main(["synth", str(out), "--minutes", "0.25", "--clip-seconds", "7.5",
                 "--workers", "1", "--seed", "3"]) == 0
    assert main(["inspect", str(out)]) == 0
    text = capsys.readouterr().out
    assert "2 synth" in text and "0 error(s), 0 warning(s)" in text
    (out / "wave16k" / sorted(p.name for p in (out / "wave16k").iterdir())[0]).write_bytes(b"x")
    assert main(["inspect", str(out)]) == 1
    assert "error: " in capsys.readouterr().out
    assert main(["inspect", str(tmp_path / "missing")]) == 2
    assert "dataset root not found" in capsys.readouterr().err
