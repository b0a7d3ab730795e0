"""Per-window CLIP ViT-B/32 sentence embeddings as the official code computes them.

The official code encodes each window sentence (and each emotion label) with OpenAI CLIP's
``encode_text``: BPE tokens truncated to 77 (``clip.tokenize(truncate=True)``: start token, at
most 75 word tokens, end token), the text transformer, the final LayerNorm, the feature at the
end-of-text token, times ``text_projection`` -> 512 values, then ``.float()``. Here the same
network runs as ``transformers.CLIPTextModelWithProjection`` (``text_embeds``) from a local
folder, through :class:`semtalk.features.sentence.ClipTextEncoder` (which refuses a tokenizer
without the 49,408-token BPE vocabulary, the silent offline failure of ``CLIPTokenizer``).

Precision: the official loader calls ``clip.model.convert_weights``, so on its GPU the text
tower ran in **float16** (Linear / attention weights and the projection in half, LayerNorms
computed in float32 and cast back, embeddings cast to half). ``dtype=torch.float16``
reproduces that conversion (:func:`convert_to_openai_half`); the default float32 is the exact
network without the half-precision rounding. Measured on a random ViT-B/32-sized text tower
(``benchmarks/clip_fp16.py``): the two differ by cosine 1 - 1e-6 and at most 5.2e-3 per
value (embedding norm ~24).

Known small differences from OpenAI's tokenizer: its ``ftfy``/HTML clean-up only runs in
transformers when ``ftfy`` is installed; plain lower-case word sentences (all the official
windows) tokenize identically.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from semtalk.features.sentence import ClipTextEncoder

if TYPE_CHECKING:
    import torch

CLIP_TEXT_DIM = 512


def convert_to_openai_half(model: torch.nn.Module) -> torch.nn.Module:
    """Convert a CLIP text model in place as ``clip.model.convert_weights`` + OpenAI's
    ``LayerNorm`` do: every parameter in float16 except LayerNorms, which stay float32 and
    compute in float32 on a float32 copy of their input, returning float16."""
    import torch

    def to_float32(_module: Any, args: tuple[Any, ...]) -> tuple[Any, ...]:
        return (args[0].float(), *args[1:])

    def to_half(_module: Any, _args: Any, output: torch.Tensor) -> torch.Tensor:
        return output.half()

    model.half()
    for module in model.modules():
        if isinstance(module, torch.nn.LayerNorm):
            module.float()
            module.register_forward_pre_hook(to_float32)
            module.register_forward_hook(to_half)
    return model


class OfficialClipTextEncoder:
    """CLIP text embeddings ``[N, 512]`` of window sentences, loaded once from a local folder.

    Args:
        model_dir: a transformers-format CLIP folder (``openai/clip-vit-base-patch32`` or its
            text half) with the tokenizer files (vocab.json + merges.txt or tokenizer.json).
        device: where the model runs.
        dtype: ``torch.float32`` (default) or ``torch.float16`` (the official GPU precision,
            see the module doc). Outputs are float32 either way.
        batch_size: sentences per forward pass.
    """

    def __init__(self, model_dir: str | Path, device: str = "cpu",
                 dtype: torch.dtype | None = None, batch_size: int = 64) -> None:
        import torch

        self.dtype = dtype or torch.float32
        if self.dtype not in (torch.float32, torch.float16):
            raise ValueError(f"dtype must be torch.float32 or torch.float16, got {self.dtype}")
        self._encoder = ClipTextEncoder(Path(model_dir), batch_size, device)
        if self.dtype == torch.float16:
            convert_to_openai_half(self._encoder.model)

    @property
    def dim(self) -> int:
        return self._encoder.dim

    @property
    def model(self) -> torch.nn.Module:
        model: torch.nn.Module = self._encoder.model
        return model

    def encode(self, sentences: Sequence[str]) -> np.ndarray:
        """``[N, dim]`` float32 projected end-of-text features, one row per sentence."""
        import torch

        if not sentences:
            return np.zeros((0, self.dim), dtype=np.float32)
        with torch.no_grad():
            return self._encoder.encode(list(sentences)).astype(np.float32, copy=False)


def official_clip_text_features(sentences: Sequence[str], model_dir: str | Path,
                                device: str = "cpu",
                                dtype: torch.dtype | None = None) -> np.ndarray:
    """``[N, 512]`` float32 CLIP text embeddings of ``sentences`` (see
    :class:`OfficialClipTextEncoder`)."""
    return OfficialClipTextEncoder(model_dir, device, dtype).encode(sentences)
