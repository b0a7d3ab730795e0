"""Reader for datasets in the BEAT2 layout (real BEAT2 and the synthetic speaker alike).

A root holds::

    train_test_split.csv          id,type   (type in train / val / test / additional)
    smplxflame_30/<id>.npz        motion (required)
    wave16k/<id>.wav              speech (required; any rate or channel count is converted)
    textgrid/<id>.TextGrid        word timings (optional)
    sem/<id>.txt                  semantic gesture annotations (optional)
    emo/<id>.csv                  emotion annotations (optional)

Clip ids look like ``2_scott_0_1_1``: the speaker id is the integer before the first underscore.

Motion and audio of a BEAT2 clip differ slightly in length (the sample clip: 63.53 s of motion,
64.10 s of audio). :meth:`Beat2Dataset.load` reports the difference and crops every modality
to the common length: in whole frames by default (nothing is lost), or in whole seconds as the
official code does (``crop="seconds"``). A difference larger than ``max_duration_mismatch``
seconds is an error, because it means the files do not belong together.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Protocol, overload

import numpy as np

from semtalk.body.motion import Motion, read_motion_npz
from semtalk.constants import AUDIO_SAMPLE_RATE, MOTION_FPS
from semtalk.data.audio import audio_duration, load_audio, num_frames_for, samples_for
from semtalk.data.emotion import EmotionSegment, emotion_from_clip_id, read_emotion_csv
from semtalk.data.semantic import SemanticSegment, frame_semantic_scores, read_semantic
from semtalk.data.textgrid import Word, read_words
from semtalk.errors import DataError, DataIssue, Severity

SPLIT_FILE = "train_test_split.csv"
SPLITS: tuple[str, ...] = ("train", "val", "test", "additional")
STANDARD_SPLITS: tuple[str, ...] = ("train", "val", "test")
NUM_SPEAKER_CLASSES = 25

MODALITY_LAYOUT: dict[str, tuple[str, str]] = {
    "motion": ("smplxflame_30", ".npz"),
    "audio": ("wave16k", ".wav"),
    "words": ("textgrid", ".TextGrid"),
    "semantic": ("sem", ".txt"),
    "emotion": ("emo", ".csv"),
}
REQUIRED_MODALITIES: tuple[str, ...] = ("motion", "audio")
CropMode = Literal["frames", "seconds"]


def speaker_class(speaker_id: int) -> int:
    """BEAT2's speaker id -> class index 0..24 (30 -> 8, 28 -> 14, 27 -> 19, else id - 1)."""
    special = {30: 8, 28: 14, 27: 19}
    return special.get(speaker_id, speaker_id - 1)


def parse_clip_id(clip_id: str) -> tuple[int, str]:
    """``"2_scott_0_1_1"`` -> ``(2, "scott")``; raises ValueError for other shapes."""
    fields = clip_id.split("_")
    if len(fields) < 2 or not fields[0].isdigit():
        raise ValueError(f"clip id {clip_id!r} does not start with '<speaker id>_<name>'")
    return int(fields[0]), fields[1]


@dataclass(frozen=True)
class ClipInfo:
    """Where a clip's files are and what the split table says about it."""

    clip_id: str
    split: str
    speaker_id: int
    speaker_name: str
    root: Path

    def path(self, modality: str) -> Path:
        """The expected file of ``modality`` (it may not exist)."""
        folder, suffix = MODALITY_LAYOUT[modality]
        return self.root / folder / f"{self.clip_id}{suffix}"

    @property
    def speaker_class(self) -> int:
        return speaker_class(self.speaker_id)

    def missing_modalities(self) -> list[str]:
        return [m for m in MODALITY_LAYOUT if not self.path(m).is_file()]


