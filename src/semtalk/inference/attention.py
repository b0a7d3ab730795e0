"""Inference fast path of the transformer stacks: :class:`FastDecoder` and :class:`FastEncoder`.

They replace ``nn.TransformerDecoder`` / ``nn.TransformerEncoder`` (as
:mod:`semtalk.modules.attention` builds them: post-norm, ReLU, batch-first, biased projections)
in a prepared model (:func:`~semtalk.inference.prepare.prepare_for_inference`). A decoder
computes the cross-attention keys and values of all its layers up front, from the memory, with
one product per layer; a ``nn.Linear`` applied to the memory before the stack is folded into
them (``(m W_p^T + b_p) W_kv^T + b_kv = m (W_kv W_p)^T + (W_kv b_p + b_kv)``: the word-hints
memory 256 -> 768 wide, so its keys and values cost a third). The layers then run with the same
parameters and the same math as PyTorch's layers (no dropout), the cross-attention without
re-projecting the memory, and every product (projections, feed-forward) from a weight packed
for the CPU's kernels where that pays (:mod:`semtalk.inference.packed`). Results equal the
plain stacks up to float rounding (tests compare both).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import cast

import torch
import torch.nn.functional as F
from torch import nn

from semtalk.inference.packed import InferenceModule, linear_product, release_parameters

KeysValues = tuple[torch.Tensor, torch.Tensor]
"""One layer's cross-attention keys and values, each ``[B, heads, M, D / heads]``."""


def supported_layers(
        layers: Sequence[nn.TransformerEncoderLayer | nn.TransformerDecoderLayer]) -> bool:
    """True when the fast layers compute these PyTorch layers: post-norm, ReLU, batch-first,
    packed biased projections, no extra keys (the layers ``transformer_decoder`` and
    ``transformer_encoder`` build)."""
    for layer in layers:
        attentions = [layer.self_attn] + ([cast(nn.MultiheadAttention, layer.multihead_attn)]
                                          if hasattr(layer, "multihead_attn") else [])
        if (layer.norm_first or layer.activation is not F.relu or any(
                not a.batch_first or not a._qkv_same_embed_dim or a.in_proj_bias is None
                or a.bias_k is not None or a.add_zero_attn for a in attentions)):
            return False
    return True


def memory_weights(layers: Sequence[nn.TransformerDecoderLayer],
                   projection: nn.Linear | None = None
                   ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Each layer's key/value projection ``([2D, Din], [2D])`` of the memory, with
    ``projection`` folded in (in float64, then rounded once), layer by layer."""
    for layer in layers:
        attention = layer.multihead_attn
        dim = attention.embed_dim
        weight = attention.in_proj_weight.detach()[dim:]
        bias = attention.in_proj_bias.detach()[dim:]
        if projection is not None:
            wide = weight.double()
            folded_bias = bias.double()
            if projection.bias is not None:
                folded_bias = folded_bias + wide @ projection.bias.detach().double()
            weight = (wide @ projection.weight.detach().double()).to(weight.dtype)
            bias = folded_bias.to(bias.dtype)
        yield weight.contiguous(), bias.contiguous()


def _split_heads(x: torch.Tensor, heads: int) -> torch.Tensor:
    """``[B, L, D] -> [B, heads, L, D/heads]``."""
    batch, length, dim = x.shape
    return x.view(batch, length, heads, dim // heads).transpose(1, 2)


def _merge_heads(x: torch.Tensor) -> torch.Tensor:
    """``[B, heads, L, D/heads] -> [B, L, D]``."""
    batch, heads, length, head_dim = x.shape
    return x.transpose(1, 2).reshape(batch, length, heads * head_dim)


class _SelfAttentionBlock(InferenceModule):
    """A layer's first step, ``norm1(x + SelfAttn(x))`` (no mask), and its feed-forward
    ``norm_ff(x + W_2 ReLU(W_1 x))``: what decoder and encoder layers share."""

    def __init__(self, layer: nn.TransformerDecoderLayer | nn.TransformerEncoderLayer,
                 feedforward_norm: nn.LayerNorm) -> None:
        super().__init__()
        attention = layer.self_attn
        self.heads = attention.num_heads
        self.qkv = linear_product(attention.in_proj_weight, attention.in_proj_bias)
        self.out = linear_product(attention.out_proj.weight, attention.out_proj.bias)
        self.norm1 = layer.norm1
        self.feedforward_in = linear_product(layer.linear1.weight, layer.linear1.bias)
        self.feedforward_out = linear_product(layer.linear2.weight, layer.linear2.bias)
        self.feedforward_norm = feedforward_norm

    def self_attended(self, x: torch.Tensor) -> torch.Tensor:
        """``norm1(x + SelfAttn(x))``: ``[B, N, D]``."""
        batch, length, dim = x.shape
        # [B, N, 3D] -> 3 x [B, heads, N, D/heads]
        q, k, v = self.qkv(x).view(batch, length, 3, self.heads, dim // self.heads).permute(
            2, 0, 3, 1, 4)
        attended = _merge_heads(F.scaled_dot_product_attention(q, k, v))
        return self.norm1(x + self.out(attended))

    def feedforward(self, x: torch.Tensor) -> torch.Tensor:
        """``norm(x + FF(x))``: ``[B, N, D]``."""
        return self.feedforward_norm(x + self.feedforward_out(self.feedforward_in(x, relu=True)))


class FastEncoderLayer(_SelfAttentionBlock):
    """``nn.TransformerEncoderLayer`` in inference: ``x = norm1(x + SelfAttn(x))``,
    ``x = norm2(x + FF(x))``."""

    def __init__(self, layer: nn.TransformerEncoderLayer) -> None:
        super().__init__(layer, layer.norm2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, T, D] -> [B, T, D]``."""
        return self.feedforward(self.self_attended(x))


class FastEncoder(InferenceModule):
    """``nn.TransformerEncoder`` (no mask) in inference, with packed products."""

    def __init__(self, encoder: nn.TransformerEncoder) -> None:
        super().__init__()
        self.layers = nn.ModuleList(FastEncoderLayer(layer) for layer in encoder.layers)
        self.norm = encoder.norm

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, T, D] -> [B, T, D]``."""
        for layer in self.layers:
            x = layer(x)
        return x if self.norm is None else self.norm(x)


class FastDecoderLayer(_SelfAttentionBlock):
    """``nn.TransformerDecoderLayer`` in inference, given the memory's keys and values:
    ``x = norm1(x + SelfAttn(x))``, ``x = norm2(x + CrossAttn(x, memory))``,
    ``x = norm3(x + FF(x))``."""

    def __init__(self, layer: nn.TransformerDecoderLayer) -> None:
        super().__init__(layer, layer.norm3)
        cross = layer.multihead_attn
        dim = cross.embed_dim
        self.cross_heads = cross.num_heads
        self.cross_query_product = linear_product(cross.in_proj_weight[:dim],
                                                  cross.in_proj_bias[:dim])
        self.cross_out = linear_product(cross.out_proj.weight, cross.out_proj.bias)
        self.norm2 = layer.norm2

    def cross_query(self, x: torch.Tensor) -> torch.Tensor:
        """The cross-attention's query projection of ``x``: ``[B, N, D]``."""
        return self.cross_query_product(x)

    def forward(self, x: torch.Tensor, keys_values: KeysValues,
                first: KeysValues | None = None) -> torch.Tensor:
        """``[B, N, D] -> [B, N, D]``. ``first``: ``(self_attended(x), cross_query(...))`` when
        the caller knows them (``x`` is then not read)."""
        if first is None:
            x = self.self_attended(x)
            query = self.cross_query(x)
        else:
            x, query = first
        attended = F.scaled_dot_product_attention(_split_heads(query, self.cross_heads),
                                                  *keys_values)
        x = self.norm2(x + self.cross_out(_merge_heads(attended)))
        return self.feedforward(x)


