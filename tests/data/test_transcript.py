"""Transcript options: the text itself or a text file, told apart without the filesystem
raising."""

from __future__ import annotations

from pathlib import Path

import pytest

from semtalk.data.transcript import read_transcript, transcript_path
from semtalk.errors import DataError

LONG_TEXT = " ".join(["so i never said that my dream job was easy"] * 240)
"""About 10 kB of text: far past the 255-byte name limit that made the existence check raise."""


def test_long_inline_text_is_text_not_an_os_error() -> None:
    assert len(LONG_TEXT.encode()) > 10_000
    assert transcript_path(LONG_TEXT) is None
    assert read_transcript(LONG_TEXT) == LONG_TEXT
    one_word = "a" * 300  # one token over NAME_MAX, no spaces
    assert read_transcript(one_word) == one_word


@pytest.mark.parametrize("text", ["line one\nline two", "x\0y", "a" * 5000 + ".txt"])
def test_values_that_cannot_be_paths_are_text(text: str) -> None:
    assert transcript_path(text) is None
    assert read_transcript(text) == text


def test_existing_file_is_read_and_missing_txt_or_folder_is_an_error(tmp_path: Path) -> None:
    file = tmp_path / "words.txt"
    file.write_text("\ufeffhello world\n", encoding="utf-8")
    assert transcript_path(str(file)) == file
    assert read_transcript(str(file)) == "hello world\n"
    assert read_transcript(file) == "hello world\n"  # a Path works as well as its text
    with pytest.raises(DataError, match="transcript file not found"):
        read_transcript(str(tmp_path / "missing.txt"))
    with pytest.raises(DataError, match="is a directory, expected a transcript") as info:
        read_transcript(str(tmp_path))
    assert info.value.path == tmp_path
    assert read_transcript("hello there.txt") == "hello there.txt"  # several words: text
