"""The official HuBERT feature pipeline (``facebook/hubert-large-ls960-ft``), quirks included.

Steps, in the official order (fixture README §3e; spec §4.2):

1. The wav is loaded with ``librosa.load`` at its default **22,050 Hz** (``soxr_hq``); BEAT2's
   16 kHz files are therefore *upsampled*. A waveform given in memory at its native rate is
   resampled with the same ``librosa.resample`` call, bit-identical to loading the file.
2. **Sample-rate quirk**: the 22.05 kHz samples are given to HuBERT as if they were 16 kHz
   (HuBERT hears the speech slowed down by 0.726 and makes ~1.378x as many frames).
3. Whole-utterance normalisation ``(x - mean) / sqrt(var + 1e-7)`` in numpy float32 (the
   ``Wav2Vec2FeatureExtractor`` formula), once, before chunking.
4. Chunks of 320,000 samples extended by 80 (kernel 400 - hop 320): chunk ``i`` is
   ``[320000 i, 320000 i + 320080)`` cut at the end; the remainder ``[320000 k, N)`` is one more
   chunk when it has at least 400 samples. Each chunk runs through ``HubertModel`` alone (eval
   mode, batch 1, no attention mask); the feature is ``last_hidden_state``. Chunk edges are
   visible in the features, as in the official ones.
5. The chunks' rows are concatenated and padded with zeros / cut to
   ``R = (N22 - 80) // 320`` rows (the official code asserts a difference of at most 1).
6. The target frame count comes from the waveform resampled back to 16 kHz:
   ``N16 = ceil(N22 * 16000 / 22050)`` (librosa's length rule) and ``T = N16 // 533`` (a
   128-band mel spectrogram with hop ``int(16000 / 30)`` minus its last frame): ~30.02 frames
   per second, drifting against 30 fps.
7. ``torch.nn.functional.interpolate(mode="linear", align_corners=True)`` from ``R`` to ``T``
   rows in float32 (torch computes the source positions in float32; a float64 restatement
   differs by up to 8e-4).
8. The result ``[T, 1024]`` is not normalised afterwards.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from semtalk.errors import require_file

if TYPE_CHECKING:
    import torch

OFFICIAL_MODEL_ID = "facebook/hubert-large-ls960-ft"
LOAD_RATE = 22050
HUBERT_RATE = 16000
MEL_HOP = HUBERT_RATE // 30  # 533
KERNEL = 400
HOP = 320
CHUNK = HOP * 1000  # 320,000 samples -> 1000 frames
NORM_EPS = 1e-7
_WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin", "model.safetensors.index.json",
                 "pytorch_model.bin.index.json")


@dataclass(frozen=True)
class OfficialHubertSizes:
    """The lengths of the pipeline (the fixture's ``sizes_sample`` order).

    Attributes:
        native_rate: rate of the input (file or array) before step 1.
        load_rate: 22,050.
        num_samples_22k: ``N22``, samples fed to HuBERT.
        num_samples_16k: ``N16 = ceil(N22 * 16000 / 22050)``.
        mel_hop: 533.
        raw_frames: ``R = (N22 - 80) // 320``, HuBERT rows.
        frames: ``T = N16 // 533``, output rows.
    """

    native_rate: int
    load_rate: int
    num_samples_22k: int
    num_samples_16k: int
    mel_hop: int
    raw_frames: int
    frames: int

    def as_array(self) -> np.ndarray:
        """``[7]`` int64 in the field order (as the fixture stores them)."""
        return np.array([self.native_rate, self.load_rate, self.num_samples_22k,
                         self.num_samples_16k, self.mel_hop, self.raw_frames, self.frames],
                        dtype=np.int64)


@dataclass(frozen=True)
class OfficialHubertResult:
    """Output and intermediates of :func:`run_official_hubert`.

    Attributes:
        features: ``[T, C]`` float32, the official feature (step 8).
        raw: ``[R, C]`` float32, the concatenated HuBERT rows (step 5).
        wave22: ``[N22]`` float32 waveform of step 1.
        input_values: ``[N22]`` float32 normalised waveform of step 3.
        norm_mean, norm_var: the float32 mean and variance of step 3.
        chunk_bounds: ``[start, end)`` sample range of each HuBERT call.
        chunk_frames: rows each call produced.
        sizes: the pipeline's lengths.
    """

    features: np.ndarray
    raw: np.ndarray
    wave22: np.ndarray
    input_values: np.ndarray
    norm_mean: float
    norm_var: float
    chunk_bounds: tuple[tuple[int, int], ...]
    chunk_frames: tuple[int, ...]
    sizes: OfficialHubertSizes


def load_official_hubert(model_dir: str | Path, device: str = "cpu") -> torch.nn.Module:
    """``transformers.HubertModel`` from a local folder, eval mode, float32, on ``device``.

    The folder holds ``facebook/hubert-large-ls960-ft`` in transformers format (``config.json``
    and ``model.safetensors`` / ``pytorch_model.bin``; the CTC head is ignored). Nothing is
    downloaded.

    Raises:
        FileNotFoundError: the folder or its config/weights are missing.
        ValueError: the folder holds another kind of model, or weights of the encoder are
            missing from the file.
    """
    from transformers import HubertModel

    folder = _checked_folder(model_dir)
    loaded: Any = HubertModel.from_pretrained(
        folder, local_files_only=True, output_loading_info=True)
    model, info = loaded
    if info.get("missing_keys"):
        missing = sorted(info["missing_keys"])
        raise ValueError(f"{folder}: the HuBERT weights lack {len(missing)} encoder tensors "
                         f"({missing[:5]} ...); expected a transformers-format copy of "
                         f"{OFFICIAL_MODEL_ID}")
    module: torch.nn.Module = model.to(device=device, dtype=_torch().float32).eval()
    return module


def _checked_folder(model_dir: str | Path) -> Path:
    folder = Path(model_dir)
    expected = (f"a local folder with {OFFICIAL_MODEL_ID} in transformers format "
                "(config.json + model.safetensors or pytorch_model.bin)")
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: HuBERT model folder not found; expected {expected}")
    config_path = folder / "config.json"
    if not config_path.is_file():
        raise FileNotFoundError(f"{config_path}: missing; expected {expected}")
    if not any((folder / name).is_file() for name in _WEIGHT_FILES):
        raise FileNotFoundError(f"{folder}: no weight file ({', '.join(_WEIGHT_FILES[:2])}); "
                                f"expected {expected}")
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{config_path}: not a readable JSON config: {exc}") from exc
    model_type = config.get("model_type") if isinstance(config, dict) else None
    if model_type != "hubert":
        raise ValueError(f"{config_path}: model_type is {model_type!r}, expected 'hubert' "
                         f"({expected})")
    return folder


def _torch() -> Any:
    import torch

    return torch


def official_wave22(audio: str | Path | np.ndarray,
                    sample_rate: int | None = None) -> tuple[np.ndarray, int]:
    """Step 1: ``(waveform at 22,050 Hz, native rate)``.

    A path is read with ``librosa.load(path)`` (all defaults, as the official code); an array
    (``[N]`` mono float32 at ``sample_rate``, as ``librosa.load(path, sr=None)`` returns it)
    is resampled with ``librosa.resample(..., res_type="soxr_hq")``, giving the same samples.
    """
    import librosa

    if isinstance(audio, (str, Path)):
        path = require_file(audio, "audio file")
        native = int(librosa.get_samplerate(str(path)))
        wave, _ = librosa.load(path)
        return np.asarray(wave, dtype=np.float32), native
    if sample_rate is None:
        raise ValueError("a waveform needs its sample_rate (the native rate of the samples)")
    wave = np.asarray(audio, dtype=np.float32)
    if wave.ndim != 1:
        raise ValueError(f"expected a mono [N] waveform, got shape {wave.shape}")
    if sample_rate != LOAD_RATE:
        wave = librosa.resample(wave, orig_sr=sample_rate, target_sr=LOAD_RATE)
    return np.ascontiguousarray(wave, dtype=np.float32), int(sample_rate)


def normalize_whole(wave: np.ndarray) -> tuple[np.ndarray, float, float]:
    """Step 3: ``((x - mean) / sqrt(var + 1e-7), mean, var)`` in float32 over the whole clip."""
    mean = wave.mean()
    var = wave.var()
    return ((wave - mean) / np.sqrt(var + NORM_EPS)).astype(np.float32, copy=False), \
        float(mean), float(var)


def official_chunk_bounds(num_samples: int) -> list[tuple[int, int]]:
    """Step 4: ``[start, end)`` of each HuBERT call for ``num_samples`` input samples."""
    full = num_samples // CHUNK
    bounds = [(CHUNK * i, min(CHUNK * i + CHUNK - HOP + KERNEL, num_samples))
              for i in range(full)]
    start = CHUNK * full
    if num_samples - start >= KERNEL:
        bounds.append((start, num_samples))
    if not bounds:
        raise ValueError(f"{num_samples} samples at 22,050 Hz are fewer than HuBERT's "
                         f"{KERNEL}-sample receptive field")
    return bounds


def official_frame_counts(num_samples_22k: int) -> tuple[int, int, int]:
    """Steps 5-6: ``(R, N16, T)`` for ``num_samples_22k`` samples at 22,050 Hz."""
    raw_frames = (num_samples_22k - (KERNEL - HOP)) // HOP
    num_16k = int(np.ceil(num_samples_22k * (float(HUBERT_RATE) / LOAD_RATE)))
    return raw_frames, num_16k, num_16k // MEL_HOP


def run_official_hubert(audio: str | Path | np.ndarray, model: torch.nn.Module,
                        sample_rate: int | None = None) -> OfficialHubertResult:
    """The whole official pipeline with its intermediates (see the module doc).

    Args:
        audio: a wav path, or an ``[N]`` mono waveform at ``sample_rate`` (native rate).
        model: from :func:`load_official_hubert`.
        sample_rate: the rate of an array ``audio``; ignored for a path.
    """
    torch = _torch()
    wave22, native = official_wave22(audio, sample_rate)
    input_values, mean, var = normalize_whole(wave22)
    bounds = official_chunk_bounds(len(input_values))
    raw_frames, num_16k, frames = official_frame_counts(len(input_values))
    weight = next(model.parameters())  # a bfloat16 model (opt-in) gets bfloat16 input
    rows = []
    with torch.no_grad():
        for start, end in bounds:
            chunk = torch.from_numpy(input_values[start:end]).unsqueeze(0).to(
                weight.device, weight.dtype)
            rows.append(model(chunk).last_hidden_state[0].float().cpu())
    raw = torch.cat(rows, dim=0)
    if abs(raw.shape[0] - raw_frames) > 1:
        raise RuntimeError(f"HuBERT gave {raw.shape[0]} frames for {len(input_values)} samples, "
                           f"expected {raw_frames}: is the model's conv stack hubert-large's?")
    if raw.shape[0] < raw_frames:
        raw = torch.nn.functional.pad(raw, (0, 0, 0, raw_frames - raw.shape[0]))
    raw = raw[:raw_frames]
    features = torch.nn.functional.interpolate(raw.T.unsqueeze(0), size=frames, mode="linear",
                                               align_corners=True)[0].T
    sizes = OfficialHubertSizes(native, LOAD_RATE, len(input_values), num_16k, MEL_HOP,
                                raw_frames, frames)
    return OfficialHubertResult(
        features=np.ascontiguousarray(features.numpy(), dtype=np.float32),
        raw=np.ascontiguousarray(raw.numpy(), dtype=np.float32), wave22=wave22,
        input_values=input_values, norm_mean=mean, norm_var=var, chunk_bounds=tuple(bounds),
        chunk_frames=tuple(int(r.shape[0]) for r in rows), sizes=sizes)


def official_hubert_features(audio: str | Path | np.ndarray,
                             model_dir: str | Path | torch.nn.Module, device: str = "cpu",
                             sample_rate: int | None = None) -> np.ndarray:
    """``[T, C]`` float32 official HuBERT features of a wav path or a native-rate waveform.

    Args:
        audio: a wav path, or an ``[N]`` mono waveform at ``sample_rate``.
        model_dir: local folder of ``facebook/hubert-large-ls960-ft`` (transformers format),
            or a model from :func:`load_official_hubert`.
        device: where a model loaded from ``model_dir`` runs.
        sample_rate: the rate of an array ``audio``.
    """
    import torch

    if isinstance(model_dir, torch.nn.Module):
        model: torch.nn.Module = model_dir
    else:
        model = load_official_hubert(model_dir, device)
    return run_official_hubert(audio, model, sample_rate).features
