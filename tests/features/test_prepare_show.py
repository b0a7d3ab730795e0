"""``semtalk prepare SHOW_ROOT --labels LABELS --body-model F``: a feature cache from SHOW clips
with pseudo-labels as the semantic scores, and the sparse stage training on it."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).parents[1] / "data"))
from show_fixtures import write_hands_npz, write_show_clip

from semtalk.cli import main
from semtalk.data.pseudo_labels import LABELS_FILE, LABELS_FORMAT, label_path
from semtalk.data.show import SHOW_SPEAKER_IDS, ShowDataset
from semtalk.features.alignment import METHOD_RECOGNIZED, METHOD_WHISPER
from semtalk.features.cache import FeatureCache
from semtalk.features.text import Vocabulary
from semtalk.models.sparse_generator import SparseMotionGenerator
from semtalk.models.tokenizer import MotionTokenizer
from semtalk.release import assemble_release, cache_speakers
from semtalk.training.generator import BaseSolver, load_generator_config
from semtalk.training.generator_data import GeneratorWindows
from semtalk.training.metric_log import read_log
from semtalk.training.presets import load_preset
from semtalk.training.windows import cut_windows, training_segments

FRAMES = 150
CLIPS = {  # key -> split
    "oliver/Border_Wall-vU8dCYocuyI.webm/214542-00_01_17-00_01_22": "train",
    "oliver/Border_Wall-vU8dCYocuyI.webm/214999-00_16_28-00_16_33": "train",
    "seth/A_Closer_Look-irw3YQxiUOs.webm/98201-00_04_32-00_04_37": "train",
    "chemistry/Light_as_a_Wave-e27ZIIsvuys.mkv/68991-00_00_23-00_00_28": "val",
    "conan/Conan_-_A_Tweet-rcotqys3lBg.mkv/115563-00_01_35-00_01_40": "test",
}
FAST = ["solver.batch_size=4", "solver.log_every=1", "solver.tensorboard=false", "stride=32"]
OFFLINE = ["--sentence", "pooled"]


def _audio(seed: int) -> np.ndarray:
    """5 s of stereo 22 kHz sound with bursts and pauses (not speech: no words are found)."""
    rng = np.random.default_rng(seed)
    t = np.arange(FRAMES * 22000 // 30) / 22000
    envelope = (np.sin(2 * np.pi * 0.7 * t + seed) > 0).astype(float)
    voice = np.sin(2 * np.pi * (140 + 20 * seed) * t) * envelope
    return 0.2 * np.stack([voice, 0.7 * voice], 1) + 0.001 * rng.standard_normal((len(t), 2))


def _psi(key: str) -> np.ndarray:
    """A label with both classes: smooth ψ in [0, 1] per frame (as long as the audio)."""
    phase = sum(map(ord, key)) % 7
    return (0.5 + 0.45 * np.sin(np.arange(FRAMES) / 9.0 + phase)).astype(np.float32)


def _method(key: str) -> str:
    """How `semtalk label` found the clip's words: as prepare does, but the test clip's with
    a whisper model that prepare is not given."""
    return METHOD_WHISPER if CLIPS[key] == "test" else METHOD_RECOGNIZED


@pytest.fixture(scope="module")
def show(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A SHOW root of five clips (all four speakers), its split file, a stand-in SMPL-X file,
    a labels folder as `semtalk label` writes it and the labelling release's vocabulary."""
    base = tmp_path_factory.mktemp("show")
    root = base / "show"
    for seed, key in enumerate(CLIPS):
        speaker, video_fn, clip = key.split("/")
        write_show_clip(root, speaker, video_fn, clip, FRAMES, audio=_audio(seed), seed=seed)
    split_file = base / "train_val_test.json"
    split_file.write_text(json.dumps({s: [k for k, v in CLIPS.items() if v == s]
                                      for s in ("train", "val", "test")}))
    release = base / "release"
    (release / "sparse").mkdir(parents=True)
    Vocabulary.build([["hello", "world"]]).save(release / "sparse" / "vocab.json")
    labels = base / "labels"
    for key in CLIPS:
        path = label_path(labels, key)
        path.parent.mkdir(parents=True, exist_ok=True)
        np.save(path, _psi(key))
    (labels / LABELS_FILE).write_text(json.dumps({
        "format": LABELS_FORMAT, "release": str(release), "sparse_sha256": "0" * 64,
        "beta": 0.5, "kind": "show", "fps": 30,
        "clips": {k: {"words_source": "recognition", "words_method": _method(k), "words": 4,
                      "num_frames": FRAMES} for k in CLIPS}}))
    return {"root": root, "split_file": split_file, "hands": write_hands_npz(base / "smplx.npz"),
            "labels": labels, "release": release}


