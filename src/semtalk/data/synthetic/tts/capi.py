"""The espeak-ng C API as :mod:`ctypes` sees it: constants, ``espeak_EVENT``, signatures."""

from __future__ import annotations

import ctypes
from dataclasses import dataclass

# --- espeak-ng C API constants (speak_lib.h, API revision 12) ---------------------------------
AUDIO_OUTPUT_SYNCHRONOUS = 2
INITIALIZE_PHONEME_EVENTS = 0x0001
INITIALIZE_PHONEME_IPA = 0x0002
INITIALIZE_DONT_EXIT = 0x8000
CHARS_UTF8 = 1
POS_CHARACTER = 1
EE_OK = 0

EVENT_LIST_TERMINATED = 0
EVENT_WORD = 1
EVENT_END = 5
EVENT_MSG_TERMINATED = 6
EVENT_PHONEME = 7
CLAUSE_END_EVENTS = frozenset({EVENT_END, EVENT_MSG_TERMINATED})
TIMELINE_EVENTS = frozenset({EVENT_WORD, EVENT_PHONEME, *CLAUSE_END_EVENTS})

PARAM_RATE = 1
PARAM_VOLUME = 2
PARAM_PITCH = 3
PARAM_RANGE = 4
PARAM_WORDGAP = 7


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


SynthCallbackType = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_EspeakEvent))



@dataclass(frozen=True)
class Event:
    """The parts of an ``espeak_EVENT`` used for timing."""

    kind: int
    text_position: int
    sample: int
    name: str = ""



def bind(lib: ctypes.CDLL) -> None:
    """Declare the C signatures used here."""
    c_int, c_uint, c_void_p = ctypes.c_int, ctypes.c_uint, ctypes.c_void_p
    signatures = {
        "espeak_Initialize": (c_int, [c_int, c_int, ctypes.c_char_p, c_int]),
        "espeak_SetSynthCallback": (None, [SynthCallbackType]),
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

