"""Pronunciations for words the CMU dictionary lacks: its own pronunciation of a stem or of a
compound's parts where there is one, otherwise English letter-to-sound rules."""

from __future__ import annotations

import re
from collections.abc import Callable

from semtalk.features.alignment.normalize import APOSTROPHES

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
    letters = re.sub(r"[^a-z]", "", word.lower().translate(APOSTROPHES))
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
