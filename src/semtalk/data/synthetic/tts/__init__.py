"""Offline text-to-speech with exact word and phone timings, on the espeak-ng C library.

The synthetic speaker needs intelligible speech whose word boundaries are known exactly (they are
the ground truth of its TextGrids) and whose prosody varies from clip to clip. This package drives
``libespeak-ng`` from the ``espeakng-loader`` wheel through :mod:`ctypes`; nothing comes from
apt and no ``espeak`` binary is run.

Design
------
**Synthesis.** The library runs in ``AUDIO_OUTPUT_SYNCHRONOUS`` mode: ``espeak_Synth`` returns
once every audio buffer and event list has been handed to our callback, on the calling thread.
Phoneme events are switched on and named in IPA.

**Timings come from espeak's own events.** Every ``espeak_EVENT`` carries ``sample``: the index
of the output sample at which it happens, counted from the start of the ``espeak_Synth`` call
(``audio_position`` is the same in truncated milliseconds and is not used). A phone starts at
its PHONEME event and lasts at least until the next later event; a word spans its first to its
last phone. Between a phone and the next one espeak may place a pause phoneme, the next word's
lead-in (from its WORD event to its first phone) or a linking glide; all three have no IPA name.
Such a stretch is silence between words when it is digital silence (the default voices write
exact zeros there) and a continuation of the phone before it when it sounds ("the old",
"picture is"). Silence between words is therefore never inside a word, and linked words touch.

WORD events are mapped to input words through ``text_position``, a 1-based *character* (not
byte) offset into the text given to ``espeak_Synth``. That text is plain words, no SSML, so no
markup shifts the offsets. Words are joined by a zero-width space instead of a space: the audio
is bit-identical, except that espeak no longer reads pairs such as "there were" or "in the" as
one multi-word dictionary entry with a single WORD event (which would leave one of the two words
without a timing of its own).

**Pauses.** The words are cut into phrases after each index in ``pause_after``. Each phrase is
its own ``espeak_Synth`` call (so it ends with phrase-final lengthening and intonation), its
trailing silence is cut at the end of its last word, and digital silence is inserted so that the
gap from the end of word ``i`` to the start of word ``i + 1`` is exactly ``pause_after[i]``
seconds (or espeak's lead-in before the next word, about 12 ms, where that is longer). A pause
after the last word becomes trailing silence of exactly that length. A phrase of more than
about 50 words is also spoken in pieces, joined without a pause (espeak splits such a long
clause itself, and mangles it when the words are joined by zero-width spaces).

**Determinism.** espeak keeps synthesis state in static variables that no API call resets: the
pitch-flutter phase and the glottal-cycle counter of the wave generator (function statics), the
echo buffer, the Klatt generator's filters, and more. The same text synthesized twice therefore
gives different samples, depending on everything synthesized before. Each voice gets a private copy
of the shared library (its own static data, isolated from any other espeak user in the
process); after initialisation and one warm-up sentence, the synthesis-state variables (located
through the library's ELF symbol table, see :mod:`.state`) are saved, and they are
restored before every ``espeak_Synth``. espeak's own random generator (seeded from the clock
at initialisation) and libc's ``rand()`` (Klatt and breathy voices) are given a fixed seed per
call too. The output then depends only on the inputs: it is bit-identical to that of a freshly
loaded library, in any process and after any earlier call. Where the symbols cannot be found (a
stripped or non-ELF build) the private copy is reloaded before every call instead: equally
deterministic, but a few milliseconds slower and a few KB of espeak memory leaked per call.

**Voices.** The timing rules were validated on the default voices (``en-us``, ``en``) and on
the ``+m1``, ``+m3``, ``+m4``, ``+m6``, ``+f1`` variants, whose silences are exact zeros. Klatt
variants (``+klatt*``) place the audio up to ~50 ms away from the events, and echo variants
(``+m2``, ``+f2``..``+f5``) fill the gaps between words with reverberation, which then counts as
part of the word before.

**Processes and threads.** Engines are created lazily, once per voice and process, in a module
registry guarded by a lock (synthesis is serialised within a process); prosody parameters are
set on every call. Forked children inherit the engines (the lock is re-created after a fork) and
spawned children build their own.

Layout
------
:mod:`.prosody` and :mod:`.utterance` hold the public data types, :mod:`.capi` the C API
(constants, structures, signatures), :mod:`.library` finding and loading a private copy of the
library, :mod:`.elf` reading its symbol table, :mod:`.state` saving and restoring its synthesis
state, :mod:`.engine` one loaded voice and the per-process registry, :mod:`.timing` events to
word and phone spans, :mod:`.phrases` input checks and phrase cutting, and :mod:`.speak`
:func:`synthesize` itself (phrase by phrase, joined with exact pauses).
"""

from semtalk.data.synthetic.tts.prosody import Prosody
from semtalk.data.synthetic.tts.speak import synthesize
from semtalk.data.synthetic.tts.utterance import Utterance

__all__ = ["Prosody", "Utterance", "synthesize"]
