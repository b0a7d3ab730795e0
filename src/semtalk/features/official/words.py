"""Per-frame word ids and per-window sentences as the official SemTalk code builds them.

Reproduced official behaviour:

- **Frame -> word** (dataset/test-set builder): frame ``t`` takes the *first* interval of the
  TextGrid's first tier with ``minTime <= t / 30 <= maxTime`` (both ends inclusive, so a frame
  on a boundary takes the earlier interval). Its mark is looked up **as written** (no case
  folding or punctuation removal, although the vocabulary was built from marks with
  ``, . ? !`` replaced by spaces). Silence intervals (mark ``""``) map to the index of ``""``
  (4 in the official vocabulary); the never-triggered official special case ``mark == " "``
  gives PAD (0) and is kept. A frame inside no interval gets UNK (3).
- **Sentence marks**: the official builder appends a frame's mark to its sentence list only
  when the frame found an interval, so the list can be shorter than the frame count and the
  per-window slices then shift; :attr:`OfficialFrameWords.sentence_marks` is that list.
- **Window sentence**: window ``k`` covers list entries ``[60 k, 60 k + 64)``; marks that are
  empty after ``strip()`` are dropped, consecutive duplicates are collapsed (genuinely
  repeated words too) and the rest joined with single spaces. A window past the end of the
  list is simply shorter (possibly ``""``).

For user audio (:func:`aligned_frame_words`, word timings from ASR or transcript alignment,
without silence intervals) words are normalised as the official wav inference does (strip,
lower case, strip the edge characters ``" “”‘’.,?!:;()[]{}`` and whitespace). **Deliberate
deviation:** a frame inside no word gets the *silence* index (that of ``""``), as every silent
frame had in training, where the official wav inference gives UNK (3). Unknown words are UNK.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import groupby
from pathlib import Path

import numpy as np

from semtalk.constants import MOTION_FPS
from semtalk.data.textgrid import Interval, Word, read_textgrid
from semtalk.errors import DataError
from semtalk.features.official.vocab import PAD_INDEX, UNK_INDEX, OfficialVocab

OFFICIAL_WINDOW = 64
OFFICIAL_HOP = 60
_INFERENCE_EDGE_CHARS = " \t\r\n\"“”‘’.,?!:;()[]{}"


@dataclass(frozen=True)
class OfficialFrameWords:
    """Word ids and marks on the 30 fps frame grid.

    Attributes:
        ids: ``[T]`` int32 vocabulary index per frame.
        marks: per frame, the mark of the interval it fell in, or ``None`` when it fell in
            none.
    """

    ids: np.ndarray
    marks: tuple[str | None, ...]

    @property
    def sentence_marks(self) -> list[str]:
        """The official sentence list: the marks of the frames that found an interval."""
        return [m for m in self.marks if m is not None]


def read_official_word_tier(path: str | Path) -> list[Interval]:
    """The intervals of a TextGrid's **first** tier (the official ``tgrid[0]``), marks raw."""
    tiers = read_textgrid(path)
    if not tiers:
        raise DataError(path, "TextGrid has no interval tiers")
    return list(next(iter(tiers.values())))


def textgrid_frame_words(intervals: Sequence[Interval], num_frames: int, vocab: OfficialVocab,
                         fps: int = MOTION_FPS) -> OfficialFrameWords:
    """Official per-frame word ids of a TextGrid word tier (see the module doc for the rules).

    Args:
        intervals: the tier's intervals in file order, marks as written (silence ``""``).
        num_frames: frames of the clip (the motion length for BEAT2).
        vocab: the official vocabulary.
        fps: frame rate of the grid (the official 30).
    """
    ids = np.empty(num_frames, dtype=np.int32)
    marks: list[str | None] = []
    for frame in range(num_frames):
        time = frame / fps
        hit = next((i for i in intervals if i.start <= time <= i.end), None)
        if hit is None:
            ids[frame] = UNK_INDEX
            marks.append(None)
        else:
            ids[frame] = PAD_INDEX if hit.text == " " else vocab.index(hit.text)
            marks.append(hit.text)
    return OfficialFrameWords(ids, tuple(marks))


def official_inference_word(text: str) -> str:
    """A word as the official wav inference cleans ASR output: strip, lower, strip edges."""
    return text.strip().lower().strip(_INFERENCE_EDGE_CHARS)


def aligned_frame_words(words: Sequence[Word], num_frames: int, vocab: OfficialVocab,
                        fps: int = MOTION_FPS) -> OfficialFrameWords:
    """Per-frame ids for user audio with word timings (no silence intervals).

    Words are cleaned with :func:`official_inference_word` (words that become empty are
    dropped, as the official inference drops them); frame ``t`` takes the first word, in time
    order, with ``start <= t / fps <= end``; unknown words give UNK (3). Frames inside no word
    get the silence index (:attr:`OfficialVocab.silence_index`) and the mark ``""``: the
    training condition, where the official wav inference used UNK (a documented deviation).
    """
    cleaned = sorted(((official_inference_word(w.text), w.start, w.end) for w in words
                      if official_inference_word(w.text) and w.end >= w.start),
                     key=lambda item: (item[1], item[2]))
    silence = vocab.silence_index
    ids = np.full(num_frames, silence, dtype=np.int32)
    marks: list[str | None] = [""] * num_frames
    for frame in range(num_frames):
        time = frame / fps
        hit = next((w for w in cleaned if w[1] <= time <= w[2]), None)
        if hit is not None:
            ids[frame] = vocab.index(hit[0])
            marks[frame] = hit[0]
    return OfficialFrameWords(ids, tuple(marks))


def num_official_windows(num_frames: int, window: int = OFFICIAL_WINDOW,
                         hop: int = OFFICIAL_HOP) -> int:
    """Official window count ``(n - (window - hop)) // hop`` (0 for short clips)."""
    return max((num_frames - (window - hop)) // hop, 0)


def window_sentences(frame_marks: Sequence[str | None], num_windows: int,
                     window: int = OFFICIAL_WINDOW, hop: int = OFFICIAL_HOP) -> list[str]:
    """The official sentence string of each window ``[k hop, k hop + window)`` of ``frame_marks``.

    Marks that are ``None`` or empty after ``strip()`` are dropped, consecutive duplicates
    collapsed, the rest joined with spaces. Pass :attr:`OfficialFrameWords.sentence_marks`
    to reproduce the official test-set builder exactly.
    """
    sentences = []
    for k in range(num_windows):
        kept = [m for m in frame_marks[k * hop:k * hop + window] if m is not None and m.strip()]
        sentences.append(" ".join(key for key, _ in groupby(kept)))
    return sentences
