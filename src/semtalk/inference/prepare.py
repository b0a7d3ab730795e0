"""``prepare_for_inference``: swap the CPU inference fast modules into a model's module tree.

The plain model (``semtalk.models``) is the reference; its prepared copy computes the same up
to float rounding (tests compare both), faster. The swaps, by module type:

- the base model's :class:`~semtalk.models.base_generator.FaceBranch` -> :class:`FastFaceBranch`
  (its memory Linear folded into the decoder's keys and values, the first decoder layer's
  self-attention and query kept per speakers and length: the decoder's target, speaker plus
  positions, is the same in every window);
- :class:`~semtalk.models.body_branch.BodyBranch`: its ``word_memory`` Linear folded into the
  word-hints decoder (it becomes ``nn.Identity``);
- :class:`~semtalk.modules.code_heads.CodeHeads` ->
  :class:`~semtalk.inference.heads.StackedCodeHeads`;
- ``nn.TransformerDecoder`` / ``nn.TransformerEncoder`` ->
  :class:`~semtalk.inference.attention.FastDecoder` / ``FastEncoder``;
- :class:`~semtalk.modules.temporal.TemporalDownsample` ->
  :class:`~semtalk.inference.conv.FastDownsample`; stride-1 ``nn.Conv1d`` that pay ->
  :class:`~semtalk.inference.conv.UnfoldedConv1d`;
- ``nn.Linear`` with a weight worth packing -> :class:`~semtalk.inference.packed.PackedLinear`.

Packed products hold only the packed weight: the dense original leaves the model (a prepared
paper-size release holds each weight once). Packing is for float32 on the CPU only; in bfloat16
or on a GPU the fast modules run PyTorch's products (prepare after casting). A prepared model is
for inference only: ``train()`` and inputs that need gradients raise.
"""

from __future__ import annotations

import ctypes
import functools
from collections.abc import Callable
from typing import cast

import torch
from torch import nn

from semtalk.inference.attention import (
    FastDecoder,
    FastDecoderLayer,
    FastEncoder,
    KeysValues,
    supported_layers,
)
from semtalk.inference.conv import FastDownsample, UnfoldedConv1d, unfolds
from semtalk.inference.heads import StackedCodeHeads, can_stack
from semtalk.inference.packed import InferenceModule, PackedLinear, packable
from semtalk.models.base_generator import FaceBranch
from semtalk.models.body_branch import BodyBranch
from semtalk.modules.code_heads import CodeHeads
from semtalk.modules.temporal import TemporalDownsample

_PREPARED = "_semtalk_prepared_for_inference"


class FastFaceBranch(FaceBranch, InferenceModule):
    """:class:`FaceBranch` in inference: the memory Linear folded into the decoder's keys and
    values, and the first decoder layer's self-attended target and cross-attention query
    computed once per speakers and length (exactly what each window would compute)."""

    decoder: FastDecoder

    def __init__(self, face: FaceBranch) -> None:
        if not isinstance(face.decoder, nn.TransformerDecoder):
            raise TypeError("FastFaceBranch needs a plain face branch (an nn.TransformerDecoder), "
                            f"got a {type(face.decoder).__name__}")
        nn.Module.__init__(self)
        self.speaker = face.speaker
        self.seed = _prepared_tree(face.seed)
        self.memory_position = face.memory_position
        self.position = face.position
        self.decoder = FastDecoder(face.decoder, projection=face.memory, release=True)
        self.out = _prepared_tree(face.out)
        self._first: dict[tuple[object, ...], KeysValues] = {}

    def forward(self, seed: torch.Tensor, audio: torch.Tensor,
                speaker: torch.Tensor) -> torch.Tensor:
        """f_e ``[B, T/4, L]``."""
        keys_values = self.decoder.keys_values(self.memory_input(seed, audio))
        first = self.first_layer(speaker, seed.shape[1])
        return self.out(self.decoder.decode(first[0], keys_values, first))

    def first_layer(self, speaker: torch.Tensor, frames: int) -> KeysValues:
        """The first decoder layer's self-attended target and cross-attention query for these
        speakers and length (kept: the weights of a prepared model do not change)."""
        key = (tuple(speaker.tolist()), frames)
        known = self._first.get(key)
        if known is None:
            layer = cast(FastDecoderLayer, self.decoder.layers[0])  # FastDecoder builds them
            attended = layer.self_attended(self.query(speaker, frames))
            known = self._first[key] = (attended, layer.cross_query(attended))
        return known


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    """glibc's ``malloc_trim``, or None (another C library)."""
    try:
        return ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):
        return None