def _prepare(show: dict[str, Path], out: Path, *extra: str) -> int:
    return main(["prepare", str(show["root"]), "--out", str(out), *OFFLINE,
                 "--body-model", str(show["hands"]), "--labels", str(show["labels"]), *extra])


@pytest.fixture(scope="module")
def show_cache(show: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("show_cache") / "cache"
    assert _prepare(show, out, "--split-file", str(show["split_file"])) == 0
    return out


def test_cache_holds_the_converted_clips_and_the_soft_labels(show: dict[str, Path],
                                                             show_cache: Path) -> None:
    cache = FeatureCache(show_cache)
    dataset = ShowDataset(show["root"], split_file=show["split_file"], body_model=show["hands"])
    assert sorted(cache.ids()) == sorted(info.clip_id for info in dataset)
    assert cache.manifest["dataset"] == "show" and cache.manifest["hands"].startswith("smplx:")
    assert cache.manifest["semantic_labels"]["mode"] == "soft"
    assert len(cache.vocab) == len(Vocabulary.load(show["release"] / "sparse" / "vocab.json"))
    for info in dataset:
        clip = cache.load(info.clip_id)
        motion = dataset.load_motion(info)
        assert clip.num_frames == FRAMES and clip.split == CLIPS[info.key]
        np.testing.assert_array_equal(clip.poses, motion.poses)
        np.testing.assert_array_equal(clip.expressions, motion.expressions)
        np.testing.assert_array_equal(clip.trans, motion.trans)
        np.testing.assert_array_equal(clip.betas, motion.betas)
        psi = _psi(info.key)  # soft: ψ where ψ > β (0.5 in labels.json), else 0
        np.testing.assert_array_equal(clip.semantic, np.where(psi > 0.5, psi, 0))
        assert (clip.semantic == 0).any() and (clip.semantic > 0.5).any()
        assert clip.record["speaker_id"] == SHOW_SPEAKER_IDS[info.speaker]
        assert clip.speaker_class == SHOW_SPEAKER_IDS[info.speaker] - 1
        assert clip.record["speaker_name"] == info.speaker
        assert clip.word_ids.shape == (FRAMES,)
        assert clip.record["has_words"]
        whisper_warning = [i for i in clip.record["issues"] if METHOD_WHISPER in i]
        assert len(whisper_warning) == (CLIPS[info.key] == "test"), clip.record["issues"]


def test_a_rerun_prepares_only_what_is_missing(show: dict[str, Path], show_cache: Path) -> None:
    cache = FeatureCache(show_cache)
    first, *others = cache.ids()
    (show_cache / "clips" / first / "clip.json").unlink()
    stamps = {i: (show_cache / "clips" / i / "clip.json").stat().st_mtime_ns for i in others}
    assert _prepare(show, show_cache, "--split-file", str(show["split_file"])) == 0
    assert cache.ids() == [first, *others]
    assert stamps == {i: (show_cache / "clips" / i / "clip.json").stat().st_mtime_ns
                      for i in others}


def test_hard_labels_and_no_split_file(show: dict[str, Path], tmp_path: Path,
                                       capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "cache"
    assert _prepare(show, out, "--labels-mode", "hard", "--labels-beta", "0.6",
                    "--speakers", "seth", "chemistry") == 0
    assert "all 5 clips are in 'train'" in capsys.readouterr().err
    cache = FeatureCache(out)
    assert sorted(cache.ids()) == ["chemistry_68991-00_00_23-00_00_28",
                                   "seth_98201-00_04_32-00_04_37"]
    assert {cache.load(i).split for i in cache.ids()} == {"train"}
    for key in CLIPS:
        speaker, _, clip = key.split("/")
        if f"{speaker}_{clip}" in cache.ids():
            np.testing.assert_array_equal(cache.load(f"{speaker}_{clip}").semantic,
                                          (_psi(key) > 0.6).astype(np.float32))
    assert cache.manifest["semantic_labels"] == {**cache.manifest["semantic_labels"],
                                                 "mode": "hard", "beta": 0.6}


def test_sparse_stage_trains_on_the_pseudo_labelled_cache(show_cache: Path,
                                                          tmp_path: Path) -> None:
    cache = FeatureCache(show_cache)
    train, _ = training_segments(cache)
    windows = GeneratorWindows(cache, cut_windows(train, 64, 32), "spectral")
    item = windows[0]
    clip = cache.load(windows.windows[0].clip_id)
    start = windows.windows[0].start
    assert bool(item["has_semantic"])
    np.testing.assert_array_equal(item["semantic"].numpy(), clip.semantic[start:start + 64])

    torch.manual_seed(0)
    tokenizer = MotionTokenizer.from_config(load_preset("tokenizer", "tiny"))
    tokenizer.save_pretrained(tmp_path / "tokenizer")
    config = load_generator_config("tiny", overrides=[*FAST, "solver.max_steps=1"])
    base = BaseSolver(config, show_cache, tmp_path / "tokenizer",
                      tmp_path / "base_run").fit(progress=False)
    code = main(["train", "sparse", "--data", str(show_cache), "--tokenizer",
                 str(tmp_path / "tokenizer"), "--base", str(base), "--out", str(tmp_path),
                 "--quiet", "solver.max_steps=3", "solver.validate_every=3", *FAST])
    assert code == 0
    model = SparseMotionGenerator.from_pretrained(tmp_path / "sparse")
    assert model.config.vocab_size == len(cache.vocab)
    log = read_log(tmp_path / "sparse_run")
    train_rows = [r for r in log if r["split"] == "train"]
    assert len(train_rows) == 3 and all(np.isfinite(r["gate_self"]) for r in train_rows)
    val = [r for r in log if r["split"] == "val"][-1]
    assert 0.0 <= val["sem_balanced_accuracy"] <= 1.0

    # `semtalk evaluate` on the SHOW cache: the audio for BC comes from the SHOW root
    release = assemble_release(tmp_path / "release", tokenizer=tmp_path / "tokenizer",
                               base=base, sparse=tmp_path / "sparse",
                               speakers=cache_speakers(show_cache))
    out = tmp_path / "evaluation"
    assert main(["evaluate", "--model", str(release), "--data", str(show_cache), "--out",
                 str(out), "--quiet"]) == 0
    report = json.loads((out / "metrics.json").read_text())
    (test_clip,) = report["scoring"]["clips"]
    assert test_clip.startswith("conan_")
    assert report["generation"]["tail_padding"] == "silence features (cache tails)"
    truth = next(r for r in report["rows"] if r["name"] == "ground_truth")["values"]
    assert truth["bc"] is not None and np.isfinite(truth["bc"])
    generated = next(r for r in report["rows"] if r["name"] == "generated")["values"]
    assert 0.0 <= generated["sem_balanced_accuracy"] <= 1.0  # against the pseudo-labels


def test_evaluation_reads_a_show_caches_audio_from_its_root(show: dict[str, Path],
                                                             show_cache: Path,
                                                             tmp_path: Path) -> None:
    from semtalk.errors import DataError
    from semtalk.evaluation.data import ClipAudio

    cache = FeatureCache(show_cache)
    audio = ClipAudio(cache, show["root"])
    clip_id = cache.ids("test")[0]
    samples = audio.load(clip_id, FRAMES)
    assert samples.dtype == np.float32 and samples.size == FRAMES * 16000 // 30
    with pytest.raises(DataError, match="frames but the cache's clip 180"):
        audio.load(clip_id, FRAMES + 30)
    with pytest.raises(DataError, match="not in this dataset"):
        audio.load("oliver_nobody", FRAMES)
    with pytest.raises(DataError, match="prepared from a SHOW root, but this is not one"):
        ClipAudio(cache, tmp_path)


def test_a_show_root_needs_the_body_model(show: dict[str, Path], tmp_path: Path,
                                          capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "cache"
    code = main(["prepare", str(show["root"]), "--out", str(out), *OFFLINE,
                 "--labels", str(show["labels"])])
    assert code == 2 and "--body-model" in capsys.readouterr().err
    assert not out.exists()


def test_speakers_are_named_or_numbered(show: dict[str, Path], tmp_path: Path,
                                        capsys: pytest.CaptureFixture) -> None:
    for speakers, expected in ((["letterman"], "'letterman' is not a SHOW speaker"),
                               (["7"], "unknown SHOW speaker id(s) [7]")):
        code = main(["prepare", str(show["root"]), "--out", str(tmp_path / "cache"), *OFFLINE,
                     "--body-model", str(show["hands"]), "--speakers", *speakers])
        assert code == 2 and expected in capsys.readouterr().err
    assert not (tmp_path / "cache").exists()


def test_missing_labels_are_listed_before_anything_is_written(
        show: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    import shutil

    labels = tmp_path / "labels"
    shutil.copytree(show["labels"], labels)
    gone = sorted(CLIPS)[:2]
    for key in gone:
        label_path(labels, key).unlink()
    out = tmp_path / "cache"
    code = main(["prepare", str(show["root"]), "--out", str(out), *OFFLINE,
                 "--body-model", str(show["hands"]), "--labels", str(labels)])
    err = capsys.readouterr().err
    assert code == 2 and "2 of 5 clips have no pseudo-label" in err
    assert all(key in err for key in gone) and "semtalk label" in err
    assert not out.exists()


def test_a_label_of_other_audio_is_refused_with_both_lengths(
        show: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    import shutil

    labels = tmp_path / "labels"
    shutil.copytree(show["labels"], labels)
    key = next(k for k, split in CLIPS.items() if split == "test")
    np.save(label_path(labels, key), np.full(FRAMES + 12, 0.5, np.float32))
    one_frame_short = next(k for k, split in CLIPS.items() if split == "val")
    np.save(label_path(labels, one_frame_short), _psi(one_frame_short)[:-1])
    code = main(["prepare", str(show["root"]), "--out", str(tmp_path / "val"), *OFFLINE,
                 "--body-model", str(show["hands"]), "--labels", str(labels),
                 "--speakers", "chemistry"])
    assert code == 0  # a frame short: the last value is repeated
    semantic = FeatureCache(tmp_path / "val").load(
        "chemistry_68991-00_00_23-00_00_28").semantic
    assert semantic[-1] == semantic[-2]
    code = main(["prepare", str(show["root"]), "--out", str(tmp_path / "test"), *OFFLINE,
                 "--body-model", str(show["hands"]), "--labels", str(labels),
                 "--speakers", "conan"])
    err = capsys.readouterr().err
    assert code == 2 and f"has {FRAMES + 12} frames but the clip's audio has {FRAMES}" in err


def test_show_options_are_refused_on_a_beat2_root(show: dict[str, Path], tmp_path: Path,
                                                  capsys: pytest.CaptureFixture) -> None:
    beat2 = tmp_path / "beat2"
    beat2.mkdir()
    (beat2 / "train_test_split.csv").write_text("id,type\n2_scott_0_1_1,test\n")
    code = main(["prepare", str(beat2), "--out", str(tmp_path / "cache"), *OFFLINE,
                 "--body-model", str(show["hands"])])
    assert code == 2 and "only apply to SHOW roots" in capsys.readouterr().err


def test_two_clips_with_one_cache_id_are_refused(tmp_path: Path) -> None:
    from semtalk.errors import DataError

    root = tmp_path / "show"
    for video_fn in ("a.mkv", "b.mkv"):
        write_show_clip(root, "seth", video_fn, "1-00_00_00-00_00_01", 30)
    with pytest.raises(DataError, match="both would be clip 'seth_1-00_00_00-00_00_01'"):
        ShowDataset(root)
