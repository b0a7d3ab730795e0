"""Audio loading: any rate, channel count and sample format in, mono float32 at 16 kHz out."""

from __future__ import annotations

import struct
import warnings
from math import gcd
from pathlib import Path

import numpy as np
import soundfile as sf
from scipy.signal import resample_poly

from semtalk.constants import AUDIO_SAMPLE_RATE, MOTION_FPS
from semtalk.errors import DataError, require_file
from semtalk.fileio import atomic_path

MAX_CHANNELS = 8
"""A 2-D array with at most this many rows and more columns is read as ``[channels, N]``."""


def num_frames_for(num_samples: int, sample_rate: int = AUDIO_SAMPLE_RATE,
                   fps: int = MOTION_FPS) -> int:
    """Whole motion frames that ``num_samples`` of audio cover.

    A frame is 533.33 samples at 16 kHz, so audio cut at ``round(n * 16000 / 30)`` samples may
    be half a sample short of ``n`` frames; that half sample is tolerated.
    """
    return int(np.floor((num_samples + 0.5) * fps / sample_rate))


def samples_for(num_frames: int, sample_rate: int = AUDIO_SAMPLE_RATE,
                fps: int = MOTION_FPS) -> int:
    """Samples of audio that ``num_frames`` motion frames last: where a clip cut to
    ``num_frames`` ends its audio (:func:`num_frames_for` gives the frames back)."""
    return round(num_frames * sample_rate / fps)


def resample(audio: np.ndarray, source_rate: int, target_rate: int) -> np.ndarray:
    """Band-limited resampling of ``[N]`` or ``[N, C]`` audio by an exact rational factor.

    The output has ``ceil(N * target_rate / source_rate)`` samples, so durations are preserved.
    """
    if source_rate == target_rate:
        return audio
    if source_rate <= 0 or target_rate <= 0:
        raise ValueError(f"sample rates must be positive, got {source_rate} -> {target_rate}")
    g = gcd(source_rate, target_rate)
    out = resample_poly(audio, target_rate // g, source_rate // g, axis=0)
    return out.astype(np.float32, copy=False)


def _integer_to_float(samples: np.ndarray, where: Path) -> np.ndarray:
    if np.issubdtype(samples.dtype, np.unsignedinteger):
        raise DataError(where, f"unsigned {samples.dtype} samples are not supported; decode the "
                               "file with semtalk's load_audio")
    peak = int(np.abs(samples.astype(np.int64)).max())
    if peak == 1:
        raise DataError(where, "integer samples are all -1, 0 or 1: this looks like a float WAV "
                               "read as int16; read it as float32 instead (semtalk's load_audio)")
    return samples.astype(np.float32) / np.float32(np.iinfo(samples.dtype).max)


def to_mono(audio: np.ndarray, sample_rate: int, where: str | Path | None = None,
            target_rate: int = AUDIO_SAMPLE_RATE) -> np.ndarray:
    """Samples ``[N]`` or ``[N, channels]`` at ``sample_rate`` -> mono float32 in [-1, 1] at
    ``target_rate`` (16 kHz): the one conversion every audio input goes through.

    Integer samples are scaled by their type's full range; several channels are averaged; other
    rates are resampled (:func:`resample`). Channels-first audio ``[channels, N]`` (as torchaudio
    and librosa give it) is recognised and transposed: a 2-D array whose first axis has at most
    :data:`MAX_CHANNELS` entries and whose second axis is longer.

    Raises:
        DataError: (naming ``where``, ``<audio>`` when None) a wrong shape, zero samples, a
            rate that is not a positive integer (a string such as ``"16000"`` included),
            NaN/Inf, unsigned or float-read-as-integer samples, or float samples far outside
            [-1, 1] (peak above 2).
    """
    where = Path(where) if where is not None else Path("<audio>")
    samples = np.asarray(audio)
    if samples.ndim not in (1, 2):
        raise DataError(where, f"audio must be [N] or [N, channels], got shape {samples.shape}")
    if samples.size == 0:
        raise DataError(where, "audio has zero samples")
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, (int, float, np.integer,
                                                                     np.floating)):
        raise DataError(where, f"sample rate must be an int, got {type(sample_rate).__name__} "
                               f"{sample_rate!r}")
    if not np.isfinite(sample_rate) or int(sample_rate) != sample_rate or sample_rate <= 0:
        raise DataError(where, f"sample rate must be a positive integer, got {sample_rate}")
    if samples.ndim == 2 and samples.shape[0] <= MAX_CHANNELS < samples.shape[1]:
        samples = samples.T  # [channels, N] -> [N, channels]
    if np.issubdtype(samples.dtype, np.integer):
        samples = _integer_to_float(samples, where)
    elif not np.issubdtype(samples.dtype, np.floating):
        raise DataError(where, f"audio samples must be float or integer, got {samples.dtype}")
    samples = samples.astype(np.float32, copy=False)
    if not np.isfinite(samples).all():
        raise DataError(where, "audio contains NaN or Inf samples")
    peak = float(np.abs(samples).max())
    if peak > 2.0:
        raise DataError(where, f"float audio must lie in [-1, 1] but peaks at {peak:.3g}; pass "
                               "integer samples with their integer dtype, or scale them")
    mono = samples.mean(axis=1) if samples.ndim == 2 else samples
    return np.ascontiguousarray(resample(mono, int(sample_rate), target_rate),
                                dtype=np.float32)


