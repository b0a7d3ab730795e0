"""Recognition with a local faster-whisper (CTranslate2) model folder; hub ids are refused."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from semtalk.data.textgrid import Word
from semtalk.errors import DataError
from semtalk.features.alignment.normalize import normalize_transcript
from semtalk.features.local_models import looks_like_hub_id

_WHISPER_SIZES = frozenset(
    [
        "tiny", "tiny.en", "base", "base.en", "small", "small.en", "medium", "medium.en", "large",
        "large-v1", "large-v2", "large-v3", "large-v3-turbo", "turbo", "distil-small.en",
        "distil-medium.en", "distil-large-v2", "distil-large-v3"
    ])


def _check_whisper_model(path: Path) -> Path:
    """The folder of a local CTranslate2 Whisper model; hub ids and sizes are refused."""
    if not path.exists():
        name = str(path)
        looks_remote = name in _WHISPER_SIZES or ("/" in name and looks_like_hub_id(name))
        hint = (f"'{name}' looks like a model size or hub id; semtalk never downloads models. "
                if looks_remote else "")
        raise DataError(path, f"{hint}no such model folder: download a faster-whisper "
                              "(CTranslate2) model, e.g. Systran/faster-whisper-small, on a "
                              "machine with network access and pass its local folder")
    if not path.is_dir():
        raise DataError(path, "a faster-whisper model must be a folder (with model.bin)")
    missing = [f for f in ("model.bin", "config.json") if not (path / f).is_file()]
    if missing:
        raise DataError(path, f"not a faster-whisper (CTranslate2) model folder: missing "
                              f"{', '.join(missing)}")
    return path


def recognize_whisper(mono: np.ndarray, model_dir: Path) -> list[Word]:
    path = _check_whisper_model(model_dir)
    try:
        from faster_whisper import WhisperModel
    except ImportError as exc:
        raise DataError(path, "faster-whisper is not installed: `pip install faster-whisper`, "
                              "or recognise without a Whisper model") from exc
    model = WhisperModel(str(path), device="cpu", compute_type="int8", local_files_only=True)
    segments, _info = model.transcribe(mono, language="en", word_timestamps=True,
                                       vad_filter=False)
    words: list[Word] = []
    for segment in segments:
        for item in segment.words or []:
            words += _spread(normalize_transcript(item.word), float(item.start), float(item.end))
    return words


def _spread(tokens: Sequence[str], start: float, end: float) -> list[Word]:
    """Share one timed span equally among the words it spells ("21" -> twenty, one)."""
    step = (end - start) / max(len(tokens), 1)
    return [Word(t, start + k * step, start + (k + 1) * step) for k, t in enumerate(tokens)]
