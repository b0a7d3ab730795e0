"""Offline text-to-speech with exact word and phone timings, on the espeak-ng C library.

The synthetic speaker needs intelligible speech whose word boundaries are known exactly (they are
the ground truth of its TextGrids) and whose prosody varies from clip to clip. This module drives
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
through the library's ELF symbol table, see ``_SYNTH_STATE_SYMBOLS``) are saved, and they are
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
"""

from __future__ import annotations

import _ctypes
import contextlib
import ctypes
import itertools
import math
import os
import re
import shutil
import struct
import tempfile
import threading
import warnings
from bisect import bisect_right
from collections import OrderedDict
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["Prosody", "TimedPhone", "TimedWord", "Utterance", "synthesize"]

# --- espeak-ng C API constants (speak_lib.h, API revision 12) ---------------------------------
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INITIALIZE_PHONEME_EVENTS = 0x0001
_INITIALIZE_PHONEME_IPA = 0x0002
_INITIALIZE_DONT_EXIT = 0x8000
_CHARS_UTF8 = 1
_POS_CHARACTER = 1
_EE_OK = 0

_EVENT_LIST_TERMINATED = 0
_EVENT_WORD = 1
_EVENT_END = 5
_EVENT_MSG_TERMINATED = 6
_EVENT_PHONEME = 7
_CLAUSE_END_EVENTS = frozenset({_EVENT_END, _EVENT_MSG_TERMINATED})
_TIMELINE_EVENTS = frozenset({_EVENT_WORD, _EVENT_PHONEME, *_CLAUSE_END_EVENTS})

_PARAM_RATE = 1
_PARAM_VOLUME = 2
_PARAM_PITCH = 3
_PARAM_RANGE = 4
_PARAM_WORDGAP = 7

_MAX_ENGINES = 8
"""Voices kept loaded per process; the least recently used one is unloaded beyond this."""

_WORD_RE = re.compile(r"[A-Za-z]+(?:'[A-Za-z]+)*")
_MAX_PHRASE_BYTES = 400
"""Longer phrases are spoken in pieces. espeak breaks a clause of over ~725 bytes itself, and
with zero-width-space separators it then cuts a word in half and drops the next ones."""
_SILENCE_RUN = 22
"""Zero samples (1 ms at 22050 Hz) that count as digital silence between words."""
_WORD_SEPARATOR = "\u200b"
"""Zero-width space: separates words like a space (bit-identical audio, measured) except that
espeak no longer reads two words as one multi-word dictionary entry ("there were", "in the",
"of the"), which would give them a single WORD event."""
_INSTALL_HINT = "install it with `pip install espeakng-loader`"
_WARM_UP_TEXT = "the quick brown fox jumps over the lazy dog"
_ESPEAK_RAND_SEED = 1


class _EventId(ctypes.Union):
    _fields_ = [("number", ctypes.c_int), ("name", ctypes.c_char_p), ("string", ctypes.c_char * 8)]


class _EspeakEvent(ctypes.Structure):
    """``espeak_EVENT``: 40 bytes on LP64 (six 32-bit ints, a pointer, an 8-byte union)."""

    _fields_ = [
        ("type", ctypes.c_int),
        ("unique_identifier", ctypes.c_uint),
        ("text_position", ctypes.c_int),
        ("length", ctypes.c_int),
        ("audio_position", ctypes.c_int),
        ("sample", ctypes.c_int),
        ("user_data", ctypes.c_void_p),
        ("id", _EventId),
    ]


_SynthCallbackType = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_EspeakEvent))


# --- public data types -------------------------------------------------------------------------
@dataclass(frozen=True)
class Prosody:
    """Voice and prosody of one utterance (espeak-ng parameters, validated on construction)."""

    rate_wpm: int = 165
    """``espeakRATE``: speaking rate in words per minute, 80..450."""
    pitch: int = 50
    """``espeakPITCH``: base pitch, 0..100."""
    pitch_range: int = 50
    """``espeakRANGE``: pitch range, 0 (monotone)..100."""
    volume: int = 100
    """``espeakVOLUME``: amplitude, 0..200 (above 100 may clip)."""
    word_gap_10ms: int = 0
    """``espeakWORDGAP``: extra pause between words, in units of 10 ms."""
    voice: str = "en-us"
    """espeak-ng voice name, optionally with a variant (``"en-us+f3"``)."""

    def __post_init__(self) -> None:
        _check_range("rate_wpm", self.rate_wpm, 80, 450)
        _check_range("pitch", self.pitch, 0, 100)
        _check_range("pitch_range", self.pitch_range, 0, 100)
        _check_range("volume", self.volume, 0, 200)
        _check_range("word_gap_10ms", self.word_gap_10ms, 0, 1000)
        if not self.voice or not self.voice.isprintable() or " " in self.voice:
            raise ValueError(f"Prosody.voice must be an espeak-ng voice name, got {self.voice!r}")


