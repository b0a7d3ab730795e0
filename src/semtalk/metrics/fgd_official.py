"""Load EMAGE's public FGD evaluator ``AESKConv_240_100.bin`` into :class:`FGDAutoencoder`.

FGD numbers are comparable with the SemTalk / EMAGE papers **only** when the latents come from
this exact checkpoint: FGD measures distances in one particular network's feature space, and a
network trained by anyone else (including ``semtalk train fgd-encoder``) gives numbers on a
different scale.

Obtaining the file: it is not shipped with semtalk and needs network access once. It comes
with EMAGE's evaluation assets on Hugging Face (the Space's copy is 17,558,653 bytes according
to its git-LFS pointer, mirrored in ``camenduru/EMAGE-hf``):

- model repository ``H-Liu1997/emage_evaltools``: ``AESKConv_240_100.bin``, next to
  ``mean_vel_smplxflame_30.npy`` (BC's speed normaliser) and
  ``smplx_models/smplx/SMPLX_NEUTRAL_2020.npz``; e.g.
  ``huggingface-cli download H-Liu1997/emage_evaltools AESKConv_240_100.bin --local-dir w``;
- dataset repository ``H-Liu1997/BEAT2``: ``beat_english_v2.0.0/weights/AESKConv_240_100.bin``
  (``--repo-type dataset``);
- Space ``H-Liu1997/EMAGE``: ``EMAGE/test_sequences/weights/AESKConv_240_100.bin``.

Then ``load_official_fgd_encoder("w/AESKConv_240_100.bin")``. The architecture check below was
done without the file: a ``torch.save`` of a state dict with exactly the names and shapes listed
here (56 tensors, 4,384,500 values) is within 0.1 kB of the public file's size.

File format: a torch pickle ``{"model_state": state_dict}`` of the whole ``VAESKConv``
(keys possibly prefixed ``module.`` by DataParallel). It is read with
``torch.load(weights_only=True)``, which refuses arbitrary pickled objects. Official key names
and how they map onto ours (``i`` = layer 0..3):

- ``encoder.layers.i.0.residual.0.{weight,bias}`` -> ``encoder.layers.i.conv.{weight,bias}``
- ``encoder.layers.i.0.residual.1.{weight,bias}`` -> ``encoder.layers.i.norm.{weight,bias}``
- ``encoder.layers.i.0.shortcut.{weight,bias}`` -> ``encoder.layers.i.shortcut.{weight,bias}``
- ``encoder.layers.i.0.residual.0.mask`` / ``shortcut.mask``: checked against the buffers
  ``encoder.layers.i.conv.mask`` / ``encoder.layers.i.shortcut.mask``, then dropped
- ``encoder.layers.i.0.common.0.weight`` (layers 0 and 1 only): checked against the buffer
  ``encoder.layers.i.pool``, then dropped
- ``decoder.main.r.model.{0,2}.{weight,bias}`` -> ``decoder.resblocks.r.conv{1,2}.{weight,bias}``
- ``decoder.main.{3,6,9,12}.{weight,bias}`` -> ``decoder.upsample.{0,1,2,3}.{weight,bias}``
- ``decoder.main.14.{weight,bias}`` -> ``decoder.out.{weight,bias}``
- ``fc_mu.*``, ``fc_logvar.*``: dropped (the evaluator is not variational; they are unused)

The masks and pooling matrices are structure, not learned values: they must equal the ones
semtalk derives from the SMPL-X kinematic tree, which confirms that the edge order and
neighbourhoods were ported correctly. A file that differs anywhere fails loudly, listing the
keys.
"""

from __future__ import annotations

from pathlib import Path

import torch

from semtalk.errors import DataError, require_file
from semtalk.metrics.fgd_encoder import FGDAutoencoder, FGDEncoderConfig
from semtalk.models.pretrained import check_state

IGNORED_PREFIXES = ("fc_mu.", "fc_logvar.")
"""Official tensors with no counterpart: the variational head, unused with variational=False."""


