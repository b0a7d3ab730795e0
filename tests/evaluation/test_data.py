"""Evaluation inputs: cached clips as generator inputs, token labels, the clips' audio."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from semtalk.errors import DataError
from semtalk.evaluation.data import (
    ClipAudio,
    dataset_root,
    load_eval_clips,
    speech_features,
    token_labels,
)
from semtalk.features.cache import FeatureCache
from semtalk.features.text import Vocabulary, frame_word_ids


def test_cached_clip_becomes_the_generator_inputs(synth_cache: Path) -> None:
    cache = FeatureCache(synth_cache)
    clip_id = cache.ids("test")[0]
    clip = cache.load(clip_id)
    features = speech_features(clip, "spectral", cache.hop)
    assert features.num_frames == clip.num_frames and features.hop == cache.hop
    assert np.array_equal(features.speech, clip.audio["spectral"])
    assert np.array_equal(features.beat, clip.audio["beat"])
    assert np.array_equal(features.word_ids, clip.word_ids)
    assert np.array_equal(features.sentence, clip.windows["sentence"])
    assert features.words == clip.words() and features.words
    features.speech[0, 0] += 1.0  # a private copy: the cache's memory map is untouched
    assert features.speech[0, 0] != clip.audio["spectral"][0, 0]
    with pytest.raises(DataError, match="'hubert'"):
        speech_features(clip, "hubert", cache.hop)


def test_tail_is_what_generation_from_the_clips_audio_reads(
        synth_cache: Path, synth_root: Path, tiny_release: Path) -> None:
    """The cache keeps the features of the silence after each clip; a cached clip with its
    tail gives the engine the features that generation from the clip's audio and words
    computes, past the clip's end too (up to the float16 storage of wide features)."""
    from semtalk.generation.engine import SemTalk

    cache = FeatureCache(synth_cache)
    assert cache.tail == 64
    engine = SemTalk.from_pretrained(tiny_release)
    for clip in load_eval_clips(cache, "test", "spectral", tail=True, silence_id=7):
        audio = ClipAudio(cache, synth_root).load(clip.clip_id, clip.num_frames)
        from_audio, frames = engine._features(audio, clip.features.words)
        cached = clip.features
        assert frames == clip.num_frames
        assert cached.num_frames == clip.num_frames + 64 >= from_audio.num_frames
        rows = from_audio.num_frames  # generation's frames: to the end of its last window
        assert rows > clip.num_frames  # the last window reaches into the silence
        np.testing.assert_allclose(cached.speech[:rows], from_audio.speech, atol=2e-2, rtol=2e-3)
        np.testing.assert_array_equal(cached.beat[:rows], from_audio.beat)
        step = from_audio.hop // cached.hop  # generation's window rows: one per window start
        for name in ("sentence", "emotion"):
            window_rows = getattr(cached, name)[::step][:len(getattr(from_audio, name))]
            np.testing.assert_allclose(window_rows, getattr(from_audio, name), atol=1e-5,
                                       err_msg=name)
        assert (cached.word_ids[clip.num_frames:] == 7).all()
        tail = cached.speech[clip.num_frames:]
        assert not np.allclose(tail, cached.speech[clip.num_frames - 1])  # not a repeat
    untailed = load_eval_clips(cache, "test", "spectral")[0]
    assert untailed.features.num_frames == untailed.num_frames


def test_a_cache_without_tails_still_reads(synth_cache: Path, tmp_path: Path) -> None:
    """Caches made before tails were kept load, and evaluation repeats the last row there."""
    old = tmp_path / "cache"
    shutil.copytree(synth_cache, old)
    manifest = json.loads((old / "manifest.json").read_text())
    del manifest["tail"]
    (old / "manifest.json").write_text(json.dumps(manifest))
    for path in old.glob("clips/*/tail_*.npy"):
        path.unlink()
    cache = FeatureCache(old)
    assert cache.tail == 0 and cache.ids() == FeatureCache(synth_cache).ids()
    clip = load_eval_clips(cache, "test", "spectral", tail=True)[0]
    assert clip.features.num_frames == clip.num_frames