@dataclass(frozen=True)
class TimedWord:
    """A word of the input and when it is spoken (seconds from the start of the audio)."""

    text: str
    start: float
    end: float


@dataclass(frozen=True)
class TimedPhone:
    """A phone (IPA, as named by espeak, stress marks included) and when it is spoken."""

    phone: str
    start: float
    end: float


@dataclass(frozen=True)
class Utterance:
    """Synthesized speech with its word and phone timings."""

    audio: np.ndarray
    """float32 mono samples in [-1, 1]."""
    sample_rate: int
    """espeak's native rate (22050 Hz)."""
    words: tuple[TimedWord, ...]
    """One entry per input word, in input order; words never overlap."""
    phones: tuple[TimedPhone, ...]
    """Phones in time order; empty if espeak reported no phoneme events."""

    @property
    def duration(self) -> float:
        """Length of the audio in seconds."""
        return len(self.audio) / self.sample_rate


def _check_range(name: str, value: int, low: int, high: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise ValueError(f"Prosody.{name} must be an int in [{low}, {high}], got {value!r}")


# --- locating and loading the library ----------------------------------------------------------
def _library_paths() -> tuple[Path, Path]:
    """The espeak-ng shared library and its data directory, from ``espeakng-loader``."""
    try:
        import espeakng_loader
    except ImportError as exc:
        raise RuntimeError(f"the espeak-ng library is missing: {_INSTALL_HINT}") from exc
    try:
        lib_path = Path(espeakng_loader.get_library_path())
        data_path = Path(espeakng_loader.get_data_path())
    except Exception as exc:  # the loader raises a bare RuntimeError for a missing data dir
        raise RuntimeError(f"espeakng-loader found no espeak-ng data ({exc}); {_INSTALL_HINT}"
                           ) from exc
    return lib_path, data_path


def _check_paths(lib_path: Path, data_path: Path) -> None:
    if not lib_path.is_file():
        raise RuntimeError(f"espeak-ng library not found at {lib_path}; {_INSTALL_HINT}")
    if not (data_path / "phontab").is_file() or not (data_path / "phondata").is_file():
        raise RuntimeError(f"espeak-ng data (phontab, phondata) not found in {data_path}; "
                           f"{_INSTALL_HINT}")


def _load_private_copy(lib_path: Path) -> tuple[int, ctypes.CDLL]:
    """dlopen a fresh copy of the library, so that its static data is ours alone."""
    tmp_dir = tempfile.mkdtemp(prefix="semtalk-espeak-")
    copy = Path(tmp_dir) / lib_path.name
    try:
        shutil.copyfile(lib_path, copy)
        handle = _ctypes.dlopen(str(copy), os.RTLD_LOCAL) if hasattr(_ctypes, "dlopen") else None
        lib = ctypes.CDLL(str(copy), handle=handle)
    except OSError as exc:
        raise RuntimeError(f"cannot load the espeak-ng library {lib_path} ({exc}); "
                           f"{_INSTALL_HINT}") from exc
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)  # the mapping outlives the file on POSIX
    return lib._handle, lib


def _unload(handle: int) -> None:
    close = getattr(_ctypes, "dlclose", None) or getattr(_ctypes, "FreeLibrary", None)
    if close is not None:
        close(handle)


def _bind(lib: ctypes.CDLL) -> None:
    """Declare the C signatures used here."""
    c_int, c_uint, c_void_p = ctypes.c_int, ctypes.c_uint, ctypes.c_void_p
    signatures = {
        "espeak_Initialize": (c_int, [c_int, c_int, ctypes.c_char_p, c_int]),
        "espeak_SetSynthCallback": (None, [_SynthCallbackType]),
        "espeak_SetVoiceByName": (c_int, [ctypes.c_char_p]),
        "espeak_SetParameter": (c_int, [c_int, c_int, c_int]),
        "espeak_Synth": (c_int, [c_void_p, ctypes.c_size_t, c_uint, c_int, c_uint, c_uint,
                                 c_void_p, c_void_p]),
        "espeak_Synchronize": (c_int, []),
        "espeak_Terminate": (c_int, []),
    }
    for name, (restype, argtypes) in signatures.items():
        func = getattr(lib, name)
        func.restype = restype
        func.argtypes = argtypes


