"""Losses of the base and sparse generators (pure functions of tensors, no model knowledge).

- :func:`info_nce` and :func:`rhythmic_consistency_loss`: the local (frame-level) and global
  (sequence-level) rhythmic consistency of paper Eq. 4.
- :func:`code_classification_loss`: cross-entropy on every RVQ layer's codes, layer i weighted
  1/(i+1) (official).
- :func:`latent_regression_loss`: MSE of the predicted per-layer code vectors.
- :func:`gate_classification_loss`: the sem-gate's cross-entropy against semantic labels
  (L_cls^G).

``weights [B, N]`` arguments weigh tokens (the paper's loss weighting W_l with ψ- or
label-derived scores). A weighted loss is ``sum(w * l) / count`` with ``count`` the number of
valid tokens, as the official trainer does (``mean(ŝ · l)``): tokens with weight 0 add nothing
but still count, so the loss scale follows the fraction of emphasised tokens.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

IGNORE_CODE = -1
"""Code value that :func:`code_classification_loss` skips (quantizer dropout's marker)."""


def _check_same(name_a: str, a: torch.Tensor, name_b: str, b: torch.Tensor) -> None:
    if a.shape != b.shape:
        raise ValueError(f"{name_a} {tuple(a.shape)} and {name_b} {tuple(b.shape)} must have "
                         "the same shape")


def _check_weights(weights: torch.Tensor | None, batch: int, tokens: int) -> None:
    if weights is not None and tuple(weights.shape) != (batch, tokens):
        raise ValueError(f"weights must be [B, N] = [{batch}, {tokens}], got "
                         f"{tuple(weights.shape)}")


def info_nce(query: torch.Tensor, keys: torch.Tensor, temperature: float = 0.1,
             exclude: torch.Tensor | None = None) -> torch.Tensor:
    """InfoNCE with cosine similarity, positives at the same index: ``[B, N, D]`` x2 -> scalar.

    For every sequence b and position i, ``-log softmax_j(cos(query_bi, keys_bj) / τ)[i]``:
    the other N-1 keys of the same sequence are the negatives (paper Eq. 4: softmax over the
    rhythm features j for motion feature i). Averaged over B and N. N = 1 gives 0.

    ``exclude`` ``[N, N]`` bool: key ``j`` is no negative of query ``i`` where True (false
    negatives; the diagonal, the positive, is always kept).
    """
    _check_same("query", query, "keys", keys)
    if query.dim() != 3:
        raise ValueError(f"info_nce expects [B, N, D] tensors, got {tuple(query.shape)}")
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    similarity = F.normalize(query, dim=-1) @ F.normalize(keys, dim=-1).transpose(1, 2)
    logits = similarity / temperature  # [B, N (query), N (key)]
    if exclude is not None:
        n = query.shape[1]
        if tuple(exclude.shape) != (n, n):
            raise ValueError(f"exclude must be [N, N] = [{n}, {n}], got {tuple(exclude.shape)}")
        off_diagonal = exclude.to(torch.bool) & ~torch.eye(n, dtype=torch.bool,
                                                           device=exclude.device)
        logits = logits.masked_fill(off_diagonal.to(logits.device), float("-inf"))
    target = torch.arange(query.shape[1], device=query.device).expand(query.shape[0], -1)
    return F.cross_entropy(logits.transpose(1, 2), target)


def overlapping_windows(clips: torch.Tensor, starts: torch.Tensor,
                        length: int) -> torch.Tensor:
    """``[B, B]`` bool: samples ``i`` and ``j`` are windows of the same clip (``clips [B]``, any
    integer clip index) whose frame ranges ``[start, start + length)`` (``starts [B]``) overlap.
    The diagonal is True."""
    same_clip = clips[:, None] == clips[None, :]
    return same_clip & ((starts[:, None] - starts[None, :]).abs() < length)


def rhythmic_consistency_loss(motion: torch.Tensor, audio: torch.Tensor,
                              temperature: float = 0.1, local: bool = True,
                              global_: bool = True,
                              same_source: torch.Tensor | None = None
                              ) -> dict[str, torch.Tensor]:
    """Local + global rhythmic consistency (paper Eq. 4) of ``[B, N, D]`` motion and audio.

    - ``"local"``: frame level, :func:`info_nce` within each sequence (positive: the same
      token; negatives: the other tokens of that sequence).
    - ``"global"``: sequence level, :func:`info_nce` over the batch of token-averaged features
      (positive: the same sample; negatives: the other samples, except the pairs marked in
      ``same_source`` ``[B, B]`` bool, e.g. overlapping windows of one clip
      (:func:`overlapping_windows`), which share frames and are no true negatives). With no
      negative left (B = 1) the term is exactly 0. Under data parallelism the negatives are
      the samples of the local batch only.
    - ``"total"``: the sum of the enabled terms (a disabled term is 0).

    ``motion`` is the projected motion latent h(f), ``audio`` the token-pooled speech latent.
    """
    _check_same("motion", motion, "audio", audio)
    zero = motion.new_zeros(())
    local_term = info_nce(motion, audio, temperature) if local else zero
    global_term = (info_nce(motion.mean(dim=1)[None], audio.mean(dim=1)[None], temperature,
                            exclude=same_source) if global_ else zero)
    return {"local": local_term, "global": global_term, "total": local_term + global_term}


def _default_layer_weights(count: int) -> list[float]:
    return [1.0 / (i + 1) for i in range(count)]


def code_classification_loss(logits: torch.Tensor, codes: torch.Tensor,
                             weights: torch.Tensor | None = None,
                             layer_weights: Sequence[float] | None = None) -> torch.Tensor:
    """Cross-entropy of ``logits [B, N, Q, K]`` against ``codes [B, N, Q]``, summed over layers.

    Layer i is weighted ``layer_weights[i]`` (default ``1/(i+1)``); within a layer the loss is
    ``sum_tokens(w * CE) / valid tokens``, skipping codes equal to -1. ``weights [B, N]`` (W_l)
    default to 1. A layer with no valid code contributes 0.
    """
    if logits.dim() != 4 or tuple(codes.shape) != tuple(logits.shape[:3]):
        raise ValueError(f"logits must be [B, N, Q, K] and codes [B, N, Q], got "
                         f"{tuple(logits.shape)} and {tuple(codes.shape)}")
    batch, tokens, layers, _ = logits.shape
    _check_weights(weights, batch, tokens)
    factors = list(layer_weights) if layer_weights is not None else _default_layer_weights(layers)
    if len(factors) != layers:
        raise ValueError(f"layer_weights needs {layers} values, got {len(factors)}")
    codes = codes.long()
    valid = codes != IGNORE_CODE  # [B, N, Q]
    per_token = F.cross_entropy(logits.permute(0, 3, 1, 2), codes.clamp(min=0),
                                reduction="none")  # [B, N, Q]
    token_weights = valid.to(per_token.dtype)
    if weights is not None:
        token_weights = token_weights * weights.to(per_token.dtype)[..., None]
    per_layer = ((per_token * token_weights).sum(dim=(0, 1))
                 / valid.sum(dim=(0, 1)).clamp(min=1))  # [Q]
    return (per_layer * per_layer.new_tensor(factors)).sum()


def latent_regression_loss(latents: torch.Tensor, targets: torch.Tensor,
                           weights: torch.Tensor | None = None) -> torch.Tensor:
    """Mean squared error of ``latents [B, Q, N, D]`` against ``targets [B, Q, N, D]``.

    ``weights [B, N]`` scale each token's error on every layer and channel; the mean runs
    over all entries, zero-weighted ones included.
    """
    _check_same("latents", latents, "targets", targets)
    if latents.dim() != 4:
        raise ValueError(f"latents must be [B, Q, N, D], got {tuple(latents.shape)}")
    error = (latents - targets.to(latents.dtype)).pow(2)
    _check_weights(weights, latents.shape[0], latents.shape[2])
    if weights is not None:
        error = error * weights.to(error.dtype)[:, None, :, None]
    return error.mean()


def gate_classification_loss(gate_logits: torch.Tensor, labels: torch.Tensor,
                             class_weights: torch.Tensor | Sequence[float] | None = None,
                             ) -> torch.Tensor:
    """Cross-entropy of sem-gate ``logits [B, N, 2]`` against ``labels [B, N]`` in {0, 1}.

    ``class_weights`` ``[2]`` (non-semantic, semantic) rebalance the rare semantic tokens;
    None weighs both classes 1 (official). Averaged over tokens (weighted mean when
    ``class_weights`` is given, as in ``F.cross_entropy``).
    """
    if gate_logits.dim() != 3 or gate_logits.shape[-1] != 2:
        raise ValueError(f"gate_logits must be [B, N, 2], got {tuple(gate_logits.shape)}")
    if tuple(labels.shape) != tuple(gate_logits.shape[:2]):
        raise ValueError(f"labels must be [B, N] = {tuple(gate_logits.shape[:2])}, got "
                         f"{tuple(labels.shape)}")
    if labels.is_floating_point() and not torch.equal(labels, labels.round()):
        raise ValueError("labels must be 0 (no semantic emphasis) or 1 (semantic)")
    labels = labels.long()
    if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) > 1):
        raise ValueError("labels must be 0 (no semantic emphasis) or 1 (semantic)")
    weight = None
    if class_weights is not None:
        weight = torch.as_tensor(class_weights, dtype=gate_logits.dtype,
                                 device=gate_logits.device)
        if weight.shape != (2,):
            raise ValueError(f"class_weights must have 2 values, got {tuple(weight.shape)}")
    return F.cross_entropy(gate_logits.transpose(1, 2), labels, weight=weight)
