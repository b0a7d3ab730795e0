"""One private, initialised copy of libespeak-ng per voice, and the per-process registry of them."""

from __future__ import annotations

import contextlib
import ctypes
import os
import threading
from collections import OrderedDict
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from semtalk.data.synthetic.tts.capi import (
    AUDIO_OUTPUT_SYNCHRONOUS,
    CHARS_UTF8,
    EE_OK,
    EVENT_LIST_TERMINATED,
    EVENT_PHONEME,
    INITIALIZE_DONT_EXIT,
    INITIALIZE_PHONEME_EVENTS,
    INITIALIZE_PHONEME_IPA,
    PARAM_PITCH,
    PARAM_RANGE,
    PARAM_RATE,
    PARAM_VOLUME,
    PARAM_WORDGAP,
    POS_CHARACTER,
    TIMELINE_EVENTS,
    Event,
    SynthCallbackType,
    bind,
)
from semtalk.data.synthetic.tts.elf import read_elf_layout
from semtalk.data.synthetic.tts.library import (
    INSTALL_HINT,
    check_paths,
    library_paths,
    load_private_copy,
    unload,
)
from semtalk.data.synthetic.tts.prosody import Prosody
from semtalk.data.synthetic.tts.state import SynthState, libc_random

if TYPE_CHECKING:
    from _ctypes import CFuncPtr  # the class ctypes re-exports privately as ctypes._CFuncPtr

_MAX_ENGINES = 8
"""Voices kept loaded per process; the least recently used one is unloaded beyond this."""
_WARM_UP_TEXT = "the quick brown fox jumps over the lazy dog"
_ESPEAK_RAND_SEED = 1


class Capture:
    """Audio and events delivered to the callback during one ``espeak_Synth`` call."""

    def __init__(self) -> None:
        self.pcm = bytearray()
        self.events: list[Event] = []
        self.error: BaseException | None = None

    def add(self, wav: ctypes._Pointer, numsamples: int, events: ctypes._Pointer) -> None:
        if wav and numsamples > 0:
            self.pcm += ctypes.string_at(wav, numsamples * ctypes.sizeof(ctypes.c_short))
        i = 0
        while (event := events[i]).type != EVENT_LIST_TERMINATED:
            if event.type in TIMELINE_EVENTS:
                name = ""
                if event.type == EVENT_PHONEME:
                    name = event.id.string.decode("utf-8", "replace")
                self.events.append(Event(event.type, event.text_position, event.sample, name))
            i += 1

    def samples(self) -> np.ndarray:
        return np.frombuffer(bytes(self.pcm), dtype=np.int16)


_active_capture: Capture | None = None


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


_CALLBACK = SynthCallbackType(_on_synth)


class Engine:
    """A private, initialised copy of libespeak-ng bound to one voice."""

    def __init__(self, lib_path: Path, data_path: Path, voice: str) -> None:
        self._lib_path, self._data_path, self.voice = lib_path, data_path, voice
        self._layout = read_elf_layout(lib_path)
        self._handle: int | None = None
        self._state: SynthState | None = None
        self._set_rand_seed: CFuncPtr | None = None
        self._used = False
        self.sample_rate = 0
        self._open()

    @property
    def resets_in_place(self) -> bool:
        """True if state is reset by restoring variables, False if by reloading the library."""
        return self._state is not None

    def _open(self) -> None:
        self._handle, self._lib = load_private_copy(self._lib_path)
        try:
            bind(self._lib)
            self._set_rand_seed = getattr(self._lib, "espeak_ng_SetRandSeed", None)
            if self._set_rand_seed is not None:
                self._set_rand_seed.restype = None
                self._set_rand_seed.argtypes = [ctypes.c_long]
            options = INITIALIZE_PHONEME_EVENTS | INITIALIZE_PHONEME_IPA | INITIALIZE_DONT_EXIT
            rate = self._lib.espeak_Initialize(
                AUDIO_OUTPUT_SYNCHRONOUS, 0, os.fsencode(self._data_path), options)
            if rate <= 0:
                raise RuntimeError(f"espeak_Initialize failed with data path {self._data_path}; "
                                   f"{INSTALL_HINT}")
            self._lib.espeak_SetSynthCallback(_CALLBACK)
            if self._lib.espeak_SetVoiceByName(self.voice.encode()) != EE_OK:
                raise ValueError(f"espeak-ng has no voice {self.voice!r} "
                                 f"(data path {self._data_path})")
        except BaseException:
            self.close()
            raise
        self.sample_rate = rate
        # Some state variables only get their steady values during the first synthesis (the
        # wave generator's voice settings), so the state is saved after a warm-up sentence.
        self._run(_WARM_UP_TEXT, Prosody(voice=self.voice))
        self._state = SynthState.capture(self._lib, self._layout)
        self._used = False

    def close(self) -> None:
        """Free espeak's memory and unload this copy of the library."""
        if self._handle is None:
            return
        self._lib.espeak_Terminate()
        unload(self._handle)
        self._handle = None

    def _reset(self) -> None:
        """Put the synthesis state back to what it was right after the warm-up."""
        if self._state is not None:
            self._state.restore()
        elif self._used:
            self.close()
            self._open()
        self._used = True

    def synthesize(self, text: str, prosody: Prosody) -> Capture:
        """Speak plain ``text`` from the pristine state; the caller holds the lock."""
        self._reset()
        return self._run(text, prosody)

    def _run(self, text: str, prosody: Prosody) -> Capture:
        """One ``espeak_Synth`` call with ``prosody`` applied."""
        global _active_capture
        lib = self._lib
        if self._set_rand_seed is not None:  # espeak_Initialize seeds it from the clock
            self._set_rand_seed(_ESPEAK_RAND_SEED)
        for parameter, value in ((PARAM_RATE, prosody.rate_wpm), (PARAM_PITCH, prosody.pitch),
                                 (PARAM_RANGE, prosody.pitch_range),
                                 (PARAM_VOLUME, prosody.volume),
                                 (PARAM_WORDGAP, prosody.word_gap_10ms)):
            lib.espeak_SetParameter(parameter, value, 0)
        encoded = text.encode("utf-8")
        capture = Capture()
        _active_capture = capture
        try:
            with libc_random.seeded():
                status = lib.espeak_Synth(encoded, len(encoded) + 1, 0, POS_CHARACTER, 0,
                                          CHARS_UTF8, None, None)
                lib.espeak_Synchronize()
        finally:
            _active_capture = None
        if capture.error is not None:
            raise capture.error
        if status != EE_OK:
            raise RuntimeError(f"espeak_Synth failed with status {status} for {text!r}")
        return capture


_lock = threading.Lock()
_engines: OrderedDict[tuple[Path, Path, str], Engine] = OrderedDict()


def _after_fork_in_child() -> None:
    global _lock
    _lock = threading.Lock()  # a thread of the parent may have held it at fork time


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def _engine(voice: str) -> Engine:
    """The engine for ``voice``, created on first use; the caller holds the lock."""
    lib_path, data_path = library_paths()
    key = (lib_path, data_path, voice)
    engine = _engines.get(key)
    if engine is None:
        check_paths(lib_path, data_path)
        engine = Engine(lib_path, data_path, voice)
        _engines[key] = engine
        while len(_engines) > _MAX_ENGINES:
            _engines.popitem(last=False)[1].close()
    _engines.move_to_end(key)
    return engine



@contextlib.contextmanager
def engine_for(voice: str) -> Iterator[Engine]:
    """The engine for ``voice`` (created on first use), with the process's synthesis lock held."""
    with _lock:
        yield _engine(voice)
