"""Word timings for speech audio: forced alignment of a transcript, or offline recognition.

Everything here runs offline on what ships in the ``pocketsphinx`` wheel (the en-us acoustic
model, the CMU dictionary and the en-us language model); nothing is downloaded.

**Forced alignment** (:func:`align_transcript`). The transcript is normalised the way the
dictionary spells words (lower case, no punctuation, numbers spelled out: "21" -> "twenty one",
"1990s" -> "nineteen nineties"). Words the dictionary lacks get a pronunciation from
:func:`g2p`: the dictionary's own pronunciation of a stem or of the parts of a compound where
there is one, otherwise English letter-to-sound rules. pocketsphinx then aligns the whole clip
as one utterance (about 60x real time). Measured problems and what this module does about them:

* float WAVs read as int16 become -1/0/1 samples and nothing aligns: float audio is clipped and
  scaled by 32767 here, and integer audio that is all -1/0/1 is refused with that diagnosis;
* digital silence (exact zeros, as in synthetic or gated audio) makes a third of alignments
  fail: such audio gets a deterministic -60 dBFS dither before decoding;
* long utterances sometimes fail with the default beams: the alignment is retried with widened
  beams (``beam=1e-80, wbeam=1e-60, pbeam=1e-80``);
* if that fails too, the audio is cut at silences (energy VAD, :func:`speech_regions`) and the
  transcript is aligned window by window (two neighbouring chunks, with the number of words
  their share of the speech predicts); only the words of a window's first chunk are kept.

A word's text is always the normalised transcript word, every transcript word appears exactly
once and in order, and silences and fillers are left out (the TextGrid writer fills the gaps).

**Recognition** (:func:`recognize`) decodes the speech chunks with pocketsphinx's language model:
a rough transcript (word error rate 33-38 % on BEAT2), for clips that come without one. With a
local faster-whisper (CTranslate2) model folder and the ``faster-whisper`` package installed,
Whisper's word timestamps are used instead. Model hub ids are refused: semtalk never downloads.

:func:`words_for_audio` is the one entry point the rest of semtalk uses.
"""

from __future__ import annotations

import itertools
import re
import unicodedata
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from semtalk.constants import AUDIO_SAMPLE_RATE
from semtalk.data.audio import resample
from semtalk.data.textgrid import Interval, Word, read_words
from semtalk.errors import DataError

if TYPE_CHECKING:
    from pocketsphinx import Decoder

__all__ = [
    "ARPABET",
    "METHOD_ALIGNED",
    "METHOD_FALLBACK",
    "METHOD_RECOGNIZED",
    "METHOD_TEXTGRID",
    "METHOD_WHISPER",
    "AlignmentError",
    "AlignmentFallbackWarning",
    "align_transcript",
    "align_transcript_with_phones",
    "g2p",
    "normalize_transcript",
    "number_to_words",
    "recognize",
    "speech_regions",
    "words_for_audio",
]

METHOD_TEXTGRID = "textgrid"
"""Words read from a TextGrid."""
METHOD_ALIGNED = "aligned"
"""The transcript force-aligned to the audio."""
METHOD_RECOGNIZED = "recognized"
"""No transcript: words recognised by pocketsphinx (rough, WER about 33 %)."""
METHOD_WHISPER = "recognized-whisper"
"""No transcript: words recognised by a local faster-whisper model."""
METHOD_FALLBACK = "aligned+recognized-fallback"
"""A transcript was given but did not align; the words are recognised instead."""

FRAME_RATE = 100
"""pocketsphinx frames per second (10 ms hop)."""
DIGITAL_SILENCE_DB = -90.0
"""10 ms frames quieter than this (dBFS) count as digital silence."""
DIGITAL_SILENCE_FRACTION = 0.01
"""Audio with at least this fraction of digitally silent frames is dithered for pocketsphinx."""
DITHER_RMS = 1e-3
"""RMS of that dither (-60 dBFS)."""
MIN_SPEECH_COVERAGE = 0.5
"""Least fraction of the detected speech an accepted alignment's words must cover."""
MAX_COUNT_RADIUS = 4
"""Piecewise alignment tries word counts up to this far from a window's predicted count."""
MAX_WINDOW_FAILURES = 2
"""Piecewise alignment gives up after this many windows in a row failed to align."""
RECOGNITION_CHUNK_S = 20.0
"""Recognition decodes pieces of at least this many seconds, cut at pauses (shorter pieces
raise the word error rate on BEAT2: 43 % with 2 s pieces, 37 % with 15 s or more)."""
WIDE_BEAMS: dict[str, float] = {"beam": 1e-80, "wbeam": 1e-60, "pbeam": 1e-80}
"""Beams of the retry after the default beams failed."""


class AlignmentError(DataError):
    """A transcript could not be aligned to its audio; the message names the audio and why."""


class AlignmentFallbackWarning(UserWarning):
    """Alignment failed and recognised words are returned instead."""


# --- transcript normalisation --------------------------------------------------------------------
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
_APOSTROPHES = str.maketrans({"\u2019": "'", "\u2018": "'", "\u02bc": "'", "`": "'"})

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
    text = unicodedata.normalize("NFKD", text.translate(_APOSTROPHES))
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


