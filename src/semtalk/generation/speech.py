"""The generators' inputs for one utterance, computed with the extractors a release was trained on.

A release's :class:`~semtalk.release.FeatureSpec` (``features.json``) records each extractor's
name, version and settings (not model paths). :class:`UtteranceFeaturizer` rebuilds the same
extractors (HuBERT, CLIP and emotion2vec from local folders the user names), checks that their
identities equal the recorded ones, and computes :class:`SpeechFeatures` for new audio and words.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from semtalk.config import describe_difference
from semtalk.constants import AUDIO_SAMPLE_RATE
from semtalk.data.audio import num_frames_for, to_mono
from semtalk.data.textgrid import Word, as_words
from semtalk.errors import DataError
from semtalk.features import registry
from semtalk.features.base import AudioFeatureExtractor, WindowFeatureExtractor
from semtalk.features.text import Vocabulary, frame_word_ids
from semtalk.release import FeatureSpec

SPEECH_KEYS = ("speech", "beat", "word_ids", "sentence", "emotion")


@dataclass
class SpeechFeatures:
    """What the generators read for one utterance.

    Attributes:
        speech: ``[T, Ds]`` γ_h (spectral or HuBERT).
        beat: ``[T, Db]`` γ_b.
        word_ids: ``[T]`` vocabulary ids φ_l (SIL where no word is spoken).
        sentence: ``[W, Dg]`` φ_g; row ``k`` describes the window starting at frame ``k * hop``.
        emotion: ``[W, De]`` φ_e, same rows.
        hop: frames between window rows.
        words: the timed words (seconds), for outputs and emphasis.
    """

    speech: np.ndarray
    beat: np.ndarray
    word_ids: np.ndarray
    sentence: np.ndarray
    emotion: np.ndarray
    hop: int
    words: list[Word] = field(default_factory=list)

    def __post_init__(self) -> None:
        frames = {name: len(getattr(self, name)) for name in ("speech", "beat", "word_ids")}
        if len(set(frames.values())) != 1 or not frames["speech"]:
            raise ValueError(f"speech, beat and word_ids need the same number (>= 1) of frames, "
                             f"got {frames}")
        if len(self.sentence) != len(self.emotion) or not len(self.sentence):
            raise ValueError(f"sentence and emotion need the same number (>= 1) of window rows, "
                             f"got {len(self.sentence)} and {len(self.emotion)}")
        if self.hop < 1:
            raise ValueError(f"hop must be >= 1, got {self.hop}")
        for name in ("speech", "beat", "sentence", "emotion"):
            if not np.isfinite(getattr(self, name)).all():
                raise ValueError(f"{name} features contain NaN or Inf")
        self.words = as_words(self.words)  # tuples accepted; bad times refused naming the word

    @property
    def num_frames(self) -> int:
        """Frames ``T`` (one per 1/30 s)."""
        return len(self.speech)


def pad_rows(values: np.ndarray, rows: int) -> np.ndarray:
    """``values`` cut or extended to ``rows`` rows by repeating the last row (the ``official``
    family's padding, and the fallback for features without their audio)."""
    if len(values) >= rows:
        return values[:rows]
    return np.concatenate([values, np.repeat(values[-1:], rows - len(values), axis=0)])


def feature_spec(features: FeatureSpec, where: Path, *, hubert_model: str | Path | None = None,
                 sentence_model: str | Path | None = None,
                 emotion_model: str | Path | None = None,
                 device: str = "cpu") -> registry.ExtractorChoice:
    """The extractor choice (:class:`semtalk.features.registry.ExtractorChoice`) that rebuilds the
    extractors recorded in ``features``.

    Raises:
        DataError: (naming ``where``) a model folder the release needs was not given.
    """
    speech = features.speech_feature
    window = features.window_features
    sentence = window["sentence"]["config"]["encoder"]
    emotion = window["emotion"]["config"]["method"]
    needed = {"hubert": (speech == "hubert", hubert_model, "--hubert DIR"),
              "sentence": (sentence == "clip", sentence_model, "--sentence-model DIR"),
              "emotion": (emotion == "emotion2vec", emotion_model, "--emotion-model DIR")}
    missing = [f"{flag} ({name})" for name, (wanted, given, flag) in needed.items()
               if wanted and given is None]
    if missing:
        raise DataError(where, "this release was trained on features computed with local "
                               "models; give the same model folders: " + ", ".join(missing))
    layer = features.audio_features[speech]["config"].get("layer") \
        if speech == "hubert" else None
    return registry.ExtractorChoice(
        hubert_model=None if speech != "hubert" else str(hubert_model), hubert_layer=layer,
        sentence_encoder=sentence, sentence_model=None if sentence_model is None
        else str(sentence_model), emotion_method=emotion,
        emotion_model=None if emotion_model is None else str(emotion_model), device=device)


class UtteranceFeaturizer:
    """Computes :class:`SpeechFeatures` with the extractors a release was trained on.

    The extractors are built (and their identities checked) on first use: loading a sentence
    or speech model takes time that a caller who only generates from cached features skips.

    Frames past the end of the audio are the extractors' features of silence (zero samples
    after the audio; the spectral normalisation keeps the statistics of the audio itself),
    the silence word id and the window rows of windows without words, i.e. what training
    reads where a clip's motion outlasts its audio: the engine pads its last window with them.
    """

    tail_is_silence = True

    def __init__(self, features: FeatureSpec, vocab: Vocabulary, where: Path,
                 **models: Any) -> None:
        self.features = features
        self.vocab = vocab
        self.where = where
        self.spec = feature_spec(features, where, **models)
        self._extractors: tuple[dict[str, AudioFeatureExtractor],
                                dict[str, WindowFeatureExtractor]] | None = None

    def extractors(self) -> tuple[dict[str, AudioFeatureExtractor],
                                  dict[str, WindowFeatureExtractor]]:
        """``({name: frame extractor}, {name: window extractor})``, identities checked."""
        if self._extractors is None:
            audio, window = registry.build_extractors(self.spec)
            built = ({e.name: e for e in audio}, {e.name: e for e in window})
            problems = []
            pairs: list[tuple[Mapping[str, Any], Mapping[str, Any]]] = [
                (self.features.audio_features, built[0]),
                (self.features.window_features, built[1])]
            for features, by_name in pairs:
                for name, trained in features.items():
                    extractor = by_name.get(name)
                    if extractor is None:
                        problems.append(f"{name}: no extractor of that name")
                        continue
                    problems += describe_difference(trained, extractor.identity(), f"{name}.",
                                                    source="release")
            if problems:
                raise DataError(self.where, "the feature extractors available here differ from "
                                            "the ones this release was trained with: "
                                            + "; ".join(problems[:6]))
            self._extractors = built
        return self._extractors

    def __call__(self, audio: np.ndarray, sample_rate: int, words: list[Word] | None,
                 num_frames: int | None = None, hop: int | None = None) -> SpeechFeatures:
        """Features of ``audio`` (any rate; ``[N]`` or ``[N, C]``) and its timed ``words``.

        Args:
            num_frames: frames to compute (default one per 1/30 s of audio); frames past the
                end of the audio describe silence.
            hop: frames between window rows (default the training cache's hop).
        """
        is_mono = (sample_rate == AUDIO_SAMPLE_RATE and audio.ndim == 1
                   and audio.dtype == np.float32)  # the engine's audio: converted once
        mono = audio if is_mono else to_mono(audio, sample_rate)
        frames = num_frames or num_frames_for(len(mono))
        hop = hop or self.features.hop
        words = sorted(words or [], key=lambda w: w.start)
        audio_extractors, window_extractors = self.extractors()
        rows = {name: e.extract(mono, frames) for name, e in audio_extractors.items()}
        window = self.features.window
        windows = {name: e.extract(mono, words, frames, window, hop)
                   for name, e in window_extractors.items()}
        return SpeechFeatures(speech=rows[self.features.speech_feature], beat=rows["beat"],
                              word_ids=frame_word_ids(words, frames, self.vocab),
                              sentence=windows["sentence"], emotion=windows["emotion"],
                              hop=hop, words=words)
