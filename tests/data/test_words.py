"""Timed words handed to the Python API: Word objects or (text, start, end) tuples, checked."""

from __future__ import annotations

import pytest

from semtalk.data.textgrid import Word, as_words


def test_tuples_and_words_are_accepted() -> None:
    words = as_words([("hello", 0.1, 0.4), Word("world", 0.5, 0.9), ["again", 1, 1.2]])
    assert words == [Word("hello", 0.1, 0.4), Word("world", 0.5, 0.9), Word("again", 1.0, 1.2)]
    assert as_words([]) == []


@pytest.mark.parametrize("words", ["hello world", ["hello", "world"]])
def test_bare_strings_are_refused(words: object) -> None:
    with pytest.raises(TypeError, match=r"string.*start and end|\(text, start, end\)"):
        as_words(words)


@pytest.mark.parametrize(("word", "message"), [
    (("nan", float("nan"), 0.5), r"word 1 'nan': times must be finite"),
    (("back", 0.9, 0.6), r"word 1 'back': ends \(0.6 s\) before it starts \(0.9 s\)"),
    (("early", -0.2, 0.3), r"word 1 'early': negative start -0.2 s"),
    (("text", "soon", 1.0), r"word 1 'text': start and end must be numbers"),
])
def test_bad_times_are_refused_naming_the_word(word: tuple, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        as_words([("fine", 0.0, 0.2), word])