# --- letter-to-sound rules -----------------------------------------------------------------------
ARPABET = frozenset(
    [
        "AA", "AE", "AH", "AO", "AW", "AY", "B", "CH", "D", "DH", "EH", "ER", "EY", "F", "G", "HH",
        "IH", "IY", "JH", "K", "L", "M", "N", "NG", "OW", "OY", "P", "R", "S", "SH", "T", "TH",
        "UH", "UW", "V", "W", "Y", "Z", "ZH"
    ])
"""The 39 phones of the CMU dictionary (no stress marks), as the en-us model names them."""

_VOWEL_LETTERS = "aeiouy"
_VOICELESS = frozenset(["P", "T", "K", "F", "TH", "S", "SH", "CH"])
_SIBILANTS = frozenset(["S", "Z", "SH", "ZH", "CH", "JH"])
_LETTER_NAMES = {
    "a": "EY", "b": "B IY", "c": "S IY", "d": "D IY", "e": "IY", "f": "EH F", "g": "JH IY",
    "h": "EY CH", "i": "AY", "j": "JH EY", "k": "K EY", "l": "EH L", "m": "EH M", "n": "EH N",
    "o": "OW", "p": "P IY", "q": "K Y UW", "r": "AA R", "s": "EH S", "t": "T IY", "u": "Y UW",
    "v": "V IY", "w": "D AH B AH L Y UW", "x": "EH K S", "y": "W AY", "z": "Z IY"}
_CONSONANT_PHONES = {
    "b": "B", "d": "D", "f": "F", "h": "HH", "j": "JH", "k": "K", "l": "L", "m": "M", "n": "N",
    "p": "P", "q": "K", "r": "R", "t": "T", "v": "V", "w": "W", "z": "Z", "s": "S", "g": "G",
    "c": "K", "x": "K S"}

Condition = Callable[[str, int, int], bool]


def _vowel(word: str, k: int) -> bool:
    return 0 <= k < len(word) and word[k] in _VOWEL_LETTERS


def _at_start(word: str, i: int, j: int) -> bool:
    return i == 0


def _at_end(word: str, i: int, j: int) -> bool:
    return j == len(word)


def _not_before_vowel(word: str, i: int, j: int) -> bool:
    return not _vowel(word, j)


def _before_front_vowel(word: str, i: int, j: int) -> bool:
    return j < len(word) and word[j] in "eiy"


def _after_vowel(word: str, i: int, j: int) -> bool:
    return _vowel(word, i - 1)


def _has_vowel_before(word: str, i: int) -> bool:
    return any(c in _VOWEL_LETTERS for c in word[:i])


def _magic_e(word: str, i: int, j: int) -> bool:
    """A vowel, one consonant, then a silent e ending the word or before s/d/ly/ment."""
    return (j + 1 < len(word) and not _vowel(word, j) and word[j] not in "rwx"
            and word[j + 1] == "e" and word[j + 2:] in ("", "s", "d", "ly", "ment", "ful"))


def _before_tion(word: str, i: int, j: int) -> bool:
    """A vowel right before "tion"/"sion" is long (nation, motion, solution)."""
    return word[j:j + 4] in ("tion", "sion")


def _silent_e(word: str, i: int, j: int) -> bool:
    return (word[i + 1:] in ("", "s", "d", "ly", "ment", "ful") and i >= 2
            and not _vowel(word, i - 1) and _has_vowel_before(word, i - 1))


def _final_le(word: str, i: int, j: int) -> bool:
    return j == len(word) and i >= 2 and not _vowel(word, i - 1)


def _final_ed(voicing: str) -> Condition:
    def condition(word: str, i: int, j: int) -> bool:
        if j != len(word) or len(word) < 4 or _vowel(word, i - 1):
            return False
        before = word[i - 1]
        if voicing == "td":
            return before in "td"
        return (before in "pkfsxh") == (voicing == "voiceless")
    return condition


def _final_es(word: str, i: int, j: int) -> bool:
    return j == len(word) and i >= 2 and (word[i - 1] in "sxzj" or word[i - 2:i] in ("ch", "sh"))


def _final_voiced_s(word: str, i: int, j: int) -> bool:
    """A final s after a voiced sound (a silent e counts as the letter before it)."""
    if j != len(word) or i < 1:
        return False
    silent_e = word[i - 1] == "e" and i >= 2 and not _vowel(word, i - 2)
    before = word[i - 2] if silent_e else word[i - 1]
    return before in "bdglmnrvaeiouwy"


def _between_vowels(word: str, i: int, j: int) -> bool:
    return _vowel(word, i - 1) and _vowel(word, j)


def _consonant_y(word: str, i: int, j: int) -> bool:
    return i == 0 or _vowel(word, j)


def _final_y_polysyllable(word: str, i: int, j: int) -> bool:
    return j == len(word) and _has_vowel_before(word, i - 1)


