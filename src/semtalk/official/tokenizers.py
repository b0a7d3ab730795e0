"""Official RVQ-VAE tokenizers and global-motion net -> semtalk models, by strict key maps.

The official files ``rvq_{face,upper,hands,lower}_*.bin`` hold an ``RVQVAE`` state dict and
``last_1700_foot.bin`` a ``VAEConvZero`` one (fixture README §2; spec §3). The key maps here are
plain ``{official key: semtalk key}`` dicts (official keys without the ``module.`` prefix). A
conversion checks that every official key is mapped exactly once, that every semtalk state entry
is filled exactly once, and that shapes agree, naming both keys on a mismatch; it then loads
with ``strict=True`` and returns the model in eval mode.

Reproduced official behaviour (the configs below select it):

- RVQ-VAE sizes are hard-coded in the official code (width 256, code_dim 256, 2 stride-2
  stages, 3 residual blocks per stack with dilations 9, 3, 1 in that order, ReLU, dropout 0.2,
  6 quantiser layers of 256 codes); the config keys ``vae_layer``/``vae_length`` are ignored.
- The official quantiser subtracts the straight-through value ``r + (e - r)`` from the residual,
  not ``e`` (``QuantizerConfig.straight_through_residual``); codes are the arg-min of
  ``|r|^2 - 2 r.e + |e|^2``.
- The official quantiser dropout is configured (0.2) but commented out, so ``quantize_dropout``
  is 0; training-time code choice is Gumbel-max with temperature 0.5.
- No feature normalisation: the official model sees the raw part vectors.
- The official files store only the codebooks of the EMA quantiser, not its statistics.

Semtalk state entries with no official counterpart, and the neutral values they receive
(:data:`RVQ_NEUTRAL_BUFFERS`): ``feature_mean`` = 0 and ``feature_std`` = 1 (identity
normalisation, so the computation is the official one), and per quantiser layer
``cluster_size`` = 1 (every code alive), ``embed_sum`` = the codebook (EMA mean = codebook),
``initialized`` = True (no re-initialisation from the first training batch). The global-motion
net has none.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import torch
from torch import nn

from semtalk.body.parts import BodyPart
from semtalk.models.global_motion import GlobalMotionConfig, GlobalMotionNet
from semtalk.models.rvqvae import RVQVAE, RVQVAEConfig
from semtalk.modules.quantizer import QuantizerConfig

_MODULE_PREFIX = "module."

OFFICIAL_RVQ_FILES: dict[BodyPart, str] = {
    BodyPart.FACE: "rvq_face_600.bin",
    BodyPart.UPPER: "rvq_upper_500.bin",
    BodyPart.HANDS: "rvq_hands_500.bin",
    BodyPart.LOWER: "rvq_lower_600.bin",
}
"""Official file name of each part's tokenizer (under ``weights/pretrained_vq/``)."""

OFFICIAL_GLOBAL_MOTION_FILE = "last_1700_foot.bin"
"""Official file name of the global-motion net (under ``weights/pretrained_vq/``)."""


RVQ_NEUTRAL_BUFFERS: dict[str, str] = {
    "feature_mean": "zeros (identity normalisation)",
    "feature_std": "ones (identity normalisation)",
    "quantizer.layers.<k>.cluster_size": "ones (every code alive)",
    "quantizer.layers.<k>.embed_sum": "the layer's codebook (EMA mean equals the codebook)",
    "quantizer.layers.<k>.initialized": "True (never re-initialised from a batch)",
}
"""Semtalk RVQVAE state entries with no official counterpart and the value each receives."""


def _strip_module_prefix(state: Mapping[str, torch.Tensor], source: str) -> dict[str, torch.Tensor]:
    """``state`` without the ``module.`` prefix of a DataParallel save.

    All keys or none may carry it; a mix is rejected.
    """
    prefixed = [key for key in state if key.startswith(_MODULE_PREFIX)]
    if not prefixed:
        return dict(state)
    if len(prefixed) != len(state):
        bare = sorted(key for key in state if not key.startswith(_MODULE_PREFIX))
        raise ValueError(f"{source}: keys mix the 'module.' prefix with bare keys "
                         f"(bare: {bare[:5]}{' ...' if len(bare) > 5 else ''})")
    return {key[len(_MODULE_PREFIX):]: value for key, value in state.items()}


