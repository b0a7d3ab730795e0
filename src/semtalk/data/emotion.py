"""Emotion labels of BEAT2 clips.

BEAT encodes the recording's emotion in the fourth field of a clip id
(``<speaker>_<name>_<type>_<k>_<k>``): ``k`` in 0-64 is neutral, then blocks of 8 (6 for
sadness) for the other seven emotions. :func:`emotion_from_clip_id` implements that table;
it is the reliable source, because SemTalk's code never reads ``emo/*.csv`` and the csv layout is
not documented. :func:`read_emotion_csv` reads the csv tolerantly: rows of
``start,end,label`` segments, or a single label for the whole clip.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from semtalk.errors import DataError
from semtalk.fileio import write_text_atomic

EMOTIONS: tuple[str, ...] = (
    "neutral", "happiness", "anger", "sadness", "contempt", "surprise", "fear", "disgust",
)
# First recording index of each emotion block (BEAT naming); the last block ends at 118.
_BLOCK_STARTS = (0, 65, 73, 81, 87, 95, 103, 111)
_LAST_INDEX = 118


def emotion_from_index(index: int) -> str:
    """Emotion name for BEAT's recording index (the 4th field of a clip id)."""
    if not 0 <= index <= _LAST_INDEX:
        return "neutral"
    block = max(i for i, start in enumerate(_BLOCK_STARTS) if index >= start)
    return EMOTIONS[block]


def first_index_of(emotion: str) -> int:
    """The first recording index BEAT uses for ``emotion`` (inverse of the table)."""
    return _BLOCK_STARTS[EMOTIONS.index(emotion)]


def emotion_from_clip_id(clip_id: str) -> str | None:
    """Emotion from a BEAT-style id, or ``None`` when the id does not follow the pattern."""
    fields = clip_id.split("_")
    if len(fields) < 4 or not fields[3].isdigit():
        return None
    return emotion_from_index(int(fields[3]))


@dataclass(frozen=True)
class EmotionSegment:
    """An emotion label over a time span (``end = inf`` for a whole-clip label)."""

    label: str
    start: float = 0.0
    end: float = float("inf")


def read_emotion_csv(path: str | Path) -> list[EmotionSegment]:
    """Read an ``emo`` csv: ``start,end,label`` rows (an optional header is skipped) or a
    single label. Raises :class:`DataError` naming the file and line when neither fits."""
    path = Path(path)
    if not path.is_file():
        raise DataError(path, "emotion file not found")
    try:
        rows = [r for r in csv.reader(path.read_text(encoding="utf-8").splitlines()) if r]
    except UnicodeDecodeError as exc:
        raise DataError(path, f"not UTF-8 text: {exc}") from exc
    if not rows:
        raise DataError(path, "emotion file is empty")
    if len(rows) == 1 and len(rows[0]) == 1:
        return [EmotionSegment(rows[0][0].strip())]
    segments = []
    for number, row in enumerate(rows, start=1):
        try:
            start, end = float(row[0]), float(row[1])
        except (ValueError, IndexError) as exc:
            if number == 1:
                continue  # header
            raise DataError(path, f"line {number}: expected 'start,end,label', got {row}") \
                from exc
        if len(row) < 3:
            raise DataError(path, f"line {number}: expected 'start,end,label', got {row}")
        segments.append(EmotionSegment(row[2].strip(), start, end))
    if not segments:
        raise DataError(path, "no 'start,end,label' rows found")
    return segments


def write_emotion_csv(path: str | Path, segments: list[EmotionSegment]) -> Path:
    """Write ``start,end,label`` rows with a header, atomically."""
    lines = ["start,end,label"] + [f"{s.start:.3f},{s.end:.3f},{s.label}" for s in segments]
    path = Path(path)
    write_text_atomic(path, "\n".join(lines) + "\n")
    return path
