"""Speaking a list of words: phrase by phrase, joined with exact pauses."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from semtalk.data.synthetic.tts.engine import engine_for
from semtalk.data.synthetic.tts.phrases import check_pauses, check_words, phrase_text, phrases
from semtalk.data.synthetic.tts.prosody import Prosody
from semtalk.data.synthetic.tts.timing import PhraseTiming, phrase_timing
from semtalk.data.synthetic.tts.utterance import Utterance
from semtalk.data.textgrid import Interval, Word

_DEFAULT_PROSODY = Prosody()


def synthesize(words: Sequence[str], prosody: Prosody = _DEFAULT_PROSODY, *,
               pause_after: Mapping[int, float] | None = None) -> Utterance:
    """Speak ``words`` with espeak-ng and return the audio with exact word and phone timings.

    Args:
        words: the words to say, e.g. ``["so", "i", "never", "said", "that"]``; each must be
            letters, optionally with inner apostrophes (``"don't"``).
        prosody: voice, rate, pitch, pitch range, volume and word gap.
        pause_after: word index -> seconds of silence between the end of that word and the
            start of the next (a phrase boundary); after the last word, trailing silence.

    Returns:
        The utterance; ``words[i].text == words[i]`` for every input word. The same inputs
        give bit-identical audio in any process and after any earlier call.

    Raises:
        ValueError: empty or malformed ``words``, bad ``pause_after``, unknown voice.
        RuntimeError: the espeak-ng library or its data cannot be loaded.
    """
    tokens = check_words(words)
    pauses = check_pauses(pause_after, len(tokens))
    ranges = phrases(tokens, pauses)
    joins = {stop - 1: pauses.get(stop - 1, 0.0) for _, stop in ranges[:-1]}
    with engine_for(prosody.voice) as engine:
        pieces = []
        for start, stop in ranges:
            text, starts = phrase_text(tokens[start:stop])
            capture = engine.synthesize(text, prosody)
            pcm = capture.samples()
            timing = phrase_timing(capture.events, pcm, starts, tokens[start:stop])
            pieces.append((pcm, timing))
        rate = engine.sample_rate
    return _assemble(tokens, pieces, joins, pauses.get(len(tokens) - 1), rate)


def _assemble(tokens: Sequence[str], pieces: Sequence[tuple[np.ndarray, PhraseTiming]],
              joins: Mapping[int, float], final_pause: float | None, rate: int) -> Utterance:
    """Join phrase audio with exact pauses and shift every timing into the joined audio.

    ``joins`` maps the last word of every phrase but the final one to the pause after it (0
    where a long phrase was split); ``final_pause`` is the silence after the last word.
    """
    chunks: list[np.ndarray] = []
    words: list[Word] = []
    phones: list[Interval] = []
    offset = 0
    for pcm, timing in pieces:
        first = len(words)
        if first > 0:  # silence so that the gap after the previous word is exactly its pause
            lead_in = timing.words[0][0]
            silence = max(round(joins[first - 1] * rate) - lead_in, 0)
            chunks.append(np.zeros(silence, dtype=np.int16))
            offset += silence
        last = first + len(timing.words) - 1
        if last in joins or final_pause is not None:  # cut espeak's trailing silence
            pcm = pcm[:timing.words[-1][1]]
        chunks.append(pcm)
        words += [Word(tokens[first + k], (offset + s) / rate, (offset + e) / rate)
                  for k, (s, e) in enumerate(timing.words)]
        phones += [Interval((offset + s) / rate, (offset + e) / rate, name)
                   for name, s, e in timing.phones]
        offset += len(pcm)
    if final_pause is not None:
        chunks.append(np.zeros(round(final_pause * rate), dtype=np.int16))
    audio = np.concatenate(chunks).astype(np.float32) / np.float32(32768.0)
    return Utterance(audio, rate, tuple(words), tuple(phones))
