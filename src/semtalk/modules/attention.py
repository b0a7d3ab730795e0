"""Transformer pieces of the generators: a periodic positional encoding and layer-stack builders.

All stacks are PyTorch's own ``nn.TransformerEncoder`` / ``nn.TransformerDecoder`` with
``batch_first=True`` (tensors ``[B, T, D]``), post-LayerNorm and ReLU feed-forward, the library
defaults the official SemTalk code uses. A stack deep-copies its layer, so layers never share
weights.

Inference fast path (:func:`run_decoder`, :func:`run_encoder`, :func:`memory_keys_values`,
:func:`decode_with_memory`; see :mod:`semtalk.modules.inference`): in eval mode without autograd
a decoder stack computes the cross-attention keys and values of
all its layers up front, from weights stacked once and cached on the module (rebuilt whenever a
parameter changes); a ``nn.Linear`` applied to the memory before the stack is folded into them
(``(m W_p^T + b_p) W_kv^T + b_kv = m (W_kv W_p)^T + (W_kv b_p + b_kv)``: the word-hints memory
256 -> 768 wide, so its keys and values cost a third). The layers then run with the same
parameters and the same math as PyTorch's layers, the cross-attention without re-projecting the
memory, and every product (projections, feed-forward) with its weight packed for the CPU's
kernels (:mod:`semtalk.modules.packed`). Results equal the plain path up to float rounding;
:func:`~semtalk.modules.inference.plain_inference` switches the fast path off (tests compare
both). Training (or any forward with autograd on) always takes the
plain path.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from semtalk.modules.inference import cached, uses_fast_path
from semtalk.modules.packed import Product, linear, prepare, product

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
def _check_fast_layout(layers: Sequence[nn.Module]) -> None:
    for layer in layers:
        attentions = [layer.self_attn] + ([layer.multihead_attn]
                                          if hasattr(layer, "multihead_attn") else [])
        if (layer.norm_first or layer.activation is not F.relu or any(
                not a.batch_first or not a._qkv_same_embed_dim or a.in_proj_bias is None
                or a.bias_k is not None or a.add_zero_attn for a in attentions)):
            raise ValueError("the inference fast path supports the layers transformer_decoder "
                             "and transformer_encoder build (post-norm, ReLU, batch-first, "
                             "packed biased projections)")


def memory_weights(decoders: Sequence[nn.TransformerDecoder],
                    projection: nn.Linear | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Key/value projections of every layer of ``decoders`` stacked: ``[n * 2D, Din]``, ``[n * 2D]``
    (``n`` layers in all), with ``projection`` folded in (in float64, then rounded once)."""
    weights, biases = [], []
    for decoder in decoders:
        _check_fast_layout(decoder.layers)
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


def _memory_products(decoders: Sequence[nn.TransformerDecoder],
                     projection: nn.Linear | None) -> list[Product]:
    """One key/value :class:`~semtalk.modules.packed.Product` per layer of ``decoders``."""
    weight, bias = memory_weights(decoders, projection)
    width = weight.shape[0] // sum(len(decoder.layers) for decoder in decoders)
    return [prepare(weight[row:row + width], bias[row:row + width])
            for row in range(0, weight.shape[0], width)]


