"""Transformer pieces of the generators: a periodic positional encoding and layer-stack builders.

All stacks are PyTorch's own ``nn.TransformerEncoder`` / ``nn.TransformerDecoder`` with
``batch_first=True`` (tensors ``[B, T, D]``), post-LayerNorm and ReLU feed-forward, the library
defaults the official SemTalk code uses. A stack deep-copies its layer, so layers never share
weights.

Inference fast path (:func:`run_decoder`, :func:`memory_keys_values`, :func:`decode_with_memory`):
in eval mode without autograd a decoder stack computes the cross-attention keys and values of
all its layers up front, from weights stacked once and cached on the module (rebuilt whenever a
parameter changes); a ``nn.Linear`` applied to the memory before the stack is folded into them
(``(m W_p^T + b_p) W_kv^T + b_kv = m (W_kv W_p)^T + (W_kv b_p + b_kv)``: the word-hints memory
256 -> 768 wide, so its keys and values cost a third). The layers then run with the same
parameters and the same math as PyTorch's layers, the cross-attention without re-projecting the
memory. Results equal the plain path up to float rounding; :func:`plain_inference` switches the
fast path off (tests compare both). Training (or any forward with autograd on) always takes the
plain path.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import TypeVar

import torch
import torch.nn.functional as F
from torch import nn

T = TypeVar("T")
KeysValues = tuple[torch.Tensor, torch.Tensor]
"""One layer's cross-attention keys and values, each ``[B, heads, M, D / heads]``."""


class PeriodicPositionalEncoding(nn.Module):
    """Adds a sinusoidal encoding that repeats every ``period`` frames, then dropout.

    ``pe[t, 2i] = sin(p / 10000^(2i/D))`` and ``pe[t, 2i+1] = cos(...)`` with ``p = t mod period``,
    so a sequence longer than the period sees the same positions again, and a shorter one (the
    generators' length-T/2 stages) uses the first positions.
    """

    def __init__(self, dim: int, period: int, dropout: float = 0.1) -> None:
        super().__init__()
        if dim < 2 or dim % 2:
            raise ValueError(f"positional encoding needs an even dim >= 2, got {dim}")
        if period < 1:
            raise ValueError(f"period must be >= 1, got {period}")
        position = torch.arange(period, dtype=torch.float32)[:, None]
        frequency = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32)
                              * (-math.log(10000.0) / dim))
        table = torch.zeros(period, dim)
        table[:, 0::2] = torch.sin(position * frequency)
        table[:, 1::2] = torch.cos(position * frequency)
        self.register_buffer("table", table, persistent=False)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, T, D] -> [B, T, D]``."""
        period, frames = self.table.shape[0], x.shape[1]
        if frames <= period:  # the generators' windows: a slice, no index tensor
            table = self.table[:frames]
        else:
            table = self.table[torch.arange(frames, device=x.device) % period]
        return self.dropout(x + table.to(x.dtype))


def transformer_decoder(dim: int, heads: int, feedforward: int, layers: int,
                        dropout: float) -> nn.TransformerDecoder:
    """``layers`` batch-first decoder layers: ``decoder(tgt [B, N, D], memory [B, M, D])``."""
    layer = nn.TransformerDecoderLayer(dim, heads, feedforward, dropout, batch_first=True)
    return nn.TransformerDecoder(layer, layers)


def transformer_encoder(dim: int, heads: int, feedforward: int, layers: int,
                        dropout: float) -> nn.TransformerEncoder:
    """``layers`` batch-first self-attention layers: ``encoder(x [B, T, D])``."""
    layer = nn.TransformerEncoderLayer(dim, heads, feedforward, dropout, batch_first=True)
    return nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)


# ----------------------------------------------------------------------------- inference path
_fast_inference = True
_building = threading.RLock()


@contextmanager
def plain_inference() -> Iterator[None]:
    """Within the block every decoder stack runs PyTorch's own layers (the reference path)."""
    global _fast_inference
    previous, _fast_inference = _fast_inference, False
    try:
        yield
    finally:
        _fast_inference = previous


