"""Several parts' residual code heads in one pass (inference): weights stacked along a new axis.

A window's code heads are small: 16 tokens through ``(Q - 1) x layers`` decoder layers per part.
Run one part at a time, each product is a 16-row matrix product and each layer a dozen small
operators, so a head runs far below the CPU's (or GPU's) peak. With the weights of ``P`` heads
stacked (``[P, in, out]``), every step runs once for all parts as a batched product
(``baddbmm``) and one attention call over ``P x B`` sequences: on 2 CPU cores the four
parts of the paper-size base model take about two thirds of the time of four separate heads.
Where the CPU's packed kernels serve (:mod:`semtalk.inference.packed`) the products run per head
from packed weights instead (faster than ``baddbmm`` there); attention and norms stay batched.

The math is :class:`~semtalk.modules.code_heads.ResidualCodeHeads` with the decoder fast path
(:class:`~semtalk.inference.attention.FastDecoder`: post-norm, ReLU, no dropout); outputs
equal the per-part heads' up to float rounding (tests compare both). :class:`StackedCodeHeads`
replaces a model's :class:`~semtalk.modules.code_heads.CodeHeads` in a prepared model and holds
the stacked (or packed) weights only, not the per-part heads' (for the paper sizes about 68 MB
per part); a subset of the parts runs from a view of them (:func:`take_heads`).
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

import torch
import torch.nn.functional as F
from torch import nn

from semtalk.body.parts import BodyPart
from semtalk.inference.attention import memory_weights, supported_layers
from semtalk.inference.packed import InferenceModule, PackedLinear, packable, release_parameters
from semtalk.modules.code_heads import CodeHeads, ResidualCodeHeads
from semtalk.modules.fusion import MLP

Norm = tuple[torch.Tensor, torch.Tensor]
"""Stacked LayerNorm affine ``(weight [P, 1, D], bias [P, 1, D])``."""


@dataclass(frozen=True)
class StackedLinear:
    """One Linear of ``P`` heads: ``x [P, M, in] -> [P, M, out]``.

    Either the weights stacked (``weight [P, in, out]``, one batched product) or, where the
    CPU's packed kernels serve (:func:`~semtalk.inference.packed.packable`), one
    :class:`~semtalk.inference.packed.PackedLinear` per head (faster than the batched product
    there, and no stacked copy is kept). ``bias [P, 1, out]`` either way.
    """

    bias: torch.Tensor
    weight: torch.Tensor | None = None
    products: tuple[PackedLinear, ...] | None = None

    def __call__(self, x: torch.Tensor, relu: bool = False) -> torch.Tensor:
        """``[P, M, in] -> [P, M, out]``; ``relu``: ReLU applied to the result."""
        if self.products is None:
            if self.weight is None:
                raise ValueError("a stacked Linear needs its stacked weight or its products")
            y = torch.baddbmm(self.bias, x, self.weight)
            return F.relu(y) if relu else y
        return torch.stack([product(x[index], relu)
                            for index, product in enumerate(self.products)])

    def take(self, index: Sequence[int], rows: slice | torch.Tensor) -> StackedLinear:
        """The heads ``index`` (``rows``: the same positions, to index the stacked tensors)."""
        return StackedLinear(
            self.bias[rows], None if self.weight is None else self.weight[rows],
            None if self.products is None else tuple(self.products[i] for i in index))


@dataclass
class _Layer:
    self_qkv: StackedLinear
    self_out: StackedLinear
    cross_query: StackedLinear
    cross_out: StackedLinear
    feedforward_in: StackedLinear
    feedforward_out: StackedLinear
    norms: tuple[Norm, Norm, Norm]
    eps: tuple[float, float, float]


@dataclass
class StackedWeights:
    """The weights of ``P`` identically shaped heads, stacked for batched products."""

    first_logits: tuple[StackedLinear, StackedLinear]
    mixers: list[StackedLinear]
    layers: list[list[_Layer]]  # [residual layer k - 1][decoder layer]
    memory: StackedLinear  # keys and values of every decoder layer: [P, D, n_layers * 2D]
    logits: list[tuple[StackedLinear, StackedLinear]]
    heads: int


def _stack_rows(weights: Sequence[torch.Tensor], biases: Sequence[torch.Tensor]) -> StackedLinear:
    """One stacked Linear from each head's ``weight [out, in]`` and ``bias [out]`` (a module's
    own, or rows of a projection)."""
    bias = torch.stack([b.detach()[None] for b in biases]).contiguous()
    if packable(weights[0]):
        return StackedLinear(bias, products=tuple(
            PackedLinear(w, b) for w, b in zip(weights, biases, strict=True)))
    return StackedLinear(bias, weight=torch.stack([w.detach().t() for w in weights]).contiguous())


def _stack_linear(modules: Sequence[nn.Linear]) -> StackedLinear:
    return _stack_rows([m.weight for m in modules], [m.bias for m in modules])


def _stack_norm(norms: Sequence[nn.LayerNorm]) -> Norm:
    return (torch.stack([n.weight.detach()[None] for n in norms]).contiguous(),
            torch.stack([n.bias.detach()[None] for n in norms]).contiguous())


def _shape_signature(head: ResidualCodeHeads) -> list[tuple[str, tuple[int, ...]]]:
    return [(name, tuple(p.shape)) for name, p in head.named_parameters()]


# Typed views of a plain head's modules: ResidualCodeHeads builds its decoders with
# transformer_decoder, its mixers as nn.Linear and its logits as MLPs, and a head is stacked
# before any of its modules is swapped for a fast one.
def _decoders(head: ResidualCodeHeads) -> list[nn.TransformerDecoder]:
    return [cast(nn.TransformerDecoder, decoder) for decoder in head.decoders]


def _linear(module: nn.Module) -> nn.Linear:
    return cast(nn.Linear, module)


def _logits_mlp(head: ResidualCodeHeads, index: int) -> MLP:
    return cast(MLP, head.logits[index])


def can_stack(heads: Sequence[nn.Module]) -> bool:
    """True when the heads are plain :class:`ResidualCodeHeads` of one layout (sizes and layer
    counts) with decoders the fast path computes, so they stack."""
    if len(heads) < 2 or any(type(h) is not ResidualCodeHeads for h in heads):
        return False
    residual = cast(Sequence[ResidualCodeHeads], heads)  # checked just above
    first = residual[0]
    if len(first.decoders) == 0:
        return False
    signature = _shape_signature(first)
    head_count = _decoders(first)[0].layers[0].self_attn.num_heads
    return all(_shape_signature(h) == signature
               and _decoders(h)[0].layers[0].self_attn.num_heads == head_count
               and all(type(d) is nn.TransformerDecoder and supported_layers(d.layers)
                       for d in h.decoders) for h in residual)


def stack_weights(heads: Sequence[ResidualCodeHeads], release: bool = False) -> StackedWeights:
    """Stack the weights of ``heads`` (see :func:`can_stack`); ``release``: free the heads'
    decoder weights layer by layer once stacked (the heads are then unusable)."""
    first = heads[0]
    attention: nn.MultiheadAttention = _decoders(first)[0].layers[0].self_attn
    dim = attention.embed_dim

    def every_memory_product(head: ResidualCodeHeads) -> tuple[torch.Tensor, torch.Tensor]:
        pairs = list(memory_weights([layer for d in _decoders(head) for layer in d.layers]))
        return torch.cat([w for w, _ in pairs]), torch.cat([b for _, b in pairs])

    # every decoder layer's memory keys and values in one product per head
    memory = _stack_rows(*zip(*(every_memory_product(h) for h in heads), strict=True))
    layers = []
    for k, decoder in enumerate(_decoders(first)):
        stack_k = []
        for index in range(len(decoder.layers)):
            per_head: list[nn.TransformerDecoderLayer] = [_decoders(h)[k].layers[index]
                                                          for h in heads]
            cross = [layer.multihead_attn for layer in per_head]
            stack_k.append(_Layer(
                self_qkv=_stack_rows([la.self_attn.in_proj_weight for la in per_head],
                                     [la.self_attn.in_proj_bias for la in per_head]),
                self_out=_stack_linear([la.self_attn.out_proj for la in per_head]),
                cross_query=_stack_rows([a.in_proj_weight[:dim] for a in cross],
                                        [a.in_proj_bias[:dim] for a in cross]),
                cross_out=_stack_linear([a.out_proj for a in cross]),
                feedforward_in=_stack_linear([la.linear1 for la in per_head]),
                feedforward_out=_stack_linear([la.linear2 for la in per_head]),
                norms=(_stack_norm([la.norm1 for la in per_head]),
                       _stack_norm([la.norm2 for la in per_head]),
                       _stack_norm([la.norm3 for la in per_head])),
                eps=(per_head[0].norm1.eps, per_head[0].norm2.eps, per_head[0].norm3.eps)))
            if release:
                release_parameters(*per_head)
        layers.append(stack_k)
    return StackedWeights(
        first_logits=(_stack_linear([_linear(h.first_logits[0]) for h in heads]),
                      _stack_linear([_linear(h.first_logits[2]) for h in heads])),
        mixers=[_stack_linear([_linear(h.mixers[i]) for h in heads])
                for i in range(len(first.mixers))],
        layers=layers, memory=memory,
        logits=[(_stack_linear([_linear(_logits_mlp(h, i)[0]) for h in heads]),
                 _stack_linear([_linear(_logits_mlp(h, i)[2]) for h in heads]))
                for i in range(len(first.logits))],
        heads=attention.num_heads)


def take_heads(weights: StackedWeights, index: Sequence[int]) -> StackedWeights:
    """The stacked weights of the heads ``index`` (positions in the stack, in that order): a
    view when they are consecutive and increasing, else a copy."""
    if not index:
        raise ValueError("take_heads needs at least one head")
    start = index[0]
    if list(index) == list(range(start, start + len(index))):
        rows: slice | torch.Tensor = slice(start, start + len(index))
    else:
        rows = torch.tensor(list(index), device=weights.memory.bias.device)

    def take(value: Any) -> Any:
        if isinstance(value, StackedLinear):
            return value.take(index, rows)
        if isinstance(value, torch.Tensor):
            return value[rows]
        if isinstance(value, (tuple, list)):
            return type(value)(take(item) for item in value)
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            return dataclasses.replace(value, **{
                f.name: take(getattr(value, f.name)) for f in dataclasses.fields(value)})
        return value  # numbers: eps, heads

    return take(weights)


def _mlp(x: torch.Tensor, weights: tuple[StackedLinear, StackedLinear]) -> torch.Tensor:
    """The heads' :class:`~semtalk.modules.fusion.MLP`: Linear, LeakyReLU(0.2), Linear."""
    return weights[1](F.leaky_relu(weights[0](x), 0.2))