_RULES: tuple[tuple[str, str, Condition | None], ...] = (
    ("tion", "SH AH N", None), ("sion", "ZH AH N", _after_vowel), ("sion", "SH AH N", None),
    ("cian", "SH AH N", None), ("tial", "SH AH L", None), ("cial", "SH AH L", None),
    ("cious", "SH AH S", None), ("tious", "SH AH S", None), ("ious", "IY AH S", None),
    ("ous", "AH S", None), ("ture", "CH ER", None), ("eigh", "EY", None), ("ough", "AO", None),
    ("augh", "AO", None), ("igh", "AY", None), ("tch", "CH", None), ("sch", "S K", None),
    ("dge", "JH", None), ("air", "EH R", None), ("ear", "IH R", None), ("eer", "IH R", None),
    ("our", "AW ER", None), ("oor", "AO R", None), ("ore", "AO R", _at_end),
    ("ire", "AY ER", _at_end), ("are", "EH R", _at_end), ("le", "AH L", _final_le),
    ("ed", "IH D", _final_ed("td")), ("ed", "T", _final_ed("voiceless")),
    ("ed", "D", _final_ed("voiced")), ("es", "IH Z", _final_es),
    ("ch", "CH", None), ("sh", "SH", None), ("th", "TH", None), ("ph", "F", None),
    ("wh", "W", None), ("ck", "K", None), ("ng", "NG", None), ("nk", "NG K", None),
    ("qu", "K W", None), ("kn", "N", _at_start), ("wr", "R", _at_start), ("gn", "N", _at_start),
    ("gn", "N", _at_end), ("mb", "M", _at_end), ("gh", "G", _at_start), ("gh", "", None),
    ("cc", "K S", _before_front_vowel),
    ("ee", "IY", None), ("ea", "IY", None), ("ie", "IY", None), ("ei", "EY", None),
    ("ey", "IY", _at_end), ("ey", "EY", None), ("ay", "EY", None), ("ai", "EY", None),
    ("oa", "OW", None), ("oo", "UW", None), ("ou", "AW", None), ("ow", "OW", _at_end),
    ("ow", "AW", None), ("oi", "OY", None), ("oy", "OY", None), ("au", "AO", None),
    ("aw", "AO", None), ("ew", "UW", None), ("eu", "UW", None), ("ue", "UW", None),
    ("ui", "UW", None),
    ("ar", "AA R", _not_before_vowel), ("er", "ER", _not_before_vowel),
    ("ir", "ER", _not_before_vowel), ("ur", "ER", _not_before_vowel),
    ("yr", "ER", _not_before_vowel), ("or", "AO R", _not_before_vowel),
    ("a", "EY", _before_tion), ("o", "OW", _before_tion), ("u", "UW", _before_tion),
    ("a", "EY", _magic_e), ("e", "IY", _magic_e), ("i", "AY", _magic_e), ("o", "OW", _magic_e),
    ("u", "UW", _magic_e), ("y", "AY", _magic_e), ("e", "", _silent_e),
    ("y", "Y", _consonant_y), ("y", "IY", _final_y_polysyllable), ("y", "AY", _at_end),
    ("y", "IH", None), ("a", "AH", _at_end), ("o", "OW", _at_end), ("i", "IY", _at_end),
    ("u", "UW", _at_end), ("e", "IY", _at_end),
    ("a", "AE", None), ("e", "EH", None), ("i", "IH", None), ("o", "AA", None), ("u", "AH", None),
    ("c", "S", _before_front_vowel), ("g", "JH", _before_front_vowel),
    ("s", "Z", _final_voiced_s), ("s", "Z", _between_vowels), ("x", "Z", _at_start),
)


def _rule_phones(word: str) -> list[str]:
    """Letter-to-sound rules for a lower-case word of letters a-z."""
    if not any(c in _VOWEL_LETTERS for c in word):
        return [p for c in word for p in _LETTER_NAMES[c].split()]
    phones: list[str] = []
    i = 0
    while i < len(word):
        i, found = _apply_rule(word, i)
        phones.extend(found)
    return _collapse(phones)


def _apply_rule(word: str, i: int) -> tuple[int, list[str]]:
    """The phones of the rule matching at position ``i`` and the position after it."""
    for graphemes, phones, condition in _RULES:
        j = i + len(graphemes)
        if word.startswith(graphemes, i) and (condition is None or condition(word, i, j)):
            return j, phones.split()
    letter = word[i]
    step = 2 if i + 1 < len(word) and word[i + 1] == letter and letter not in "aeiouyc" else 1
    return i + step, _CONSONANT_PHONES[letter].split()


def _collapse(phones: list[str]) -> list[str]:
    """Drop immediate repeats (``K K`` from "ck" + "k") that no English word has."""
    return [p for k, p in enumerate(phones) if k == 0 or p != phones[k - 1]]


_SUFFIXES: tuple[tuple[str, str], ...] = (
    ("'s", "+S"), ("s", "+S"), ("es", "+S"), ("ed", "+D"), ("ing", "IH NG"), ("er", "ER"),
    ("ers", "ER Z"), ("est", "AH S T"), ("ly", "L IY"), ("ness", "N AH S"), ("ful", "F AH L"),
    ("less", "L AH S"), ("ment", "M AH N T"), ("able", "AH B AH L"), ("ish", "IH SH"),
    ("y", "IY"), ("ism", "IH Z AH M"), ("ist", "IH S T"), ("ize", "AY Z"))


def _suffix_phones(code: str, stem: list[str]) -> list[str]:
    """Suffix phones; ``+S``/``+D`` take the voicing of the stem's last phone."""
    last = stem[-1]
    if code == "+S":
        return ["IH", "Z"] if last in _SIBILANTS else ["S"] if last in _VOICELESS else ["Z"]
    if code == "+D":
        return ["IH", "D"] if last in ("T", "D") else ["T"] if last in _VOICELESS else ["D"]
    return code.split()


def _stem_candidates(stem: str) -> list[str]:
    candidates = [stem, stem + "e"]
    if len(stem) >= 3 and stem[-1] == stem[-2]:
        candidates.append(stem[:-1])
    if stem.endswith("i"):
        candidates.append(stem[:-1] + "y")
    return candidates


