"""Forced alignment of a transcript with pocketsphinx: the whole clip with default then widened
beams, then window by window at silences; a coverage check refuses partial transcripts.

A transcript with a few extra words at its end (up to :data:`MAX_UNALIGNED_TAIL`, words the
audio does not hold) is aligned as far as it matches; the left-out words are listed in an
:class:`~semtalk.features.alignment.errors.UnalignedWordsWarning`.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from semtalk.constants import AUDIO_SAMPLE_RATE
from semtalk.data.audio import to_mono
from semtalk.data.textgrid import Interval, Word
from semtalk.features.alignment.audio import (
    FRAME_RATE,
    decoder_pcm,
    frame_levels_db,
    speech_regions,
    where_of,
)
from semtalk.features.alignment.chunks import Chunk, at_most, cut_chunks
from semtalk.features.alignment.errors import AlignmentError, UnalignedWordsWarning
from semtalk.features.alignment.g2p import ARPABET
from semtalk.features.alignment.normalize import normalize_transcript
from semtalk.features.alignment.sphinx import (
    add_pronunciations,
    clamp,
    decode,
    make_decoder,
    segments_to_words,
)

if TYPE_CHECKING:
    from pocketsphinx import Decoder

MIN_SPEECH_COVERAGE = 0.5
"""Least fraction of the detected speech an accepted alignment's words must cover."""
MAX_COUNT_RADIUS = 4
"""Piecewise alignment tries word counts up to this far from a window's predicted count."""
MAX_WINDOW_FAILURES = 2
"""Piecewise alignment gives up after this many windows in a row failed to align."""
MAX_UNALIGNED_TAIL = 8
"""Most trailing transcript words the audio may lack (left out with a warning)."""
SQUEEZED_S_PER_PHONE = 0.04
"""A word shorter than this per phone sits at pocketsphinx's minimum (3 states x 10 ms per
phone): the decoder crammed it in rather than heard it."""


@dataclass(frozen=True)
class _Aligned:
    words: list[Word]
    phones: list[Interval]
    unaligned: tuple[str, ...] = ()
    """Trailing transcript words the audio does not hold (not aligned)."""


def _align_pcm(decoder: Decoder, pcm: np.ndarray, words: Sequence[str], offset: float,
               with_phones: bool) -> _Aligned | None:
    """Align ``words`` to int16 ``pcm`` starting ``offset`` s into the clip; None if it fails.

    Success means pocketsphinx's segmentation holds exactly ``words`` in order (a failed
    search returns nothing, or, with the lattice best path, only part of the words).
    """
    try:
        decoder.set_align_text(" ".join(words))
        decode(decoder, pcm)
    except RuntimeError:
        return None
    if decoder.hyp() is None:
        return None
    aligned = segments_to_words(decoder, offset)
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
        decode(decoder, pcm)
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
        self.chunks = at_most(cut_chunks(regions, len(pcm) / AUDIO_SAMPLE_RATE), len(words))

    def run(self, where: Path) -> _Aligned:
        words: list[Word] = []
        phones: list[Interval] = []
        chunks, position, k, failures = list(self.chunks), 0, 0, 0
        while k < len(chunks) and position < len(self.words):
            last = k == len(chunks) - 1
            window = chunks[k] if last else chunks[k].merge(chunks[k + 1])
            ends = self._last_ends(position) if last \
                else self._ends([window, *chunks[k + 2:]], position)
            aligned = self._first(window, position, ends, tail=last)
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
        left = len(self.words) - position
        if left and (k < len(chunks) or left > MAX_UNALIGNED_TAIL):
            raise AlignmentError(where, _chunk_failure(chunks[-1], position, len(self.words)))
        return _Aligned(words, phones, tuple(self.words[position:]))

    def _last_ends(self, position: int) -> list[int]:
        """Word counts for the last window: every remaining word, then fewer (a transcript
        that runs on past the audio), down to :data:`MAX_UNALIGNED_TAIL` words left out."""
        total = len(self.words)
        return list(range(total, max(position, total - MAX_UNALIGNED_TAIL - 1), -1))

    def _ends(self, chunks: list[Chunk], position: int) -> list[int]:
        """Candidate word counts for ``chunks[0]``: its share of the speech first, then +-1..."""
        total = len(self.words)
        later = len(chunks) - 1
        share = chunks[0].speech / max(sum(c.speech for c in chunks), 1e-9)
        cumulative = np.cumsum(self.weights[position:])
        expected = position + int(np.argmin(np.abs(cumulative - share * cumulative[-1]))) + 1
        radius = min(MAX_COUNT_RADIUS, max(2, round(0.3 * (expected - position))))
        low, high = max(position + 1, expected - radius), min(total - later, expected + radius)
        return sorted(range(low, high + 1), key=lambda e: (abs(e - expected), -e))

    def _first(self, window: Chunk, position: int, ends: list[int], *,
               tail: bool = False) -> _Aligned | None:
        """The alignment of the first candidate word count that aligns to the window.

        With ``tail`` (the last window, where fewer words than the transcript's rest mean
        words left out), a shortened alignment whose last word is squeezed to pocketsphinx's
        minimum duration (extra words crammed into the audio's end) is passed over.
        """
        lo, hi = round(window.start * AUDIO_SAMPLE_RATE), round(window.end * AUDIO_SAMPLE_RATE)
        for end in ends:
            aligned = _align_pcm(self.decoder, self.pcm[lo:hi], self.words[position:end],
                                 window.start, self.with_phones)
            if aligned is None or not aligned.words:
                continue
            if tail and end < len(self.words) and self._squeezed(aligned.words[-1], end - 1):
                continue
            return aligned
        return None

    def _squeezed(self, word: Word, index: int) -> bool:
        """Whether ``word`` (transcript word ``index``) lasts barely its phones' minimum."""
        return word.end - word.start < SQUEEZED_S_PER_PHONE * self.weights[index]