# --- resetting the library's synthesis state --------------------------------------------------
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

_PT_LOAD = 1
_PT_GNU_RELRO = 0x6474E552
_PF_W = 0x2
_SHT_SYMTAB = 2
_STT_OBJECT = 1
_STT_FUNC = 2


@dataclass(frozen=True)
class _ElfLayout:
    """What :class:`_SynthState` needs from the library file (link-time addresses)."""

    writable: tuple[int, int]
    """``[start, end)`` of the writable, non-RELRO data (``.got.plt``, ``.data``, ``.bss``)."""
    objects: dict[str, list[tuple[int, int, bool]]]
    """Data symbol (``.NNNN`` suffix removed) -> ``(address, size, is_function_static)`` of each
    definition."""
    functions: dict[str, int]
    """Function symbol -> address."""


def _read_elf_layout(lib_path: Path) -> _ElfLayout | None:
    """Parse a 64-bit ELF shared object's program headers and ``.symtab``; None if unusable."""
    try:
        image = lib_path.read_bytes()
    except OSError:
        return None
    if len(image) < 64 or image[:4] != b"\x7fELF" or image[4] != 2:
        return None
    order = "<" if image[5] == 1 else ">"
    try:
        writable = _writable_span(image, order)
        objects, functions = _symbols(image, order)
    except struct.error:  # truncated or malformed file
        return None
    if writable is None or not objects:
        return None
    return _ElfLayout(writable, objects, functions)


def _writable_span(image: bytes, order: str) -> tuple[int, int] | None:
    """The single writable PT_LOAD segment minus its RELRO prefix (read-only after relocation)."""
    (phoff,) = struct.unpack_from(order + "Q", image, 0x20)
    phentsize, phnum = struct.unpack_from(order + "HH", image, 0x36)
    writable: list[tuple[int, int]] = []
    relro_end = 0
    for i in range(phnum):
        p_type, p_flags, _, vaddr, _, _, memsz = struct.unpack_from(
            order + "IIQQQQQ", image, phoff + i * phentsize)
        if p_type == _PT_LOAD and p_flags & _PF_W:
            writable.append((vaddr, vaddr + memsz))
        elif p_type == _PT_GNU_RELRO:
            relro_end = max(relro_end, vaddr + memsz)
    if len(writable) != 1:
        return None
    start, end = max(writable[0][0], relro_end), writable[0][1]
    return (start, end) if start < end else None


def _symbols(image: bytes, order: str
             ) -> tuple[dict[str, list[tuple[int, int, bool]]], dict[str, int]]:
    """Data objects and functions of the ``.symtab`` section (empty if the file is stripped)."""
    (shoff,) = struct.unpack_from(order + "Q", image, 0x28)
    shentsize, shnum = struct.unpack_from(order + "HH", image, 0x3A)
    sections = [struct.unpack_from(order + "IIQQQQIIQQ", image, shoff + i * shentsize)
                for i in range(shnum)]
    objects: dict[str, list[tuple[int, int, bool]]] = {}
    functions: dict[str, int] = {}
    for _, sh_type, _, _, offset, size, link, _, _, entsize in sections:
        if sh_type != _SHT_SYMTAB or entsize == 0:
            continue
        strtab_offset = sections[link][4]
        for pos in range(offset, offset + size, entsize):
            st_name, st_info, _, st_shndx, value, st_size = struct.unpack_from(
                order + "IBBHQQ", image, pos)
            if st_shndx == 0:
                continue
            end = image.index(b"\0", strtab_offset + st_name)
            name = image[strtab_offset + st_name:end].decode("ascii", "replace")
            if st_info & 0xF == _STT_OBJECT and st_size > 0:
                base, dot, suffix = name.partition(".")
                is_function_static = bool(dot) and suffix.isdigit()
                objects.setdefault(base, []).append((value, st_size, is_function_static))
            elif st_info & 0xF == _STT_FUNC:
                functions[name] = value
    return objects, functions