def _dictionary_parts(word: str, lookup: Callable[[str], str | None]) -> list[str] | None:
    """A pronunciation built from dictionary entries: a stem plus suffix, or two words."""
    for suffix, code in _SUFFIXES:
        stem = word[: -len(suffix)]
        if word.endswith(suffix) and len(stem) >= 3:
            for candidate in _stem_candidates(stem):
                found = lookup(candidate)
                if found:
                    phones = found.split()
                    return phones + _suffix_phones(code, phones)
    for k in range(len(word) - 3, 2, -1):
        head, tail = lookup(word[:k]), lookup(word[k:])
        if head and tail:
            return head.split() + tail.split()
    return None


def g2p(word: str, lookup: Callable[[str], str | None] | None = None) -> list[str]:
    """ARPAbet phones (no stress marks) for an English word, without any download.

    With ``lookup`` (a dictionary: word -> space-separated phones or ``None``), a word in the
    dictionary keeps its entry, and an unknown word is first tried as a dictionary stem plus
    a suffix ("blogged" -> "blog" + D) or as two dictionary words; otherwise (and without
    ``lookup``) English letter-to-sound rules are used. Letter strings without a vowel are
    spelled out ("tv" -> T IY V IY). Good enough for alignment, not for synthesis.

    Raises:
        ValueError: ``word`` has no letters.
    """
    letters = re.sub(r"[^a-z]", "", word.lower().translate(_APOSTROPHES))
    if not letters:
        raise ValueError(f"cannot pronounce {word!r}: it has no letters a-z")
    if lookup is not None:
        found = lookup(word.lower()) or lookup(letters)
        if found:
            return found.split()
        parts = _dictionary_parts(letters, lookup)
        if parts:
            return parts
    return _rule_phones(letters)


# --- audio preparation and energy VAD ------------------------------------------------------------
def _where(source: str | Path | None) -> Path:
    return Path(source) if source is not None else Path("<audio>")


def _prepare(audio: np.ndarray, sample_rate: int, where: Path) -> np.ndarray:
    """Mono float32 16 kHz audio in [-1, 1] from float or integer samples at any rate."""
    samples = np.asarray(audio)
    if samples.ndim != 1:
        raise DataError(where, f"expected mono audio of shape [N], got shape {samples.shape}")
    if samples.size == 0:
        raise DataError(where, "audio has zero samples")
    if sample_rate <= 0:
        raise DataError(where, f"sample rate must be positive, got {sample_rate}")
    if np.issubdtype(samples.dtype, np.unsignedinteger):
        raise DataError(where, f"unsigned {samples.dtype} samples are not supported; decode the "
                               "file with semtalk's load_audio")
    if np.issubdtype(samples.dtype, np.integer):
        mono = _integer_to_float(samples, where)
    elif np.issubdtype(samples.dtype, np.floating):
        mono = _check_float(samples, where)
    else:
        raise DataError(where, f"audio samples must be float or integer, got {samples.dtype}")
    return np.ascontiguousarray(resample(mono, sample_rate, AUDIO_SAMPLE_RATE), dtype=np.float32)


def _integer_to_float(samples: np.ndarray, where: Path) -> np.ndarray:
    peak = int(np.abs(samples.astype(np.int64)).max())
    if peak == 1:
        raise DataError(where, "integer samples are all -1, 0 or 1: this looks like a float WAV "
                               "read as int16; read it as float32 instead (semtalk's load_audio)")
    return (samples.astype(np.float32) / np.float32(np.iinfo(samples.dtype).max))


def _check_float(samples: np.ndarray, where: Path) -> np.ndarray:
    if not np.isfinite(samples).all():
        raise DataError(where, "audio contains NaN or Inf samples")
    peak = float(np.abs(samples).max())
    if peak > 2.0:
        raise DataError(where, f"float audio must lie in [-1, 1] but peaks at {peak:.3g}; pass "
                               "integer samples with their integer dtype, or scale them")
    return samples.astype(np.float32, copy=False)


def _to_int16(mono: np.ndarray) -> np.ndarray:
    """Float audio in [-1, 1] as int16 PCM: clipped, then scaled by 32767 and rounded."""
    return np.round(np.clip(mono, -1.0, 1.0) * 32767.0).astype(np.int16)


def _decoder_pcm(mono: np.ndarray) -> np.ndarray:
    """int16 PCM for pocketsphinx; audio holding digital silence gets a deterministic dither.

    pocketsphinx's features degenerate on exact zeros: measured on 40 espeak-ng utterances
    (4 to 22 % digital silence), 35 % failed to align with any beam, none after adding
    Gaussian noise at -60 dBFS (seeded, so results stay reproducible). Recordings are left
    untouched (the BEAT2 clip has 0.1 % such frames; dithering it costs 1.5 points of
    boundary accuracy).
    """
    if np.mean(_frame_levels_db(mono) < DIGITAL_SILENCE_DB) >= DIGITAL_SILENCE_FRACTION:
        noise = np.random.default_rng(0).normal(0.0, DITHER_RMS, len(mono))
        mono = mono + noise.astype(np.float32)
    return _to_int16(mono)


def _frame_levels_db(mono: np.ndarray, sample_rate: int = AUDIO_SAMPLE_RATE) -> np.ndarray:
    """``[num_frames]`` energy (dBFS) of 10 ms frames."""
    hop = sample_rate // FRAME_RATE
    count = len(mono) // hop
    if count == 0:
        return np.full(1, 10 * np.log10(float(np.mean(np.square(mono, dtype=np.float64))) + 1e-12))
    frames = mono[: count * hop].reshape(count, hop).astype(np.float64)
    return 10 * np.log10(np.mean(frames**2, axis=1) + 1e-12)