def return_freed_memory() -> None:
    """Hand the heap's free pages back to the system (glibc's ``malloc_trim``; nothing
    elsewhere). The packed copies are allocated while the dense weights they replace are
    freed, which leaves the heap full of holes that glibc keeps (about 350 MB at paper size);
    a generation leaves some more (about 100 MB at paper size), which the next one, or the
    next utterance's feature extraction, would otherwise stack its peak on."""
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


def _fold_word_memory(body: BodyBranch) -> None:
    """The body branch's word-memory Linear folded into its word-hints decoder."""
    if (type(body.word_memory) is nn.Linear and type(body.word_hints) is nn.TransformerDecoder
            and supported_layers(body.word_hints.layers)):
        body.word_hints = FastDecoder(body.word_hints, projection=body.word_memory,
                                     release=True)
        body.word_memory = nn.Identity()


def _fast(module: nn.Module) -> nn.Module | None:
    """The fast module that replaces ``module``, or None to keep it (and look inside)."""
    if (type(module) is FaceBranch and isinstance(module.decoder, nn.TransformerDecoder)
            and supported_layers(module.decoder.layers)):
        return FastFaceBranch(module)
    if type(module) is CodeHeads and can_stack(list(module.values())):
        return StackedCodeHeads(module, release=True)
    if type(module) is nn.TransformerDecoder:
        return FastDecoder(module, release=True) if supported_layers(module.layers) else module
    if type(module) is nn.TransformerEncoder:
        return FastEncoder(module) if supported_layers(module.layers) else module
    if type(module) is TemporalDownsample:
        return FastDownsample(module)
    if type(module) is nn.Conv1d and unfolds(module):
        return UnfoldedConv1d(module)
    if type(module) is nn.Linear and packable(module.weight):
        return PackedLinear(module.weight, module.bias)
    if isinstance(module, (nn.MultiheadAttention, nn.TransformerDecoderLayer,
                           nn.TransformerEncoderLayer, InferenceModule)):
        return module  # read by weight, not by calling their children: left as they are
    return None


def _prepared_tree(module: nn.Module) -> nn.Module:
    """``module`` with its fast replacement, or with the fast modules swapped in below it."""
    fast = _fast(module)
    if fast is not None:
        return fast
    if isinstance(module, BodyBranch):
        _fold_word_memory(module)
    for name in list(module._modules):  # names only: a replaced child is freed at once
        child = module._modules[name]
        if child is not None and (replacement := _prepared_tree(child)) is not child:
            setattr(module, name, replacement)
            del child
            return_freed_memory()
    return module


def prepare_for_inference(model: nn.Module) -> nn.Module:
    """``model`` (any semtalk model: generators, tokenizer, or a piece of one) with the CPU
    inference fast modules swapped in, in place. Returns ``model``, or its replacement when
    ``model`` itself is one of the swapped modules (e.g. a bare decoder).

    The model is put in eval mode and its parameters frozen; preparing twice changes nothing.
    Cast the model (``.to(dtype)``, ``.to(device)``) before, not after.
    """
    if getattr(model, _PREPARED, False):
        return model
    model.eval().requires_grad_(False)
    with torch.inference_mode(False), torch.no_grad():
        prepared = _prepared_tree(model)
    setattr(prepared, _PREPARED, True)
    return prepared


def is_prepared(model: nn.Module) -> bool:
    """True when :func:`prepare_for_inference` prepared ``model``."""
    return bool(getattr(model, _PREPARED, False))