def _chunk_failure(chunk: Chunk, position: int, total: int) -> str:
    return (f"forced alignment failed with the default and the widened beams, and piecewise "
            f"alignment at silences failed too: words {position + 1}-{total} of the transcript do "
            f"not align to {chunk.start:.2f}-{chunk.end:.2f} s (does the transcript match the "
            f"audio?)")



def _align(audio: np.ndarray, transcript: str | Sequence[str], sample_rate: int,
           source: str | Path | None, with_phones: bool) -> _Aligned:
    where = where_of(source)
    words = normalize_transcript(transcript)
    if not words:
        raise AlignmentError(where, "the transcript has no words to align (after removing "
                                    "punctuation and symbols)")
    mono = to_mono(audio, sample_rate, where)
    duration = len(mono) / AUDIO_SAMPLE_RATE
    regions = speech_regions(mono)
    if not regions:
        level = float(frame_levels_db(mono).max())
        raise AlignmentError(where, f"no speech found in the audio ({duration:.2f} s, loudest "
                                    f"10 ms frame {level:.1f} dBFS); cannot align the "
                                    f"{len(words)} transcript words")
    pcm = decoder_pcm(mono)
    aligned = None
    for wide in (False, True):
        decoder = make_decoder(language_model=False, wide=wide, bestpath=not with_phones)
        add_pronunciations(decoder, words)
        aligned = _align_pcm(decoder, pcm, words, 0.0, with_phones)
        if aligned is not None:
            break
    if aligned is None:
        decoder = make_decoder(language_model=False, wide=True, bestpath=False)
        phones = add_pronunciations(decoder, words)
        aligned = _ChunkAligner(decoder, pcm, words, phones, regions, with_phones).run(where)
    _check_coverage(aligned.words, regions, where)
    if aligned.unaligned:
        count = len(aligned.unaligned)
        what = f"the last {count} transcript words" if count > 1 else "the last transcript word"
        warnings.warn(f"{where}: {what} did not align to the audio and "
                      f"{'are' if count > 1 else 'is'} left out: "
                      f"{' '.join(aligned.unaligned)!r} (the other {len(aligned.words)} words "
                      f"are aligned)", UnalignedWordsWarning, stacklevel=4)
    return _Aligned(clamp(aligned.words, duration), aligned.phones, aligned.unaligned)


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
    coverage = int(np.count_nonzero(speech & covered)) / max(int(np.count_nonzero(speech)), 1)
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
        One :class:`Word` per normalised transcript word, in order, silences excluded; when
        the transcript runs on past the audio by up to :data:`MAX_UNALIGNED_TAIL` words, those
        words are left out with an :class:`UnalignedWordsWarning` listing them.

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