def test_a_missing_tail_file_is_damage(synth_cache: Path, tmp_path: Path) -> None:
    copy = tmp_path / "cache"
    shutil.copytree(synth_cache, copy)
    clip_id = FeatureCache(copy).ids()[0]
    (copy / "clips" / clip_id / "tail_window_emotion.npy").unlink()
    assert FeatureCache(copy).damage(clip_id) == ["tail_window_emotion.npy is missing"]


def test_eval_clips_carry_ground_truth_and_labels(synth_cache: Path) -> None:
    cache = FeatureCache(synth_cache)
    clips = load_eval_clips(cache, "test", "spectral")
    assert [c.clip_id for c in clips] == cache.ids("test")
    clip, cached = clips[0], cache.load(clips[0].clip_id)
    assert clip.speaker == cached.record["speaker_id"] == 2
    assert np.array_equal(clip.motion.poses, cached.poses)
    assert np.array_equal(clip.motion.betas, cached.betas)
    assert clip.semantic is not None and clip.semantic.max() > 0
    with pytest.raises(DataError, match="no complete 'nope' clips"):
        load_eval_clips(cache, "nope", "spectral")


def test_other_vocabulary_recomputes_word_ids(synth_cache: Path) -> None:
    cache = FeatureCache(synth_cache)
    own = load_eval_clips(cache, "test", "spectral", cache.vocab)[0]
    assert np.array_equal(own.features.word_ids, cache.load(own.clip_id).word_ids)
    words = own.features.words
    other = Vocabulary.build([[w.text for w in reversed(words)], ["zebra", "quokka"]])
    remapped = load_eval_clips(cache, "test", "spectral", other)[0]
    expected = frame_word_ids(words, own.num_frames, other)
    assert np.array_equal(remapped.features.word_ids, expected)
    assert not np.array_equal(remapped.features.word_ids, own.features.word_ids)


def test_token_labels_average_each_tokens_frames() -> None:
    frames = np.array([0, 0, 0, 0, 0, 0, 0.8, 0, 1, 1, 1, 1, 0.5, 0.5], dtype=np.float32)
    assert np.allclose(token_labels(frames, 4), [0.0, 0.2, 1.0, 0.5])  # last token: 2 frames
    assert list(token_labels(frames, 4) > 0) == [False, True, True, True]
    with pytest.raises(ValueError, match="make 4 tokens"):
        token_labels(frames, 3)


def test_dataset_root_defaults_to_the_cache_source_and_says_how_to_fix(
        synth_cache: Path, synth_root: Path, tmp_path: Path) -> None:
    cache = FeatureCache(synth_cache)
    assert dataset_root(cache) == synth_root.resolve()
    assert dataset_root(cache, synth_root) == synth_root
    with pytest.raises(DataError, match="--dataset"):
        dataset_root(cache, tmp_path / "missing")
    moved = tmp_path / "cache"
    shutil.copytree(synth_cache, moved)
    manifest = json.loads((moved / "manifest.json").read_text())
    manifest["source"]["root"] = str(tmp_path / "gone")
    (moved / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(DataError, match=r"pass --dataset ROOT"):
        dataset_root(FeatureCache(moved))


def test_clip_audio_is_cropped_like_the_cache(synth_cache: Path, synth_root: Path) -> None:
    cache = FeatureCache(synth_cache)
    audio = ClipAudio(cache, synth_root)
    clip_id = cache.ids("test")[0]
    frames = cache.load(clip_id).num_frames
    samples = audio.load(clip_id, frames)
    assert samples.dtype == np.float32 and samples.size == round(frames * 16000 / 30)
    with pytest.raises(DataError, match="frames but the cache's"):
        audio.load(clip_id, frames + 30)
    with pytest.raises(DataError, match="not in this dataset"):
        audio.load("2_nobody_0_1_1", frames)