def official_rvq_config(part: BodyPart) -> RVQVAEConfig:
    """The architecture of the official ``part`` tokenizer (identity normalisation)."""
    quantizer = QuantizerConfig(num_quantizers=6, codebook_size=256, codebook_dim=256,
                                ema_decay=0.99, dead_code_threshold=1.0,
                                sample_temperature=0.5, quantize_dropout=0.0,
                                commitment_weight=1.0, straight_through_residual=True)
    return RVQVAEConfig(input_dim=BodyPart(part).dim, width=256, code_dim=256, down_t=2,
                        depth=3, dilation_growth=3, dropout=0.2, quantizer=quantizer)


def _conv(official: str, ours: str) -> dict[str, str]:
    return {f"{official}.{name}": f"{ours}.{name}" for name in ("weight", "bias")}


def _rvq_resnet(official: str, ours: str, depth: int) -> dict[str, str]:
    """Official ``Resnet1D`` (``model.<i>.conv1/conv2``) -> ours (``<i>.dilated/pointwise``).

    Both build block i with dilation ``growth**i`` and then reverse the list, so block i of the
    one is block i of the other.
    """
    mapping: dict[str, str] = {}
    for block in range(depth):
        mapping |= _conv(f"{official}.model.{block}.conv1", f"{ours}.{block}.dilated")
        mapping |= _conv(f"{official}.model.{block}.conv2", f"{ours}.{block}.pointwise")
    return mapping


def rvq_key_map(part: BodyPart) -> dict[str, str]:
    """``{official key: semtalk RVQVAE key}`` of the ``part`` tokenizer (no ``module.``).

    Official encoder ``model``: 0 conv, 1 ReLU, 2+s = [strided conv, Resnet1D] for stage s,
    then the output conv. Ours (``net``): 0 conv, 1 ReLU, 2+2s strided conv, 3+2s Resnet1D, then
    the output conv. Official decoder ``model``: 0 conv, 1 ReLU, 2+s = [Resnet1D, upsample,
    conv], conv, ReLU, conv. Ours: 0 conv, 1 ReLU, 2+3s Resnet1D, 3+3s upsample, 4+3s conv,
    then conv, ReLU, conv.
    """
    config = official_rvq_config(part)
    stages, depth = config.down_t, config.depth
    mapping = _conv("encoder.model.0", "encoder.net.0")
    for stage in range(stages):
        mapping |= _conv(f"encoder.model.{2 + stage}.0", f"encoder.net.{2 + 2 * stage}")
        mapping |= _rvq_resnet(f"encoder.model.{2 + stage}.1", f"encoder.net.{3 + 2 * stage}",
                               depth)
    mapping |= _conv(f"encoder.model.{2 + stages}", f"encoder.net.{2 + 2 * stages}")
    mapping |= _conv("decoder.model.0", "decoder.net.0")
    for stage in range(stages):
        mapping |= _rvq_resnet(f"decoder.model.{2 + stage}.0", f"decoder.net.{2 + 3 * stage}",
                               depth)
        mapping |= _conv(f"decoder.model.{2 + stage}.2", f"decoder.net.{4 + 3 * stage}")
    mapping |= _conv(f"decoder.model.{2 + stages}", f"decoder.net.{2 + 3 * stages}")
    mapping |= _conv(f"decoder.model.{4 + stages}", f"decoder.net.{4 + 3 * stages}")
    for layer in range(config.quantizer.num_quantizers):
        mapping[f"quantizer.layers.{layer}.codebook"] = f"quantizer.layers.{layer}.codebook"
    return mapping


def _rvq_neutral_value(key: str, converted: Mapping[str, torch.Tensor],
                       like: torch.Tensor) -> torch.Tensor | None:
    """The documented neutral value of a non-official RVQVAE entry, or None if ``key`` is not
    one of :data:`RVQ_NEUTRAL_BUFFERS`."""
    if key == "feature_mean":
        return torch.zeros_like(like)
    if key == "feature_std":
        return torch.ones_like(like)
    head, _, name = key.rpartition(".")
    if not head.startswith("quantizer.layers."):
        return None
    codebook = converted.get(f"{head}.codebook")
    if name == "cluster_size":
        return torch.ones_like(like)
    if name == "embed_sum" and codebook is not None:
        return codebook.clone()
    if name == "initialized":
        return torch.ones_like(like)
    return None