def speech_regions(audio: np.ndarray, sample_rate: int = AUDIO_SAMPLE_RATE, *,
                   min_silence: float = 0.2, min_speech: float = 0.05,
                   absolute_floor_db: float = -55.0) -> list[tuple[float, float]]:
    """``(start, end)`` seconds of the speech in mono float audio, from 10 ms frame energy.

    A frame is speech when it is louder than both ``absolute_floor_db`` and 35 % of the way
    (in dB) from the noise floor (10th percentile of the frame levels) to the speech level
    (99th percentile). Pauses shorter than ``min_silence`` are bridged and bursts shorter
    than ``min_speech`` dropped. Digital silence, very quiet audio and stationary noise (less
    than 10 dB between floor and peak) have no speech: the result is then empty.
    """
    levels = _frame_levels_db(np.asarray(audio, dtype=np.float32), sample_rate)
    floor, peak = np.percentile(levels, 10), np.percentile(levels, 99)
    if peak < absolute_floor_db or peak - floor < 10.0:
        return []
    speech = levels > max(absolute_floor_db, floor + 0.35 * (peak - floor))
    edges = np.flatnonzero(np.diff(np.concatenate([[0], speech.astype(np.int8), [0]])))
    runs = [(int(a), int(b)) for a, b in zip(edges[::2], edges[1::2], strict=True)]
    merged: list[tuple[int, int]] = []
    for start, end in runs:
        if merged and start - merged[-1][1] < min_silence * FRAME_RATE:
            merged[-1] = (merged[-1][0], end)
        else:
            merged.append((start, end))
    return [(a / FRAME_RATE, b / FRAME_RATE) for a, b in merged
            if b - a >= min_speech * FRAME_RATE]


@dataclass(frozen=True)
class _Chunk:
    """A stretch of audio between two cut points (seconds) and the speech it holds."""

    start: float
    end: float
    speech: float

    def merge(self, other: _Chunk) -> _Chunk:
        return _Chunk(min(self.start, other.start), max(self.end, other.end),
                      self.speech + other.speech)


def _chunks(regions: Sequence[tuple[float, float]], duration: float,
            min_length: float = 2.0) -> list[_Chunk]:
    """Cut the audio in the middle of the pauses between speech regions; short chunks merge."""
    cuts = [0.0] + [(a[1] + b[0]) / 2 for a, b in itertools.pairwise(regions)]
    cuts.append(duration)
    chunks = [_Chunk(cuts[k], cuts[k + 1], end - start)
              for k, (start, end) in enumerate(regions)]
    merged: list[_Chunk] = []
    for chunk in chunks:
        if merged and merged[-1].end - merged[-1].start < min_length:
            merged[-1] = merged[-1].merge(chunk)
        else:
            merged.append(chunk)
    if len(merged) > 1 and merged[-1].end - merged[-1].start < min_length:
        merged[-2:] = [merged[-2].merge(merged[-1])]
    return merged


def _at_most(chunks: list[_Chunk], count: int) -> list[_Chunk]:
    """Merge the shortest chunk into its shorter neighbour until at most ``count`` remain."""
    chunks = list(chunks)
    while len(chunks) > max(count, 1):
        k = min(range(len(chunks)), key=lambda i: chunks[i].end - chunks[i].start)
        if k == 0 or (k + 1 < len(chunks)
                      and chunks[k + 1].end - chunks[k + 1].start
                      < chunks[k - 1].end - chunks[k - 1].start):
            chunks[k:k + 2] = [chunks[k].merge(chunks[k + 1])]
        else:
            chunks[k - 1:k + 1] = [chunks[k - 1].merge(chunks[k])]
    return chunks


# --- pocketsphinx --------------------------------------------------------------------------------
def _decoder(*, language_model: bool, wide: bool = False, bestpath: bool = True) -> Decoder:
    """A quiet pocketsphinx decoder on the bundled en-us model (16 kHz, 100 frames/s)."""
    from pocketsphinx import Decoder

    options: dict[str, Any] = {"loglevel": "FATAL", "samprate": AUDIO_SAMPLE_RATE,
                               "bestpath": bestpath}
    if not language_model:
        options["lm"] = None
    if wide:
        options.update(WIDE_BEAMS)
    return Decoder(**options)


def _add_pronunciations(decoder: Decoder, words: Sequence[str]) -> dict[str, list[str]]:
    """Every word's phones; words missing from the dictionary are added with :func:`g2p`."""
    phones: dict[str, list[str]] = {}
    for word in dict.fromkeys(words):
        found = decoder.lookup_word(word)
        if found is None:
            pronunciation = g2p(word, decoder.lookup_word)
            decoder.add_word(word, " ".join(pronunciation), True)
            phones[word] = pronunciation
        else:
            phones[word] = found.split()
    return phones


def _is_filler(token: str) -> bool:
    return token.startswith(("<", "[", "+")) or token == ""


def _base_word(token: str) -> str:
    """``"to(3)"`` -> ``"to"`` (pocketsphinx names alternate pronunciations this way)."""
    return re.sub(r"\(\d+\)$", "", token)