def _norm(x: torch.Tensor, weights: Norm, eps: float) -> torch.Tensor:
    return torch.addcmul(weights[1], F.layer_norm(x, x.shape[-1:], eps=eps), weights[0])


def run_stacked(weights: StackedWeights, x: torch.Tensor,
                cond: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``x [P, B, N, D]``, ``cond [P, B, T, D]`` -> logits ``[P, B, N, Q, K]`` and latents
    ``[P, B, Q, N, D]`` (each head's :meth:`ResidualCodeHeads.forward`, stacked)."""
    if x.requires_grad or cond.requires_grad:
        raise RuntimeError("stacked code heads are for inference only (no gradients)")
    parts, batch, tokens, dim = x.shape
    frames = cond.shape[2]
    heads, head_dim = weights.heads, dim // weights.heads

    def split(t: torch.Tensor, length: int) -> torch.Tensor:
        """``[P, B*L, D] -> [P*B, heads, L, D/heads]``."""
        return (t.reshape(parts, batch, length, heads, head_dim).permute(0, 1, 3, 2, 4)
                .reshape(parts * batch, heads, length, head_dim))

    def merge(t: torch.Tensor) -> torch.Tensor:
        """``[P*B, heads, N, D/heads] -> [P, B*N, D]``."""
        return (t.reshape(parts, batch, heads, tokens, head_dim).permute(0, 1, 3, 2, 4)
                .reshape(parts, batch * tokens, dim))

    n_layers = sum(len(stack) for stack in weights.layers)
    memory = weights.memory(cond.reshape(parts, batch * frames, dim))
    memory = memory.view(parts, batch * frames, n_layers, 2, dim)
    flat = x.reshape(parts, batch * tokens, dim)
    latents, logits = [flat], [_mlp(flat, weights.first_logits)]
    index = 0
    for k, stack in enumerate(weights.layers, 1):
        query = flat if k == 1 else weights.mixers[k - 2](torch.cat(latents, dim=-1))
        y = query
        for layer in stack:
            q, key, value = layer.self_qkv(y).split(dim, dim=-1)
            attended = F.scaled_dot_product_attention(split(q, tokens), split(key, tokens),
                                                      split(value, tokens))
            y = _norm(y + layer.self_out(merge(attended)), layer.norms[0],
                      layer.eps[0])
            q = split(layer.cross_query(y), tokens)
            attended = F.scaled_dot_product_attention(
                q, split(memory[:, :, index, 0], frames), split(memory[:, :, index, 1], frames))
            y = _norm(y + layer.cross_out(merge(attended)), layer.norms[1],
                      layer.eps[1])
            hidden = layer.feedforward_in(y, relu=True)
            y = _norm(y + layer.feedforward_out(hidden), layer.norms[2], layer.eps[2])
            index += 1
        z = y + query
        latents.append(z)
        logits.append(_mlp(z, weights.logits[k - 1]))
    codes = logits[0].shape[-1]
    stacked_logits = torch.stack(logits, dim=2).view(parts, batch, tokens, len(logits), codes)
    stacked_latents = torch.stack(latents, dim=1).view(parts, len(latents), batch, tokens, dim)
    return stacked_logits, stacked_latents.transpose(1, 2)


class StackedCodeHeads(InferenceModule):
    """A model's :class:`~semtalk.modules.code_heads.CodeHeads` in inference: the parts asked
    for run as one stacked pass (:func:`run_stacked`) from a view of the stacked weights of
    all the heads (a copy when they are not neighbours in the heads' order)."""

    def __init__(self, heads: CodeHeads, release: bool = False) -> None:
        """``release``: free the plain heads' decoder weights as they are stacked."""
        super().__init__()
        self.names = list(heads.keys())
        # a CodeHeads holds ResidualCodeHeads ({part name: ResidualCodeHeads})
        self.weights = stack_weights([cast(ResidualCodeHeads, h) for h in heads.values()],
                                     release)
        self._views: dict[tuple[int, ...], StackedWeights] = {}
        self._views_lock = threading.Lock()

    def _taken(self, index: tuple[int, ...]) -> StackedWeights:
        """The weights of the heads ``index``, views of neighbours kept for the next call."""
        if index == tuple(range(len(self.names))):
            return self.weights
        view = self._views.get(index)
        if view is None:
            view = take_heads(self.weights, index)
            if index == tuple(range(index[0], index[0] + len(index))):  # a view: no memory
                with self._views_lock:
                    self._views[index] = view
        return view

    def forward(self, features: Mapping[BodyPart, torch.Tensor],
                conditions: Mapping[BodyPart, torch.Tensor], parts: Sequence[BodyPart]
                ) -> tuple[dict[BodyPart, torch.Tensor], dict[BodyPart, torch.Tensor]]:
        """As :meth:`CodeHeads.forward`: ``(logits, latents)`` of the heads of ``parts``."""
        parts = tuple(parts)
        stacked_logits, stacked_latents = run_stacked(
            self._taken(tuple(self.names.index(part.value) for part in parts)),
            torch.stack([features[part] for part in parts]),
            torch.stack([conditions[part] for part in parts]))
        return ({part: stacked_logits[k] for k, part in enumerate(parts)},
                {part: stacked_latents[k] for k, part in enumerate(parts)})
