"""The offline default speech representation γ_h: log-mel + deltas on the 30 fps frame grid.

**Analysis grid.** A 25 ms Hann window (400 samples, zero-padded to a 512-point FFT) every
10 ms (hop 160 samples), frames centred: analysis frame ``j`` covers samples
``[160 j - 200, 160 j + 200)``, i.e. it is centred on ``j / 100`` s. Deltas are the usual
regression over ±``delta_width`` analysis frames (±20 ms by default), computed at 100 fps,
where the standard speech-front-end settings apply.

**Mapping onto the motion grid.** Row ``i`` is the linear interpolation of the 100 fps frames
at ``t_i = i / 30`` s. Every third motion frame falls exactly on an analysis frame; the
others are a blend of the two analysis frames around ``t_i``. This was preferred over an STFT
at the exact sample positions ``round(t_i * 16000)``: with a 25 ms window at a 33.3 ms spacing
that would skip ~8 ms of signal between frames and compute deltas over 67 ms steps, while the
10 ms grid sees every sample and keeps conventional deltas, and its frames are centred on known
instants, so the interpolation is exact in time.

**Normalisation** (``SpectralFeaturesConfig.normalization``), per channel over the analysis
frames that cover the real audio (padding past the end is excluded from the statistics):
``"none"`` keeps natural-log mel power; ``"mean"`` subtracts the utterance mean (cepstral mean
normalisation, removes level and channel colouring); ``"meanvar"`` (default) also divides by
the utterance standard deviation, so every channel is ~zero-mean unit-variance per clip.

Output ``[T, n_mels * (delta_order + 1)]``: columns ``[0, n_mels)`` log-mel (low to high
frequency), then the deltas of those, then the delta-deltas.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, ClassVar, Literal

import numpy as np

from semtalk.constants import AUDIO_SAMPLE_RATE
from semtalk.features.base import (
    AudioFeatureExtractor,
    frame_times,
    interpolate_rows,
    pad_to,
    validated_audio,
)

Normalization = Literal["none", "mean", "meanvar"]
NORMALIZATIONS: tuple[str, ...] = ("none", "mean", "meanvar")
STFT_BLOCK = 6000
"""Analysis frames (60 s at 100 fps) per STFT block."""
STD_EPS = 1e-5
"""Added to the standard deviation before dividing (keeps silent, constant channels at 0)."""


def regression_deltas(features: np.ndarray, width: int) -> np.ndarray:
    """Deltas of ``features`` ``[J, C]`` along time by linear regression over ±``width`` frames
    (edges replicated) -> ``[J, C]``.
    """
    num = features.shape[0]
    padded = np.pad(features, ((width, width), (0, 0)), mode="edge")
    out = np.zeros_like(features)
    for k in range(1, width + 1):
        out += k * (padded[width + k: width + k + num] - padded[width - k: width - k + num])
    return out / (2.0 * sum(k * k for k in range(1, width + 1)))


@dataclass(frozen=True)
class SpectralFeaturesConfig:
    """Settings of :class:`SpectralFeatures` (all sample counts at 16 kHz)."""

    n_mels: int = 80
    window: int = 400
    """Analysis window (samples): 25 ms."""
    n_fft: int = 512
    hop: int = 160
    """Analysis hop (samples): 10 ms, 100 fps."""
    fmin: float = 0.0
    fmax: float = 8000.0
    delta_order: int = 2
    """0: log-mel only; 1: + deltas; 2: + deltas and delta-deltas."""
    delta_width: int = 2
    """Regression half-width of the deltas (analysis frames)."""
    log_floor: float = 1e-6
    """Added to the mel power before the natural log (silence sits at log(1e-6) ≈ -13.8)."""
    normalization: Normalization = "meanvar"

    def __post_init__(self) -> None:
        if self.n_mels < 1 or self.hop < 1 or self.delta_width < 1:
            raise ValueError("n_mels, hop and delta_width must be positive")
        if not 0 < self.window <= self.n_fft:
            raise ValueError(f"window must be in (0, n_fft={self.n_fft}], got {self.window}")
        if not 0 <= self.fmin < self.fmax <= AUDIO_SAMPLE_RATE / 2:
            raise ValueError(f"need 0 <= fmin < fmax <= {AUDIO_SAMPLE_RATE // 2}")
        if self.delta_order not in (0, 1, 2):
            raise ValueError(f"delta_order must be 0, 1 or 2, got {self.delta_order}")
        if self.normalization not in NORMALIZATIONS:
            raise ValueError(f"normalization must be one of {NORMALIZATIONS}, "
                             f"got {self.normalization!r}")
        if self.log_floor <= 0:
            raise ValueError("log_floor must be positive")


class SpectralFeatures(AudioFeatureExtractor):
    """Log-mel + deltas (+ delta-deltas) at the 30 fps motion frames, ``[T, D]`` float32."""

    name: ClassVar[str] = "spectral"
    version: ClassVar[str] = "1"

    def __init__(self, config: SpectralFeaturesConfig | None = None) -> None:
        self.settings = config or SpectralFeaturesConfig()
        self._mel_basis: np.ndarray | None = None

    @property
    def dim(self) -> int:
        return self.settings.n_mels * (self.settings.delta_order + 1)

    def config(self) -> dict[str, Any]:
        return asdict(self.settings)

    def extract(self, audio: np.ndarray, num_frames: int) -> np.ndarray:
        """``audio`` ``[N]`` float32 16 kHz -> ``[num_frames, dim]`` float32."""
        audio = validated_audio(audio, num_frames)
        if num_frames == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        times = frame_times(num_frames)
        hop = self.settings.hop
        covered = max(1, -(-audio.shape[0] // hop))  # analysis frames j with hop * j < N
        # Up to the analysis frame at or after the last motion frame (and past the audio),
        # plus the deltas' reach, so no frame in use reads replicated edge frames.
        last = max(int(np.ceil(times[-1] * AUDIO_SAMPLE_RATE / hop)), covered - 1)
        reach = self.settings.delta_width * self.settings.delta_order
        features = self.analysis_frames(pad_to(audio, (last + reach) * hop + 1))
        features = self._normalize(features, covered)
        source_times = np.arange(features.shape[0]) * hop / AUDIO_SAMPLE_RATE
        return interpolate_rows(features, source_times, times).astype(np.float32)

    def analysis_frames(self, audio: np.ndarray) -> np.ndarray:
        """``[N]`` -> ``[1 + N // hop, dim]`` log-mel (+ deltas) at 100 fps, unnormalised."""
        log_mel = np.log(self.mel_power(audio) + self.settings.log_floor)
        stack = [log_mel]
        for _ in range(self.settings.delta_order):
            stack.append(regression_deltas(stack[-1], self.settings.delta_width))
        return np.concatenate(stack, axis=1)

    def mel_power(self, audio: np.ndarray) -> np.ndarray:
        """``[N]`` -> ``[1 + N // hop, n_mels]`` mel-weighted power spectrum (centred frames)."""
        import librosa

        s = self.settings
        half = s.n_fft // 2
        padded = np.pad(audio, (half, half))  # centred frames, zero padding at the ends
        num = 1 + audio.shape[0] // s.hop
        blocks = []
        # Frame j reads padded[j * hop : j * hop + n_fft]; blocks of frames bound the memory
        # of the complex spectrum on long audio and give the same frames as one pass.
        for first in range(0, num, STFT_BLOCK):
            last = min(first + STFT_BLOCK, num)
            segment = padded[first * s.hop : (last - 1) * s.hop + s.n_fft]
            spectrum = librosa.stft(segment, n_fft=s.n_fft, hop_length=s.hop,
                                    win_length=s.window, window="hann", center=False)
            power = (spectrum.real ** 2 + spectrum.imag ** 2).T  # [block, n_fft // 2 + 1]
            blocks.append(power @ self.mel_basis().T)
        return np.concatenate(blocks, axis=0)

    def mel_basis(self) -> np.ndarray:
        """``[n_mels, n_fft // 2 + 1]`` Slaney-normalised mel filterbank (built once)."""
        if self._mel_basis is None:
            import librosa

            s = self.settings
            self._mel_basis = librosa.filters.mel(sr=AUDIO_SAMPLE_RATE, n_fft=s.n_fft,
                                                  n_mels=s.n_mels, fmin=s.fmin, fmax=s.fmax)
        return self._mel_basis

    def band_centres(self) -> np.ndarray:
        """``[n_mels]`` centre frequency (Hz) of each mel band, low to high."""
        import librosa

        s = self.settings
        return librosa.mel_frequencies(s.n_mels + 2, fmin=s.fmin, fmax=s.fmax)[1:-1]

    def _normalize(self, features: np.ndarray, covered: int) -> np.ndarray:
        """Per-channel utterance normalisation with statistics of the first ``covered``
        analysis frames (those that hold real audio)."""
        mode = self.settings.normalization
        if mode == "none":
            return features
        real = features[:covered]
        features = features - real.mean(axis=0)
        if mode == "meanvar":
            features = features / (real.std(axis=0) + STD_EPS)
        return features
