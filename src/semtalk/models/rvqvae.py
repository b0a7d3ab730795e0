"""RVQ-VAE motion tokenizer for one body part: conv encoder, residual VQ, conv decoder.

``[B, T, D]`` part features are encoded to ``[B, T/4, code_dim]`` latents (``down_t=2``),
quantised into ``[B, T/4, Q]`` codes and decoded back to ``[B, T, D]`` (spec §3.1). A trained
model is released as a folder holding ``config.json`` (the :class:`RVQVAEConfig`) and
``model.safetensors`` (all parameters and buffers, codebooks included); see
:meth:`RVQVAE.save_pretrained` and :meth:`RVQVAE.from_pretrained`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from semtalk.config import ConfigError, from_dict, to_dict
from semtalk.errors import DataError
from semtalk.modules.conv import ConvDecoder, ConvEncoder
from semtalk.modules.quantizer import QuantizerConfig, ResidualVQ

MODEL_NAME = "RVQVAE"
FORMAT_VERSION = 1
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"


@dataclass(frozen=True)
class RVQVAEConfig:
    """Configuration of :class:`RVQVAE`.

    Attributes:
        input_dim: channels D of the part features (face 106, upper 78, hands 180, lower 61).
        width: channels of the conv stacks.
        code_dim: latent channels; must equal ``quantizer.codebook_dim``.
        down_t: number of stride-2 stages; the sequence is shortened by ``2**down_t``.
        depth: residual blocks per Resnet1D stack.
        dilation_growth: dilation factor between residual blocks.
        dropout: dropout inside the residual blocks.
        quantizer: the residual quantiser.
    """

    input_dim: int
    width: int = 256
    code_dim: int = 256
    down_t: int = 2
    depth: int = 3
    dilation_growth: int = 3
    dropout: float = 0.2
    quantizer: QuantizerConfig = field(default_factory=QuantizerConfig)

    def __post_init__(self) -> None:
        problems = []
        for name in ("input_dim", "width", "code_dim", "depth", "dilation_growth"):
            if getattr(self, name) < 1:
                problems.append(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.down_t < 0:
            problems.append(f"down_t must be >= 0, got {self.down_t}")
        if not 0.0 <= self.dropout < 1.0:
            problems.append(f"dropout must be in [0, 1), got {self.dropout}")
        if self.code_dim != self.quantizer.codebook_dim:
            problems.append(f"code_dim ({self.code_dim}) must equal quantizer.codebook_dim "
                            f"({self.quantizer.codebook_dim})")
        if problems:
            raise ValueError("; ".join(problems))

    @property
    def downsample_factor(self) -> int:
        """Frames per code: ``2**down_t`` (4 for the paper)."""
        return 2**self.down_t

    @classmethod
    def paper(cls, input_dim: int) -> RVQVAEConfig:
        """The paper's / official sizes: width 256, 6 x 256 codes x 256 dims, x4 downsampling,
        residual-block dropout 0.2 and (paper, DESIGN §1) quantizer dropout 0.2. Codes are
        chosen by nearest neighbour (``sample_temperature=0``; the official code samples with
        tau = 0.5, set ``quantizer.sample_temperature`` to reproduce it)."""
        return cls(input_dim=input_dim)

    @classmethod
    def tiny(cls, input_dim: int) -> RVQVAEConfig:
        """A ~60k-parameter model with the paper's structure (3 x 64 codes), for tests and demos."""
        quantizer = QuantizerConfig(num_quantizers=3, codebook_size=64, codebook_dim=32)
        return cls(input_dim=input_dim, width=32, code_dim=32, depth=2, quantizer=quantizer)


@dataclass
class RVQVAEOutput:
    """What :meth:`RVQVAE.forward` returns.

    Attributes:
        reconstruction: ``[B, T, D]`` decoded features.
        codes: ``[B, T/4, Q]`` code indices (-1 where quantizer dropout dropped a layer).
        commitment_loss: scalar, already multiplied by ``quantizer.commitment_weight``.
        perplexity: ``[Q]`` per-layer code perplexity in this batch.
        usage: ``[Q]`` per-layer fraction of the codebook used in this batch.
    """

    reconstruction: torch.Tensor
    codes: torch.Tensor
    commitment_loss: torch.Tensor
    perplexity: torch.Tensor
    usage: torch.Tensor


