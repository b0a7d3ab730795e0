import numpy as np
import pytest

from semtalk.data.textgrid import Word
from semtalk.errors import DataError
from semtalk.features.text import (
    PAD,
    SIL,
    UNK,
    Vocabulary,
    frame_word_ids,
    load_word_vectors,
    normalize_word,
)


def test_vocabulary_orders_by_frequency_and_reserves_specials(tmp_path):
    vocab = Vocabulary.build([["The", "cat,"], ["the", "dog"], ["the", "cat"]])
    assert vocab.tokens == ("<pad>", "<unk>", "<sil>", "the", "cat", "dog")
    assert vocab.index("CAT!") == 4 and vocab.index("zebra") == UNK and vocab.index("") == SIL
    assert "Dog" in vocab and "zebra" not in vocab
    back = Vocabulary.load(vocab.save(tmp_path / "v.json"))
    assert back == vocab and back.fingerprint() == vocab.fingerprint()
    assert Vocabulary.build([["a"]], min_count=2).tokens == ("<pad>", "<unk>", "<sil>")


def test_normalize_word_keeps_inner_apostrophes():
    assert normalize_word("  Don't! ") == "don't" and normalize_word("...") == ""


def test_frame_word_ids_marks_silence_consistently():
    vocab = Vocabulary.build([["hello", "world"]])
    words = [Word("hello", 0.1, 0.3), Word("world", 0.3, 0.5), Word("xyz", 0.6, 0.7)]
    ids = frame_word_ids(words, 25, vocab)
    assert ids.dtype == np.int32 and ids.shape == (25,)
    hello, world = vocab.index("hello"), vocab.index("world")
    # frame t is the instant t / 30
    assert ids[:3].tolist() == [SIL] * 3  # 0, 0.033, 0.067 s
    assert ids[3:9].tolist() == [hello] * 6  # 0.1 .. 0.267 s
    assert ids[9:15].tolist() == [world] * 6  # 0.3 (boundary goes to the next word) .. 0.467
    assert ids[15:18].tolist() == [SIL] * 3
    assert ids[18:21].tolist() == [UNK] * 3  # 0.6 .. 0.667 s
    assert PAD not in ids


def test_real_clip_word_ids(beat2_sample):
    from semtalk.data.textgrid import read_words

    words = read_words(beat2_sample / "2_scott_0_1_1.TextGrid")
    vocab = Vocabulary.build([[w.text for w in words]])
    ids = frame_word_ids(words, 1906, vocab)
    assert ids[0] == SIL  # the clip opens with 1.42 s of silence
    assert ids[round(1.45 * 30)] == vocab.index("the")
    assert 0.5 < (ids != SIL).mean() < 0.95 and UNK not in ids


def test_word_vectors(tmp_path):
    vocab = Vocabulary.build([["hello", "world", "rare"]])
    path = tmp_path / "vec.txt"
    path.write_text("3 4\nhello 1 2 3 4\nWorld 0 0 1 0\nother 9 9 9 9\n")
    matrix = load_word_vectors(path, vocab)
    assert matrix.shape == (len(vocab), 4)
    assert np.array_equal(matrix[vocab.index("hello")], [1, 2, 3, 4])
    assert np.array_equal(matrix[vocab.index("world")], [0, 0, 1, 0])
    assert np.array_equal(matrix[PAD], np.zeros(4))
    assert np.array_equal(matrix, load_word_vectors(path, vocab))  # missing words are seeded
    path.write_text("hello 1 2\nworld 1 2 3\n")
    with pytest.raises(DataError, match="line 2: 3 values, expected 2"):
        load_word_vectors(path, vocab)


def test_vocabulary_rejects_a_duplicate_token(tmp_path):
    with pytest.raises(ValueError, match=r"token 'cat' appears twice \(ids 3 and 5\)"):
        Vocabulary(("<pad>", "<unk>", "<sil>", "cat", "dog", "cat"))
    path = tmp_path / "vocab.json"
    path.write_text('{"format": 1, "tokens": ["<pad>", "<unk>", "<sil>", "a", "a"]}')
    with pytest.raises(DataError, match=rf"{path}: not a semtalk vocabulary: token 'a' appears"):
        Vocabulary.load(path)