def uses_fast_path(module: nn.Module) -> bool:
    """True when ``module`` may take the inference fast path: eval mode, autograd off (e.g. under
    ``torch.inference_mode()`` or ``torch.no_grad()``) and not inside :func:`plain_inference`."""
    return _fast_inference and not module.training and not torch.is_grad_enabled()


def cached(owner: nn.Module, name: str, sources: Sequence[torch.Tensor],
           build: Callable[[], T]) -> T:
    """``build()``, kept on ``owner`` until one of ``sources`` (parameters) changes.

    A change is an in-place update (optimizer step, ``load_state_dict``: the tensor's version
    counter moves) or new storage (``.to(device)``, ``param.data = ...``). The value is a plain
    attribute, never part of the state dict.
    """
    key = tuple((t.data_ptr(), -1 if t.is_inference() else t._version, t.dtype, t.device)
                for t in sources)  # inference tensors have no version counter
    attribute = f"_fast_{name}"
    entry = owner.__dict__.get(attribute)
    if entry is None or entry[0] != key:
        with _building:  # two generation lanes asking at once build it once
            entry = owner.__dict__.get(attribute)
            if entry is None or entry[0] != key:
                with torch.inference_mode(False), torch.no_grad():
                    entry = (key, build())
                owner.__dict__[attribute] = entry
    return entry[1]


def _check_fast_layout(decoder: nn.TransformerDecoder) -> None:
    for layer in decoder.layers:
        attention = layer.multihead_attn
        if (layer.norm_first or layer.activation is not F.relu or not attention.batch_first
                or not attention._qkv_same_embed_dim or attention.in_proj_bias is None
                or attention.bias_k is not None or attention.add_zero_attn):
            raise ValueError("the decoder fast path supports the layers transformer_decoder "
                             "builds (post-norm, ReLU, batch-first, packed biased projections)")