class _SynthState:
    """Saved values of a loaded library's synthesis-state variables, restorable in place."""

    def __init__(self, regions: Sequence[tuple[int, int]]) -> None:
        self._saved = [(address, ctypes.string_at(address, size)) for address, size in regions]

    @classmethod
    def capture(cls, lib: ctypes.CDLL, layout: _ElfLayout | None) -> _SynthState | None:
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


def _definitions(layout: _ElfLayout, pattern: str) -> list[tuple[int, int]]:
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


_libc_random = _LibcRandom()


# --- one engine per voice ----------------------------------------------------------------------
@dataclass(frozen=True)
class _Event:
    """The parts of an ``espeak_EVENT`` used for timing."""

    kind: int
    text_position: int
    sample: int
    name: str = ""


class _Capture:
    """Audio and events delivered to the callback during one ``espeak_Synth`` call."""

    def __init__(self) -> None:
        self.pcm = bytearray()
        self.events: list[_Event] = []
        self.error: BaseException | None = None

    def add(self, wav: ctypes._Pointer, numsamples: int, events: ctypes._Pointer) -> None:
        if wav and numsamples > 0:
            self.pcm += ctypes.string_at(wav, numsamples * ctypes.sizeof(ctypes.c_short))
        i = 0
        while (event := events[i]).type != _EVENT_LIST_TERMINATED:
            if event.type in _TIMELINE_EVENTS:
                name = ""
                if event.type == _EVENT_PHONEME:
                    name = event.id.string.decode("utf-8", "replace")
                self.events.append(_Event(event.type, event.text_position, event.sample, name))
            i += 1

    def samples(self) -> np.ndarray:
        return np.frombuffer(bytes(self.pcm), dtype=np.int16)


_active_capture: _Capture | None = None


def _on_synth(wav: ctypes._Pointer, numsamples: int, events: ctypes._Pointer) -> int:
    """The espeak synth callback: 0 = continue, 1 = abort. Must never raise into C."""
    capture = _active_capture
    if capture is None:
        return 1
    try:
        capture.add(wav, numsamples, events)
    except BaseException as exc:  # re-raised by the caller after espeak_Synth returns
        capture.error = exc
        return 1
    return 0


_CALLBACK = _SynthCallbackType(_on_synth)


class _Engine:
    """A private, initialised copy of libespeak-ng bound to one voice."""

    def __init__(self, lib_path: Path, data_path: Path, voice: str) -> None:
        self._lib_path, self._data_path, self.voice = lib_path, data_path, voice
        self._layout = _read_elf_layout(lib_path)
        self._handle: int | None = None
        self._state: _SynthState | None = None
        self._set_rand_seed: ctypes._CFuncPtr | None = None
        self._used = False
        self.sample_rate = 0
        self._open()

    @property
    def resets_in_place(self) -> bool:
        """True if state is reset by restoring variables, False if by reloading the library."""
        return self._state is not None

    def _open(self) -> None:
        self._handle, self._lib = _load_private_copy(self._lib_path)
        try:
            _bind(self._lib)
            self._set_rand_seed = getattr(self._lib, "espeak_ng_SetRandSeed", None)
            if self._set_rand_seed is not None:
                self._set_rand_seed.restype = None
                self._set_rand_seed.argtypes = [ctypes.c_long]
            options = _INITIALIZE_PHONEME_EVENTS | _INITIALIZE_PHONEME_IPA | _INITIALIZE_DONT_EXIT
            rate = self._lib.espeak_Initialize(
                _AUDIO_OUTPUT_SYNCHRONOUS, 0, os.fsencode(self._data_path), options)
            if rate <= 0:
                raise RuntimeError(f"espeak_Initialize failed with data path {self._data_path}; "
                                   f"{_INSTALL_HINT}")
            self._lib.espeak_SetSynthCallback(_CALLBACK)
            if self._lib.espeak_SetVoiceByName(self.voice.encode()) != _EE_OK:
                raise ValueError(f"espeak-ng has no voice {self.voice!r} "
                                 f"(data path {self._data_path})")
        except BaseException:
            self.close()
            raise
        self.sample_rate = rate
        # Some state variables only get their steady values during the first synthesis (the
        # wave generator's voice settings), so the state is saved after a warm-up sentence.
        self._run(_WARM_UP_TEXT, Prosody(voice=self.voice))
        self._state = _SynthState.capture(self._lib, self._layout)
        self._used = False

    def close(self) -> None:
        """Free espeak's memory and unload this copy of the library."""
        if self._handle is None:
            return
        self._lib.espeak_Terminate()
        _unload(self._handle)
        self._handle = None

    def _reset(self) -> None:
        """Put the synthesis state back to what it was right after the warm-up."""
        if self._state is not None:
            self._state.restore()
        elif self._used:
            self.close()
            self._open()
        self._used = True

    def synthesize(self, text: str, prosody: Prosody) -> _Capture:
        """Speak plain ``text`` from the pristine state; the caller holds the lock."""
        self._reset()
        return self._run(text, prosody)

    def _run(self, text: str, prosody: Prosody) -> _Capture:
        """One ``espeak_Synth`` call with ``prosody`` applied."""
        global _active_capture
        lib = self._lib
        if self._set_rand_seed is not None:  # espeak_Initialize seeds it from the clock
            self._set_rand_seed(_ESPEAK_RAND_SEED)
        for parameter, value in ((_PARAM_RATE, prosody.rate_wpm), (_PARAM_PITCH, prosody.pitch),
                                 (_PARAM_RANGE, prosody.pitch_range),
                                 (_PARAM_VOLUME, prosody.volume),
                                 (_PARAM_WORDGAP, prosody.word_gap_10ms)):
            lib.espeak_SetParameter(parameter, value, 0)
        encoded = text.encode("utf-8")
        capture = _Capture()
        _active_capture = capture
        try:
            with _libc_random.seeded():
                status = lib.espeak_Synth(encoded, len(encoded) + 1, 0, _POS_CHARACTER, 0,
                                          _CHARS_UTF8, None, None)
                lib.espeak_Synchronize()
        finally:
            _active_capture = None
        if capture.error is not None:
            raise capture.error
        if status != _EE_OK:
            raise RuntimeError(f"espeak_Synth failed with status {status} for {text!r}")
        return capture