def _segments_to_words(decoder: Decoder, offset: float) -> list[Word]:
    words = []
    for segment in decoder.seg() or []:
        if not _is_filler(segment.word):
            words.append(Word(_base_word(segment.word), offset + segment.start_frame / FRAME_RATE,
                              offset + (segment.end_frame + 1) / FRAME_RATE))
    return words


def _decode(decoder: Decoder, pcm: np.ndarray) -> None:
    decoder.start_utt()
    decoder.process_raw(pcm.tobytes(), full_utt=True)
    decoder.end_utt()


@dataclass(frozen=True)
class _Aligned:
    words: list[Word]
    phones: list[Interval]


def _align_pcm(decoder: Decoder, pcm: np.ndarray, words: Sequence[str], offset: float,
               with_phones: bool) -> _Aligned | None:
    """Align ``words`` to int16 ``pcm`` starting ``offset`` s into the clip; None if it fails.

    Success means pocketsphinx's segmentation holds exactly ``words`` in order (a failed
    search returns nothing, or, with the lattice best path, only part of the words).
    """
    try:
        decoder.set_align_text(" ".join(words))
        _decode(decoder, pcm)
    except RuntimeError:
        return None
    if decoder.hyp() is None:
        return None
    aligned = _segments_to_words(decoder, offset)
    if [w.text for w in aligned] != list(words):
        return None
    phones = _phone_pass(decoder, pcm, offset) if with_phones else []
    if with_phones and not phones:
        return None
    return _Aligned(aligned, phones)


def _phone_pass(decoder: Decoder, pcm: np.ndarray, offset: float) -> list[Interval]:
    """Second pass for phone boundaries (needs a decoder built with ``bestpath=False``)."""
    try:
        decoder.set_alignment()
        _decode(decoder, pcm)
        alignment = decoder.get_alignment()
    except RuntimeError:
        return []
    phones = []
    for word in alignment or []:
        for phone in word:
            if phone.name not in ARPABET:
                continue
            start = offset + phone.start / FRAME_RATE
            phones.append(Interval(start, start + phone.duration / FRAME_RATE, phone.name))
    return phones


class _ChunkAligner:
    """Aligns the transcript window by window, a window being two neighbouring chunks.

    Each window is given the number of words its share of the speech predicts (phones per
    word against seconds of speech), or the nearest count within ``MAX_COUNT_RADIUS`` that
    aligns, and only the words aligned into its first chunk are kept. The window's end
    estimate therefore only affects words that the next window aligns again; the boundary
    that is kept lies inside the window, where pocketsphinx places it. A window that does not
    align grows by the next chunk, at most ``MAX_WINDOW_FAILURES`` times in a row; then the
    transcript does not match the audio there and the alignment fails, naming the time span.
    """

    def __init__(self, decoder: Decoder, pcm: np.ndarray, words: Sequence[str],
                 phones: dict[str, list[str]], regions: Sequence[tuple[float, float]],
                 with_phones: bool) -> None:
        self.decoder, self.pcm, self.words, self.with_phones = decoder, pcm, words, with_phones
        self.weights = np.array([len(phones[w]) for w in words], dtype=np.float64)
        self.chunks = _at_most(_chunks(regions, len(pcm) / AUDIO_SAMPLE_RATE), len(words))

    def run(self, where: Path) -> _Aligned:
        words: list[Word] = []
        phones: list[Interval] = []
        chunks, position, k, failures = list(self.chunks), 0, 0, 0
        while k < len(chunks) and position < len(self.words):
            last = k == len(chunks) - 1
            window = chunks[k] if last else chunks[k].merge(chunks[k + 1])
            ends = [len(self.words)] if last else self._ends([window, *chunks[k + 2:]], position)
            aligned = self._first(window, position, ends)
            if aligned is None and (last or failures == MAX_WINDOW_FAILURES):
                raise AlignmentError(where, _chunk_failure(window, position, len(self.words)))
            if aligned is None:
                failures += 1
                chunks[k + 1] = chunks[k].merge(chunks[k + 1])
            else:
                failures = 0
                cut = window.end if last else chunks[k].end
                kept = [w for w in aligned.words if (w.start + w.end) / 2 < cut]
                words += kept
                phones += [p for p in aligned.phones if (p.start + p.end) / 2 < cut]
                position += len(kept)
            k += 1
        if position < len(self.words):
            raise AlignmentError(where, _chunk_failure(chunks[-1], position, len(self.words)))
        return _Aligned(words, phones)

    def _ends(self, chunks: list[_Chunk], position: int) -> list[int]:
        """Candidate word counts for ``chunks[0]``: its share of the speech first, then +-1..."""
        total = len(self.words)
        later = len(chunks) - 1
        share = chunks[0].speech / max(sum(c.speech for c in chunks), 1e-9)
        cumulative = np.cumsum(self.weights[position:])
        expected = position + int(np.argmin(np.abs(cumulative - share * cumulative[-1]))) + 1
        radius = min(MAX_COUNT_RADIUS, max(2, round(0.3 * (expected - position))))
        low, high = max(position + 1, expected - radius), min(total - later, expected + radius)
        return sorted(range(low, high + 1), key=lambda e: (abs(e - expected), -e))

    def _first(self, window: _Chunk, position: int, ends: list[int]) -> _Aligned | None:
        """The alignment of the first candidate word count that aligns to the window."""
        lo, hi = round(window.start * AUDIO_SAMPLE_RATE), round(window.end * AUDIO_SAMPLE_RATE)
        for end in ends:
            aligned = _align_pcm(self.decoder, self.pcm[lo:hi], self.words[position:end],
                                 window.start, self.with_phones)
            if aligned is not None:
                return aligned
        return None