class RVQVAE(nn.Module):
    """Residual-VQ autoencoder of one body part's motion features (spec §3.1)."""

    def __init__(self, config: RVQVAEConfig) -> None:
        super().__init__()
        self.config = config
        arch = dict(width=config.width, code_dim=config.code_dim, depth=config.depth,
                    dilation_growth=config.dilation_growth, dropout=config.dropout)
        self.encoder = ConvEncoder(config.input_dim, down_t=config.down_t, **arch)
        self.quantizer = ResidualVQ(config.quantizer)
        self.decoder = ConvDecoder(config.input_dim, up_t=config.down_t, **arch)

    def _latents(self, x: torch.Tensor) -> torch.Tensor:
        """Encoder output ``[B, T/4, code_dim]`` of ``x [B, T, D]`` after shape checks."""
        factor = self.config.downsample_factor
        if x.dim() != 3 or x.shape[-1] != self.config.input_dim:
            raise ValueError(f"RVQVAE expects [B, T, {self.config.input_dim}] input, "
                             f"got shape {tuple(x.shape)}")
        if x.shape[1] == 0 or x.shape[1] % factor:
            raise ValueError(f"RVQVAE needs a sequence length that is a positive multiple of "
                             f"{factor}, got T={x.shape[1]}")
        return self.encoder(x)

    def forward(self, x: torch.Tensor) -> RVQVAEOutput:
        """Encode, quantise and decode ``x [B, T, D]`` (T a multiple of 4)."""
        quantized = self.quantizer(self._latents(x))
        return RVQVAEOutput(
            reconstruction=self.decoder(quantized.quantized),
            codes=quantized.codes,
            commitment_loss=quantized.commitment_loss,
            perplexity=quantized.perplexity,
            usage=quantized.usage,
        )

    @torch.no_grad()
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Nearest codes of every layer: ``[B, T, D] -> [B, T/4, Q]`` (long)."""
        return self.quantizer.encode(self._latents(x))

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """Features from codes: ``[B, T/4, Q'] -> [B, T, D]`` (Q' <= Q, -1 entries ignored)."""
        return self.decoder(self.quantizer.decode(codes))

    def codes_to_vectors(self, codes: torch.Tensor) -> torch.Tensor:
        """Per-layer code vectors ``[Q', B, T/4, code_dim]`` (the official ``map2zq``)."""
        return self.quantizer.codes_to_vectors(codes)

    def save_pretrained(self, folder: str | Path) -> Path:
        """Write ``config.json`` and ``model.safetensors`` into ``folder`` (created if needed).

        Each file is written to a temporary name and renamed, so a crash never leaves a
        half-written release. Returns the folder.
        """
        from safetensors.torch import save_file

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        header = {"model": MODEL_NAME, "format_version": FORMAT_VERSION,
                  "config": to_dict(self.config)}
        _write_atomically(folder / CONFIG_FILE,
                          lambda path: path.write_text(json.dumps(header, indent=2) + "\n",
                                                       encoding="utf-8"))
        tensors = {name: value.detach().cpu().contiguous()
                   for name, value in self.state_dict().items()}
        metadata = {"model": MODEL_NAME, "format_version": str(FORMAT_VERSION)}
        _write_atomically(folder / WEIGHTS_FILE,
                          lambda path: save_file(tensors, str(path), metadata=metadata))
        return folder

    @classmethod
    def from_pretrained(cls, folder: str | Path,
                        device: torch.device | str = "cpu") -> RVQVAE:
        """Rebuild the model from ``folder/config.json`` and load ``model.safetensors`` strictly.

        Returns the model in eval mode on ``device``. Raises :class:`~semtalk.errors.DataError`
        naming the file when a file is missing or unreadable, the config is not an RVQVAE
        config, or the tensors differ from the model the config describes (missing, unexpected
        or mis-shaped names are all listed).
        """
        folder = Path(folder)
        config = _read_config(folder / CONFIG_FILE)
        model = cls(config)
        state = _read_weights(folder / WEIGHTS_FILE, device)
        _check_state(folder / WEIGHTS_FILE, model.state_dict(), state)
        model.load_state_dict(state, strict=True)
        return model.to(device).eval()


def _write_atomically(path: Path, write: Callable[[Path], object]) -> None:
    """Call ``write(tmp_path)`` then rename the temporary file to ``path``."""
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _read_config(path: Path) -> RVQVAEConfig:
    """Parse and validate an RVQVAE ``config.json``."""
    try:
        header = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(path, "not found: a release folder needs config.json") from None
    except (OSError, json.JSONDecodeError) as exc:
        raise DataError(path, f"cannot read config: {exc}") from exc
    if not isinstance(header, dict):
        raise DataError(path, "config.json must hold a JSON object")
    if header.get("model") != MODEL_NAME:
        raise DataError(path, f"holds a {header.get('model')!r} model, expected {MODEL_NAME!r}")
    if header.get("format_version") != FORMAT_VERSION:
        raise DataError(path, f"format_version {header.get('format_version')!r} is not "
                              f"supported (expected {FORMAT_VERSION})")
    extra = sorted(set(header) - {"model", "format_version", "config"})
    if extra:
        raise DataError(path, f"unknown top-level key(s) {extra}")
    if not isinstance(header.get("config"), dict):
        raise DataError(path, "missing the 'config' object")
    try:
        return from_dict(RVQVAEConfig, header["config"], "config")
    except ConfigError as exc:
        raise DataError(path, str(exc)) from exc


def _read_weights(path: Path, device: torch.device | str) -> dict[str, torch.Tensor]:
    """All tensors of a safetensors file, on ``device``."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    if not path.is_file():
        raise DataError(path, "not found: a release folder needs model.safetensors")
    try:
        return load_file(str(path), device=str(device))
    except (SafetensorError, OSError) as exc:
        raise DataError(path, f"cannot read weights: {exc}") from exc


def _check_state(path: Path, expected: dict[str, torch.Tensor],
                 found: dict[str, torch.Tensor]) -> None:
    """Raise naming every missing, unexpected and mis-shaped tensor of ``found``."""
    missing = sorted(set(expected) - set(found))
    unexpected = sorted(set(found) - set(expected))
    misshaped = [f"{name}: file {tuple(found[name].shape)} vs model {tuple(value.shape)}"
                 for name, value in expected.items()
                 if name in found and found[name].shape != value.shape]
    problems = []
    if missing:
        problems.append(f"missing tensors {missing}")
    if unexpected:
        problems.append(f"unexpected tensors {unexpected}")
    if misshaped:
        problems.append("mis-shaped tensors [" + "; ".join(misshaped) + "]")
    if problems:
        raise DataError(path, "does not match the model its config.json describes: "
                              + ", ".join(problems))
