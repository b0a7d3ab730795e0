"""BEAT2 semantic-relevance annotations (``sem/<id>.txt``) and frame-level scores.

Each line is tab-separated: ``name`` (gesture category), ``start_time``, ``end_time``,
``duration`` (seconds), ``score``, and an optional ``keywords`` column. No header.

The frame-level score follows BEAT2/SemTalk: frame ``t`` (time ``t / fps``) takes the score of
the **first** row with ``start <= t / fps <= end``; scores ``<= 0.1`` become 0; frames inside
no row score 0.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from semtalk.constants import MOTION_FPS
from semtalk.errors import DataError
from semtalk.fileio import write_text_atomic

SCORE_FLOOR = 0.1
"""Scores at or below this count as "no semantic gesture"."""


@dataclass(frozen=True)
class SemanticSegment:
    """One annotated semantic gesture."""

    name: str
    start: float
    end: float
    score: float
    keywords: str = ""

    @property
    def duration(self) -> float:
        return self.end - self.start


def read_semantic(path: str | Path) -> list[SemanticSegment]:
    """Parse a ``sem`` file; raises :class:`DataError` naming the file and line on bad input."""
    path = Path(path)
    if path.is_dir():
        raise DataError(path, "is a directory, expected a semantic annotation .txt file")
    if not path.is_file():
        raise DataError(path, "semantic annotation file not found")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise DataError(path, f"not UTF-8 text: {exc}") from exc
    segments = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        fields = line.rstrip("\r\n").split("\t")
        if len(fields) < 5:
            raise DataError(path, f"line {number}: expected at least 5 tab-separated columns "
                                  f"(name, start, end, duration, score), got {len(fields)}")
        try:
            start, end, score = float(fields[1]), float(fields[2]), float(fields[4])
        except ValueError as exc:
            raise DataError(path, f"line {number}: start/end/score must be numbers: {exc}") \
                from exc
        if not all(np.isfinite((start, end, score))):
            raise DataError(path, f"line {number}: NaN or Inf in start/end/score")
        if end < start:
            raise DataError(path, f"line {number}: end_time {end} is before start_time {start}")
        keywords = fields[5].strip() if len(fields) > 5 else ""
        segments.append(SemanticSegment(fields[0].strip(), start, end, score, keywords))
    return segments


def write_semantic(path: str | Path, segments: list[SemanticSegment]) -> Path:
    """Write segments in BEAT2's ``sem`` format, atomically."""
    lines = [f"{s.name}\t{s.start:.3f}\t{s.end:.3f}\t{s.duration:.3f}\t{s.score:.3f}\t{s.keywords}"
             for s in segments]
    path = Path(path)
    write_text_atomic(path, "\n".join(lines) + ("\n" if lines else ""))
    return path


def frame_semantic_scores(
    segments: list[SemanticSegment], num_frames: int, fps: int = MOTION_FPS
) -> np.ndarray:
    """``[num_frames]`` float32 semantic score per frame (rules in the module docstring)."""
    times = np.arange(num_frames) / fps
    scores = np.zeros(num_frames, np.float32)
    # Later rows are written first so the first matching row wins.
    for seg in reversed(segments):
        inside = (times >= seg.start) & (times <= seg.end)
        scores[inside] = seg.score
    scores[scores <= SCORE_FLOOR] = 0.0
    return scores
