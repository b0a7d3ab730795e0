"""Feature cache: contents, refusal on other extractors, sharding, kill-and-resume, locking
against concurrent runs, repair of damaged clips."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from semtalk.data.synthetic.dataset import SynthConfig, generate_dataset
from semtalk.errors import DataError
from semtalk.features.base import AudioFeatureExtractor, WindowFeatureExtractor
from semtalk.features.cache import (
    CacheMismatchError,
    CacheSettings,
    FeatureCache,
    prepare_cache,
)
from semtalk.features.text import SIL


class FrameRms(AudioFeatureExtractor):
    """A small real extractor for tests: RMS and its log around each frame instant."""

    name = "rms"
    version = "1"

    def __init__(self, window: int = 400) -> None:
        self.window = window

    @property
    def dim(self) -> int:
        return 2

    def config(self) -> dict:
        return {"window": self.window}

    def extract(self, audio: np.ndarray, num_frames: int) -> np.ndarray:
        centres = np.round(np.arange(num_frames) * 16000 / 30).astype(int)
        padded = np.pad(audio, (self.window, self.window + max(16000, centres[-1] + 1
                                                               - len(audio))))
        rows = np.stack([padded[c + self.window // 2 : c + 3 * self.window // 2]
                         for c in centres])
        rms = np.sqrt((rows**2).mean(axis=1))
        return np.stack([rms, np.log(rms + 1e-5)], axis=1).astype(np.float32)


class WordCount(WindowFeatureExtractor):
    name = "wordcount"
    version = "1"

    @property
    def dim(self) -> int:
        return 1

    def config(self) -> dict:
        return {}

    def extract(self, audio, words, num_frames, window, hop):
        from semtalk.features.base import num_windows, window_words

        return np.array([[len(window_words(words, k * hop, window))]
                         for k in range(num_windows(num_frames, hop))], np.float32)


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    root = tmp_path_factory.mktemp("synthcache") / "data"
    generate_dataset(root, SynthConfig(minutes=1.0, seed=3, clip_seconds=12), workers=1,
                     progress=False)
    return root


def tree(folder: Path) -> dict[str, bytes]:
    """Every file of a cache but its lock files (which name the shards that ran)."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and p.suffix != ".lock"}


