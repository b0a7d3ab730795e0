"""Rhythmic features γ_b over the whole signal, on the 30 fps motion frame grid.

Output ``[T, 4]`` float32, one row per motion frame ``t_i = i / 30`` s, channels
(:attr:`BeatFeatures.channels`):

0. ``envelope`` — amplitude envelope: max ``|x|`` over ``envelope_window`` samples centred on
   ``t_i`` (linear, in the audio's units; 1.0 = full scale). The official code's rolling max
   kept only the first ≈N/512 samples of the envelope; here every frame reads its own window.
1. ``log_energy`` — short-time energy: ``log10(mean(x²) + energy_floor)`` over
   ``energy_window`` samples centred on ``t_i`` (-6 for digital silence with the default floor,
   0 for a full-scale square wave).
2. ``onset_strength`` — spectral flux: mean over mel bands of the positive increase of log
   (dB) mel power from one 10 ms analysis frame to the next (librosa ``onset_strength`` on
   25 ms windows, hop 160 = 100 fps). Row ``i`` is the max over the 100 fps values whose
   nearest motion frame is ``i`` (3 or 4 of them): the flux is spiky, and interpolating it at
   ``t_i`` would miss peaks that fall between motion frames. Level-independent.
3. ``onset`` — 1.0 on the motion frame nearest each detected onset, else 0.0. Onsets are peaks
   of channel 2 (librosa peak picking on the min-max normalised flux), at least
   ``onset_min_gap_s`` apart; since that gap exceeds one motion frame (1/30 s), two onsets never
   round to the same frame, so no onset is lost or duplicated.

Channels 0 and 1 are computed directly at the sample positions ``round(t_i · 16000)`` (no
interpolation): the max of ``|x|`` and the mean square over each frame's window, evaluated
block by block (:func:`semtalk.features.base.window_statistic`), so memory stays bounded on
hour-long audio. Frames past the end of the audio read zero padding, i.e. silence.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, ClassVar

import numpy as np

from semtalk.constants import AUDIO_SAMPLE_RATE, MOTION_FPS
from semtalk.features.base import (
    AudioFeatureExtractor,
    pad_to,
    validated_audio,
    window_statistic,
)


@dataclass(frozen=True)
class BeatFeaturesConfig:
    """Settings of :class:`BeatFeatures` (sample counts at 16 kHz)."""

    envelope_window: int = 1024
    """Samples of the amplitude-envelope max (64 ms, the official window)."""
    energy_window: int = 1024
    """Samples of the short-time energy (64 ms)."""
    energy_floor: float = 1e-6
    onset_hop: int = 160
    """Hop of the onset-strength analysis (100 fps)."""
    onset_window: int = 400
    """Window of the onset-strength STFT (25 ms; zero-padded to ``onset_n_fft``)."""
    onset_n_fft: int = 512
    onset_n_mels: int = 40
    onset_min_gap_s: float = 0.05
    """Minimum spacing of detected onsets; must exceed one motion frame (1/30 s)."""
    onset_delta: float = 0.07
    """Peak-picking threshold above the local mean of the min-max normalised flux."""

    def __post_init__(self) -> None:
        for field_name in ("envelope_window", "energy_window", "onset_hop", "onset_window",
                           "onset_n_mels"):
            if getattr(self, field_name) < 1:
                raise ValueError(f"{field_name} must be positive")
        if self.onset_window > self.onset_n_fft:
            raise ValueError("onset_window must not exceed onset_n_fft")
        if self.energy_floor <= 0:
            raise ValueError("energy_floor must be positive")
        if self.onset_min_gap_s <= 1 / MOTION_FPS:
            raise ValueError(f"onset_min_gap_s must exceed one motion frame (1/{MOTION_FPS} s) "
                             f"so that onsets never share a frame, got {self.onset_min_gap_s}")


class BeatFeatures(AudioFeatureExtractor):
    """Amplitude envelope, log energy, onset strength and onsets per motion frame ``[T, 4]``."""

    name: ClassVar[str] = "beat"
    version: ClassVar[str] = "1"
    channels: ClassVar[tuple[str, ...]] = ("envelope", "log_energy", "onset_strength", "onset")

    def __init__(self, config: BeatFeaturesConfig | None = None) -> None:
        self.settings = config or BeatFeaturesConfig()

    @property
    def dim(self) -> int:
        return len(self.channels)

    def config(self) -> dict[str, Any]:
        return asdict(self.settings)

    def extract(self, audio: np.ndarray, num_frames: int) -> np.ndarray:
        """``audio`` ``[N]`` float32 16 kHz -> ``[num_frames, 4]`` float32."""
        audio = validated_audio(audio, num_frames)
        out = np.zeros((num_frames, self.dim), dtype=np.float32)
        if num_frames == 0:
            return out
        s = self.settings
        positions = sample_positions(num_frames)
        # Room for the widest window, and for every analysis frame nearest the last row.
        reach = (max(s.envelope_window, s.energy_window, s.onset_n_fft) // 2 + s.onset_hop
                 + AUDIO_SAMPLE_RATE // MOTION_FPS)
        audio = pad_to(audio, int(positions[-1]) + reach + 1)
        out[:, 0] = amplitude_envelope(audio, positions, s.envelope_window)
        out[:, 1] = log_energy(audio, positions, s.energy_window, s.energy_floor)
        strength = self.onset_strength(audio)
        out[:, 2] = pool_max(strength, self.frames_of(np.arange(strength.shape[0])), num_frames)
        onsets = self.frames_of(self.onset_frames(strength))
        out[:, 3] = onset_indicator(onsets, num_frames)
        return out

    def onset_strength(self, audio: np.ndarray) -> np.ndarray:
        """``[N]`` -> ``[1 + N // onset_hop]`` spectral flux; element ``j`` is at
        ``j · onset_hop`` samples.

        In dB the flux peaks as soon as a window's edge reaches an onset, i.e. up to half a
        window early; librosa's ``center=True`` shifts the flux ``n_fft // (2 hop)`` frames
        later to compensate. Measured on clicks with the defaults: a click at ``c`` is
        detected within ``[c - 2, c + 8]`` ms, well inside half a motion frame (16.7 ms).
        Reflect padding at the start keeps the first frames from seeing a jump from zero
        padding to the noise floor (a spurious onset at 20 ms).
        """
        import librosa

        s = self.settings
        return librosa.onset.onset_strength(y=audio, sr=AUDIO_SAMPLE_RATE, hop_length=s.onset_hop,
                                            n_fft=s.onset_n_fft, win_length=s.onset_window,
                                            n_mels=s.onset_n_mels, center=True,
                                            pad_mode="reflect")

    def onset_frames(self, strength: np.ndarray) -> np.ndarray:
        """Indices (100 fps analysis frames) of the onsets in ``strength`` ``[J]``."""
        import librosa

        s = self.settings
        rate = AUDIO_SAMPLE_RATE / s.onset_hop
        # librosa keeps a peak only if it lies more than `wait` frames after the previous one.
        wait = int(np.ceil(s.onset_min_gap_s * rate - 1e-9)) - 1
        return librosa.onset.onset_detect(onset_envelope=strength, sr=AUDIO_SAMPLE_RATE,
                                          hop_length=s.onset_hop, units="frames", wait=wait,
                                          delta=s.onset_delta)

    def onset_times(self, audio: np.ndarray) -> np.ndarray:
        """Onset instants (s) detected in ``audio`` ``[N]``, before snapping to motion frames."""
        audio = validated_audio(audio, 0)
        frames = self.onset_frames(self.onset_strength(audio))
        return frames * self.settings.onset_hop / AUDIO_SAMPLE_RATE

    def frames_of(self, analysis_frames: np.ndarray) -> np.ndarray:
        """Motion frame nearest each 100 fps analysis frame index (ties round up), exactly."""
        hop = self.settings.onset_hop
        # round(j * hop * fps / sr) in integer arithmetic: floor((2 j hop fps + sr) / (2 sr)).
        numerator = 2 * np.asarray(analysis_frames, dtype=np.int64) * hop * MOTION_FPS
        return (numerator + AUDIO_SAMPLE_RATE) // (2 * AUDIO_SAMPLE_RATE)


def sample_positions(num_frames: int) -> np.ndarray:
    """``[num_frames]`` int64 sample index nearest each ``t_i = i / 30`` s (ties round up)."""
    i = np.arange(num_frames, dtype=np.int64)
    return (2 * i * AUDIO_SAMPLE_RATE + MOTION_FPS) // (2 * MOTION_FPS)


def amplitude_envelope(audio: np.ndarray, positions: np.ndarray, window: int) -> np.ndarray:
    """Max ``|x|`` over ``[p - window // 2, p - window // 2 + window)`` at each position
    ``[T]`` -> ``[T]``; samples outside the signal count as zeros."""
    return window_statistic(audio, positions - window // 2, window, "max_abs")


def log_energy(audio: np.ndarray, positions: np.ndarray, window: int,
               floor: float) -> np.ndarray:
    """``log10(mean(x²) + floor)`` over ``[p - window // 2, p - window // 2 + window)`` ->
    ``[T]``. Samples outside the signal count as zeros.
    """
    power = window_statistic(audio, positions - window // 2, window, "mean_square")
    return np.log10(power + floor)


def pool_max(values: np.ndarray, targets: np.ndarray, num_frames: int) -> np.ndarray:
    """``[num_frames]`` max of the non-negative ``values`` ``[J]`` sent to each target frame
    (``targets`` ``[J]``); frames that receive none stay 0."""
    pooled = np.zeros(num_frames, dtype=np.float32)
    inside = (targets >= 0) & (targets < num_frames)
    np.maximum.at(pooled, targets[inside], values[inside])
    return pooled


def onset_indicator(motion_frames: np.ndarray, num_frames: int) -> np.ndarray:
    """``[num_frames]`` 0/1 with a 1 at each listed frame that lies on the grid."""
    indicator = np.zeros(num_frames, dtype=np.float32)
    inside = motion_frames[(motion_frames >= 0) & (motion_frames < num_frames)]
    indicator[inside] = 1.0
    return indicator
