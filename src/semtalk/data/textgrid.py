"""Praat TextGrid reading and writing (interval tiers), with BEAT2's ``words`` tier.

Reads both the long ("ooTextFile") and the short text format, UTF-8 or UTF-16. Silence is an
interval with empty text, as in BEAT2's Montreal-Forced-Aligner output.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

from semtalk.errors import DataError
from semtalk.fileio import write_text_atomic


@dataclass(frozen=True)
class Interval:
    """One labelled time span of a tier (times in seconds)."""

    start: float
    end: float
    text: str


@dataclass(frozen=True)
class Word:
    """A spoken word with its timing in seconds."""

    text: str
    start: float
    end: float


def as_words(items: object) -> list[Word]:
    """Timed words given to the Python API as :class:`Word` objects or ``(text, start, end)``
    tuples, checked.

    Raises:
        TypeError: ``items`` is a string, or an item is neither a :class:`Word` nor a
            3-tuple/list (a bare string says to give times); the text is not a string.
        ValueError: (naming the word and its position) a start or end that is not a finite
            number, a negative start, or an end before the start.
    """
    if isinstance(items, (str, bytes)):
        raise TypeError("words must be a list of Word or (text, start, end) tuples, got a "
                        "string; give each word's start and end in seconds")
    try:
        iterator = iter(items)  # type: ignore[call-overload]
    except TypeError:
        raise TypeError(f"words must be a list of Word or (text, start, end) tuples, got "
                        f"{type(items).__name__}") from None
    words: list[Word] = []
    for index, item in enumerate(iterator):
        if isinstance(item, Word):
            text, start, end = item.text, item.start, item.end
        elif isinstance(item, (tuple, list)) and len(item) == 3:
            text, start, end = item[0], item[1], item[2]
        elif isinstance(item, str):
            raise TypeError(f"word {index} {item!r} is a bare string: give (text, start, end) "
                            f"with times in seconds, or a Word")
        else:
            raise TypeError(f"word {index}: expected a Word or (text, start, end), got "
                            f"{item!r}")
        if not isinstance(text, str):
            raise TypeError(f"word {index}: the text must be a string, got {text!r}")
        try:
            start, end = float(start), float(end)
        except (TypeError, ValueError):
            raise ValueError(f"word {index} {text!r}: start and end must be numbers (seconds), "
                             f"got {start!r}, {end!r}") from None
        if not (math.isfinite(start) and math.isfinite(end)):
            raise ValueError(f"word {index} {text!r}: times must be finite, got start {start}, "
                             f"end {end}")
        if start < 0:
            raise ValueError(f"word {index} {text!r}: negative start {start} s")
        if end < start:
            raise ValueError(f"word {index} {text!r}: ends ({end} s) before it starts "
                             f"({start} s)")
        words.append(Word(text, start, end))
    return words


def frame_span(start: float, end: float, fps: int, num_frames: int) -> tuple[int, int]:
    """``[first, stop)`` frames a span of seconds touches, within ``[0, num_frames]``.

    Products within 1e-6 of a whole frame count as that frame (0.7 s * 30 = 20.999999...).
    """
    first = min(max(math.floor(start * fps + 1e-6), 0), num_frames)
    stop = min(max(math.ceil(end * fps - 1e-6), first), num_frames)
    return first, stop


_TOKEN = re.compile(r'"((?:[^"]|"")*)"|([^\s=\[\]:]+)')


def _tokens(text: str) -> list[str]:
    """The values of a TextGrid file: quoted strings (unescaped) and bare numbers/flags.

    Both the long format (``xmin = 0``) and the short format (one value per line) reduce to the
    same value sequence once labels such as ``xmin`` and ``intervals [1]:`` are skipped.
    """
    values: list[str] = []
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped:
            continue
        if "=" in stripped:
            stripped = stripped.split("=", 1)[1]
        elif (re.match(r"^(item|intervals|points)\s*\[", stripped) or stripped.endswith(":")
              or stripped.startswith("tiers?")):
            continue
        for match in _TOKEN.finditer(stripped):
            quoted, bare = match.groups()
            if quoted is not None:
                values.append('"' + quoted.replace('""', '"'))
            elif bare not in ("<exists>", "<absent>"):
                values.append(bare)
    return values


def _decode(path: Path) -> str:
    raw = path.read_bytes()
    for encoding in ("utf-8-sig", "utf-16"):
        try:
            return raw.decode(encoding)
        except UnicodeDecodeError:
            continue
    raise DataError(path, "TextGrid is neither UTF-8 nor UTF-16 text")


def read_textgrid(path: str | Path) -> dict[str, list[Interval]]:
    """All interval tiers of a TextGrid, ``{tier name: intervals}`` in file order.

    Point tiers are skipped. Raises :class:`DataError` naming the file for anything malformed.
    """
    path = Path(path)
    if path.is_dir():
        raise DataError(path, "is a directory, expected a TextGrid file")
    if not path.is_file():
        raise DataError(path, "TextGrid file not found")
    values = _tokens(_decode(path))
    if len(values) < 2 or values[0] != '"ooTextFile' or values[1] != '"TextGrid':
        raise DataError(path, "not a Praat TextGrid (missing 'File type = \"ooTextFile\"' / "
                              "'Object class = \"TextGrid\"' header)")
    try:
        return _parse_values(values[2:])
    except (IndexError, ValueError) as exc:
        raise DataError(path, f"malformed TextGrid: {exc}") from exc


def _parse_values(values: list[str]) -> dict[str, list[Interval]]:
    pos = 2  # skip file xmin, xmax
    num_tiers = int(values[pos])
    pos += 1
    tiers: dict[str, list[Interval]] = {}
    for _ in range(num_tiers):
        tier_class, name = values[pos].lstrip('"'), values[pos + 1].lstrip('"')
        count = int(values[pos + 4])
        pos += 5
        if tier_class == "IntervalTier":
            intervals = []
            for _ in range(count):
                start, end, text = float(values[pos]), float(values[pos + 1]), values[pos + 2]
                if not text.startswith('"'):
                    raise ValueError(f"tier '{name}': expected a quoted label, got {text!r}")
                if end < start:
                    raise ValueError(f"tier '{name}': interval ends ({end}) before it starts "
                                     f"({start})")
                intervals.append(Interval(start, end, text[1:]))
                pos += 3
            tiers[name] = intervals
        elif tier_class == "TextTier":
            pos += 2 * count
        else:
            raise ValueError(f"unknown tier class {tier_class!r}")
    return tiers


def read_words(path: str | Path, tier: str | None = "words") -> list[Word]:
    """The non-silent words of a TextGrid tier (default ``words``, else the first tier)."""
    path = Path(path)
    tiers = read_textgrid(path)
    if not tiers:
        raise DataError(path, "TextGrid has no interval tiers")
    if tier is not None and tier in tiers:
        chosen = tiers[tier]
    elif tier is None or tier == "words":
        chosen = next(iter(tiers.values()))
    else:
        raise DataError(path, f"TextGrid has no tier '{tier}'; tiers: {sorted(tiers)}")
    return [Word(i.text.strip().lower(), i.start, i.end) for i in chosen if i.text.strip()]


def _fill_gaps(intervals: list[Interval], xmax: float) -> list[Interval]:
    """Insert empty intervals so the tier covers [0, xmax] without gaps (Praat requires it)."""
    filled: list[Interval] = []
    cursor = 0.0
    for item in sorted(intervals, key=lambda i: i.start):
        if item.start > cursor + 1e-9:
            filled.append(Interval(cursor, item.start, ""))
        start = max(item.start, cursor)
        if item.end > start:
            filled.append(Interval(start, item.end, item.text))
            cursor = item.end
    if xmax > cursor + 1e-9:
        filled.append(Interval(cursor, xmax, ""))
    return filled


def _quote(text: str) -> str:
    return '"' + text.replace('"', '""') + '"'


def format_textgrid(tiers: dict[str, list[Interval]], xmax: float) -> str:
    """The long-format text of a TextGrid; gaps in each tier become silent intervals."""
    lines = ['File type = "ooTextFile"', 'Object class = "TextGrid"', "",
             "xmin = 0 ", f"xmax = {xmax!r} ", "tiers? <exists> ", f"size = {len(tiers)} ",
             "item []: "]
    for k, (name, intervals) in enumerate(tiers.items(), start=1):
        filled = _fill_gaps(intervals, xmax)
        lines += [f"    item [{k}]:", '        class = "IntervalTier" ',
                  f"        name = {_quote(name)} ", "        xmin = 0 ",
                  f"        xmax = {xmax!r} ", f"        intervals: size = {len(filled)} "]
        for j, item in enumerate(filled, start=1):
            lines += [f"        intervals [{j}]:", f"            xmin = {item.start!r} ",
                      f"            xmax = {item.end!r} ",
                      f"            text = {_quote(item.text)} "]
    return "\n".join(lines) + "\n"


def write_textgrid(path: str | Path, tiers: dict[str, list[Interval]], xmax: float, *,
                   overwrite: bool = True) -> Path:
    """Write interval tiers as a long-format TextGrid, atomically (``overwrite=False``: an
    existing file, even one written meanwhile, is kept and is an
    :class:`~semtalk.fileio.OutputExistsError`)."""
    path = Path(path)
    write_text_atomic(path, format_textgrid(tiers, xmax), overwrite=overwrite)
    return path


def words_to_intervals(words: list[Word]) -> list[Interval]:
    """Words as the intervals of a ``words`` tier."""
    return [Interval(w.start, w.end, w.text) for w in words]