_lock = threading.Lock()
_engines: OrderedDict[tuple[Path, Path, str], _Engine] = OrderedDict()


def _after_fork_in_child() -> None:
    global _lock
    _lock = threading.Lock()  # a thread of the parent may have held it at fork time


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def _engine(voice: str) -> _Engine:
    """The engine for ``voice``, created on first use; the caller holds the lock."""
    lib_path, data_path = _library_paths()
    key = (lib_path, data_path, voice)
    engine = _engines.get(key)
    if engine is None:
        _check_paths(lib_path, data_path)
        engine = _Engine(lib_path, data_path, voice)
        _engines[key] = engine
        while len(_engines) > _MAX_ENGINES:
            _engines.popitem(last=False)[1].close()
    _engines.move_to_end(key)
    return engine


# --- events -> timings -------------------------------------------------------------------------
@dataclass(frozen=True)
class _PhraseTiming:
    """Word spans and phones of one phrase, in samples from the start of its audio."""

    words: list[tuple[int, int]]
    phones: list[tuple[str, int, int]]


def _word_index(text_position: int, starts: Sequence[int]) -> int:
    """The word containing 1-based character ``text_position`` (nearest one to its left)."""
    return min(max(bisect_right(starts, text_position - 1) - 1, 0), len(starts) - 1)


def _next_later_sample(events: Sequence[_Event], index: int, n_samples: int) -> int:
    """The sample of the first event after ``events[index]`` that happens later than it."""
    sample = events[index].sample
    for event in events[index + 1:]:
        if event.sample > sample:
            return min(event.sample, n_samples)
    return n_samples


def _is_phone(event: _Event) -> bool:
    """A PHONEME event with an IPA name; pauses and linking glides (``;``) have none."""
    return event.kind == _EVENT_PHONEME and bool(event.name)


