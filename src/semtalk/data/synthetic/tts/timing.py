"""espeak-ng's events to word and phone spans (see the rules in the package docstring)."""

from __future__ import annotations

import itertools
import warnings
from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from semtalk.data.synthetic.tts.capi import CLAUSE_END_EVENTS, EVENT_PHONEME, EVENT_WORD, Event

_SILENCE_RUN = 22
"""Zero samples (1 ms at 22050 Hz) that count as digital silence between words."""


@dataclass(frozen=True)
class PhraseTiming:
    """Word spans and phones of one phrase, in samples from the start of its audio."""

    words: list[tuple[int, int]]
    phones: list[tuple[str, int, int]]


def _word_index(text_position: int, starts: Sequence[int]) -> int:
    """The word containing 1-based character ``text_position`` (nearest one to its left)."""
    return min(max(bisect_right(starts, text_position - 1) - 1, 0), len(starts) - 1)


def _next_later_sample(events: Sequence[Event], index: int, n_samples: int) -> int:
    """The sample of the first event after ``events[index]`` that happens later than it."""
    sample = events[index].sample
    for event in events[index + 1:]:
        if event.sample > sample:
            return min(event.sample, n_samples)
    return n_samples


def _is_phone(event: Event) -> bool:
    """A PHONEME event with an IPA name; pauses and linking glides (``;``) have none."""
    return event.kind == EVENT_PHONEME and bool(event.name)


def _phone_end(events: Sequence[Event], index: int, pcm: np.ndarray) -> int:
    """Where the phone of the PHONEME event ``events[index]`` ends.

    A phone lasts at least until the next later event. Between that event and the next phone
    (or the end of the clause) espeak may put a pause, a next word's silent lead-in, or a
    sounding linking segment ("the old", "picture is"): the phone continues through sound and
    ends where digital silence (a run of ``_SILENCE_RUN`` zero samples) starts.
    """
    start = events[index].sample
    later = [e for e in events[index + 1:] if e.sample > start]
    if not later:
        return len(pcm)
    boundary = min(later[0].sample, len(pcm))
    limit = next((e.sample for e in later if _is_phone(e) or e.kind in CLAUSE_END_EVENTS),
                 len(pcm))
    return boundary + _sounding_prefix(pcm[boundary:min(limit, len(pcm))])


def _sounding_prefix(pcm: np.ndarray) -> int:
    """Number of samples before the first run of ``_SILENCE_RUN`` zeros (all if none)."""
    if len(pcm) < _SILENCE_RUN:
        return 0 if not pcm.any() else len(pcm)
    zero = (pcm == 0).astype(np.int32)
    runs = np.convolve(zero, np.ones(_SILENCE_RUN, dtype=np.int32), mode="valid")
    silent = np.flatnonzero(runs == _SILENCE_RUN)
    return int(silent[0]) if len(silent) else len(pcm)


def _espeak_words(events: Sequence[Event], pcm: np.ndarray, starts: Sequence[int]
                  ) -> dict[int, tuple[int, int, list[tuple[str, int, int]]]]:
    """Input word index -> ``(start, end, phones)`` for every word espeak gave a WORD event."""
    current: int | None = None
    first_event: dict[int, int] = {}
    phones: dict[int, list[tuple[str, int, int]]] = {}
    for i, event in enumerate(events):
        if event.kind == EVENT_WORD:
            current = _word_index(event.text_position, starts)
            first_event.setdefault(current, i)
            phones.setdefault(current, [])
        elif _is_phone(event) and current is not None:
            end = _phone_end(events, i, pcm)
            if end > event.sample:
                phones[current].append((event.name, event.sample, end))
    units = {}
    for w, i in first_event.items():
        if phones[w]:
            units[w] = (phones[w][0][1], phones[w][-1][2], phones[w])
        else:  # no phoneme events: from the WORD event to the next event
            units[w] = (events[i].sample, _next_later_sample(events, i, len(pcm)), [])
    return units


def _split_unit(start: int, end: int, phones: Sequence[tuple[str, int, int]],
                weights: Sequence[int]) -> list[tuple[int, int]]:
    """Share one espeak word among several input words, in proportion to ``weights``."""
    total, cumulative, bounds = sum(weights), 0, []
    for weight in weights[:-1]:
        cumulative += weight
        bounds.append(cumulative / total)
    if len(phones) >= len(weights):  # cut between phones
        cuts = [min(max(round(f * len(phones)), k + 1), len(phones) - len(weights) + k + 1)
                for k, f in enumerate(bounds)]
        parts = zip([0, *cuts], [*cuts, len(phones)], strict=True)
        return [(phones[i][1], phones[j - 1][2]) for i, j in parts]
    edges = [start, *(start + round(f * (end - start)) for f in bounds), end]
    return list(itertools.pairwise(edges))


def phrase_timing(events: Sequence[Event], pcm: np.ndarray, starts: Sequence[int],
                   words: Sequence[str]) -> PhraseTiming:
    """Word and phone spans from espeak's events (see the package docstring for the rules).

    An input word without a WORD event of its own (espeak read it together with its neighbour
    as one dictionary entry; the zero-width-space separator normally prevents that) gets a
    proportional share of that neighbour's span, with a warning.
    """
    units = _espeak_words(events, pcm, starts)
    if not units:
        raise RuntimeError(f"espeak-ng reported no word events for {' '.join(words)!r}")
    owners = sorted(units)
    groups: dict[int, list[int]] = {}
    for w in range(len(words)):
        left = [o for o in owners if o <= w]
        groups.setdefault(left[-1] if left else owners[0], []).append(w)
    spans: list[tuple[int, int]] = [(0, 0)] * len(words)
    for owner, members in groups.items():
        start, end, phones = units[owner]
        if len(members) == 1:
            spans[owner] = (start, end)
            continue
        warnings.warn(f"espeak-ng spoke {[words[m] for m in members]} as one word; their "
                      "boundaries are interpolated", RuntimeWarning, stacklevel=3)
        shares = _split_unit(start, end, phones, [len(words[m]) for m in members])
        for member, span in zip(members, shares, strict=True):
            spans[member] = span
    phones = [phone for owner in owners for phone in units[owner][2]]
    return PhraseTiming(spans, phones)

