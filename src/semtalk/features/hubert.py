"""HuBERT speech features γ_h (the paper's full-fidelity option) on the 30 fps motion grid.

The paper uses ``facebook/hubert-large-ls960-ft`` (24 layers, 1024-d, ``last_hidden_state``).
Any ``transformers`` HuBERT or wav2vec 2.0 checkpoint works: a local folder (``config.json`` +
weights, optionally ``preprocessor_config.json``) or a hub id. Hub ids are looked up in the
local Hugging Face cache first; a download is tried only when the user opted in
(``SEMTALK_ALLOW_HUB=1``), the hub is not disabled (``HF_HUB_OFFLINE``) and it answers a single
request within ``hub_timeout_s``, so an unreachable model fails in seconds with instructions
instead of minutes of retries.

What differs from the official code: the model hears true 16 kHz audio (the official one feeds
22.05 kHz samples as 16 kHz), and its 50 fps frames are interpolated at their real centres onto
``t_i = i / 30`` s, so the output has exactly the motion's frame count.

**Frames.** The convolutional front end has receptive field ``R`` and stride ``S`` (400 and
320 samples for every released HuBERT/wav2vec 2.0); model frame ``k`` reads samples
``[k S, k S + R)`` and is centred on ``(k S + R / 2) / 16000`` s.

**Chunking.** Long audio runs in chunks of ``chunk_s`` seconds. Each chunk owns a block of model
frames and runs with ``context_s`` seconds of audio on either side, cut at multiples of ``S`` so
that the chunk's frames are exactly the full signal's frames (no shift); only the owned frames
are kept. Everything up to the positional convolution is local, so with a "layer"-norm front end
(the large models) the chunked and single-pass outputs agree exactly there as long as the
context covers the positional convolution (128 frames wide in the released models); the
transformer layers attend within chunk + context only, an approximation that ``context_s``
controls (the official code chunks at 20 s with no context at all). "group"-norm front ends
(the base models) normalise each channel over the whole input, so for them chunking is an
approximation from the first layer on.

**Layers.** ``layer=None`` gives ``last_hidden_state`` (after the final layer norm for
stable-layer-norm models), as the paper. ``layer=k`` gives the output of transformer block
``k`` (1-based), ``layer=0`` its input (after the positional convolution), read through hooks so
the meaning does not depend on the ``transformers`` version; blocks after ``k`` are not run.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal, cast

import numpy as np

import semtalk.devices
from semtalk.constants import AUDIO_SAMPLE_RATE
from semtalk.errors import DataError
from semtalk.features.base import (
    AudioFeatureExtractor,
    frame_times,
    interpolate_rows,
    pad_to,
    validated_audio,
)
from semtalk.features.local_models import (
    ALLOW_HUB_ENV,
    WEIGHT_PATTERNS,
    cached_hub_snapshot,
    hub_allowed,
    looks_like_hub_id,
    weight_files,
)

if TYPE_CHECKING:
    import torch

PAPER_MODEL = "facebook/hubert-large-ls960-ft"
MODEL_TYPES: tuple[str, ...] = ("hubert", "wav2vec2")
NORM_EPS = 1e-7
"""Variance epsilon of the per-utterance input normalisation (as Wav2Vec2FeatureExtractor)."""
DIGEST_BYTES = 1 << 20
"""Bytes read from each end of a weight file for its digest."""
VOLATILE_CONFIG_KEYS: frozenset[str] = frozenset(
    {"_name_or_path", "transformers_version", "torch_dtype", "dtype"})
"""config.json keys that do not change the numbers (left out of the identity)."""
OFFLINE_VALUES: frozenset[str] = frozenset({"1", "ON", "YES", "TRUE"})
Dtype = Literal["float32", "float16", "bfloat16"]


class ModelUnavailableError(DataError):
    """A speech model cannot be found locally or fetched from the hub."""

    def __init__(self, model: str, reason: str) -> None:
        self.model = model
        super().__init__(
            model, f"cannot load this speech model: {reason}. Download it once on a machine "
            f"that reaches the Hugging Face hub (e.g. `hf download {model} --local-dir DIR`) "
            f"and pass the local directory DIR as the model instead of the hub id.")


@dataclass(frozen=True)
class HubertFeaturesConfig:
    """Settings of :class:`HubertFeatures`."""

    model: str = PAPER_MODEL
    """Local checkpoint folder or hub id (``facebook/hubert-large-ls960-ft``: the paper's)."""
    layer: int | None = None
    """None: ``last_hidden_state``; k: output of transformer block k (0: its input)."""
    normalize: bool | None = None
    """Zero-mean unit-variance input per utterance; None: as the checkpoint's
    ``preprocessor_config.json`` says (``do_normalize``), True when it has none."""
    chunk_s: float | None = 20.0
    """Seconds of audio whose frames one forward pass owns; None: the whole clip at once."""
    context_s: float = 2.0
    """Extra audio (s) each chunk sees on either side."""
    device: str = "cpu"
    """``"cpu"``, ``"cuda"``, ``"cuda:1"``, or ``"auto"`` (CUDA when available)."""
    dtype: Dtype = "float32"
    """Model precision; ``"float16"`` needs CUDA. Outputs are always float32."""
    hub_timeout_s: float = 5.0
    """How long the single hub reachability check may take before giving up."""

    def __post_init__(self) -> None:
        if self.layer is not None and self.layer < 0:
            raise ValueError(f"layer must be None or >= 0, got {self.layer}")
        if self.chunk_s is not None and self.chunk_s <= 0:
            raise ValueError(f"chunk_s must be positive or None, got {self.chunk_s}")
        if self.context_s < 0:
            raise ValueError(f"context_s must be >= 0, got {self.context_s}")
        if self.dtype not in ("float32", "float16", "bfloat16"):
            raise ValueError(f"dtype must be float32, float16 or bfloat16, got {self.dtype!r}")


@dataclass(frozen=True)
class Checkpoint:
    """A checkpoint folder on disk and what identifies its outputs."""

    folder: Path
    name: str
    """Hub id, or the folder's name (never an absolute path)."""
    model_config: dict[str, Any]
    preprocessor: dict[str, Any]

    @property
    def hidden_size(self) -> int:
        return int(self.model_config["hidden_size"])

    @property
    def num_layers(self) -> int:
        return int(self.model_config["num_hidden_layers"])

    def conv_geometry(self) -> tuple[int, int]:
        """(receptive field, stride) of the convolutional front end, in samples."""
        return conv_geometry(self.model_config["conv_kernel"], self.model_config["conv_stride"])

    def config_digest(self) -> str:
        """sha256 prefix of config.json without its volatile keys."""
        kept = {k: v for k, v in self.model_config.items() if k not in VOLATILE_CONFIG_KEYS}
        return hashlib.sha256(json.dumps(kept, sort_keys=True).encode()).hexdigest()[:16]

    def weights_digest(self) -> str:
        """sha256 prefix over each weight file's name, size, first and last MiB.

        Cheap even for GB files; the safetensors header at the start names every tensor.
        """
        digest = hashlib.sha256()
        for path in weight_files(self.folder):
            size = path.stat().st_size
            digest.update(f"{path.name}:{size}".encode())
            with path.open("rb") as handle:
                digest.update(handle.read(DIGEST_BYTES))
                handle.seek(max(size - DIGEST_BYTES, 0))
                digest.update(handle.read(DIGEST_BYTES))
        return digest.hexdigest()[:16]


def conv_geometry(kernels: list[int], strides: list[int]) -> tuple[int, int]:
    """(receptive field, total stride) of stacked unpadded 1-D convolutions."""
    field, jump = 1, 1
    for kernel, stride in zip(kernels, strides, strict=True):
        field += (kernel - 1) * jump
        jump *= stride
    return field, jump


def hub_offline() -> bool:
    """Whether the user disabled the hub (``HF_HUB_OFFLINE`` / ``TRANSFORMERS_OFFLINE``)."""
    return any(os.environ.get(var, "").upper() in OFFLINE_VALUES
               for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


def read_checkpoint(model: str, hub_timeout_s: float = 5.0) -> Checkpoint:
    """Find ``model`` (folder or hub id) on disk, fetching it if allowed, and read its configs.

    Raises:
        ModelUnavailableError: not a usable folder, not cached, and not fetchable right now.
        ValueError: the checkpoint is not a HuBERT / wav2vec 2.0 model at 16 kHz.
    """
    folder = Path(model).expanduser()
    if folder.is_dir():
        name = folder.resolve().name
    elif folder.exists() or not looks_like_hub_id(model):
        raise ModelUnavailableError(model, "not a checkpoint directory")
    else:
        name = model
        folder = cached_snapshot(model) or download_snapshot(model, hub_timeout_s)
    if not (folder / "config.json").is_file():
        raise ModelUnavailableError(model, f"{folder.name}/config.json is missing")
    if not weight_files(folder):
        raise ModelUnavailableError(model, f"no weight file ({', '.join(WEIGHT_PATTERNS)}) "
                                           f"in {folder.name}")
    model_config = json.loads((folder / "config.json").read_text())
    preprocessor_path = folder / "preprocessor_config.json"
    preprocessor = json.loads(preprocessor_path.read_text()) if preprocessor_path.is_file() \
        else {}
    check_checkpoint(model, model_config, preprocessor)
    return Checkpoint(folder, name, model_config, preprocessor)


def check_checkpoint(model: str, model_config: dict[str, Any],
                     preprocessor: dict[str, Any]) -> None:
    """Raise ``ValueError`` unless the configs describe a 16 kHz HuBERT/wav2vec 2.0 model."""
    model_type = model_config.get("model_type")
    if model_type not in MODEL_TYPES:
        raise ValueError(f"{model}: model_type {model_type!r} is not one of {MODEL_TYPES}")
    rate = preprocessor.get("sampling_rate", AUDIO_SAMPLE_RATE)
    if rate != AUDIO_SAMPLE_RATE:
        raise ValueError(f"{model}: the checkpoint expects {rate} Hz audio, semtalk feeds "
                         f"{AUDIO_SAMPLE_RATE} Hz")


def cached_snapshot(repo_id: str) -> Path | None:
    """The local Hugging Face cache's folder for ``repo_id`` if it holds config and weights."""
    folder = cached_hub_snapshot(repo_id)
    if folder is None:
        return None
    return folder if (folder / "config.json").is_file() and weight_files(folder) else None


def download_snapshot(repo_id: str, timeout_s: float) -> Path:
    """Fetch config files and weights of ``repo_id`` after one quick reachability check."""
    if hub_offline():
        raise ModelUnavailableError(repo_id, "it is not in the local Hugging Face cache and "
                                             "HF_HUB_OFFLINE is set")
    if not hub_allowed():
        raise ModelUnavailableError(repo_id, f"it is not in the local Hugging Face cache and "
                                             f"downloads are off (set {ALLOW_HUB_ENV}=1 to "
                                             f"allow them)")
    from huggingface_hub import get_session, hf_hub_url, snapshot_download
    from huggingface_hub.utils import build_hf_headers

    url = hf_hub_url(repo_id, "config.json")
    try:
        status = get_session().head(url, headers=build_hf_headers(),
                                    timeout=timeout_s).status_code
    except Exception as exc:  # any transport failure means: not reachable now
        raise ModelUnavailableError(repo_id, f"the hub is not reachable ({exc})") from exc
    if status >= 400:
        raise ModelUnavailableError(repo_id, f"the hub answered HTTP {status} (no such model, "
                                             "or it needs a login)")
    try:
        folder = Path(snapshot_download(repo_id, allow_patterns=["*.json", "*.safetensors"]))
        if not weight_files(folder):
            folder = Path(snapshot_download(repo_id, allow_patterns=["pytorch_model*.bin"]))
    except OSError as exc:
        raise ModelUnavailableError(repo_id, f"download failed ({exc})") from exc
    return folder


def chunk_plan(total: int, chunk: int | None, context: int) -> list[tuple[int, int, int, int]]:
    """Split ``total`` model frames into ``(lo, start, stop, hi)``: a pass over frames
    ``[lo, hi)`` that keeps (owns) ``[start, stop)``; owned blocks tile ``[0, total)``."""
    if chunk is None or chunk >= total:
        return [(0, 0, total, total)]
    return [(max(0, start - context), start, min(start + chunk, total),
             min(total, start + chunk + context)) for start in range(0, total, chunk)]


class HubertFeatures(AudioFeatureExtractor):
    """HuBERT / wav2vec 2.0 hidden states at the 30 fps motion frames, ``[T, hidden]`` float32.

    The checkpoint is located (and its configs read) on construction, so a missing model fails
    at once; the weights load on the first :meth:`extract` and stay loaded.
    """

    name: ClassVar[str] = "hubert"
    version: ClassVar[str] = "1"

    def __init__(self, config: HubertFeaturesConfig | None = None) -> None:
        self.settings = config or HubertFeaturesConfig()
        self.checkpoint = read_checkpoint(self.settings.model, self.settings.hub_timeout_s)
        layer = self.settings.layer
        if layer is not None and layer > self.checkpoint.num_layers:
            raise ValueError(f"layer {layer} does not exist: {self.checkpoint.name} has "
                             f"{self.checkpoint.num_layers} transformer layers (0..)")
        self.device = resolve_device(self.settings.device, self.settings.dtype)
        self.receptive_field, self.stride = self.checkpoint.conv_geometry()
        self._weights_digest = self.checkpoint.weights_digest()
        self._model: torch.nn.Module | None = None
        self._captured: list[torch.Tensor] = []

    @property
    def dim(self) -> int:
        return self.checkpoint.hidden_size

    @property
    def normalize(self) -> bool:
        """Whether the input is normalised per utterance (config, else the checkpoint's)."""
        if self.settings.normalize is not None:
            return self.settings.normalize
        return bool(self.checkpoint.preprocessor.get("do_normalize", True))

    def config(self) -> dict[str, Any]:
        s = self.settings
        return {"model": self.checkpoint.name,
                "model_type": self.checkpoint.model_config["model_type"],
                "config_digest": self.checkpoint.config_digest(),
                "weights_digest": self._weights_digest,
                "hidden_size": self.checkpoint.hidden_size,
                "num_layers": self.checkpoint.num_layers,
                "layer": s.layer, "normalize": self.normalize, "chunk_s": s.chunk_s,
                "context_s": s.context_s, "dtype": s.dtype}

    def extract(self, audio: np.ndarray, num_frames: int) -> np.ndarray:
        """``audio`` ``[N]`` float32 16 kHz -> ``[num_frames, hidden]`` float32."""
        audio = validated_audio(audio, num_frames)
        if num_frames == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        times = frame_times(num_frames)
        field, stride = self.receptive_field, self.stride
        # Enough model frames that the last one is centred at or after the last motion frame.
        needed = max(1, int(np.ceil((times[-1] * AUDIO_SAMPLE_RATE - field / 2) / stride)) + 1)
        signal = self.prepare_input(audio, (needed - 1) * stride + field)
        hidden = self.encode(signal)  # [K, D], K >= needed
        centres = (np.arange(hidden.shape[0]) * stride + field / 2) / AUDIO_SAMPLE_RATE
        return interpolate_rows(hidden, centres, times).astype(np.float32)

    def prepare_input(self, audio: np.ndarray, min_samples: int) -> np.ndarray:
        """Zero-pad ``audio`` ``[N]`` to ``min_samples``, then normalise it with the statistics
        of the real samples (so padding is silence, not a change of level) -> ``[L]``."""
        padded = pad_to(audio, min_samples)
        if not self.normalize or audio.shape[0] == 0:
            return padded
        real = audio.astype(np.float64)
        scaled = (padded - real.mean()) / np.sqrt(real.var() + NORM_EPS)
        return scaled.astype(np.float32)

    def encode(self, signal: np.ndarray) -> np.ndarray:
        """Model frames of a prepared ``signal`` ``[L]`` (L >= receptive field) ->
        ``[(L - R) // S + 1, hidden]`` float32, chunked as configured."""
        field, stride = self.receptive_field, self.stride
        total = (signal.shape[0] - field) // stride + 1
        s = self.settings
        chunk = None if s.chunk_s is None else max(1, round(s.chunk_s * AUDIO_SAMPLE_RATE / stride))
        context = round(s.context_s * AUDIO_SAMPLE_RATE / stride)
        pieces = []
        for lo, start, stop, hi in chunk_plan(total, chunk, context):
            frames = self.forward(signal[lo * stride:(hi - 1) * stride + field])  # [hi - lo, D]
            pieces.append(frames[start - lo:stop - lo])
        return np.concatenate(pieces, axis=0)

    def forward(self, segment: np.ndarray) -> np.ndarray:
        """One pass over ``segment`` ``[L]`` -> ``[(L - R) // S + 1, hidden]`` float32."""
        import torch

        model = self.model()
        inputs = torch.from_numpy(np.ascontiguousarray(segment))[None]
        inputs = inputs.to(device=self.device, dtype=torch_dtype(self.settings.dtype))
        self._captured.clear()
        with torch.inference_mode():
            output = model(inputs)
        hidden = output.last_hidden_state if self.settings.layer is None else self._captured[-1]
        self._captured.clear()
        return hidden[0].float().cpu().numpy()

    def model(self) -> torch.nn.Module:
        """The loaded model (loaded on first use, then kept)."""
        if self._model is None:
            self._model = self._load_model()
        return self._model

    def _load_model(self) -> torch.nn.Module:
        from transformers import AutoModel

        model, info = AutoModel.from_pretrained(
            self.checkpoint.folder, local_files_only=True, output_loading_info=True,
            dtype=torch_dtype(self.settings.dtype))
        missing = [key for key in info.get("missing_keys", []) if "masked_spec_embed" not in key]
        if missing:
            raise ValueError(f"{self.checkpoint.name}: weights missing for {sorted(missing)[:5]} "
                             f"({len(missing)} tensors); refusing to run with random weights")
        if self.settings.layer is not None:
            self._attach_layer_hook(model)
        return model.eval().to(self.device)

    def _attach_layer_hook(self, model: torch.nn.Module) -> None:
        """Record block ``layer``'s output (``layer=0``: block 1's input) and drop later blocks."""
        layer = self.settings.layer
        assert layer is not None
        # a HuBERT / wav2vec 2.0 model: its encoder holds the transformer blocks in a ModuleList
        encoder = cast("torch.nn.Module", model.encoder)
        blocks = cast("torch.nn.ModuleList", encoder.layers)
        if layer == 0:
            def keep_input(_module: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
                self._captured.append(args[0] if args else kwargs["hidden_states"])

            blocks[0].register_forward_pre_hook(keep_input, with_kwargs=True)
        else:
            def keep_output(_module: Any, _args: Any, output: Any) -> None:
                self._captured.append(output[0] if isinstance(output, tuple) else output)

            blocks[layer - 1].register_forward_hook(keep_output)
        encoder.layers = blocks[:max(layer, 1)]


def torch_dtype(name: str) -> torch.dtype:
    """``"float16"`` -> ``torch.float16`` etc."""
    import torch

    return {"float32": torch.float32, "float16": torch.float16,
            "bfloat16": torch.bfloat16}[name]


def resolve_device(device: str, dtype: str) -> str:
    """Check that ``device`` exists and suits ``dtype``; ``"auto"`` picks CUDA when present."""
    resolved = str(semtalk.devices.resolve_device(device))
    if dtype == "float16" and not resolved.startswith("cuda"):
        raise ValueError("dtype float16 needs a CUDA device; use float32 or bfloat16 on CPU")
    return resolved
