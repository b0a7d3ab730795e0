"""The official vocab.pkl reader: the fixture file's contents, index parity with our
Vocabulary, and refusal of pickles that name any other global (without running them)."""

from __future__ import annotations

import pickle
import pickletools
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from semtalk.errors import DataError
from semtalk.features.official.vocab import (
    OFFICIAL_SPECIALS,
    RefusedGlobalError,
    load_official_vocab,
)
from semtalk.features.text import Vocabulary

SHARED = Path(__file__).resolve().parents[2].parent / "shared"
FIXTURE = SHARED / "official-fixture"
VOCAB_RELPATH = Path("BEAT2/beat_english_v2.0.0/weights/vocab.pkl")


@pytest.fixture(scope="module")
def vocab_pkl(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The fixture's synthetic vocab.pkl, written by its own generator (about 0.2 s)."""
    script = FIXTURE / "make_checkpoints.py"
    if not script.is_file():
        pytest.skip(f"official fixture not found at {FIXTURE} (../shared beside the repo)")
    out = tmp_path_factory.mktemp("official_vocab")
    subprocess.run([sys.executable, str(script), str(out), "--only", "vocab.pkl"], check=True,
                   capture_output=True)
    return out / VOCAB_RELPATH


def test_fixture_vocab_contents(vocab_pkl: Path) -> None:
    globals_named = [arg for op, arg, _ in pickletools.genops(vocab_pkl.read_bytes())
                     if op.name == "GLOBAL"]
    assert "numpy.core.multiarray _reconstruct" in globals_named  # the NumPy 1.x spelling
    vocab = load_official_vocab(vocab_pkl)
    assert vocab.name == "semtalk_official_fixture"
    assert vocab.n_words == len(vocab) == 11195
    assert [vocab.index2word[i] for i in range(6)] == [*OFFICIAL_SPECIALS, "", "the"]
    assert "<UNK>" not in vocab.word2index  # the specials live only in index2word
    assert vocab.silence_index == 4
    assert vocab.index("the") == 5 and vocab.index("not-a-word") == 3
    assert vocab.index("The") == 3  # the official lookup does not normalise
    assert vocab.index2word[11194] == "fixturefiller11078"  # 4 specials + 112 marks + fillers
    weights = vocab.word_embedding_weights
    assert weights is not None and weights.shape == (11195, 300) and weights.dtype == np.float32


def test_to_vocabulary_keeps_every_index(vocab_pkl: Path, tmp_path: Path) -> None:
    official = load_official_vocab(vocab_pkl)
    ours = official.to_vocabulary()
    assert len(ours) == official.n_words
    assert all(ours.tokens[i] == w for i, w in official.index2word.items())
    assert all(ours.index(w) == i for w, i in official.word2index.items() if w)
    assert ours.index("") == ours.index("   ") == 4  # silence
    assert ours.index("zzzunknown") == 3 and ours.unk_id == 3
    restored = Vocabulary.load(ours.save(tmp_path / "vocab.json"))
    assert restored == ours and restored.index("the") == 5


def test_vocabulary_defaults_unchanged(tmp_path: Path) -> None:
    vocab = Vocabulary.build([["the", "cat"]])
    assert (vocab.unk_id, vocab.sil_id) == (1, 2) and vocab.index("") == 2
    assert "unk_id" not in (vocab.save(tmp_path / "v.json")).read_text()


class _Evil:
    def __reduce__(self) -> tuple[object, tuple[str]]:
        import os

        return (os.system, ("echo pwned > should_not_exist.txt",))


class _EvalPayload:
    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (eval, ("__import__('os').getcwd()",))


@pytest.mark.parametrize("payload", [_Evil(), _EvalPayload()], ids=["os.system", "builtins.eval"])
def test_refuses_other_globals_without_running_them(payload: object, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "vocab.pkl"
    path.write_bytes(pickle.dumps({"word2index": payload}, protocol=3))
    with pytest.raises(RefusedGlobalError, match=r"vocab\.pkl: refused pickle global") as info:
        load_official_vocab(path)
    assert "system" in str(info.value) or "builtins.eval" in str(info.value)
    assert not (tmp_path / "should_not_exist.txt").exists()


def test_refuses_malformed_files(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="not found"):
        load_official_vocab(tmp_path / "missing.pkl")
    (tmp_path / "junk.pkl").write_bytes(b"not a pickle")
    with pytest.raises(DataError, match=r"junk\.pkl: cannot read as a pickle"):
        load_official_vocab(tmp_path / "junk.pkl")
    (tmp_path / "dict.pkl").write_bytes(pickle.dumps({"word2index": {}}))
    with pytest.raises(DataError, match=r"expected an instance of dataloaders\.build_vocab\.Vocab"):
        load_official_vocab(tmp_path / "dict.pkl")
