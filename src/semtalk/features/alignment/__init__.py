"""Word timings for speech audio: forced alignment of a transcript, or offline recognition.

Everything here runs offline on what ships in the ``pocketsphinx`` wheel (the en-us acoustic
model, the CMU dictionary and the en-us language model); nothing is downloaded.

**Forced alignment** (:func:`align_transcript`). The transcript is normalised the way the
dictionary spells words (lower case, no punctuation, numbers spelled out: "21" -> "twenty one",
"1990s" -> "nineteen nineties"). Words the dictionary lacks get a pronunciation from
:func:`g2p`: the dictionary's own pronunciation of a stem or of the parts of a compound where
there is one, otherwise English letter-to-sound rules. pocketsphinx then aligns the whole clip
as one utterance (about 60x real time). Measured problems and what this package does about them:

* float WAVs read as int16 become -1/0/1 samples and nothing aligns: float audio is clipped and
  scaled by 32767 here, and integer audio that is all -1/0/1 is refused with that diagnosis;
* digital silence (exact zeros, as in synthetic or gated audio) makes a third of alignments
  fail: such audio gets a deterministic -60 dBFS dither before decoding;
* long utterances sometimes fail with the default beams: the alignment is retried with widened
  beams (``beam=1e-80, wbeam=1e-60, pbeam=1e-80``);
* if that fails too, the audio is cut at silences (energy VAD, :func:`speech_regions`) and the
  transcript is aligned window by window (two neighbouring chunks, with the number of words
  their share of the speech predicts); only the words of a window's first chunk are kept.

A word's text is always the normalised transcript word, every transcript word appears exactly
once and in order, and silences and fillers are left out (the TextGrid writer fills the gaps).

**Recognition** (:func:`recognize`) decodes the speech chunks with pocketsphinx's language model:
a rough transcript (word error rate 33-38 % on BEAT2), for clips that come without one. With a
local faster-whisper (CTranslate2) model folder and the ``faster-whisper`` package installed,
Whisper's word timestamps are used instead. Model hub ids are refused: semtalk never downloads.

:func:`words_for_audio` is the one entry point the rest of semtalk uses.

Layout: :mod:`.normalize` (transcript normalisation, numbers spelled out), :mod:`.g2p`
(letter-to-sound rules), :mod:`.audio` (audio preparation and the energy VAD), :mod:`.chunks`
(cutting audio at pauses), :mod:`.sphinx` (the pocketsphinx decoder), :mod:`.forced` (forced
alignment), :mod:`.recognize` (pocketsphinx recognition), :mod:`.whisper` (faster-whisper
recognition), :mod:`.words` (the entry point and its ``METHOD_*`` labels) and
:mod:`.errors`.
"""

from semtalk.features.alignment.audio import speech_regions
from semtalk.features.alignment.errors import (
    AlignmentError,
    AlignmentFallbackWarning,
    UnalignedWordsWarning,
)
from semtalk.features.alignment.forced import align_transcript, align_transcript_with_phones
from semtalk.features.alignment.g2p import ARPABET, g2p
from semtalk.features.alignment.normalize import normalize_transcript, number_to_words
from semtalk.features.alignment.recognize import recognize
from semtalk.features.alignment.words import (
    METHOD_ALIGNED,
    METHOD_FALLBACK,
    METHOD_RECOGNIZED,
    METHOD_TEXTGRID,
    METHOD_WHISPER,
    words_and_phones_for_audio,
    words_for_audio,
)

__all__ = [
    "ARPABET",
    "METHOD_ALIGNED",
    "METHOD_FALLBACK",
    "METHOD_RECOGNIZED",
    "METHOD_TEXTGRID",
    "METHOD_WHISPER",
    "AlignmentError",
    "AlignmentFallbackWarning",
    "UnalignedWordsWarning",
    "align_transcript",
    "align_transcript_with_phones",
    "g2p",
    "normalize_transcript",
    "number_to_words",
    "recognize",
    "speech_regions",
    "words_and_phones_for_audio",
    "words_for_audio",
]
