"""Transcript normalisation: dictionary spellings, numbers spelled out."""

from __future__ import annotations

import pytest

from semtalk.features.alignment import normalize_transcript, number_to_words


@pytest.mark.parametrize(("token", "spoken"), [
    ("5", "five"), ("21", "twenty one"), ("0", "zero"), ("100", "one hundred"),
    ("115", "one hundred fifteen"), ("1990", "nineteen ninety"), ("1905", "nineteen oh five"),
    ("2005", "two thousand five"), ("1800", "eighteen hundred"), ("2024", "twenty twenty four"),
    ("1,000,000", "one million"), ("12,345", "twelve thousand three hundred forty five"),
    ("21st", "twenty first"), ("3rd", "third"), ("12th", "twelfth"), ("1990s", "nineteen nineties"),
    ("3.14", "three point one four"), ("50%", "fifty percent"), ("$5", "five dollars"),
    ("$1", "one dollar"), ("$5.50", "five dollars and fifty cents"), ("007", "zero zero seven"),
    ("-5", "minus five"), ("3:30", "three thirty"), ("9:05", "nine oh five"),
])
def test_number_to_words(token: str, spoken: str) -> None:
    assert number_to_words(token) == spoken.split()


def test_number_to_words_rejects_words() -> None:
    with pytest.raises(ValueError, match="not a number"):
        number_to_words("five")


def test_normalize_transcript() -> None:
    text = "Hello, World! It’s 5 o'clock — a well-known café & I'll pay $3; mp3 “quotes”."
    assert normalize_transcript(text) == [
        "hello", "world", "it's", "five", "o'clock", "a", "well", "known", "cafe", "and",
        "i'll", "pay", "three", "dollars", "mp", "three", "quotes"]
    assert normalize_transcript(["In", "1990,", "21"]) == [
        "in", "nineteen", "ninety", "twenty", "one"]
    assert normalize_transcript("... !!") == []
