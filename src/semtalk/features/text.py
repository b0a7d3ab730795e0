"""Frame-level word features φ_l: a vocabulary from training transcripts, word ids per frame.

The model learns an embedding over this vocabulary (optionally initialised from a word-vector
file the user gives, see :func:`load_word_vectors`). Three ids are reserved and used the same
way in training and inference (the official code maps silence differently in the two):

- ``PAD`` (0): padding only, never produced for a real frame;
- ``UNK`` (1): a spoken word that is not in the vocabulary;
- ``SIL`` (2): a frame inside no word (silence, breaths, before the first word).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from semtalk.constants import MOTION_FPS
from semtalk.data.textgrid import Word
from semtalk.errors import DataError
from semtalk.fileio import write_text_atomic

PAD, UNK, SIL = 0, 1, 2
SPECIAL_TOKENS = ("<pad>", "<unk>", "<sil>")
_EDGE_PUNCTUATION = re.compile(r"^[^\w']+|[^\w']+$")


def normalize_word(text: str) -> str:
    """Lower-case and strip surrounding punctuation (``"Hello,"`` -> ``"hello"``)."""
    return _EDGE_PUNCTUATION.sub("", text.strip().lower())


@dataclass(frozen=True)
class Vocabulary:
    """Word <-> id table; ids 0-2 are the special tokens, then words by falling frequency.

    ``specials``, ``unk_id`` and ``sil_id`` default to this package's layout. A table converted
    from another layout (the official ``vocab.pkl``: ``<PAD> <SOS> <EOS> <UNK>``, then the
    words, silence ``""`` among them) keeps its ids by naming its own leading specials and the
    ids of its unknown-word and silence entries.
    """

    tokens: tuple[str, ...]
    specials: tuple[str, ...] = SPECIAL_TOKENS
    unk_id: int = UNK
    sil_id: int = SIL

    def __post_init__(self) -> None:
        if self.tokens[: len(self.specials)] != self.specials:
            raise ValueError(f"a vocabulary must start with {self.specials}")
        for name in ("unk_id", "sil_id"):
            if not 0 <= getattr(self, name) < len(self.tokens):
                raise ValueError(f"{name} {getattr(self, name)} is outside the vocabulary "
                                 f"(size {len(self.tokens)})")
        index: dict[str, int] = {}
        for i, token in enumerate(self.tokens):
            if token in index:
                raise ValueError(f"token {token!r} appears twice (ids {index[token]} and {i}); "
                                 f"each token needs exactly one id")
            index[token] = i
        object.__setattr__(self, "_index", index)

    @classmethod
    def build(cls, transcripts: Iterable[Iterable[str]], min_count: int = 1) -> Vocabulary:
        """From word sequences; words seen fewer than ``min_count`` times become UNK."""
        counts = Counter(normalize_word(w) for words in transcripts for w in words)
        counts.pop("", None)
        kept = sorted((w for w, c in counts.items() if c >= min_count),
                      key=lambda w: (-counts[w], w))
        return cls(SPECIAL_TOKENS + tuple(kept))

    def __len__(self) -> int:
        return len(self.tokens)

    def __contains__(self, word: str) -> bool:
        return normalize_word(word) in self._index  # type: ignore[attr-defined]

    def index(self, word: str) -> int:
        """Id of a spoken word (UNK when unknown; an empty word is silence)."""
        token = normalize_word(word)
        if not token:
            return self.sil_id
        return self._index.get(token, self.unk_id)  # type: ignore[attr-defined]

    def fingerprint(self) -> str:
        return hashlib.sha256("\n".join(self.tokens).encode()).hexdigest()[:16]

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        data: dict[str, object] = {"format": 1, "tokens": list(self.tokens)}
        if (self.specials, self.unk_id, self.sil_id) != (SPECIAL_TOKENS, UNK, SIL):
            data.update(specials=list(self.specials), unk_id=self.unk_id, sil_id=self.sil_id)
        write_text_atomic(path, json.dumps(data) + "\n")
        return path

    @classmethod
    def load(cls, path: str | Path) -> Vocabulary:
        path = Path(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            return cls(tuple(data["tokens"]), tuple(data.get("specials", SPECIAL_TOKENS)),
                       int(data.get("unk_id", UNK)), int(data.get("sil_id", SIL)))
        except FileNotFoundError:
            raise DataError(path, "vocabulary file not found") from None
        except (json.JSONDecodeError, AttributeError, KeyError, TypeError, ValueError) as exc:
            raise DataError(path, f"not a semtalk vocabulary: {exc}") from exc


def frame_word_ids(words: list[Word], num_frames: int, vocab: Vocabulary,
                   fps: int = MOTION_FPS) -> np.ndarray:
    """``[num_frames]`` int32: the id of the word spoken at each frame instant ``t / fps``.

    A frame takes the first word with ``start <= t / fps < end``; frames in no word are SIL.
    """
    ids = np.full(num_frames, vocab.sil_id, dtype=np.int32)
    times = np.arange(num_frames) / fps
    for word in reversed(words):  # earlier words win where intervals touch or overlap
        inside = (times >= word.start) & (times < word.end)
        ids[inside] = vocab.index(word.text)
    return ids


def load_word_vectors(path: str | Path, vocab: Vocabulary, seed: int = 0) -> np.ndarray:
    """Embedding matrix ``[len(vocab), D]`` from a text word-vector file (fastText ``.vec`` /
    GloVe ``.txt``: ``word v1 ... vD`` per line, optional ``count dim`` header).

    Words missing from the file get ``N(0, 1/D)`` vectors from ``seed``; PAD is zero. Reads the
    file once, keeping only vocabulary words, so large files need little memory.
    """
    return read_word_vectors(path, vocab, seed)[0]


def read_word_vectors(path: str | Path, vocab: Vocabulary,
                      seed: int = 0) -> tuple[np.ndarray, int]:
    """:func:`load_word_vectors` and how many vocabulary entries the file covered."""
    path = Path(path)
    if not path.is_file():
        raise DataError(path, "word-vector file not found")
    wanted = {t: i for i, t in enumerate(vocab.tokens)}
    found: dict[int, np.ndarray] = {}
    dim = None
    with path.open(encoding="utf-8", errors="replace") as handle:
        for number, line in enumerate(handle, start=1):
            parts = line.rstrip().split(" ")
            if number == 1 and len(parts) == 2 and all(p.isdigit() for p in parts):
                continue  # fastText header
            if len(parts) < 2:
                continue
            if dim is None:
                dim = len(parts) - 1
            elif len(parts) - 1 != dim:
                raise DataError(path, f"line {number}: {len(parts) - 1} values, expected {dim}")
            index = wanted.get(normalize_word(parts[0]))
            if index is not None and index not in found:
                try:
                    found[index] = np.asarray(parts[1:], dtype=np.float32)
                except ValueError as exc:
                    raise DataError(path, f"line {number}: not numbers: {exc}") from exc
    if dim is None:
        raise DataError(path, "no word vectors found")
    rng = np.random.default_rng(seed)
    matrix = rng.normal(0.0, dim**-0.5, (len(vocab), dim)).astype(np.float32)
    matrix[PAD] = 0.0
    for index, vector in found.items():
        matrix[index] = vector
    return matrix, len(found)