def _chunk_failure(chunk: _Chunk, position: int, total: int) -> str:
    return (f"forced alignment failed with the default and the widened beams, and piecewise "
            f"alignment at silences failed too: words {position + 1}-{total} of the transcript do "
            f"not align to {chunk.start:.2f}-{chunk.end:.2f} s (does the transcript match the "
            f"audio?)")


def _clamp(words: list[Word], duration: float) -> list[Word]:
    return [Word(w.text, min(w.start, duration), min(w.end, duration)) for w in words]


def _align(audio: np.ndarray, transcript: str | Sequence[str], sample_rate: int,
           source: str | Path | None, with_phones: bool) -> _Aligned:
    where = _where(source)
    words = normalize_transcript(transcript)
    if not words:
        raise AlignmentError(where, "the transcript has no words to align (after removing "
                                    "punctuation and symbols)")
    mono = _prepare(audio, sample_rate, where)
    duration = len(mono) / AUDIO_SAMPLE_RATE
    regions = speech_regions(mono)
    if not regions:
        level = float(_frame_levels_db(mono).max())
        raise AlignmentError(where, f"no speech found in the audio ({duration:.2f} s, loudest "
                                    f"10 ms frame {level:.1f} dBFS); cannot align the "
                                    f"{len(words)} transcript words")
    pcm = _decoder_pcm(mono)
    aligned = None
    for wide in (False, True):
        decoder = _decoder(language_model=False, wide=wide, bestpath=not with_phones)
        _add_pronunciations(decoder, words)
        aligned = _align_pcm(decoder, pcm, words, 0.0, with_phones)
        if aligned is not None:
            break
    if aligned is None:
        decoder = _decoder(language_model=False, wide=True, bestpath=False)
        phones = _add_pronunciations(decoder, words)
        aligned = _ChunkAligner(decoder, pcm, words, phones, regions, with_phones).run(where)
    _check_coverage(aligned.words, regions, where)
    return _Aligned(_clamp(aligned.words, duration), aligned.phones)


def _check_coverage(words: Sequence[Word], regions: Sequence[tuple[float, float]],
                    where: Path) -> None:
    """Refuse an alignment whose words leave most of the speech to silence and noise fillers.

    pocketsphinx "aligns" a transcript that covers only part of the speech (a sentence of a
    minute of talk) by absorbing the rest in fillers; correct alignments cover 95-99 % of the
    VAD's speech on BEAT2 and synthetic speech.
    """
    last = max([end for _, end in regions] + [w.end for w in words])
    speech = np.zeros(round(last * FRAME_RATE) + 1, dtype=bool)
    covered = np.zeros_like(speech)
    for start, end in regions:
        speech[round(start * FRAME_RATE):round(end * FRAME_RATE)] = True
    for word in words:
        covered[round(word.start * FRAME_RATE):round(word.end * FRAME_RATE)] = True
    coverage = np.count_nonzero(speech & covered) / max(np.count_nonzero(speech), 1)
    if coverage < MIN_SPEECH_COVERAGE:
        raise AlignmentError(where, f"the {len(words)} aligned words cover only {coverage:.0%} "
                                    f"of the speech in the audio (at least "
                                    f"{MIN_SPEECH_COVERAGE:.0%} expected): the transcript does "
                                    "not match the audio, or covers only part of it")


def align_transcript(audio: np.ndarray, transcript: str | Sequence[str],
                     sample_rate: int = AUDIO_SAMPLE_RATE, *,
                     source: Path | None = None) -> list[Word]:
    """Force-align a plain transcript to speech; the words in order with start/end seconds.

    Args:
        audio: ``[N]`` samples, float in [-1, 1] or integer PCM, at ``sample_rate``.
        transcript: text, or a sequence of words; normalised by :func:`normalize_transcript`.
        sample_rate: rate of ``audio`` (resampled to 16 kHz here).
        source: the audio's path, for error messages (``"<audio>"`` when None).

    Returns:
        One :class:`Word` per normalised transcript word, in order, silences excluded.

    Raises:
        DataError: the audio is empty, not mono, or not valid samples.
        AlignmentError: the transcript is empty, the audio holds no speech, or no alignment
            (default beams, widened beams, piecewise at silences) succeeded.
    """
    return _align(audio, transcript, sample_rate, source, with_phones=False).words


def align_transcript_with_phones(audio: np.ndarray, transcript: str | Sequence[str],
                                 sample_rate: int = AUDIO_SAMPLE_RATE, *,
                                 source: Path | None = None
                                 ) -> tuple[list[Word], list[Interval]]:
    """:func:`align_transcript` plus ARPAbet phone intervals (a second pass, ~2x the time)."""
    aligned = _align(audio, transcript, sample_rate, source, with_phones=True)
    return aligned.words, aligned.phones


