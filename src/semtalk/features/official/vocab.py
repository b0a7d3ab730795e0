"""The official word vocabulary (``vocab.pkl``), read without running arbitrary pickle code.

The official file is a pickle of an instance of ``dataloaders.build_vocab.Vocab``. Plain
``pickle.load`` would import and run whatever globals the file names; :func:`load_official_vocab`
uses a restricted unpickler instead. It admits exactly the globals such a file needs:

- ``dataloaders.build_vocab.Vocab``, mapped to :class:`_PickledVocab`, a plain attribute holder
  (the official class is never imported);
- NumPy's array reconstruction: ``numpy.core.multiarray._reconstruct`` (as NumPy 1.x writes
  it), ``numpy._core.multiarray._reconstruct`` (NumPy 2.x), ``numpy.ndarray`` and
  ``numpy.dtype``.

Any other global (``os.system``, ``builtins.eval``, ...) is refused *before* it is resolved, so
nothing it names runs; the error names the file and the refused global.

Reproduced official conventions:

- special ids PAD 0, SOS 1, EOS 2, UNK 3; ``word2index`` holds only the words, ``index2word``
  the specials too;
- ``index(word)`` is the official ``get_word_index``: ``word2index.get(word, 3)``, with **no**
  normalisation of ``word`` (the official dataset builder looks marks up exactly as written);
- silence is the word ``""``, indexed like any other word when the vocabulary was built (index
  4 in the official and fixture files); :attr:`OfficialVocab.silence_index` falls back to UNK
  when ``""`` is absent, which is what the official lookup gives then.
"""

from __future__ import annotations

import importlib
import pickle
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from semtalk.errors import DataError
from semtalk.features.text import Vocabulary

PAD_INDEX, SOS_INDEX, EOS_INDEX, UNK_INDEX = 0, 1, 2, 3
OFFICIAL_SPECIALS = ("<PAD>", "<SOS>", "<EOS>", "<UNK>")
SILENCE_WORD = ""


class _PickledVocab:
    """Receives the attributes of the official ``Vocab`` instance; has no behaviour."""


def _numpy_reconstruct() -> Any:
    try:
        module = importlib.import_module("numpy._core.multiarray")
    except ImportError:  # NumPy 1.x
        module = importlib.import_module("numpy.core.multiarray")
    return module._reconstruct


_ALLOWED: dict[tuple[str, str], Any] = {
    ("dataloaders.build_vocab", "Vocab"): _PickledVocab,
    ("numpy.core.multiarray", "_reconstruct"): None,  # resolved lazily (NumPy 1 or 2 name)
    ("numpy._core.multiarray", "_reconstruct"): None,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
}


class RefusedGlobalError(DataError):
    """A pickle names a global that the restricted unpickler does not admit."""


class _VocabUnpickler(pickle.Unpickler):
    """``pickle.Unpickler`` whose ``find_class`` admits only the globals of ``_ALLOWED``."""

    def __init__(self, file: Any, path: Path) -> None:
        super().__init__(file)
        self._path = path

    def find_class(self, module: str, name: str) -> Any:
        key = (module, name)
        if key not in _ALLOWED:
            raise RefusedGlobalError(
                self._path, f"refused pickle global '{module}.{name}': an official vocab.pkl "
                            "only needs dataloaders.build_vocab.Vocab and NumPy's array "
                            "reconstruction (numpy.core.multiarray._reconstruct, numpy.ndarray, "
                            "numpy.dtype)")
        target = _ALLOWED[key]
        return _numpy_reconstruct() if target is None else target


