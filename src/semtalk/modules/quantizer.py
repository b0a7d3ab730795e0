"""Residual vector quantiser with EMA codebooks, dead-code reset and quantizer dropout.

Each of the ``num_quantizers`` layers owns a codebook of ``codebook_size`` vectors of
``codebook_dim`` channels and quantises the residual the previous layers left:
``r_0 = z``, ``q_k = codebook_k[nearest(r_k)]``, ``r_{k+1} = r_k - sg(q_k)``; the output is
``sum_k q_k``. Codebooks are not trained by gradients: they are buffers moved by an exponential
moving average (EMA) of the residuals assigned to each code, initialised from the first training
batch, and codes whose EMA count falls below ``dead_code_threshold`` are reset to residuals of
the current batch (the MoMask / T2M-GPT ``QuantizeEMAReset`` scheme the official SemTalk code
uses). The straight-through estimator is applied once to the sum, so the gradient reaching
``z`` is exactly the gradient of the output (the official per-layer estimator multiplies it by
the number of layers). All randomness (initialisation, resets, dropout, Gumbel sampling)
draws from torch's global generator on the inputs' device, so a run is reproducible under
``torch.manual_seed``.

Under ``torch.distributed`` the EMA statistics are summed over replicas and every codebook
initialisation or reset is broadcast from rank 0, so all replicas keep identical codebooks.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import cast

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

_EPS = 1e-6


@dataclass(frozen=True)
class QuantizerConfig:
    """Configuration of :class:`ResidualVQ`.

    Attributes:
        num_quantizers: residual layers Q (1 gives a plain single-layer VQ, the paper's ablation).
        codebook_size: codes per layer K.
        codebook_dim: channels of a code vector D; must equal the encoder's output channels.
        ema_decay: decay of the EMA of code counts and code sums.
        dead_code_threshold: a code whose EMA count is below this value is reset to a residual
            vector of the current training batch (0 disables resets).
        sample_temperature: 0 picks the nearest code. A value > 0 samples codes in training by
            Gumbel-max over ``-||r - e||^2 / tau`` (the official code uses tau = 0.5); eval mode,
            :meth:`ResidualVQ.encode` and the codes a trained model emits are always nearest.
        quantize_dropout: probability that, in training, a batch element uses only the first
            ``k ~ U{1..Q}`` layers (its codes of later layers are -1). Never applied in eval.
        commitment_weight: factor on the commitment loss.
        straight_through_residual: subtract the straight-through value ``r_k + (q_k - r_k)``
            from the residual instead of ``q_k`` (``r_{k+1} = r_k - (r_k + (q_k - r_k))``), as
            the official code does. The two differ by float rounding only, which can still flip
            a code whose distance margin is within a few ulps; the official-weights family sets
            it so its codes match the official ones exactly. Off: ``r_k = z - sum_{j<k} q_j``.
    """

    num_quantizers: int = 6
    codebook_size: int = 256
    codebook_dim: int = 256
    ema_decay: float = 0.99
    dead_code_threshold: float = 1.0
    sample_temperature: float = 0.0
    quantize_dropout: float = 0.2
    commitment_weight: float = 1.0
    straight_through_residual: bool = False

    def __post_init__(self) -> None:
        problems = []
        for name in ("num_quantizers", "codebook_size", "codebook_dim"):
            if getattr(self, name) < 1:
                problems.append(f"{name} must be >= 1, got {getattr(self, name)}")
        if not 0.0 <= self.ema_decay < 1.0:
            problems.append(f"ema_decay must be in [0, 1), got {self.ema_decay}")
        if not 0.0 <= self.quantize_dropout <= 1.0:
            problems.append(f"quantize_dropout must be in [0, 1], got {self.quantize_dropout}")
        for name in ("dead_code_threshold", "sample_temperature", "commitment_weight"):
            if getattr(self, name) < 0:
                problems.append(f"{name} must be >= 0, got {getattr(self, name)}")
        if problems:
            raise ValueError("; ".join(problems))


@dataclass
class QuantizerOutput:
    """What :meth:`ResidualVQ.forward` returns.

    Attributes:
        quantized: ``[B, N, D]`` sum of the used layers' code vectors; its gradient flows
            straight through to the input (identity Jacobian).
        codes: ``[B, N, Q]`` long code indices, -1 for layers dropped by quantizer dropout.
        commitment_loss: scalar, ``commitment_weight`` x mean over used layers of
            ``MSE(r_k, sg(q_k))`` (each layer averaged over the batch elements that used it).
        perplexity: ``[Q]`` perplexity of each layer's code histogram in this batch.
        usage: ``[Q]`` fraction of each layer's codebook used in this batch. Both statistics
            count only the elements that used the layer, and are 0 for a layer nobody used.
    """

    quantized: torch.Tensor
    codes: torch.Tensor
    commitment_loss: torch.Tensor
    perplexity: torch.Tensor
    usage: torch.Tensor


def _is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def _all_reduce_sum(tensor: torch.Tensor) -> None:
    if _is_distributed():
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)


def _broadcast_from_first(*tensors: torch.Tensor) -> None:
    if _is_distributed():
        for tensor in tensors:
            dist.broadcast(tensor, src=0)


class EMACodebook(nn.Module):
    """One quantiser layer: a ``[K, D]`` codebook kept by EMA, with dead-code reset.

    Buffers (all saved with the model): ``codebook [K, D]``, ``cluster_size [K]`` (EMA count of
    vectors assigned to each code), ``embed_sum [K, D]`` (EMA sum of those vectors) and
    ``initialized`` (a bool scalar; False until the first training batch fills the codebook).
    """

    codebook: torch.Tensor
    cluster_size: torch.Tensor
    embed_sum: torch.Tensor
    initialized: torch.Tensor

    def __init__(self, config: QuantizerConfig) -> None:
        super().__init__()
        self.config = config
        size, dim = config.codebook_size, config.codebook_dim
        self.register_buffer("codebook", torch.randn(size, dim) / math.sqrt(dim))
        self.register_buffer("cluster_size", torch.zeros(size))
        self.register_buffer("embed_sum", torch.zeros(size, dim))
        self.register_buffer("initialized", torch.tensor(False))

    def distances(self, vectors: torch.Tensor) -> torch.Tensor:
        """Squared Euclidean distances ``[n, K]`` from ``vectors [n, D]`` to every code."""
        codebook = self.codebook.float()
        vectors = vectors.float()
        return (vectors.pow(2).sum(-1, keepdim=True) - 2.0 * vectors @ codebook.t()
                + codebook.pow(2).sum(-1))

    def nearest(self, vectors: torch.Tensor) -> torch.Tensor:
        """Index ``[n]`` of the nearest code to each of ``vectors [n, D]``."""
        return self.distances(vectors).argmin(-1)

    def choose(self, vectors: torch.Tensor, sample: bool) -> torch.Tensor:
        """Codes ``[n]`` for ``vectors [n, D]``: Gumbel-max sampled if ``sample`` and tau > 0."""
        temperature = self.config.sample_temperature
        if not sample or temperature <= 0:
            return self.nearest(vectors)
        logits = -self.distances(vectors) / temperature
        uniform = torch.rand_like(logits).clamp_(1e-10, 1.0 - 1e-7)
        return (logits - torch.log(-torch.log(uniform))).argmax(-1)

    @torch.no_grad()
    def _draw(self, vectors: torch.Tensor, count: int) -> torch.Tensor:
        """``count`` rows drawn from ``vectors [n, D]``: without replacement when n >= count,
        otherwise tiled and jittered with N(0, (0.01/sqrt(D))^2) so that no two codes coincide."""
        n, dim = vectors.shape
        if n == 0:
            raise ValueError("cannot draw codebook vectors from an empty batch")
        if n >= count:
            return vectors[torch.randperm(n, device=vectors.device)[:count]].clone()
        picked = vectors.repeat(math.ceil(count / n), 1)[:count]
        return picked + torch.randn_like(picked) * (0.01 / math.sqrt(dim))

    @torch.no_grad()
    def initialize_from(self, vectors: torch.Tensor) -> None:
        """Fill the codebook from ``vectors [n, D]`` (rank 0's draw under torch.distributed)."""
        start = self._draw(vectors.float(), self.config.codebook_size)
        _broadcast_from_first(start)
        self.codebook.copy_(start)
        self.cluster_size.fill_(1.0)
        self.embed_sum.copy_(start)
        self.initialized.fill_(True)

    @torch.no_grad()
    def update(self, vectors: torch.Tensor, codes: torch.Tensor, spare: torch.Tensor) -> None:
        """One EMA step from ``vectors [n, D]`` assigned to ``codes [n]``, then dead-code reset.

        ``spare [m, D]`` are replacement candidates used when ``vectors`` is empty (every batch
        element dropped this layer). Must be called on every replica in the same order.
        """
        size, decay = self.config.codebook_size, self.config.ema_decay
        vectors = vectors.float()
        onehot = F.one_hot(codes, size).to(vectors.dtype)  # [n, K]
        counts = onehot.sum(0)  # [K]
        sums = onehot.t() @ vectors  # [K, D]
        _all_reduce_sum(counts)
        _all_reduce_sum(sums)
        self.cluster_size.mul_(decay).add_(counts, alpha=1.0 - decay)
        self.embed_sum.mul_(decay).add_(sums, alpha=1.0 - decay)
        alive = (self.cluster_size > _EPS).unsqueeze(-1)
        means = self.embed_sum / self.cluster_size.clamp_min(_EPS).unsqueeze(-1)
        self.codebook.copy_(torch.where(alive, means, self.codebook))
        dead = self.cluster_size < self.config.dead_code_threshold  # identical on all replicas
        if bool(dead.any()):
            self._reset(dead, vectors if len(vectors) else spare.float())

    @torch.no_grad()
    def _reset(self, dead: torch.Tensor, candidates: torch.Tensor) -> None:
        """Replace the ``dead [K]`` codes with vectors drawn from ``candidates [m, D]``."""
        threshold = self.config.dead_code_threshold
        fresh = self._draw(candidates, int(dead.sum()))
        self.codebook[dead] = fresh
        self.cluster_size[dead] = threshold
        self.embed_sum[dead] = fresh * threshold
        _broadcast_from_first(self.codebook, self.cluster_size, self.embed_sum)


class ResidualVQ(nn.Module):
    """Residual vector quantiser over ``[B, N, D]`` sequences (see the module docstring)."""

    def __init__(self, config: QuantizerConfig) -> None:
        super().__init__()
        self.config = config
        self.layers = nn.ModuleList(EMACodebook(config) for _ in range(config.num_quantizers))

    @property
    def num_quantizers(self) -> int:
        """Number of residual layers Q."""
        return self.config.num_quantizers

    @property
    def codebook_layers(self) -> list[EMACodebook]:
        """The Q layers, typed (:attr:`layers` is an ``nn.ModuleList`` of :class:`EMACodebook`)."""
        return [cast(EMACodebook, layer) for layer in self.layers]

    @property
    def codebooks(self) -> torch.Tensor:
        """All codebooks stacked, ``[Q, K, D]`` (a copy)."""
        return torch.stack([layer.codebook for layer in self.codebook_layers])

    def _check_input(self, x: torch.Tensor) -> None:
        if x.dim() != 3 or x.shape[-1] != self.config.codebook_dim:
            raise ValueError(f"ResidualVQ expects [B, N, {self.config.codebook_dim}] input, "
                             f"got shape {tuple(x.shape)}")

    def _layers_used(self, batch: int, device: torch.device) -> torch.Tensor | None:
        """Per-element number of layers ``[B]`` under quantizer dropout, or None (all)."""
        count, probability = self.config.num_quantizers, self.config.quantize_dropout
        if not self.training or probability <= 0 or count == 1:
            return None
        dropped = torch.rand(batch, device=device) < probability
        depth = torch.randint(1, count + 1, (batch,), device=device)
        return torch.where(dropped, depth, torch.full_like(depth, count))

    def forward(self, x: torch.Tensor) -> QuantizerOutput:
        """Quantise ``x [B, N, D]``; in training also update the codebooks (EMA, resets).

        Returns:
            :class:`QuantizerOutput` with ``quantized [B, N, D]`` and ``codes [B, N, Q]``.
        """
        self._check_input(x)
        batch, length, dim = x.shape
        size = self.config.codebook_size
        z = x.float()
        layers_used = self._layers_used(batch, x.device)
        offset = torch.zeros_like(z.detach())  # sum_{j<k} sg(q_j), so r_k = z - offset
        total = torch.zeros_like(offset)  # sum of the used layers' vectors
        codes, layer_losses, perplexity, usage = [], [], [], []
        residual = z  # [B, N, D]; the commitment gradient flows into z
        for index, layer in enumerate(self.codebook_layers):
            flat = residual.detach().reshape(-1, dim)  # [B*N, D]
            if self.training and not bool(layer.initialized):
                layer.initialize_from(flat)
            layer_codes = layer.choose(flat, sample=self.training)  # [B*N]
            vectors = layer.codebook[layer_codes].view(batch, length, dim).float()
            if layers_used is None:
                active = torch.ones(batch, dtype=torch.bool, device=x.device)
            else:
                active = layers_used > index  # [B]
            active_flat = active.repeat_interleave(length)  # [B*N]
            if self.training:
                layer.update(flat[active_flat], layer_codes[active_flat], spare=flat)
            weight = active.to(z.dtype)
            error = (residual - vectors).pow(2).mean(dim=(1, 2))  # [B]
            layer_losses.append((error * weight).sum() / weight.sum().clamp_min(1.0))
            counts = torch.bincount(layer_codes, weights=active_flat.to(z.dtype), minlength=size)
            layer_perplexity, layer_usage = _code_statistics(counts)
            perplexity.append(layer_perplexity)
            usage.append(layer_usage)
            total = total + vectors * weight[:, None, None]
            offset = offset + vectors
            residual = self._next_residual(z, offset, residual, vectors)
            codes.append(layer_codes.view(batch, length).masked_fill(~active[:, None], -1))
        loss_stack = torch.stack(layer_losses)
        layers_with_use = (torch.stack(usage) > 0).to(z.dtype).sum().clamp_min(1.0)
        commitment = loss_stack.sum() / layers_with_use * self.config.commitment_weight
        quantized = total + (z - z.detach())  # value: the codes' sum; gradient: identity
        return QuantizerOutput(
            quantized=quantized.to(x.dtype),
            codes=torch.stack(codes, dim=-1),
            commitment_loss=commitment,
            perplexity=torch.stack(perplexity),
            usage=torch.stack(usage),
        )

    @torch.no_grad()
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Nearest codes of every layer, ``[B, N, D] -> [B, N, Q]`` (no sampling, no dropout,
        no codebook update, in any mode)."""
        self._check_input(x)
        batch, length, dim = x.shape
        z = x.float()
        offset = torch.zeros_like(z)  # same arithmetic as forward, so the codes agree exactly
        residual = z
        codes = []
        for layer in self.codebook_layers:
            layer_codes = layer.nearest(residual.reshape(-1, dim)).view(batch, length)
            vectors = layer.codebook[layer_codes].float()
            offset = offset + vectors
            residual = self._next_residual(z, offset, residual, vectors)
            codes.append(layer_codes)
        return torch.stack(codes, dim=-1)

    def _next_residual(self, z: torch.Tensor, offset: torch.Tensor, residual: torch.Tensor,
                       vectors: torch.Tensor) -> torch.Tensor:
        """The residual the next layer quantises, given ``offset = sum_{j<=k} q_k`` and this
        layer's ``residual`` and chosen ``vectors`` (see
        :attr:`QuantizerConfig.straight_through_residual`); its gradient is the identity."""
        if not self.config.straight_through_residual:
            return z - offset
        return residual - (residual + (vectors - residual)).detach()

    def codes_to_vectors(self, codes: torch.Tensor) -> torch.Tensor:
        """Per-layer code vectors ``[Q', B, N, D]`` of ``codes [B, N, Q']`` (Q' <= Q).

        These are the individual layers' vectors, not cumulative sums (the official ``map2zq``);
        entries of -1 give zero vectors.
        """
        self._check_codes(codes)
        layers = self.codebook_layers
        vectors = []
        for index in range(codes.shape[-1]):
            layer_codes = codes[..., index]
            valid = (layer_codes >= 0).unsqueeze(-1)
            picked = layers[index].codebook[layer_codes.clamp_min(0)].float()
            vectors.append(picked * valid)
        return torch.stack(vectors)

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """Sum of the code vectors, ``[B, N, Q'] -> [B, N, D]``; -1 entries are ignored."""
        vectors = self.codes_to_vectors(codes)
        total = torch.zeros_like(vectors[0])
        for layer_vectors in vectors:  # same summation order as forward, so results match
            total = total + layer_vectors
        return total

    def _check_codes(self, codes: torch.Tensor) -> None:
        count, size = self.config.num_quantizers, self.config.codebook_size
        if codes.dim() != 3 or not 1 <= codes.shape[-1] <= count:
            raise ValueError(f"codes must be [B, N, Q'] with 1 <= Q' <= {count}, "
                             f"got shape {tuple(codes.shape)}")
        if codes.dtype.is_floating_point or codes.dtype == torch.bool:
            raise ValueError(f"codes must be an integer tensor, got {codes.dtype}")
        if codes.numel() and (int(codes.min()) < -1 or int(codes.max()) >= size):
            raise ValueError(f"codes must lie in [-1, {size - 1}], got values in "
                             f"[{int(codes.min())}, {int(codes.max())}]")


def _code_statistics(counts: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Perplexity and used fraction of a code histogram ``[K]`` (both 0 for an empty one)."""
    total = counts.sum()
    probabilities = counts / total.clamp_min(1.0)
    entropy = -(probabilities * probabilities.clamp_min(1e-10).log()).sum()
    seen = (total > 0).to(counts.dtype)
    return entropy.exp() * seen, (counts > 0).to(counts.dtype).mean()
