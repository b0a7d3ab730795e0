"""Transcript normalisation: the words as the CMU dictionary spells them (lower case, no
punctuation, numbers spelled out: "21" -> "twenty one", "1990s" -> "nineteen nineties")."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence

_ONES = (
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven",
    "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen"
)
_TENS = ("", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety")
_SCALES = ((10**12, "trillion"), (10**9, "billion"), (10**6, "million"), (1000, "thousand"))
_ORDINALS = {"one": "first", "two": "second", "three": "third", "five": "fifth",
             "eight": "eighth", "nine": "ninth", "twelve": "twelfth"}
_CURRENCIES = {"$": ("dollar", "dollars", "cent", "cents"), "€": ("euro", "euros", "cent", "cents"),
               "£": ("pound", "pounds", "penny", "pence")}
_SYMBOLS = {"&": "and", "@": "at", "%": "percent", "+": "plus"}
APOSTROPHES = str.maketrans({"\u2019": "'", "\u2018": "'", "\u02bc": "'", "`": "'"})

_TOKEN = re.compile(r"""
    (?P<time>\b\d{1,2}:\d{2}\b)
  | (?P<cur>[$€£])?(?P<neg>(?<![\w.])-)?
    (?P<int>\d{1,3}(?:,\d{3})+(?!\d)|\d+)(?:\.(?P<frac>\d+))?
    (?P<suf>%|(?:st|nd|rd|th|'?s)\b)?
  | (?P<word>[a-z]+(?:'[a-z]+)*)
  | (?P<sym>[&@%+])
""", re.VERBOSE)


def _cardinal(n: int) -> list[str]:
    """Words of a non-negative integer below 10**15 ("one hundred twenty three")."""
    if n < 20:
        return [_ONES[n]]
    if n < 100:
        return [_TENS[n // 10]] + ([_ONES[n % 10]] if n % 10 else [])
    if n < 1000:
        return [_ONES[n // 100], "hundred"] + (_cardinal(n % 100) if n % 100 else [])
    for value, name in _SCALES:
        if n >= value:
            rest = n % value
            return _cardinal(n // value) + [name] + (_cardinal(rest) if rest else [])
    raise AssertionError("unreachable")


def _digits(text: str) -> list[str]:
    return [_ONES[int(d)] for d in text]


def _year(n: int) -> list[str]:
    """A year read the usual way: 1990 -> nineteen ninety, 1905 -> nineteen oh five."""
    if 2000 <= n <= 2009 or n % 1000 == 0:
        return _cardinal(n)
    high, low = divmod(n, 100)
    if low == 0:
        return [*_cardinal(high), "hundred"]
    return _cardinal(high) + (["oh", _ONES[low]] if low < 10 else _cardinal(low))


def _ordinal(words: list[str]) -> list[str]:
    last = words[-1]
    if last in _ORDINALS:
        last = _ORDINALS[last]
    elif last.endswith("y"):
        last = last[:-1] + "ieth"
    else:
        last += "th"
    return [*words[:-1], last]


def _plural(words: list[str]) -> list[str]:
    last = words[-1]
    last = last[:-1] + "ies" if last.endswith("y") else last + ("es" if last.endswith("x") else "s")
    return [*words[:-1], last]


def number_to_words(text: str) -> list[str]:
    """Spoken words of one number token such as ``"21"``, ``"1990"``, ``"3.5"``, ``"5th"``.

    Handles thousands separators, decimals, ordinals (``21st``), decades (``1990s``, ``80's``),
    percentages, currency (``$5.50``), clock times (``3:30``) and a leading minus. Four-digit
    numbers from 1100 to 2099 are read as years; numbers with a leading zero or more than 15
    digits are read digit by digit.

    Raises:
        ValueError: ``text`` is not a single number token.
    """
    match = _TOKEN.fullmatch(text.strip().lower())
    if match is None or match["word"] or match["sym"]:
        raise ValueError(f"not a number token: {text!r}")
    return _number_match_words(match)


def _number_match_words(match: re.Match[str]) -> list[str]:
    if match["time"]:
        hours, minutes = (int(part) for part in match["time"].split(":"))
        tail = ["o'clock"] if minutes == 0 else (
            ["oh", _ONES[minutes]] if minutes < 10 else _cardinal(minutes))
        return _cardinal(hours) + tail
    digits, frac, suffix = match["int"].replace(",", ""), match["frac"], match["suf"] or ""
    if match["cur"]:
        words = _money(digits, frac, _CURRENCIES[match["cur"]])
    elif frac is not None:
        words = _decimal(digits, frac)
    else:
        words = _integer_words(digits, plain="," in match["int"])
        if suffix in ("st", "nd", "rd", "th"):
            words = _ordinal(words)
        elif suffix in ("s", "'s"):
            words = _plural(words)
    if suffix == "%":
        words = [*words, "percent"]
    return (["minus"] if match["neg"] else []) + words


def _money(digits: str, frac: str | None, names: tuple[str, str, str, str]) -> list[str]:
    """"$5" -> five dollars; "$5.50" -> five dollars and fifty cents; "$2.5" -> two point five
    dollars."""
    unit, units, cent, cents = names
    if frac is not None and len(frac) != 2:
        return [*_decimal(digits, frac), units]
    words = [*_integer_words(digits, plain=True), unit if digits == "1" else units]
    sub = int(frac or "0")
    return words + (["and", *_cardinal(sub), cent if sub == 1 else cents] if sub else [])


def _integer_words(digits: str, *, plain: bool) -> list[str]:
    if (len(digits) > 1 and digits.startswith("0")) or len(digits) > 15:
        return _digits(digits)
    n = int(digits)
    if not plain and len(digits) == 4 and 1100 <= n <= 2099:
        return _year(n)
    return _cardinal(n)


def _decimal(digits: str, frac: str) -> list[str]:
    return [*_integer_words(digits, plain=True), "point", *_digits(frac)]


def normalize_transcript(transcript: str | Sequence[str]) -> list[str]:
    """The words of a transcript as the pronunciation dictionary spells them, in order.

    Lower case; accents removed; punctuation dropped (inner apostrophes kept: "don't",
    "i'll"); hyphenated words split; numbers spelled out (:func:`number_to_words`);
    ``&``, ``@``, ``%``, ``+`` read as words. A sequence of words is normalised word by word
    (one input word may become several: "21" -> "twenty", "one").
    """
    text = transcript if isinstance(transcript, str) else " ".join(transcript)
    text = unicodedata.normalize("NFKD", text.translate(APOSTROPHES))
    text = "".join(c for c in text if not unicodedata.combining(c)).lower()
    words: list[str] = []
    for match in _TOKEN.finditer(text):
        if match["word"]:
            words.append(match["word"])
        elif match["sym"]:
            words.append(_SYMBOLS[match["sym"]])
        else:
            words.extend(_number_match_words(match))
    return words
