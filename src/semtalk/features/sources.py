"""The datasets ``semtalk prepare`` reads: one reader per root layout, one cache pipeline.

:func:`semtalk.features.cache.prepare_cache` asks a :class:`ClipSource` for the clips of a root
(id, split, speaker), loads them one by one as :class:`~semtalk.data.beat2.Clip` s (motion,
16 kHz mono audio, timed words, semantic scores, all cropped to one length) and writes the
features; locks, atomic clips, resume and the warning summary are the cache's and the same for
every source. :func:`open_source` picks the reader by the root's layout:

- :class:`Beat2Source`: a BEAT2-layout root (``train_test_split.csv``): words from the
  TextGrids, semantic scores from ``sem/`` (or pseudo-labels), vocabulary from the training
  transcripts.
- :class:`ShowSource`: a SHOW root as distributed (:mod:`semtalk.data.show`): motion converted
  with the hand PCA of the user's SMPL-X file, words recognised from the audio exactly as
  ``semtalk label`` finds them (:func:`recognized_words`), semantic scores only from
  pseudo-labels, speaker ids from :data:`~semtalk.data.show.SHOW_SPEAKER_IDS`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from semtalk.config import ConfigError
from semtalk.constants import AUDIO_SAMPLE_RATE
from semtalk.data.audio import num_frames_for
from semtalk.data.beat2 import STANDARD_SPLITS, Beat2Dataset, Clip, ClipIdentity, ClipInfo
from semtalk.data.pseudo_labels import PseudoLabels, beat2_label_key
from semtalk.data.show import SHOW_SPEAKER_IDS, ShowClipInfo, ShowDataset, is_show_root
from semtalk.data.textgrid import Word, read_words
from semtalk.errors import DataError, DataIssue, Severity
from semtalk.features.alignment import speech_regions, words_for_audio
from semtalk.features.text import Vocabulary
from semtalk.fileio import file_sha256

SHOW_DATASET = "show"
"""The ``dataset`` a SHOW root records in its cache's manifest (BEAT2 roots record none)."""
SHOWN_MISSING_LABELS = 5
"""Clips named in the error about missing pseudo-labels (the rest are counted)."""


class ClipSource(Protocol):
    """A dataset root as the feature cache reads it."""

    root: Path
    warnings: list[str]
    """What the reader noticed about the whole root (split file problems ...)."""

    def infos(self) -> list[ClipIdentity]:
        """The clips to prepare, in a fixed order."""
        ...

    def identity(self) -> dict[str, Any]:
        """What, besides the extractors, decides the cache's contents (its fingerprint)."""
        ...

    def label_key(self, info: ClipIdentity) -> str:
        """The clip's key in a pseudo-labels folder (:mod:`semtalk.data.pseudo_labels`)."""
        ...

    def vocabulary(self) -> Vocabulary:
        """The default word vocabulary (when the caller gives none)."""
        ...

    def load(self, info: ClipIdentity, labels: PseudoLabels | None) -> Clip:
        """The clip, with ``labels`` (if given) as its semantic scores."""
        ...


def recognized_words(audio: np.ndarray, source: Path, whisper_model: Path | None = None
                     ) -> tuple[list[Word], str]:
    """``(words, method)`` of 16 kHz mono ``audio`` without a transcript: what ``semtalk
    label`` (:func:`semtalk.generation.inputs.load_utterance` with recognition) finds, i.e.
    no words for audio without speech, else offline recognition (pocketsphinx, or the local
    faster-whisper model ``whisper_model``). ``method`` is ``"none"`` or a ``METHOD_*`` label
    of :mod:`semtalk.features.alignment`."""
    if not speech_regions(audio, AUDIO_SAMPLE_RATE):
        return [], "none"
    return words_for_audio(audio, AUDIO_SAMPLE_RATE, transcript=None, allow_recognition=True,
                           source=source, whisper_model=whisper_model)


def check_labelled(source: ClipSource, labels: PseudoLabels) -> None:
    """Refuse, before anything is written, a source with clips that have no pseudo-label."""
    infos = source.infos()
    missing = labels.missing(source.label_key(info) for info in infos)
    if missing:
        shown = ", ".join(missing[:SHOWN_MISSING_LABELS])
        more = len(missing) - SHOWN_MISSING_LABELS
        raise DataError(labels.folder, f"{len(missing)} of {len(infos)} clips have no pseudo-"
                                       f"label: {shown}{f' and {more} more' if more > 0 else ''};"
                                       f" run `semtalk label {source.root} --model RELEASE --out "
                                       f"{labels.folder}` (it resumes), or leave those clips out "
                                       "(--split-file, --splits, --speakers)")


class Beat2Source:
    """A BEAT2-layout root (real BEAT2 or the synthetic speaker)."""

    def __init__(self, root: str | Path, *, speakers: Sequence[int] | None = None,
                 splits: Sequence[str] = STANDARD_SPLITS) -> None:
        self.dataset = Beat2Dataset(root, speakers=speakers, splits=splits)
        self.root = self.dataset.root
        self.speakers = speakers
        self.warnings: list[str] = []

    def infos(self) -> list[ClipIdentity]:
        return list(self.dataset)

    def identity(self) -> dict[str, Any]:
        return {"crop": self.dataset.crop}  # as before sources existed: BEAT2 caches keep theirs

    def label_key(self, info: ClipIdentity) -> str:
        return beat2_label_key(info)

    def vocabulary(self) -> Vocabulary:
        """From the training transcripts of the chosen speakers (all clips if none is train)."""
        train = Beat2Dataset(self.root, speakers=self.speakers, splits=["train"])
        clips = list(train) or list(Beat2Dataset(self.root, speakers=self.speakers,
                                                 splits=None))
        return Vocabulary.build([w.text for w in read_words(c.path("words"))] for c in clips
                                if c.path("words").is_file())

    def load(self, info: ClipIdentity, labels: PseudoLabels | None) -> Clip:
        assert isinstance(info, ClipInfo)
        clip = self.dataset.load(info)
        if labels is not None:  # the labels replace the sem/ file
            clip.semantic_scores = labels.scores(self.label_key(info), clip.num_frames)
        return clip