class ClipIdentity(Protocol):
    """What the feature cache needs to know about a clip of any dataset: :class:`ClipInfo`
    (BEAT2 layout) and :class:`semtalk.data.show.ShowClipInfo` (SHOW) both are one."""

    @property
    def clip_id(self) -> str: ...

    @property
    def split(self) -> str: ...

    @property
    def speaker_id(self) -> int: ...

    @property
    def speaker_name(self) -> str: ...

    @property
    def speaker_class(self) -> int: ...


@dataclass
class Clip:
    """A loaded clip: every modality cropped to the same length."""

    info: ClipIdentity
    motion: Motion
    audio: np.ndarray
    """Mono float32 at 16 kHz, exactly ``num_frames / 30`` seconds long (rounded to samples)."""
    words: list[Word] | None
    """Non-silent words; ``None`` when the clip has no TextGrid."""
    semantic: list[SemanticSegment] | None
    """Semantic annotations; ``None`` when the clip has no ``sem`` file."""
    semantic_scores: np.ndarray | None
    """``[T]`` frame-level semantic score (see :mod:`semtalk.data.semantic`)."""
    emotion: str | None
    """Emotion from the clip id (BEAT numbering), ``None`` if the id does not encode one."""
    emotion_segments: list[EmotionSegment] | None = None
    issues: list[DataIssue] = field(default_factory=list)

    @property
    def num_frames(self) -> int:
        return self.motion.num_frames

    @property
    def duration(self) -> float:
        return self.motion.duration


def _read_split_table(path: Path) -> list[tuple[str, str]]:
    if not path.is_file():
        raise DataError(path, "split table not found; a BEAT2 root has train_test_split.csv "
                              "(columns id,type) beside smplxflame_30/ and wave16k/")
    text = path.read_text(encoding="utf-8-sig")
    reader = csv.reader(text.splitlines())
    header = next(reader, None)
    if header is None:
        raise DataError(path, "split table is empty")
    header = [h.strip() for h in header]
    if "id" not in header or "type" not in header:
        raise DataError(path, f"split table needs the columns 'id' and 'type', got {header}")
    id_col, type_col = header.index("id"), header.index("type")
    rows: list[tuple[str, str]] = []
    seen: set[str] = set()
    for number, row in enumerate(reader, start=2):
        if not row or not "".join(row).strip():
            continue
        if len(row) <= max(id_col, type_col):
            raise DataError(path, f"line {number}: expected {len(header)} columns, got {row}")
        clip_id, split = row[id_col].strip(), row[type_col].strip()
        if split not in SPLITS:
            raise DataError(path, f"line {number}: unknown split {split!r} for {clip_id!r}; "
                                  f"expected one of {list(SPLITS)}")
        if clip_id in seen:
            raise DataError(path, f"line {number}: clip {clip_id!r} is listed twice")
        try:
            parse_clip_id(clip_id)
        except ValueError as exc:
            raise DataError(path, f"line {number}: {exc}") from exc
        seen.add(clip_id)
        rows.append((clip_id, split))
    return rows


def resolve_root(root: str | Path) -> Path:
    """The folder holding ``train_test_split.csv``: ``root`` itself or its
    ``beat_english_v2.0.0`` subfolder (the layout of the BEAT2 download)."""
    path = Path(root)
    if not path.exists():
        raise DataError(path, "dataset root not found")
    if not path.is_dir():
        raise DataError(path, "dataset root must be a folder")
    nested = path / "beat_english_v2.0.0"
    if not (path / SPLIT_FILE).is_file() and (nested / SPLIT_FILE).is_file():
        return nested
    return path


def _require_modalities(info: ClipInfo) -> None:
    """Raise naming the first required file (motion, audio) of the clip that is missing."""
    for modality in REQUIRED_MODALITIES:
        path = info.path(modality)
        if not path.exists():
            raise DataError(path, f"{modality} file of clip {info.clip_id} not found")