def memory_keys_values(owner: nn.Module, decoders: Sequence[nn.TransformerDecoder],
                       memory: torch.Tensor, projection: nn.Linear | None = None
                       ) -> list[list[KeysValues]]:
    """Cross-attention keys and values of every layer of ``decoders`` reading one memory.

    Args:
        owner: the module that keeps the fused weights (cached; see
            :func:`~semtalk.modules.inference.cached`).
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
    products = iter(cached(owner, "memory_products", sources,
                           lambda: _memory_products(decoders, projection)))
    first = decoders[0].layers[0].multihead_attn
    heads, dim = first.num_heads, first.embed_dim
    batch, length = memory.shape[:2]
    out = []
    for decoder in decoders:
        layers = []
        for _ in decoder.layers:  # one product per layer: as fast as one wide one, less memory
            projected = next(products)(memory)
            # [B, M, 2D] -> [2, B, heads, M, D/heads]
            split = projected.view(batch, length, 2, heads, dim // heads).permute(2, 0, 3, 1, 4)
            layers.append((split[0], split[1]))
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
    return linear(attention.out_proj, attended.transpose(1, 2).reshape(batch, length, dim))


def cross_query(attention: nn.MultiheadAttention, x: torch.Tensor) -> torch.Tensor:
    """The query projection of a cross-attention: ``[B, N, D]``."""
    dim = x.shape[-1]
    return product(attention, "query", attention.in_proj_weight[:dim],
                   attention.in_proj_bias[:dim])(x)


def _self_attention(attention: nn.MultiheadAttention, x: torch.Tensor) -> torch.Tensor:
    """``attention(x, x, x)`` (no mask): ``[B, N, D]``."""
    batch, length, dim = x.shape
    heads = attention.num_heads
    projected = product(attention, "in_proj", attention.in_proj_weight,
                        attention.in_proj_bias)(x)
    # [B, N, 3D] -> 3 x [B, heads, N, D/heads]
    q, k, v = projected.view(batch, length, 3, heads, dim // heads).permute(2, 0, 3, 1, 4)
    attended = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(batch, length, dim)
    return linear(attention.out_proj, attended)


def self_attended(layer: nn.TransformerDecoderLayer | nn.TransformerEncoderLayer,
                  x: torch.Tensor) -> torch.Tensor:
    """A layer's first step, ``norm1(x + SelfAttn(x))`` (inference)."""
    return layer.norm1(x + _self_attention(layer.self_attn, x))


def _feedforward(layer: nn.TransformerDecoderLayer | nn.TransformerEncoderLayer,
                 x: torch.Tensor) -> torch.Tensor:
    return linear(layer.linear2, linear(layer.linear1, x, relu=True))


def decode_with_memory(decoder: nn.TransformerDecoder, tgt: torch.Tensor,
                       keys_values: Sequence[KeysValues],
                       first: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
    """``decoder(tgt, memory)`` given each layer's memory keys and values (inference only).

    Same parameters and math as :class:`nn.TransformerDecoderLayer` (post-norm, ReLU, no
    dropout): ``x = norm1(x + SelfAttn(x))``, ``x = norm2(x + CrossAttn(x, memory))``,
    ``x = norm3(x + FF(x))``, the products packed (:mod:`semtalk.modules.packed`).
    ``tgt [B, N, D]`` -> ``[B, N, D]``.

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
        x = layer.norm3(x + _feedforward(layer, x))
    return x


def run_decoder(decoder: nn.TransformerDecoder, tgt: torch.Tensor, memory: torch.Tensor,
                projection: nn.Linear | None = None) -> torch.Tensor:
    """``decoder(tgt, projection(memory))`` (``projection`` None: the memory as it is).

    Takes the fast path when :func:`~semtalk.modules.inference.uses_fast_path` allows it;
    ``[B, N, D]`` out either way.
    """
    if not uses_fast_path(decoder):
        return decoder(tgt, memory if projection is None else projection(memory))
    keys_values = memory_keys_values(decoder, [decoder], memory, projection)[0]
    return decode_with_memory(decoder, tgt, keys_values)


def run_encoder(encoder: nn.TransformerEncoder, x: torch.Tensor) -> torch.Tensor:
    """``encoder(x)`` (no mask); in inference the layers' math with packed products:
    ``x = norm1(x + SelfAttn(x))``, ``x = norm2(x + FF(x))``. ``[B, T, D]`` -> ``[B, T, D]``."""
    if not uses_fast_path(encoder):
        return encoder(x)
    _check_fast_layout(encoder.layers)
    for layer in encoder.layers:
        x = self_attended(layer, x)
        x = layer.norm2(x + _feedforward(layer, x))
    return x if encoder.norm is None else encoder.norm(x)