def official_key_map(config: FGDEncoderConfig) -> tuple[dict[str, str], dict[str, str]]:
    """Official checkpoint key -> semtalk key, for parameters and for structural buffers.

    Returns:
        ``(parameters, structure)``: ``parameters`` maps trained tensors to state-dict names of
        :class:`FGDAutoencoder`; ``structure`` maps the official masks and pooling matrices to
        the names of the buffers they must equal.
    """
    parameters: dict[str, str] = {}
    structure: dict[str, str] = {}
    for i, layer in enumerate(config.topology):
        old, new = f"encoder.layers.{i}.0.", f"encoder.layers.{i}."
        for kind in ("weight", "bias"):
            parameters[f"{old}residual.0.{kind}"] = f"{new}conv.{kind}"
            parameters[f"{old}residual.1.{kind}"] = f"{new}norm.{kind}"
            parameters[f"{old}shortcut.{kind}"] = f"{new}shortcut.{kind}"
        structure[f"{old}residual.0.mask"] = f"{new}conv.mask"
        structure[f"{old}shortcut.mask"] = f"{new}shortcut.mask"
        if layer.pool_groups is not None:
            structure[f"{old}common.0.weight"] = f"{new}pool"
    blocks = config.decoder_resblocks
    for kind in ("weight", "bias"):
        for r in range(blocks):
            parameters[f"decoder.main.{r}.model.0.{kind}"] = f"decoder.resblocks.{r}.conv1.{kind}"
            parameters[f"decoder.main.{r}.model.2.{kind}"] = f"decoder.resblocks.{r}.conv2.{kind}"
        for i in range(config.num_layers):  # each stage is Upsample, Conv1d, LeakyReLU
            parameters[f"decoder.main.{blocks + 3 * i + 1}.{kind}"] = f"decoder.upsample.{i}.{kind}"
        parameters[f"decoder.main.{blocks + 3 * config.num_layers}.{kind}"] = f"decoder.out.{kind}"
    return parameters, structure


def read_official_checkpoint(path: str | Path) -> dict[str, torch.Tensor]:
    """The state dict inside an official ``.bin`` file, ``module.`` prefixes removed."""
    path = require_file(path, "FGD evaluator checkpoint")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises pickle, zip and runtime errors alike
        raise DataError(path, f"cannot read as a torch checkpoint (weights_only): {exc}") from exc
    if isinstance(checkpoint, dict) and "model_state" in checkpoint:
        checkpoint = checkpoint["model_state"]
    if not isinstance(checkpoint, dict) or not all(
            isinstance(v, torch.Tensor) for v in checkpoint.values()):
        raise DataError(path, "expected {'model_state': state_dict} or a state dict of tensors")
    return {(k[len("module."):] if k.startswith("module.") else k): v
            for k, v in checkpoint.items()}


def convert_official_state(path: Path, official: dict[str, torch.Tensor], model: FGDAutoencoder,
                           check_structure: bool = True) -> dict[str, torch.Tensor]:
    """Rename an official state dict to ``model``'s names, checking every key and shape.

    Raises:
        DataError: naming ``path`` and every missing, unexpected or mis-shaped key, or every
            mask / pooling matrix that differs from the one derived from the skeleton.
    """
    parameters, structure = official_key_map(model.config)
    buffers = dict(model.named_buffers())
    own = model.state_dict()
    expected = {**{k: own[v] for k, v in parameters.items()},
                **{k: buffers[v] for k, v in structure.items()}}
    check_state(path, expected, official,
                optional=() if check_structure else structure,
                ignored_prefixes=IGNORED_PREFIXES,
                context="is not an AESKConv checkpoint of this configuration")
    if check_structure:
        differing = [k for k, v in structure.items()
                     if not torch.equal(official[k].to(buffers[v]), buffers[v])]
        if differing:
            raise DataError(path, f"skeleton structure differs from the SMPL-X tree semtalk "
                                  f"derives (edge order or neighbourhoods): {differing}")
    return {new: official[old] for old, new in parameters.items()}


def load_official_fgd_encoder(path: str | Path, config: FGDEncoderConfig | None = None,
                              device: torch.device | str = "cpu",
                              check_structure: bool = True) -> FGDAutoencoder:
    """:class:`FGDAutoencoder` (encoder and decoder) with the weights of an official checkpoint.

    Args:
        path: ``AESKConv_240_100.bin`` (see the module docstring for where to get it).
        config: architecture; the default is the official one (SMPL-X tree, 240-d latents).
        device: where the returned model lives.
        check_structure: compare the file's masks and pooling matrices with ours (on by
            default; turning it off skips the skeleton check, not the key check).

    Returns:
        The model in eval mode. ``model.encode(rot6d [B, T, 330])`` gives the FGD latents.

    Raises:
        DataError: if the file is missing, unreadable, or its tensors do not match (names,
            shapes or skeleton structure), with every offending key named.
    """
    path = Path(path)
    model = FGDAutoencoder(config or FGDEncoderConfig())
    state = convert_official_state(path, read_official_checkpoint(path), model, check_structure)
    model.load_state_dict(state, strict=True)
    return model.to(device).eval()