def memory_weights(decoders: Sequence[nn.TransformerDecoder],
                    projection: nn.Linear | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Key/value projections of every layer of ``decoders`` stacked: ``[n * 2D, Din]``, ``[n * 2D]``
    (``n`` layers in all), with ``projection`` folded in (in float64, then rounded once)."""
    weights, biases = [], []
    for decoder in decoders:
        _check_fast_layout(decoder)
        for layer in decoder.layers:
            attention = layer.multihead_attn
            dim = attention.embed_dim
            weights.append(attention.in_proj_weight[dim:])
            biases.append(attention.in_proj_bias[dim:])
    if len(weights) == 1 and projection is None:  # one layer: the parameters' own rows
        return weights[0], biases[0]
    weight, bias = torch.cat(weights), torch.cat(biases)
    if projection is not None:
        wide = weight.double()
        folded_bias = bias.double()
        if projection.bias is not None:
            folded_bias = folded_bias + wide @ projection.bias.double()
        weight = (wide @ projection.weight.double()).to(weight.dtype)
        bias = folded_bias.to(bias.dtype)
    return weight.contiguous(), bias.contiguous()


def memory_keys_values(owner: nn.Module, decoders: Sequence[nn.TransformerDecoder],
                       memory: torch.Tensor, projection: nn.Linear | None = None
                       ) -> list[list[KeysValues]]:
    """Cross-attention keys and values of every layer of ``decoders`` reading one memory.

    Args:
        owner: the module that keeps the fused weights (cached; see :func:`cached`).
        decoders: stacks that all attend to ``memory`` (e.g. a part's residual predictors).
        memory: ``[B, M, Din]``; ``Din`` is the decoders' width, or ``projection``'s input.
        projection: a linear map applied to ``memory`` before the decoders, folded in.

    Returns:
        ``[decoder][layer] -> (keys, values)``, each ``[B, heads, M, D / heads]``.
    """
    sources = [p for decoder in decoders for layer in decoder.layers
               for p in (layer.multihead_attn.in_proj_weight, layer.multihead_attn.in_proj_bias)]
    if projection is not None:
        sources += [p for p in (projection.weight, projection.bias) if p is not None]
    weight, bias = cached(owner, "memory_weights", sources,
                          lambda: memory_weights(decoders, projection))
    first = decoders[0].layers[0].multihead_attn
    heads, dim = first.num_heads, first.embed_dim
    batch, length = memory.shape[:2]
    out, row = [], 0
    for decoder in decoders:
        layers = []
        for _ in decoder.layers:  # one product per layer: as fast as one wide one, less memory
            projected = F.linear(memory, weight[row:row + 2 * dim], bias[row:row + 2 * dim])
            # [B, M, 2D] -> [2, B, heads, M, D/heads]
            split = projected.view(batch, length, 2, heads, dim // heads).permute(2, 0, 3, 1, 4)
            layers.append((split[0], split[1]))
            row += 2 * dim
        out.append(layers)
    return out


def _cross_attention(attention: nn.MultiheadAttention, x: torch.Tensor,
                     keys_values: KeysValues, query: torch.Tensor | None = None) -> torch.Tensor:
    """``attention(x, memory, memory)`` with the memory's keys and values given: ``[B, N, D]``
    (``query``: ``x``'s query projection, when known)."""
    batch, length, dim = x.shape
    heads = attention.num_heads
    if query is None:
        query = cross_query(attention, x)
    query = query.view(batch, length, heads, dim // heads).transpose(1, 2)
    attended = F.scaled_dot_product_attention(query, *keys_values)  # [B, heads, N, D/heads]
    attended = attended.transpose(1, 2).reshape(batch, length, dim)
    return F.linear(attended, attention.out_proj.weight, attention.out_proj.bias)


def cross_query(attention: nn.MultiheadAttention, x: torch.Tensor) -> torch.Tensor:
    """The query projection of a cross-attention: ``[B, N, D]``."""
    dim = x.shape[-1]
    return F.linear(x, attention.in_proj_weight[:dim], attention.in_proj_bias[:dim])


def self_attended(layer: nn.TransformerDecoderLayer, x: torch.Tensor) -> torch.Tensor:
    """A decoder layer's first step, ``norm1(x + SelfAttn(x))``."""
    return layer.norm1(x + layer.self_attn(x, x, x, need_weights=False)[0])


def decode_with_memory(decoder: nn.TransformerDecoder, tgt: torch.Tensor,
                       keys_values: Sequence[KeysValues],
                       first: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
    """``decoder(tgt, memory)`` given each layer's memory keys and values (inference only).

    Same parameters and math as :class:`nn.TransformerDecoderLayer` (post-norm, ReLU, no
    dropout): ``x = norm1(x + SelfAttn(x))``, ``x = norm2(x + CrossAttn(x, memory))``,
    ``x = norm3(x + FF(x))``. ``tgt [B, N, D]`` -> ``[B, N, D]``.

    ``first``: the first layer's :func:`self_attended` ``tgt`` and its :func:`cross_query`,
    when the caller knows them (a target that does not change between calls); ``tgt`` is then
    not read.
    """
    x = tgt
    for index, (layer, memory) in enumerate(zip(decoder.layers, keys_values, strict=True)):
        if index == 0 and first is not None:
            x, query = first
        else:
            x, query = self_attended(layer, x), None
        x = layer.norm2(x + _cross_attention(layer.multihead_attn, x, memory, query))
        x = layer.norm3(x + layer.linear2(F.relu(layer.linear1(x))))
    return x


def run_decoder(decoder: nn.TransformerDecoder, tgt: torch.Tensor, memory: torch.Tensor,
                projection: nn.Linear | None = None) -> torch.Tensor:
    """``decoder(tgt, projection(memory))`` (``projection`` None: the memory as it is).

    Takes the fast path when :func:`uses_fast_path` allows it; ``[B, N, D]`` out either way.
    """
    if not uses_fast_path(decoder):
        return decoder(tgt, memory if projection is None else projection(memory))
    keys_values = memory_keys_values(decoder, [decoder], memory, projection)[0]
    return decode_with_memory(decoder, tgt, keys_values)