def load_audio(path: str | Path, sample_rate: int = AUDIO_SAMPLE_RATE) -> np.ndarray:
    """Read an audio file as mono float32 in [-1, 1] at ``sample_rate``.

    Integer WAVs are scaled by their full range, float WAVs kept as they are; several channels
    are averaged; other sample rates are resampled. Reads whatever libsndfile reads (WAV, FLAC,
    OGG, MP3 with libsndfile >= 1.1).

    Raises:
        DataError: the path is missing or a directory, the file cannot be decoded, or its
            samples fail :func:`to_mono`'s checks.
    """
    path = require_file(path, "audio file")
    try:
        audio, rate = sf.read(path, dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as exc:
        raise DataError(path, f"cannot decode audio (corrupt or unsupported format): {exc}") \
            from exc
    missing = wav_missing_bytes(path)
    if missing:
        warnings.warn(f"{path}: truncated WAV: its header declares {missing} more bytes of "
                      f"samples than the file holds; using the {len(audio) / rate:.2f} s that "
                      f"are there (was the copy or download cut short?)", TruncatedAudioWarning,
                      stacklevel=2)
    return to_mono(audio, int(rate), path, sample_rate)


class TruncatedAudioWarning(UserWarning):
    """An audio file holds fewer samples than its header declares (read as far as it goes)."""


def wav_missing_bytes(path: Path) -> int:
    """How many bytes of samples a RIFF WAV's ``data`` chunk declares beyond the end
    of the file (0 when complete, not a WAV, or the header is unreadable).

    libsndfile reads a truncated WAV without complaint, so this reads the chunk headers itself.
    Streaming writers' placeholder sizes (0 or 0xFFFFFFFF) are not counted as truncation.
    """
    try:
        size = path.stat().st_size
        with path.open("rb") as handle:
            head = handle.read(12)
            if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
                return 0
            offset = 12
            while offset + 8 <= size:
                handle.seek(offset)
                chunk = handle.read(8)
                if len(chunk) < 8:
                    return 0
                declared = struct.unpack("<I", chunk[4:])[0]
                if chunk[:4] == b"data":
                    if declared in (0, 0xFFFFFFFF):
                        return 0
                    return max(0, declared - (size - offset - 8))
                offset += 8 + declared + (declared & 1)
    except OSError:
        return 0
    return 0


def audio_duration(path: str | Path) -> float:
    """Duration in seconds from the file header (no decoding)."""
    path = Path(path)
    try:
        info = sf.info(str(path))
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as exc:
        raise DataError(path, f"cannot read audio header (corrupt or unsupported format): "
                              f"{exc}") from exc
    return info.frames / info.samplerate


def float_wav_bytes(audio: np.ndarray, sample_rate: int) -> bytes:
    """A mono 32-bit IEEE-float WAV file (format tag 3, with the ``fact`` chunk) as bytes.

    Written by hand rather than through libsndfile, which adds a ``PEAK`` chunk holding a
    timestamp to float WAVs and so makes identical audio produce different files.
    """
    data = np.ascontiguousarray(audio, dtype="<f4").tobytes()
    n = len(data) // 4
    fmt = struct.pack("<HHIIHHH", 3, 1, sample_rate, 4 * sample_rate, 4, 32, 0)
    chunks = (b"fmt " + struct.pack("<I", len(fmt)) + fmt
              + b"fact" + struct.pack("<II", 4, n)
              + b"data" + struct.pack("<I", len(data)) + data)
    return b"RIFF" + struct.pack("<I", 4 + len(chunks)) + b"WAVE" + chunks


def write_wav(path: str | Path, audio: np.ndarray, sample_rate: int = AUDIO_SAMPLE_RATE) -> Path:
    """Write mono audio as a 32-bit float WAV (BEAT2's format), atomically and reproducibly."""
    mono = np.asarray(audio, dtype=np.float32)
    if mono.ndim != 1:
        raise ValueError(f"write_wav takes mono audio [N], got shape {mono.shape}")
    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.write_bytes(float_wav_bytes(mono, sample_rate))
    return path