def _phone_end(events: Sequence[_Event], index: int, pcm: np.ndarray) -> int:
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
    limit = next((e.sample for e in later if _is_phone(e) or e.kind in _CLAUSE_END_EVENTS),
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


def _espeak_words(events: Sequence[_Event], pcm: np.ndarray, starts: Sequence[int]
                  ) -> dict[int, tuple[int, int, list[tuple[str, int, int]]]]:
    """Input word index -> ``(start, end, phones)`` for every word espeak gave a WORD event."""
    current: int | None = None
    first_event: dict[int, int] = {}
    phones: dict[int, list[tuple[str, int, int]]] = {}
    for i, event in enumerate(events):
        if event.kind == _EVENT_WORD:
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


def _phrase_timing(events: Sequence[_Event], pcm: np.ndarray, starts: Sequence[int],
                   words: Sequence[str]) -> _PhraseTiming:
    """Word and phone spans from espeak's events (see the module docstring for the rules).

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
    return _PhraseTiming(spans, phones)


# --- input checks and assembly -----------------------------------------------------------------
def _check_words(words: Sequence[str]) -> list[str]:
    if isinstance(words, str):
        raise TypeError("words must be a sequence of words, not a string")
    tokens = list(words)
    if not tokens:
        raise ValueError("synthesize() needs at least one word")
    for i, word in enumerate(tokens):
        if not isinstance(word, str) or not _WORD_RE.fullmatch(word):
            raise ValueError(f"word {i} must be letters (with inner apostrophes), got {word!r}")
    return tokens


def _check_pauses(pause_after: Mapping[int, float] | None, n_words: int) -> dict[int, float]:
    pauses: dict[int, float] = {}
    for index, seconds in (pause_after or {}).items():
        if not 0 <= index < n_words:
            raise ValueError(f"pause_after index {index} is outside 0..{n_words - 1}")
        if not math.isfinite(seconds) or seconds < 0:
            raise ValueError(f"pause_after[{index}] must be >= 0 seconds, got {seconds!r}")
        pauses[int(index)] = float(seconds)
    return pauses


def _phrases(tokens: Sequence[str], pauses: Mapping[int, float]) -> list[tuple[int, int]]:
    """``[start, stop)`` word ranges: split after each paused word, and before a phrase would
    exceed ``_MAX_PHRASE_BYTES`` of text."""
    ranges: list[tuple[int, int]] = []
    start = size = 0
    for i, word in enumerate(tokens):
        cost = len(word) + len(_WORD_SEPARATOR.encode("utf-8"))
        if i > start and size + cost > _MAX_PHRASE_BYTES:
            ranges.append((start, i))
            start, size = i, 0
        size += cost
        if i in pauses or i == len(tokens) - 1:
            ranges.append((start, i + 1))
            start, size = i + 1, 0
    return ranges


def _phrase_text(words: Sequence[str]) -> tuple[str, list[int]]:
    """The text given to espeak and the 0-based character offset of each word in it."""
    starts, offset = [], 0
    for word in words:
        starts.append(offset)
        offset += len(word) + len(_WORD_SEPARATOR)
    return _WORD_SEPARATOR.join(words), starts


def synthesize(words: Sequence[str], prosody: Prosody = Prosody(), *,
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
    tokens = _check_words(words)
    pauses = _check_pauses(pause_after, len(tokens))
    phrases = _phrases(tokens, pauses)
    joins = {stop - 1: pauses.get(stop - 1, 0.0) for _, stop in phrases[:-1]}
    with _lock:
        engine = _engine(prosody.voice)
        pieces = []
        for start, stop in phrases:
            text, starts = _phrase_text(tokens[start:stop])
            capture = engine.synthesize(text, prosody)
            pcm = capture.samples()
            timing = _phrase_timing(capture.events, pcm, starts, tokens[start:stop])
            pieces.append((pcm, timing))
        rate = engine.sample_rate
    return _assemble(tokens, pieces, joins, pauses.get(len(tokens) - 1), rate)


def _assemble(tokens: Sequence[str], pieces: Sequence[tuple[np.ndarray, _PhraseTiming]],
              joins: Mapping[int, float], final_pause: float | None, rate: int) -> Utterance:
    """Join phrase audio with exact pauses and shift every timing into the joined audio.

    ``joins`` maps the last word of every phrase but the final one to the pause after it (0
    where a long phrase was split); ``final_pause`` is the silence after the last word.
    """
    chunks: list[np.ndarray] = []
    words: list[TimedWord] = []
    phones: list[TimedPhone] = []
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
        words += [TimedWord(tokens[first + k], (offset + s) / rate, (offset + e) / rate)
                  for k, (s, e) in enumerate(timing.words)]
        phones += [TimedPhone(name, (offset + s) / rate, (offset + e) / rate)
                   for name, s, e in timing.phones]
        offset += len(pcm)
    if final_pause is not None:
        chunks.append(np.zeros(round(final_pause * rate), dtype=np.int16))
    audio = np.concatenate(chunks).astype(np.float32) / np.float32(32768.0)
    return Utterance(audio, rate, tuple(words), tuple(phones))