def test_cache_holds_aligned_features(tmp_path, synth):
    cache = prepare_cache(synth, tmp_path / "c", audio_extractors=[FrameRms()],
                          window_extractors=[WordCount()], progress=False)
    assert cache.missing() == [] and len(cache.ids()) == 5
    assert set(cache.ids("train")) | set(cache.ids("val")) | set(cache.ids("test")) == set(
        cache.ids())
    clip = cache.load(cache.ids()[0])
    n = clip.num_frames
    assert clip.poses.shape == (n, 165) and clip.contacts.shape == (n, 4)
    assert clip.audio["rms"].shape == (n, 2) and clip.audio["rms"].dtype == np.float32
    assert clip.windows["wordcount"].shape == (-(-n // 4), 1)
    assert isinstance(clip.poses, np.memmap)
    # features line up with the words: louder inside words than in silence
    speaking = clip.word_ids != SIL
    assert clip.audio["rms"][speaking, 0].mean() > 5 * clip.audio["rms"][~speaking, 0].mean()
    assert clip.semantic is not None and clip.semantic.shape == (n,) and clip.semantic.max() > 0
    assert 0.9 < clip.contacts.mean() <= 1.0
    words = clip.words()
    assert words and words[0].text == cache.vocab.tokens[clip.word_ids[
        int(np.ceil(words[0].start * 30)) + 1]]
    manifest = json.loads((tmp_path / "c" / "manifest.json").read_text())
    assert manifest["audio_features"]["rms"] == FrameRms().identity()
    assert manifest["body_model"] == "builtin" and manifest["window"] == 64


def test_cache_refuses_other_extractors_and_names_the_difference(tmp_path, synth):
    cache = prepare_cache(synth, tmp_path / "c", audio_extractors=[FrameRms()],
                          progress=False)
    cache.require({"rms": FrameRms().identity()}, body_model="builtin")
    with pytest.raises(CacheMismatchError, match=r"audio_features\.rms\.config\.window: "
                                                 r"cache has 400, needed 800"):
        cache.require({"rms": FrameRms(window=800).identity()})
    with pytest.raises(CacheMismatchError, match="hubert: not in the cache"):
        cache.require({"hubert": {"name": "hubert"}})
    with pytest.raises(CacheMismatchError, match="prepared differently"):
        prepare_cache(synth, tmp_path / "c", audio_extractors=[FrameRms(window=800)],
                      progress=False)
    with pytest.raises(DataError, match="not a feature cache"):
        FeatureCache(tmp_path)


def test_shards_fill_one_cache(tmp_path, synth):
    whole = tmp_path / "whole"
    prepare_cache(synth, whole, audio_extractors=[FrameRms()], progress=False)
    sharded = tmp_path / "sharded"
    first = prepare_cache(synth, sharded, audio_extractors=[FrameRms()], shard=(0, 2),
                          progress=False)
    assert 0 < len(first.ids()) < 5 and first.missing()
    prepare_cache(synth, sharded, audio_extractors=[FrameRms()], shard=(1, 2), progress=False)
    assert tree(sharded) == tree(whole)


SCRIPT = textwrap.dedent('''
    import sys, time
    sys.path.insert(0, {tests!r})
    from test_cache import FrameRms
    from semtalk.features.cache import prepare_cache
    from semtalk.features.registry import ExtractorChoice, build_extractors

    class SlowRms(FrameRms):
        """Slows each clip down so that the kill reliably lands mid-way."""

        def extract(self, audio, num_frames):
            time.sleep(0.4)
            return super().extract(audio, num_frames)

    SlowRms.name = "rms"
    audio, window = build_extractors(ExtractorChoice(sentence_encoder="pooled"))
    shard = tuple(int(x) for x in (sys.argv[2] if len(sys.argv) > 2 else "0/1").split("/"))
    prepare_cache({root!r}, sys.argv[1], audio_extractors=[*audio, SlowRms()],
                  window_extractors=window, progress=False, shard=shard)
''')


def slow_extractors():
    """The extractors of SCRIPT (its SlowRms included), for in-process runs on its caches."""
    from semtalk.features.registry import ExtractorChoice, build_extractors

    class SlowRms(FrameRms):
        def extract(self, audio, num_frames):
            time.sleep(0.4)
            return super().extract(audio, num_frames)

    audio, window = build_extractors(ExtractorChoice(sentence_encoder="pooled"))
    return [*audio, SlowRms()], window


@pytest.fixture(scope="module")
def script(synth):
    return SCRIPT.format(tests=str(Path(__file__).parent), root=str(synth))


@pytest.fixture(scope="module")
def reference(script, tmp_path_factory):
    """A cache SCRIPT prepared in one uninterrupted run."""
    out = tmp_path_factory.mktemp("reference") / "cache"
    subprocess.run([sys.executable, "-c", script, str(out)], check=True)
    return out


def wait_for_first_clip(cache: Path, process: subprocess.Popen) -> None:
    deadline = time.time() + 60
    while not list(cache.glob("clips/*/clip.json")) and time.time() < deadline:
        assert process.poll() is None, "the run ended early"
        time.sleep(0.05)


def test_killed_prepare_resumes_to_identical_bytes(tmp_path, script, reference):
    resumed = tmp_path / "resumed"
    process = subprocess.Popen([sys.executable, "-c", script, str(resumed)])
    wait_for_first_clip(resumed, process)
    time.sleep(0.2)  # let it get into the middle of the next clip
    process.send_signal(signal.SIGKILL)
    process.wait()
    partial = FeatureCache(resumed)
    assert 0 < len(partial.ids()) < 5, "the kill should land mid-way"
    assert list(resumed.glob("clips/.*.tmp")), "the killed clip stays in a temporary folder"
    subprocess.run([sys.executable, "-c", script, str(resumed)], check=True)
    assert tree(resumed) == tree(reference)


def test_second_run_on_a_cache_in_use_is_refused_and_the_first_finishes_whole(
        tmp_path, synth, script, reference):
    out = tmp_path / "shared"
    process = subprocess.Popen([sys.executable, "-c", script, str(out)])
    try:
        wait_for_first_clip(out, process)
        audio, window = slow_extractors()
        with pytest.raises(DataError, match=rf"in use by PID {process.pid} "
                                            r"\(`semtalk prepare` of shard 0/1\)"):
            prepare_cache(synth, out, audio_extractors=audio, window_extractors=window,
                          progress=False)
        assert process.wait(timeout=120) == 0
    finally:
        process.kill()
    assert FeatureCache(out).missing() == []
    assert tree(out) == tree(reference)


def test_shards_run_concurrently_into_one_cache(tmp_path, script, reference):
    out = tmp_path / "sharded"
    runs = [subprocess.Popen([sys.executable, "-c", script, str(out), f"{i}/2"])
            for i in range(2)]
    assert [run.wait(timeout=120) for run in runs] == [0, 0]
    assert tree(out) == tree(reference)


def test_rerun_repairs_clips_with_missing_or_truncated_files(tmp_path, synth):
    out = tmp_path / "c"
    cache = prepare_cache(synth, out, audio_extractors=[FrameRms()],
                          window_extractors=[WordCount()], progress=False)
    whole = tree(out)
    first, second = cache.ids()[:2]
    (out / "clips" / first / "poses.npy").unlink()
    windows = out / "clips" / second / "window_wordcount.npy"
    windows.write_bytes(windows.read_bytes()[:-4])
    assert cache.missing() == [first, second]
    with pytest.raises(DataError, match=rf"{first}: clip is damaged \(poses.npy is missing\)"):
        cache.load(first)
    with pytest.raises(DataError, match=r"window_wordcount.npy is truncated"):
        cache.load(second)
    notes: list[str] = []
    prepare_cache(synth, out, audio_extractors=[FrameRms()], window_extractors=[WordCount()],
                  progress=False, note=notes.append)
    assert len(notes) == 2 and "poses.npy is missing; preparing the clip again" in notes[0]
    assert f"clips/{second}: window_wordcount.npy is truncated" in notes[1]
    assert tree(out) == whole
    notes.clear()
    prepare_cache(synth, out, audio_extractors=[FrameRms()], window_extractors=[WordCount()],
                  progress=False, note=notes.append)
    assert notes == []


def test_prepare_cli_default_features(tmp_path, synth, capsys):
    from semtalk.cli import main

    out = tmp_path / "cli"
    assert main(["prepare", str(synth), "--out", str(out), "--sentence", "pooled"]) == 0
    cache = FeatureCache(out)
    assert sorted(cache.manifest["audio_features"]) == ["beat", "spectral"]
    assert sorted(cache.manifest["window_features"]) == ["emotion", "sentence"]
    assert cache.manifest["window_features"]["sentence"]["config"]["encoder"] == "pooled"
    clip = cache.load(cache.ids()[0])
    assert clip.audio["beat"].shape == (clip.num_frames, 4)
    assert clip.windows["emotion"].shape[0] == -(-clip.num_frames // 4)
    assert "5 clips prepared" in capsys.readouterr().out
    assert main(["prepare", str(synth), "--out", str(tmp_path / "h"), "--hubert",
                 str(tmp_path / "no-such-model")]) == 2
    assert "no-such-model" in capsys.readouterr().err
    assert not (tmp_path / "h").exists()  # nothing written before the extractors are ready


def test_prepare_cli_prints_a_summary_of_the_clips_warnings(tmp_path, synth, capsys):
    import shutil

    from semtalk.cli import main
    from semtalk.data.beat2 import Beat2Dataset

    root = tmp_path / "data"
    shutil.copytree(synth, root)
    first, second = list(Beat2Dataset(root))[:2]
    first.path("words").unlink()
    second.path("words").unlink()
    assert main(["prepare", str(root), "--out", str(tmp_path / "c"), "--sentence",
                 "pooled"]) == 0
    out = capsys.readouterr().out
    assert "2 warnings in 2 clips" in out
    assert f"  {first.clip_id}: warning: no words file for clip {first.clip_id}" in out
    assert f"  {second.clip_id}: warning: no words file" in out


def test_the_warning_summary_shows_the_first_few_and_counts_the_rest(capsys):
    from semtalk.cli.prepare import _print_issues

    _print_issues({f"clip{i}": [f"warning: problem {i}"] for i in range(7)}, shown=3)
    lines = capsys.readouterr().out.splitlines()
    assert lines == ["7 warnings in 7 clips (each clip's clips/<id>/clip.json lists its own):",
                     "  clip0: warning: problem 0", "  clip1: warning: problem 1",
                     "  clip2: warning: problem 2", "  ... and 4 more"]
    _print_issues({})
    assert capsys.readouterr().out == ""


def test_overwrite_and_cleanup_wait_until_no_other_run_holds_the_cache(tmp_path, synth):
    from semtalk.fileio import FileLock

    out = tmp_path / "c"
    prepare_cache(synth, out, audio_extractors=[FrameRms()], progress=False)
    whole = tree(out)
    left_over = out / "clips" / ".some_clip.x1y2.tmp"  # as a killed run leaves it
    left_over.mkdir()
    # another run (a shard of two) holds the cache; flocks of separate opens conflict even
    # within one process
    other_cache, other_shard = FileLock(out / ".lock"), FileLock(out / ".shard-1-of-2.lock")
    other_cache.acquire(exclusive=False, wait=False)
    other_shard.acquire(exclusive=True, wait=False)
    try:
        with pytest.raises(DataError, match=rf"{out}: cannot --overwrite: the cache is in use "
                                            rf"by PID {os.getpid()}"):
            prepare_cache(synth, out, audio_extractors=[FrameRms(window=800)], overwrite=True,
                          progress=False)
        prepare_cache(synth, out, audio_extractors=[FrameRms()], shard=(0, 2), progress=False)
        assert left_over.is_dir(), "a temporary folder may belong to a running run"
        assert tree(out) == whole
    finally:
        other_shard.release()
        other_cache.release()
    prepare_cache(synth, out, audio_extractors=[FrameRms()], progress=False)
    assert not left_over.exists()
    replaced = prepare_cache(synth, out, audio_extractors=[FrameRms(window=800)],
                             overwrite=True, progress=False)
    assert replaced.missing() == [] and tree(out) != whole


def test_clip_folders_and_files_get_the_usual_permissions(tmp_path, synth):
    old = os.umask(0o027)
    try:
        cache = prepare_cache(synth, tmp_path / "c", audio_extractors=[FrameRms()],
                              progress=False)
    finally:
        os.umask(old)
    folder = tmp_path / "c" / "clips" / cache.ids()[0]
    assert folder.stat().st_mode & 0o777 == 0o750  # not mkdtemp's 0700
    assert {p.stat().st_mode & 0o777 for p in folder.iterdir()} == {0o640}
    assert (tmp_path / "c" / "manifest.json").stat().st_mode & 0o777 == 0o640


def test_tails_hold_the_features_of_the_silence_after_each_clip(tmp_path, synth):
    cache = prepare_cache(synth, tmp_path / "c", audio_extractors=[FrameRms()],
                          window_extractors=[WordCount()], progress=False)
    assert cache.tail == 64
    clip = cache.load(cache.ids()[0])
    n = clip.num_frames
    silence = FrameRms().extract(np.zeros(0, np.float32), 1)[0]
    assert clip.tail_audio["rms"].shape == (64, 2)
    np.testing.assert_allclose(clip.tail_audio["rms"][1:], np.tile(silence, (63, 1)))
    assert clip.tail_windows["wordcount"].shape == (-(-(n + 64) // 4) - -(-n // 4), 1)
    assert clip.tail_windows["wordcount"][-1, 0] == 0  # past the last word
    none = prepare_cache(synth, tmp_path / "none", audio_extractors=[FrameRms()],
                         settings=CacheSettings(tail=0), progress=False)
    assert none.tail == 0 and none.load(none.ids()[0]).tail_audio == {}
    assert not list((tmp_path / "none").glob("clips/*/tail_*"))
    with pytest.raises(ValueError, match="tail must be 0 or >= window - 1"):
        CacheSettings(tail=10)