@dataclass(frozen=True)
class OfficialVocab:
    """The official vocabulary: ``word2index`` (words only) and ``index2word`` (specials too).

    Attributes:
        name: the ``name`` stored in the file.
        word2index: word -> index, special tokens excluded (as the official class keeps it).
        index2word: index -> word for ``0 .. n_words - 1``, specials included.
        n_words: the number of indices (the official ``word_index_num``, 11195).
        word_embedding_weights: the stored ``[n_words, 300]`` fastText matrix, or ``None``. The
            official sparse model takes only its *shape* from here; its trained embedding is in
            the checkpoint.
    """

    name: str
    word2index: dict[str, int]
    index2word: dict[int, str]
    n_words: int
    word_embedding_weights: np.ndarray | None = field(default=None, repr=False)

    def index(self, word: str) -> int:
        """The official ``get_word_index``: ``word2index.get(word, UNK=3)``, no normalisation."""
        return self.word2index.get(word, UNK_INDEX)

    @property
    def silence_index(self) -> int:
        """Index of the silence mark ``""`` (UNK 3 when the vocabulary lacks it)."""
        return self.index(SILENCE_WORD)

    def __len__(self) -> int:
        return self.n_words

    def to_vocabulary(self) -> Vocabulary:
        """This table as a :class:`~semtalk.features.text.Vocabulary` with identical indices.

        Token ``i`` is ``index2word[i]``; the specials are ``<PAD> <SOS> <EOS> <UNK>``,
        ``unk_id`` is 3 and ``sil_id`` is :attr:`silence_index`. ``Vocabulary.index``
        normalises its argument (lower case, edge punctuation stripped) before the lookup; for
        the official lookup of a raw mark use :meth:`index`.
        """
        tokens = tuple(self.index2word[i] for i in range(self.n_words))
        return Vocabulary(tokens, specials=OFFICIAL_SPECIALS, unk_id=UNK_INDEX,
                          sil_id=self.silence_index)


def load_official_vocab(path: str | Path) -> OfficialVocab:
    """Read the official ``vocab.pkl`` through the restricted unpickler (see the module doc).

    Raises:
        DataError: the file is missing, is not a pickle of the official ``Vocab``, its tables
            are inconsistent, or it names a global outside the admitted set
            (:class:`RefusedGlobalError`).
    """
    path = Path(path)
    if path.is_dir():
        raise DataError(path, "is a directory, expected the official vocab.pkl file")
    if not path.is_file():
        raise DataError(path, "official vocabulary file (vocab.pkl) not found")
    try:
        with path.open("rb") as handle:
            obj = _VocabUnpickler(handle, path).load()
    except RefusedGlobalError:
        raise
    except Exception as exc:  # any corrupt-pickle error: report it against the file
        raise DataError(path, f"cannot read as a pickle: {type(exc).__name__}: {exc}") from exc
    if not isinstance(obj, _PickledVocab):
        raise DataError(path, f"holds a {type(obj).__name__}, expected an instance of "
                              "dataloaders.build_vocab.Vocab")
    return _validated(path, vars(obj))


def _validated(path: Path, attrs: dict[str, Any]) -> OfficialVocab:
    missing = [k for k in ("word2index", "index2word", "n_words") if k not in attrs]
    if missing:
        raise DataError(path, f"the Vocab object lacks the attributes {missing}")
    word2index, index2word, n_words = attrs["word2index"], attrs["index2word"], attrs["n_words"]
    if not (isinstance(word2index, dict) and isinstance(index2word, dict)
            and isinstance(n_words, int)):
        raise DataError(path, "word2index/index2word must be dicts and n_words an int")
    if sorted(index2word) != list(range(n_words)):
        raise DataError(path, f"index2word does not cover the indices 0..{n_words - 1} exactly "
                              f"({len(index2word)} entries)")
    for special, token in enumerate(OFFICIAL_SPECIALS):
        if index2word[special] != token:
            raise DataError(path, f"index {special} is {index2word[special]!r}, expected "
                                  f"{token!r}")
    for word, index in word2index.items():
        if not isinstance(word, str) or index2word.get(index) != word:
            raise DataError(path, f"word2index[{word!r}] = {index!r} disagrees with index2word")
    weights = attrs.get("word_embedding_weights")
    if weights is not None and (not isinstance(weights, np.ndarray) or weights.ndim != 2
                                or weights.shape[0] != n_words):
        raise DataError(path, f"word_embedding_weights has shape "
                              f"{getattr(weights, 'shape', None)}, expected ({n_words}, D)")
    return OfficialVocab(name=str(attrs.get("name", "")), word2index=dict(word2index),
                         index2word=dict(index2word), n_words=n_words,
                         word_embedding_weights=weights)
