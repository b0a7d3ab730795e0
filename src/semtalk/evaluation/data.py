"""Evaluation inputs: cached test clips as generator inputs, their ground truth and their audio.

The feature cache holds everything generation reads (per-frame speech, beat and word ids,
per-window sentence and emotion rows) plus the ground-truth motion and semantic labels, so a
test clip becomes a :class:`~semtalk.generation.speech.SpeechFeatures` without running any
extractor. The cache holds no raw audio; beat consistency needs it, so
:class:`ClipAudio` reads it from the dataset the cache was prepared from (the manifest's
``source.root``, or a root the caller names; BEAT2 layout or SHOW), cropped exactly as
``semtalk prepare`` cropped the clip.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from semtalk.body.motion import Motion
from semtalk.data.audio import num_frames_for, samples_for
from semtalk.data.beat2 import Beat2Dataset
from semtalk.data.show import ShowClipInfo, ShowDataset, is_show_root
from semtalk.errors import DataError
from semtalk.features.cache import CachedClip, FeatureCache
from semtalk.features.sources import SHOW_DATASET
from semtalk.features.text import SIL, Vocabulary, frame_word_ids
from semtalk.generation.speech import SpeechFeatures
from semtalk.models.generator_common import FRAMES_PER_TOKEN
from semtalk.release import FeatureSpec

SENTENCE = "sentence"
EMOTION = "emotion"


@dataclass
class EvalClip:
    """One test clip: what the generator reads and what its output is compared with.

    Attributes:
        clip_id: the cache's clip id.
        speaker: BEAT2 speaker id (what generation takes).
        features: the generator's inputs, from the cache.
        motion: the ground-truth motion (``T`` frames).
        semantic: ``[T]`` ground-truth semantic score per frame, ``None`` when unlabelled.
    """

    clip_id: str
    speaker: int
    features: SpeechFeatures
    motion: Motion
    semantic: np.ndarray | None

    @property
    def num_frames(self) -> int:
        return self.motion.num_frames


def speech_features(clip: CachedClip, speech: str, hop: int, vocab: Vocabulary | None = None,
                    *, tail: bool = False, silence_id: int = SIL) -> SpeechFeatures:
    """A cached clip as generator inputs.

    Args:
        clip: the cached clip.
        speech: the γ_h feature the model reads (``spectral`` or ``hubert``).
        hop: the cache's window hop (frames between sentence/emotion rows).
        vocab: when given, word ids are recomputed from the clip's words with this vocabulary
            (a release trained on another cache has other ids); ``None`` uses the cached ids.
        tail: append the cached features of the silence after the clip (when the cache has
            them), so generation's last window reads what generation from audio reads there;
            their word ids are ``silence_id``. The features then have more frames than the
            clip: generate ``clip.num_frames`` of them.
    """
    folder = Path(clip.record["_folder"])
    if speech not in clip.audio:
        raise DataError(folder, f"clip has no {speech!r} features")
    for name in (SENTENCE, EMOTION):
        if name not in clip.windows:
            raise DataError(folder, f"clip has no {name!r} window features")
    words = clip.words()
    word_ids = (np.array(clip.word_ids, dtype=np.int64) if vocab is None
                else frame_word_ids(words, clip.num_frames, vocab).astype(np.int64))
    arrays = {"speech": clip.audio[speech], "beat": clip.audio["beat"],
              "sentence": clip.windows[SENTENCE], "emotion": clip.windows[EMOTION]}
    if tail and clip.tail_audio:
        tails = {"speech": clip.tail_audio[speech], "beat": clip.tail_audio["beat"],
                 "sentence": clip.tail_windows[SENTENCE], "emotion": clip.tail_windows[EMOTION]}
        arrays = {name: np.concatenate([values, tails[name]]) for name, values in arrays.items()}
        word_ids = np.concatenate([word_ids, np.full(len(tails["speech"]), silence_id,
                                                     np.int64)])
    return SpeechFeatures(
        **{name: np.array(values, dtype=np.float32) for name, values in arrays.items()},
        word_ids=word_ids, hop=hop, words=words)


def ground_truth_motion(clip: CachedClip) -> Motion:
    """The clip's recorded motion (poses, expressions, translation, betas)."""
    return Motion(np.array(clip.poses), np.array(clip.expressions), np.array(clip.trans),
                  np.array(clip.betas))


def check_cache_features(cache: FeatureCache, features: FeatureSpec) -> None:
    """Refuse a cache whose features differ from a release's feature identity.

    Raises:
        semtalk.features.cache.CacheMismatchError: listing every difference.
    """
    cache.require(audio_features=features.speech_identities(),
                  window_features=features.window_features,
                  window=features.window, hop=features.hop)


def load_eval_clips(cache: FeatureCache, split: str, speech: str,
                    vocab: Vocabulary | None = None, *, tail: bool = False,
                    silence_id: int = SIL) -> list[EvalClip]:
    """Every complete clip of ``split`` (manifest order) as an :class:`EvalClip`.

    ``vocab``: the model's vocabulary; word ids are taken from the cache when it is the
    cache's own (same fingerprint) and recomputed from the words otherwise. ``tail`` and
    ``silence_id``: as in :func:`speech_features`.

    Raises:
        DataError: the split has no complete clip.
    """
    ids = cache.ids(split)
    if not ids:
        splits = sorted({c["split"] for c in cache.manifest["clips"]})
        raise DataError(cache.path, f"no complete {split!r} clips to evaluate (the cache has "
                                    f"splits {splits})")
    remap = vocab if vocab is not None and vocab.fingerprint() != cache.vocab.fingerprint() \
        else None
    clips = []
    for clip_id in ids:
        clip = cache.load(clip_id)
        clips.append(EvalClip(clip_id, int(clip.record["speaker_id"]),
                              speech_features(clip, speech, cache.hop, remap, tail=tail,
                                              silence_id=silence_id),
                              ground_truth_motion(clip),
                              None if clip.semantic is None else np.array(clip.semantic)))
    return clips