def global_motion_key_map(config: GlobalMotionConfig | None = None) -> dict[str, str]:
    """``{official key: semtalk GlobalMotionNet key}`` of ``last_1700_foot.bin``.

    Official encoder ``main``: per layer i, 3i conv, 3i+1 LeakyReLU, 3i+2 ResBlock
    (``model.0``/``model.2`` its two convs); ours ``encoder.net`` has the same indices with
    ``first``/``second``. Official decoder ``main``: 0, 1 ResBlocks, then 2+2i conv, 3+2i
    LeakyReLU, and the final conv; ours ``decoder`` has the same indices.
    """
    config = config or GlobalMotionConfig()
    mapping: dict[str, str] = {}

    def resblock(official: str, ours: str) -> None:
        mapping.update(_conv(f"{official}.model.0", f"{ours}.first"))
        mapping.update(_conv(f"{official}.model.2", f"{ours}.second"))

    for layer in range(config.layers):
        mapping |= _conv(f"encoder.main.{3 * layer}", f"encoder.net.{3 * layer}")
        resblock(f"encoder.main.{3 * layer + 2}", f"encoder.net.{3 * layer + 2}")
    for block in range(2):
        resblock(f"decoder.main.{block}", f"decoder.{block}")
    for index in [2 + 2 * layer for layer in range(config.layers)] + [2 + 2 * config.layers]:
        mapping |= _conv(f"decoder.main.{index}", f"decoder.{index}")
    return mapping


def _convert(state: Mapping[str, torch.Tensor], key_map: Mapping[str, str],
             expected: Mapping[str, torch.Tensor], source: str,
             neutral: Callable[[str, Mapping[str, torch.Tensor], torch.Tensor],
                               torch.Tensor | None] | None = None) -> dict[str, torch.Tensor]:
    """Our state dict from an official one (already without ``module.``), strictly."""
    targets = list(key_map.values())
    duplicated = sorted({t for t in targets if targets.count(t) > 1})
    if duplicated:
        raise ValueError(f"{source}: key map sends several official keys to {duplicated}")
    unknown_targets = sorted(set(targets) - set(expected))
    if unknown_targets:
        raise ValueError(f"{source}: key map targets {unknown_targets} do not exist in the "
                         f"semtalk model")
    missing = sorted(set(key_map) - set(state))
    unexpected = sorted(set(state) - set(key_map))
    problems = []
    if missing:
        problems.append(f"missing official keys {missing}")
    if unexpected:
        problems.append(f"unexpected official keys {unexpected}")
    misshaped = [f"official {key} {tuple(state[key].shape)} vs semtalk {ours} "
                 f"{tuple(expected[ours].shape)}"
                 for key, ours in key_map.items()
                 if key in state and tuple(state[key].shape) != tuple(expected[ours].shape)]
    if misshaped:
        problems.append("mis-shaped tensors [" + "; ".join(misshaped) + "]")
    if problems:
        raise ValueError(f"{source}: does not match the official model: " + ", ".join(problems))
    converted = {ours: state[key].detach().to(expected[ours].dtype).clone()
                 for key, ours in key_map.items()}
    unfilled = []
    for key, like in expected.items():
        if key in converted:
            continue
        value = neutral(key, converted, like) if neutral is not None else None
        if value is None:
            unfilled.append(key)
        else:
            converted[key] = value
    if unfilled:
        raise ValueError(f"{source}: semtalk entries {sorted(unfilled)} have neither an official "
                         f"key nor a documented neutral value")
    return converted


def _load(model: nn.Module, converted: dict[str, torch.Tensor]) -> None:
    model.load_state_dict(converted, strict=True)
    model.eval()


def rvq_from_official(state: Mapping[str, torch.Tensor], part: BodyPart,
                      source: str | None = None) -> RVQVAE:
    """A semtalk :class:`RVQVAE` (eval mode) holding an official ``part`` tokenizer.

    Args:
        state: the official ``model_state`` (keys with or without ``module.``).
        part: the body part the file belongs to.
        source: name used in error messages (default: the official file name).

    Raises:
        ValueError: naming every missing, unexpected or mis-shaped key (official and semtalk).
    """
    part = BodyPart(part)
    source = source or OFFICIAL_RVQ_FILES[part]
    model = RVQVAE(official_rvq_config(part))
    converted = _convert(_strip_module_prefix(state, source), rvq_key_map(part),
                         model.state_dict(), source, _rvq_neutral_value)
    _load(model, converted)
    return model


def global_motion_from_official(state: Mapping[str, torch.Tensor],
                                source: str | None = None) -> GlobalMotionNet:
    """A semtalk :class:`GlobalMotionNet` (eval mode) holding ``last_1700_foot.bin``.

    Raises:
        ValueError: naming every missing, unexpected or mis-shaped key (official and semtalk).
    """
    source = source or OFFICIAL_GLOBAL_MOTION_FILE
    config = GlobalMotionConfig()
    model = GlobalMotionNet(config)
    converted = _convert(_strip_module_prefix(state, source), global_motion_key_map(config),
                         model.state_dict(), source)
    _load(model, converted)
    return model