# --- recognition ---------------------------------------------------------------------------------
def recognize(audio: np.ndarray, sample_rate: int = AUDIO_SAMPLE_RATE, *,
              source: Path | None = None, whisper_model: Path | None = None) -> list[Word]:
    """Recognise the words of speech audio offline (a rough transcript with timings).

    pocketsphinx with its bundled en-us language model decodes pieces of at least 20 s cut
    at pauses (about 0.2x real time; word error rate 33-38 % on BEAT2 speech). With
    ``whisper_model`` (a local faster-whisper/CTranslate2 model folder) faster-whisper's word
    timestamps are used instead.

    Returns:
        The recognised words in time order; ``[]`` for audio without speech (not an error).

    Raises:
        DataError: empty or invalid audio; ``whisper_model`` is not a local model folder (a
            hub id is refused: download the model and pass its folder) or faster-whisper is
            not installed.
    """
    where = _where(source)
    mono = _prepare(audio, sample_rate, where)
    if whisper_model is not None:
        return _recognize_whisper(mono, Path(whisper_model))
    regions = speech_regions(mono)
    if not regions:
        return []
    decoder = _decoder(language_model=True)
    pcm = _decoder_pcm(mono)
    words: list[Word] = []
    for chunk in _chunks(regions, len(mono) / AUDIO_SAMPLE_RATE, RECOGNITION_CHUNK_S):
        lo, hi = round(chunk.start * AUDIO_SAMPLE_RATE), round(chunk.end * AUDIO_SAMPLE_RATE)
        _decode(decoder, pcm[lo:hi])
        words += _segments_to_words(decoder, chunk.start)
    return _clamp(words, len(mono) / AUDIO_SAMPLE_RATE)


_WHISPER_SIZES = frozenset(
    [
        "tiny", "tiny.en", "base", "base.en", "small", "small.en", "medium", "medium.en", "large",
        "large-v1", "large-v2", "large-v3", "large-v3-turbo", "turbo", "distil-small.en",
        "distil-medium.en", "distil-large-v2", "distil-large-v3"
    ])


def _check_whisper_model(path: Path) -> Path:
    """The folder of a local CTranslate2 Whisper model; hub ids and sizes are refused."""
    if not path.exists():
        name = str(path)
        looks_remote = name in _WHISPER_SIZES or (name.count("/") == 1 and not name.startswith("."))
        hint = (f"'{name}' looks like a model size or hub id; semtalk never downloads models. "
                if looks_remote else "")
        raise DataError(path, f"{hint}no such model folder: download a faster-whisper "
                              "(CTranslate2) model, e.g. Systran/faster-whisper-small, on a "
                              "machine with network access and pass its local folder")
    if not path.is_dir():
        raise DataError(path, "a faster-whisper model must be a folder (with model.bin)")
    missing = [f for f in ("model.bin", "config.json") if not (path / f).is_file()]
    if missing:
        raise DataError(path, f"not a faster-whisper (CTranslate2) model folder: missing "
                              f"{', '.join(missing)}")
    return path


def _recognize_whisper(mono: np.ndarray, model_dir: Path) -> list[Word]:
    path = _check_whisper_model(model_dir)
    try:
        from faster_whisper import WhisperModel
    except ImportError as exc:
        raise DataError(path, "faster-whisper is not installed: `pip install faster-whisper`, "
                              "or recognise without a Whisper model") from exc
    model = WhisperModel(str(path), device="cpu", compute_type="int8", local_files_only=True)
    segments, _info = model.transcribe(mono, language="en", word_timestamps=True,
                                       vad_filter=False)
    words: list[Word] = []
    for segment in segments:
        for item in segment.words or []:
            words += _spread(normalize_transcript(item.word), float(item.start), float(item.end))
    return words


def _spread(tokens: Sequence[str], start: float, end: float) -> list[Word]:
    """Share one timed span equally among the words it spells ("21" -> twenty, one)."""
    step = (end - start) / max(len(tokens), 1)
    return [Word(t, start + k * step, start + (k + 1) * step) for k, t in enumerate(tokens)]


# --- the entry point -----------------------------------------------------------------------------
def words_for_audio(audio: np.ndarray, sr: int = AUDIO_SAMPLE_RATE, *,
                    transcript: str | Sequence[str] | None = None,
                    textgrid: str | Path | None = None, allow_recognition: bool = True,
                    source: Path | None = None, whisper_model: Path | None = None
                    ) -> tuple[list[Word], str]:
    """The timed words of a clip and how they were obtained (a ``METHOD_*`` label).

    In order of preference: the TextGrid's ``words`` tier (``"textgrid"``); the transcript
    force-aligned (``"aligned"``); if that fails and ``allow_recognition``, recognised words
    with an :class:`AlignmentFallbackWarning` (``"aligned+recognized-fallback"``); without a
    transcript, recognition (``"recognized"``, or ``"recognized-whisper"`` with
    ``whisper_model``).

    Raises:
        DataError: unreadable TextGrid or invalid audio; recognition needed but not allowed.
        AlignmentError: alignment failed and ``allow_recognition`` is False.
    """
    if textgrid is not None:
        return read_words(textgrid), METHOD_TEXTGRID
    recognized = METHOD_WHISPER if whisper_model is not None else METHOD_RECOGNIZED
    if transcript is not None:
        try:
            return align_transcript(audio, transcript, sr, source=source), METHOD_ALIGNED
        except AlignmentError as exc:
            if not allow_recognition:
                raise
            warnings.warn(f"{exc}; using recognised words instead", AlignmentFallbackWarning,
                          stacklevel=2)
        words = recognize(audio, sr, source=source, whisper_model=whisper_model)
        return words, METHOD_FALLBACK
    if not allow_recognition:
        raise DataError(_where(source), "no transcript or TextGrid given and speech recognition "
                                        "is switched off")
    return recognize(audio, sr, source=source, whisper_model=whisper_model), recognized