def token_labels(semantic: np.ndarray, num_tokens: int,
                 frames_per_token: int = FRAMES_PER_TOKEN) -> np.ndarray:
    """Frame scores ``[T]`` -> token scores ``[num_tokens]``: the mean of each token's frames.

    The last token may cover fewer than ``frames_per_token`` frames (``T`` not a multiple of
    4); it averages the frames it has. A token is semantic when its score is > 0, i.e. when
    any of its frames is (the training validation's rule).
    """
    scores = np.asarray(semantic, dtype=np.float64).reshape(-1)
    needed = -(-scores.size // frames_per_token)
    if num_tokens != needed:
        raise ValueError(f"{scores.size} frames make {needed} tokens of {frames_per_token}, "
                         f"got num_tokens={num_tokens}")
    starts = np.arange(0, scores.size, frames_per_token)
    counts = np.minimum(frames_per_token, scores.size - starts)
    return np.add.reduceat(scores, starts) / counts


def dataset_root(cache: FeatureCache, override: str | Path | None = None) -> Path:
    """The dataset holding the cache's audio: ``override`` or ``source.root``.

    Raises:
        DataError: neither exists (the message says how to point at the dataset).
    """
    if override is not None:
        root = Path(override)
        if not root.is_dir():
            raise DataError(root, "dataset root (--dataset) not found")
        return root
    source = cache.manifest.get("source", {}).get("root")
    if source is None or not Path(source).is_dir():
        layout = ("SHOW root with <speaker>/<video_fn>/<clip>/<clip>.wav" if is_show_cache(cache)
                  else "BEAT2-layout folder with wave16k/")
        raise DataError(cache.path, f"beat consistency needs the clips' audio, which a feature "
                                    f"cache does not hold, and the dataset it was prepared "
                                    f"from ({source}) is not there; pass --dataset ROOT (the "
                                    f"{layout})")
    return Path(source)


def is_show_cache(cache: FeatureCache) -> bool:
    """Whether the cache was prepared from a SHOW root."""
    return cache.manifest.get("dataset") == SHOW_DATASET


class ClipAudio:
    """16 kHz audio of cached clips, read from their dataset and cropped like the cache.

    Args:
        cache: the feature cache (its manifest says the dataset's layout, BEAT2 or SHOW, and
            the BEAT2 ``crop`` mode, which is reused).
        root: the dataset root (:func:`dataset_root`).

    Raises:
        DataError: ``root`` is not a dataset of the cache's layout.
    """

    def __init__(self, cache: FeatureCache, root: Path) -> None:
        self.root = root
        self._show_clips: dict[str, ShowClipInfo] | None = None
        if is_show_cache(cache):
            if not is_show_root(root):
                raise DataError(root, "the cache was prepared from a SHOW root, but this is "
                                      "not one (<speaker>/<video_fn>/<clip>/<clip>.wav)")
            self._show_dataset = ShowDataset(root)  # every clip, whatever split made the cache
            self._show_clips = {info.clip_id: info for info in self._show_dataset}
        else:
            self.dataset = Beat2Dataset(root, speakers=None, splits=None,
                                        crop=cache.manifest.get("crop", "frames"),
                                        max_duration_mismatch=None)

    def load(self, clip_id: str, num_frames: int) -> np.ndarray:
        """Mono float32 samples of ``clip_id``, exactly the ``num_frames`` the cache holds.

        Raises:
            DataError: the clip is not in the dataset, or the dataset's clip has another
                length than the cached one (the dataset is not the one the cache was made of).
        """
        if self._show_clips is not None:
            return self._load_show(clip_id, num_frames)
        try:
            info = self.dataset.info(clip_id)
        except KeyError:
            raise self._not_here(clip_id) from None
        clip = self.dataset.load(info)
        if clip.num_frames != num_frames:
            raise DataError(info.path("audio"), f"the dataset's clip has {clip.num_frames} "
                                                f"frames but the cache's {num_frames}; is it the "
                                                f"dataset the cache was prepared from?")
        return clip.audio

    def _load_show(self, clip_id: str, num_frames: int) -> np.ndarray:
        """A SHOW clip's audio cut to ``num_frames`` as ``prepare`` cut it (to the common
        length of motion and audio, which only the motion can have made shorter)."""
        assert self._show_clips is not None
        info = self._show_clips.get(clip_id)
        if info is None:
            raise self._not_here(clip_id)
        audio = self._show_dataset.load_audio(info)
        frames = num_frames_for(audio.shape[0])
        if frames < num_frames:
            raise DataError(info.audio_path, f"the dataset's audio has {frames} frames but the "
                                             f"cache's clip {num_frames}; is it the dataset the "
                                             f"cache was prepared from?")
        return audio[:samples_for(num_frames)]

    def _not_here(self, clip_id: str) -> DataError:
        return DataError(self.root, f"clip {clip_id} of the cache is not in this dataset; is "
                                    f"it the one the cache was prepared from?")