class FastDecoder(InferenceModule):
    """``nn.TransformerDecoder`` (no masks) in inference: ``decoder(tgt, projection(memory))``
    with the memory's keys and values of every layer computed up front.

    Args:
        decoder: the stack (see :func:`supported_layers`).
        projection: a ``nn.Linear`` the plain model applies to the memory before the stack,
            folded into the key/value products (the caller then passes the memory unprojected).
        release: free each plain layer's weights once its fast copy is built (the plain
            stack is then unusable; :func:`~semtalk.inference.prepare.prepare_for_inference`
            discards it).
    """

    def __init__(self, decoder: nn.TransformerDecoder, projection: nn.Linear | None = None,
                 release: bool = False) -> None:
        super().__init__()
        self.layers = nn.ModuleList()
        self.memory_products = nn.ModuleList()
        for layer, (weight, bias) in zip(decoder.layers, memory_weights(decoder.layers,
                                                                        projection), strict=True):
            self.layers.append(FastDecoderLayer(layer))
            self.memory_products.append(linear_product(weight, bias))
            del weight, bias
            if release:
                release_parameters(layer.self_attn, layer.multihead_attn, layer.linear1,
                                   layer.linear2)
        self.norm = decoder.norm
        self.heads = decoder.layers[0].multihead_attn.num_heads

    def keys_values(self, memory: torch.Tensor) -> list[KeysValues]:
        """Each layer's cross-attention keys and values of ``memory [B, M, Din]``."""
        batch, length = memory.shape[:2]
        out = []
        for product in self.memory_products:  # one product per layer: as fast as one wide one
            projected = product(memory)
            dim = projected.shape[-1] // 2
            # [B, M, 2D] -> [2, B, heads, M, D/heads]
            split = projected.view(batch, length, 2, self.heads, dim // self.heads).permute(
                2, 0, 3, 1, 4)
            out.append((split[0], split[1]))
        return out

    def decode(self, tgt: torch.Tensor, keys_values: Sequence[KeysValues],
               first: KeysValues | None = None) -> torch.Tensor:
        """The stack on ``tgt [B, N, D]`` given each layer's memory keys and values;
        ``first``: the first layer's self-attended ``tgt`` and its cross query, when known."""
        x = tgt
        for index, (layer, memory) in enumerate(zip(self.layers, keys_values, strict=True)):
            x = layer(x, memory, first if index == 0 else None)
        return x if self.norm is None else self.norm(x)

    def forward(self, tgt: torch.Tensor, memory: torch.Tensor) -> torch.Tensor:
        """``[B, N, D]``, ``[B, M, Din]`` -> ``[B, N, D]``."""
        return self.decode(tgt, self.keys_values(memory))