class ShowSource:
    """A SHOW root (:mod:`semtalk.data.show`).

    Args:
        body_model: the user's SMPL-X model file; its hand PCA components convert the motion
            (required: a cache holds the hands).
        split_file: TalkSHOW's ``train_val_test.json``; without it every clip is in ``train``
            (a warning in :attr:`warnings`).
        speakers: SHOW speaker ids (:data:`~semtalk.data.show.SHOW_SPEAKER_IDS`) to keep.
        whisper_model: the local faster-whisper folder ``semtalk label`` was given, if any
            (the words must be found the same way).
    """

    def __init__(self, root: str | Path, *, body_model: str | Path | None,
                 split_file: str | Path | None = None, speakers: Sequence[int] | None = None,
                 splits: Sequence[str] = STANDARD_SPLITS,
                 whisper_model: str | Path | None = None) -> None:
        if body_model is None:
            raise DataError(root, "preparing a SHOW root needs your SMPL-X model file for the "
                                  "hands (SHOW stores them as 12 PCA coefficients): pass "
                                  "--body-model SMPLX_FILE (e.g. SMPLX_NEUTRAL_2020.npz)")
        names = None if speakers is None else _speaker_names(speakers)
        self.dataset = ShowDataset(root, split_file=split_file, splits=splits, speakers=names,
                                   body_model=body_model)
        self.dataset.hands()  # a bad model file fails now, before the cache is touched
        for speaker in self.dataset.speakers:
            if speaker not in SHOW_SPEAKER_IDS:
                raise DataError(self.dataset.root / speaker, f"speaker {speaker!r} is not one of "
                                                             f"SHOW's {list(SHOW_SPEAKER_IDS)}")
        self.root = self.dataset.root
        self.whisper_model = None if whisper_model is None else Path(whisper_model)
        self.warnings = list(self.dataset.warnings)

    def infos(self) -> list[ClipIdentity]:
        return list(self.dataset)

    def identity(self) -> dict[str, Any]:
        hands = self.dataset.hands()
        assert hands is not None
        words = "pocketsphinx" if self.whisper_model is None \
            else f"whisper:{self.whisper_model.name}"
        return {"crop": "frames", "dataset": SHOW_DATASET, "hands": f"smplx:"
                f"{file_sha256(hands.source)[:16]}", "words": words}

    def label_key(self, info: ClipIdentity) -> str:
        assert isinstance(info, ShowClipInfo)
        return info.key

    def vocabulary(self) -> Vocabulary:
        raise DataError(self.root, "a SHOW root has no transcripts to build a vocabulary from: "
                                   "pass the vocabulary of the release that made the labels "
                                   "(--vocab RELEASE/sparse/vocab.json)")

    def load(self, info: ClipIdentity, labels: PseudoLabels | None) -> Clip:
        assert isinstance(info, ShowClipInfo)
        motion = self.dataset.load_motion(info)
        audio = self.dataset.load_audio(info)
        words, method = recognized_words(audio, info.audio_path, self.whisper_model)
        clip = self.dataset.clip(info, motion, audio, words)
        if labels is not None:
            clip.semantic_scores = labels.scores(info.key, clip.num_frames,
                                                 audio_frames=num_frames_for(audio.shape[0]))
            labelled_with = labels.clip_record(info.key).get("words_method")
            if labelled_with is not None and labelled_with != method:
                clip.issues.append(DataIssue(
                    info.audio_path, f"words found here by {method!r}, but by "
                                     f"{labelled_with!r} when the labels were made (were they "
                                     "made with another --whisper-model?)", Severity.WARNING))
        return clip


def _speaker_names(ids: Sequence[int]) -> list[str]:
    names = {i: name for name, i in SHOW_SPEAKER_IDS.items()}
    unknown = [i for i in ids if i not in names]
    if unknown:
        raise ConfigError(f"unknown SHOW speaker id(s) {unknown}; SHOW's are "
                          f"{ {i: n for n, i in SHOW_SPEAKER_IDS.items()} }")
    return [names[i] for i in ids]


def open_source(root: str | Path, *, speakers: Sequence[int] | None = None,
                splits: Sequence[str] = STANDARD_SPLITS, body_model: str | Path | None = None,
                split_file: str | Path | None = None,
                whisper_model: str | Path | None = None) -> ClipSource:
    """The reader of ``root``: :class:`ShowSource` for a SHOW root (detected by its layout,
    :func:`~semtalk.data.show.is_show_root`), else :class:`Beat2Source`. ``body_model``,
    ``split_file`` and ``whisper_model`` are SHOW's; a BEAT2 root refuses them."""
    if is_show_root(root):
        return ShowSource(root, body_model=body_model, split_file=split_file,
                          speakers=speakers, splits=splits, whisper_model=whisper_model)
    given = [name for name, value in (("body_model (--body-model)", body_model),
                                      ("split_file (--split-file)", split_file),
                                      ("whisper_model (--whisper-model)", whisper_model))
             if value is not None]
    if given:
        raise DataError(root, f"{', '.join(given)} only apply to SHOW roots; this is a "
                              "BEAT2-layout root (train_test_split.csv)")
    return Beat2Source(root, speakers=speakers, splits=splits)