class Beat2Dataset:
    """The clips of a BEAT2-layout root, filtered by speaker and split.

    Args:
        root: dataset root (or the folder containing ``beat_english_v2.0.0``).
        speakers: speaker ids to keep (e.g. ``[2]`` for SemTalk's protocol); ``None`` keeps all.
        splits: splits to keep; default train/val/test ("BEAT2-Standard"); add
            ``"additional"`` for BEAT2-Additional.
        crop: ``"frames"`` crops to the common length in whole frames, ``"seconds"`` in whole
            seconds (the official code).
        max_duration_mismatch: largest motion/audio length difference (s) that is cropped
            rather than rejected; ``None`` accepts any.
        strict: unknown npz keys and missing optional npz keys become errors.
    """

    def __init__(
        self,
        root: str | Path,
        *,
        speakers: Iterable[int] | None = None,
        splits: Iterable[str] | None = STANDARD_SPLITS,
        crop: CropMode = "frames",
        max_duration_mismatch: float | None = 2.0,
        strict: bool = False,
    ) -> None:
        self.root = resolve_root(root)
        if crop not in ("frames", "seconds"):
            raise ValueError(f"crop must be 'frames' or 'seconds', got {crop!r}")
        wanted_splits = set(SPLITS if splits is None else splits)
        unknown = wanted_splits - set(SPLITS)
        if unknown:
            raise ValueError(f"unknown split(s) {sorted(unknown)}; expected {list(SPLITS)}")
        wanted_speakers = None if speakers is None else {int(s) for s in speakers}
        self.crop: CropMode = crop
        self.max_duration_mismatch = max_duration_mismatch
        self.strict = strict
        self.clips: list[ClipInfo] = []
        for clip_id, split in _read_split_table(self.root / SPLIT_FILE):
            speaker_id, name = parse_clip_id(clip_id)
            if split in wanted_splits and (wanted_speakers is None
                                           or speaker_id in wanted_speakers):
                self.clips.append(ClipInfo(clip_id, split, speaker_id, name, self.root))
        self._by_id = {c.clip_id: c for c in self.clips}

    def __len__(self) -> int:
        return len(self.clips)

    def __iter__(self) -> Iterator[ClipInfo]:
        return iter(self.clips)

    @property
    def ids(self) -> list[str]:
        return [c.clip_id for c in self.clips]

    def info(self, clip_id: str) -> ClipInfo:
        try:
            return self._by_id[clip_id]
        except KeyError:
            raise KeyError(f"clip {clip_id!r} is not in {self.root} with the chosen speakers "
                           "and splits") from None

    def load(self, clip: str | ClipInfo) -> Clip:
        """Load, validate and crop one clip. Raises :class:`DataError` naming the bad file."""
        info = self.info(clip) if isinstance(clip, str) else clip
        _require_modalities(info)
        motion, issues = read_motion_npz(info.path("motion"), strict=self.strict)
        audio = load_audio(info.path("audio"))
        num_frames = self._common_frames(info, motion.num_frames, audio.shape[0], issues)
        motion = motion.crop(0, num_frames)
        audio = audio[: samples_for(num_frames)]
        duration = num_frames / MOTION_FPS
        words = self._optional(info, "words", issues)
        if words is not None:
            words = [Word(w.text, w.start, min(w.end, duration)) for w in words
                     if w.start < duration]
        semantic = self._optional(info, "semantic", issues)
        scores = None if semantic is None else frame_semantic_scores(semantic, num_frames)
        emotion_segments = self._optional(info, "emotion", issues)
        return Clip(info, motion, audio, words, semantic, scores,
                    emotion_from_clip_id(info.clip_id), emotion_segments, issues)

    def _common_frames(
        self, info: ClipInfo, motion_frames: int, audio_samples: int, issues: list[DataIssue]
    ) -> int:
        motion_s = motion_frames / MOTION_FPS
        audio_s = audio_samples / AUDIO_SAMPLE_RATE
        gap = abs(motion_s - audio_s)
        if self.max_duration_mismatch is not None and gap > self.max_duration_mismatch:
            raise DataError(info.path("motion"),
                            f"motion is {motion_s:.2f} s but audio {info.path('audio').name} is "
                            f"{audio_s:.2f} s ({gap:.2f} s apart, more than the allowed "
                            f"{self.max_duration_mismatch:.2f} s); are they the same recording?")
        audio_frames = num_frames_for(audio_samples)
        frames = min(motion_frames, audio_frames)
        if self.crop == "seconds":
            frames = (frames // MOTION_FPS) * MOTION_FPS
        if frames <= 0:
            raise DataError(info.path("motion"), f"motion ({motion_s:.2f} s) and audio "
                                                 f"({audio_s:.2f} s) leave no common frame")
        if gap > 1.0 / MOTION_FPS or frames != motion_frames:
            issues.append(DataIssue(
                info.path("motion"),
                f"motion is {motion_s:.2f} s and audio {audio_s:.2f} s ({gap:.2f} s apart); "
                f"both cropped to {frames} frames ({frames / MOTION_FPS:.2f} s)",
                Severity.WARNING))
        return frames

    @overload
    def _optional(
        self, info: ClipInfo, modality: Literal["words"], issues: list[DataIssue]
    ) -> list[Word] | None: ...

    @overload
    def _optional(
        self, info: ClipInfo, modality: Literal["semantic"], issues: list[DataIssue]
    ) -> list[SemanticSegment] | None: ...

    @overload
    def _optional(
        self, info: ClipInfo, modality: Literal["emotion"], issues: list[DataIssue]
    ) -> list[EmotionSegment] | None: ...

    @overload
    def _optional(
        self, info: ClipInfo, modality: str, issues: list[DataIssue]
    ) -> list[Word] | list[SemanticSegment] | list[EmotionSegment] | None: ...

    def _optional(
        self, info: ClipInfo, modality: str, issues: list[DataIssue]
    ) -> list[Word] | list[SemanticSegment] | list[EmotionSegment] | None:
        """Parse an optional modality; a missing file is a warning, a bad one an error."""
        path = info.path(modality)
        if not path.is_file():
            issues.append(DataIssue(path, f"no {modality} file for clip {info.clip_id}",
                                    Severity.WARNING))
            return None
        if modality == "words":
            return read_words(path)
        if modality == "semantic":
            return read_semantic(path)
        try:
            return read_emotion_csv(path)
        except DataError as exc:  # the emo layout is undocumented: never fatal
            issues.append(DataIssue(path, f"emotion file not understood: {exc.problem}",
                                    Severity.WARNING))
            return None

    def check(self, clip: ClipInfo, *, decode_audio: bool = False) -> ClipCheck:
        """Validate a clip without keeping its data (used by ``semtalk inspect``).

        Motion, TextGrid and ``sem`` files are parsed fully; audio only through its header
        unless ``decode_audio``.
        """
        issues: list[DataIssue] = []
        frames = 0
        try:
            if decode_audio:
                loaded = self.load(clip)
                return ClipCheck(clip, loaded.num_frames, clip.missing_modalities(),
                                 loaded.issues)
            _require_modalities(clip)
            motion, issues = read_motion_npz(clip.path("motion"), strict=self.strict)
            audio_samples = round(audio_duration(clip.path("audio")) * AUDIO_SAMPLE_RATE)
            frames = self._common_frames(clip, motion.num_frames, audio_samples, issues)
            for modality in ("words", "semantic", "emotion"):
                self._optional(clip, modality, issues)
        except DataError as exc:
            issues.append(exc.issue)
            frames = 0
        return ClipCheck(clip, frames, clip.missing_modalities(), issues)


@dataclass
class ClipCheck:
    """The outcome of :meth:`Beat2Dataset.check` for one clip."""

    info: ClipInfo
    num_frames: int
    """Usable frames after cropping (0 when the clip cannot be loaded)."""
    missing: list[str]
    issues: list[DataIssue]

    @property
    def ok(self) -> bool:
        return not any(i.severity is Severity.ERROR for i in self.issues)
