"""Saving and restoring espeak-ng's synthesis state (its static variables) and libc's ``rand()``
state, so that every synthesis starts from the same point."""

from __future__ import annotations

import contextlib
import ctypes
from collections.abc import Iterator, Sequence

from semtalk.data.synthetic.tts.elf import ElfLayout

_SYNTH_STATE_SYMBOLS = (
    # wavegen.c: the pitch-flutter phase and the glottal-cycle counter (without these two, the
    # same text synthesized twice differs), waveform phase and cycle, harmonic-spectrum double
    # buffer, formant peaks, amplitude envelope, echo buffer.
    "Flutter_ix.*", "cycle_count.*", "amplitude2.*", "maxh.*", "maxh2.*", "wave_flag.*",
    "h_switch_sign.*", "n_samples.*", "echo_complete.*", "hswitch", "wavephase", "phaseinc",
    "cycle_samples", "cbytes", "hf_factor", "nsamples", "samplecount", "samplecount_start",
    "end_wave", "glottal_flag", "glottal_reduce", "modulation_type", "voicing", "consonant_amp",
    "general_amplitude", "amp_ix", "amp_inc", "harm_inc", "hspect", "peaks", "peak_harmonic",
    "peak_height", "rbreath", "echo_buf", "echo_head", "echo_tail", "echo_amp",
    # synthesize.c / intonation.c / readclause.c: length, pitch and syllable bookkeeping across
    # clauses, and the parameter values the previous call left "current".
    "seq_len_adjust", "pitch_length", "amp_length", "modn_flags", "syllable_start",
    "syllable_end", "last_primary", "tone_posn", "tone_posn2", "speech_parameters",
    # klatt.c (Klatt voice variants) and common.c (espeak's own random generator).
    "kt_globals", "kt_frame", "klattp", "klattp1", "klattp_inc", "sample_count", "nlast.*",
    "noise.*", "prev_fr.*", "time_count.*", "vlast.*", "voice.*", "espeak_rand_state",
)
"""Static variables that carry synthesis state from one ``espeak_Synth`` call to the next.

Numbers only: restoring them can never leave a dangling pointer. Pointer-holding globals
(``speechPlayerHandle``, re-allocated on every call; ``translator``; the command queue, whose
entries own heap copies of voices) are deliberately absent. ``name.*`` is a function static
(``Flutter_ix.5965``); a plain name is a global or file static, restored wherever it is defined
(``nsamples`` and ``end_wave`` exist in two files). The list was checked by comparing, over
random calls, voices and prosodies, the output after a restore with that of a freshly loaded
library: identical.
"""
_REQUIRED_STATE_SYMBOLS = ("Flutter_ix.*", "cycle_count.*")
"""Without these, resetting in place is not possible (the library is reloaded instead)."""


class SynthState:
    """Saved values of a loaded library's synthesis-state variables, restorable in place."""

    def __init__(self, regions: Sequence[tuple[int, int]]) -> None:
        self._saved = [(address, ctypes.string_at(address, size)) for address, size in regions]

    @classmethod
    def capture(cls, lib: ctypes.CDLL, layout: ElfLayout | None) -> SynthState | None:
        """Save the state variables of ``lib``; None where they cannot be located safely."""
        if layout is None or "espeak_Synth" not in layout.functions:
            return None
        if any(len(_definitions(layout, name)) != 1 for name in _REQUIRED_STATE_SYMBOLS):
            return None
        function = ctypes.cast(lib.espeak_Synth, ctypes.c_void_p).value
        if not function:
            return None
        load_bias = function - layout.functions["espeak_Synth"]
        start, end = layout.writable
        regions = [(load_bias + value, size) for pattern in _SYNTH_STATE_SYMBOLS
                   for value, size in _definitions(layout, pattern)]
        # Never touch anything outside the library's writable data segment.
        if not all(start <= address - load_bias and address - load_bias + size <= end
                   for address, size in regions):
            return None
        return cls(regions)

    def restore(self) -> None:
        for address, data in self._saved:
            ctypes.memmove(address, data, len(data))


def _definitions(layout: ElfLayout, pattern: str) -> list[tuple[int, int]]:
    """``(address, size)`` of the data symbols named ``pattern``; ``"name.*"`` matches only
    function statics called ``name`` (not a global of the same name)."""
    base, _, star = pattern.partition(".")
    return [(value, size) for value, size, is_function_static in layout.objects.get(base, [])
            if is_function_static or star != "*"]


class _LibcRandom:
    """A fixed-seed, private state for libc ``rand()``, which espeak's noise sources call.

    glibc's ``rand()`` draws from the state installed by ``initstate``/``setstate``: each call
    gets a freshly seeded buffer of its own, and the caller's state is put back afterwards, so
    the rest of the process sees no change. Without ``initstate`` (non-glibc), ``srand`` is used.
    """

    _SEED = 1
    _STATE_BYTES = 256

    def __init__(self) -> None:
        self._buffer = ctypes.create_string_buffer(self._STATE_BYTES)
        try:
            libc = ctypes.CDLL(None)
        except (OSError, TypeError):
            libc = None
        self._initstate = getattr(libc, "initstate", None)
        self._setstate = getattr(libc, "setstate", None)
        self._srand = getattr(libc, "srand", None)
        for function in (self._initstate, self._setstate):
            if function is not None:
                function.restype = ctypes.c_void_p
        if self._initstate is not None:
            self._initstate.argtypes = [ctypes.c_uint, ctypes.c_char_p, ctypes.c_size_t]
        if self._setstate is not None:
            self._setstate.argtypes = [ctypes.c_void_p]

    @contextlib.contextmanager
    def seeded(self) -> Iterator[None]:
        if self._initstate is None or self._setstate is None:
            if self._srand is not None:
                self._srand(self._SEED)
            yield
            return
        previous = self._initstate(self._SEED, self._buffer, self._STATE_BYTES)
        try:
            yield
        finally:
            self._setstate(previous)


libc_random = _LibcRandom()
