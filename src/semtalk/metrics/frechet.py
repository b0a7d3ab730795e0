"""Fréchet distance between Gaussian fits, and FGD on motion latents (spec §8.1).

``FD = |mu_a - mu_b|^2 + tr(S_a) + tr(S_b) - 2 tr(sqrt(S_a S_b))`` with means and covariances
(``np.cov``, unbiased) of two sample sets. The matrix square root is scipy's; as in pytorch-fid
and the official evaluation, when it is not finite both covariances get ``1e-6`` added to their
diagonals, and a numerically complex result is accepted only if its imaginary part is tiny.

FGD (:func:`fgd`) applies this to the latents of an :class:`~semtalk.metrics.fgd_encoder.
FGDAutoencoder`: each sequence is truncated to a multiple of 32 frames, encoded into
``T/16`` latent steps of 240 channels, and the steps of all sequences are pooled. Papers report
"FGD x 10^-1", i.e. the raw value times 10 (SemTalk's 4.278 is a raw 0.4278).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
import torch
from scipy import linalg

from semtalk.metrics.fgd_encoder import FGDAutoencoder

FGD_FRAME_MULTIPLE = 32
"""Sequences are truncated to a multiple of this many frames before encoding (official)."""

SQRTM_EPS = 1e-6
"""Diagonal offset added to both covariances when their product's square root is not finite."""

IMAGINARY_TOLERANCE = 1e-3
"""Largest imaginary part on the square root's diagonal accepted as round-off."""


def gaussian_statistics(samples: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean ``[D]`` and unbiased covariance ``[D, D]`` of ``samples [N, D]`` (N >= 2)."""
    samples = np.asarray(samples, dtype=np.float64)
    if samples.ndim != 2 or samples.shape[0] < 2:
        raise ValueError(f"need samples [N >= 2, D], got shape {samples.shape}")
    return samples.mean(axis=0), np.atleast_2d(np.cov(samples, rowvar=False))


def _sqrtm(matrix: np.ndarray) -> np.ndarray:
    """scipy's matrix square root without its singular-matrix warning (handled by the caller,
    as pytorch-fid's ``disp=False`` does)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", linalg.LinAlgWarning)
        return linalg.sqrtm(matrix)


def frechet_distance_from_statistics(mu_a: np.ndarray, sigma_a: np.ndarray, mu_b: np.ndarray,
                                     sigma_b: np.ndarray, eps: float = SQRTM_EPS) -> float:
    """Fréchet distance between ``N(mu_a, sigma_a)`` and ``N(mu_b, sigma_b)``.

    Raises:
        ValueError: on mismatched shapes, or when the matrix square root has an imaginary
            component larger than :data:`IMAGINARY_TOLERANCE` (covariances far from PSD).
    """
    mu_a, mu_b = np.atleast_1d(mu_a).astype(np.float64), np.atleast_1d(mu_b).astype(np.float64)
    sigma_a = np.atleast_2d(sigma_a).astype(np.float64)
    sigma_b = np.atleast_2d(sigma_b).astype(np.float64)
    if mu_a.shape != mu_b.shape or sigma_a.shape != sigma_b.shape \
            or sigma_a.shape != (mu_a.size, mu_a.size):
        raise ValueError(f"mismatched statistics: means {mu_a.shape} / {mu_b.shape}, "
                         f"covariances {sigma_a.shape} / {sigma_b.shape}")
    diff = mu_a - mu_b
    covmean = _sqrtm(sigma_a @ sigma_b)
    if not np.isfinite(covmean).all():
        offset = np.eye(sigma_a.shape[0]) * eps
        covmean = _sqrtm((sigma_a + offset) @ (sigma_b + offset))
    if np.iscomplexobj(covmean):
        largest = np.max(np.abs(np.diagonal(covmean).imag))
        if largest > IMAGINARY_TOLERANCE:
            raise ValueError(f"matrix square root has an imaginary component of {largest:.3g}; "
                             "the covariances are not positive semi-definite")
        covmean = covmean.real
    value = diff @ diff + np.trace(sigma_a) + np.trace(sigma_b) - 2.0 * np.trace(covmean)
    return float(value)


def frechet_distance(samples_a: np.ndarray, samples_b: np.ndarray,
                     eps: float = SQRTM_EPS) -> float:
    """Fréchet distance between Gaussian fits of ``samples_a [N, D]`` and ``samples_b [M, D]``."""
    return frechet_distance_from_statistics(*gaussian_statistics(samples_a),
                                            *gaussian_statistics(samples_b), eps=eps)


def _as_rot6d(sequence: np.ndarray | torch.Tensor, input_dim: int, index: int) -> torch.Tensor:
    """``[T, input_dim]`` or ``[T, J, 6]`` -> float tensor ``[T, input_dim]``."""
    x = torch.as_tensor(np.asarray(sequence) if not isinstance(sequence, torch.Tensor)
                        else sequence)
    if x.dim() == 3:
        x = x.reshape(x.shape[0], -1)
    if x.dim() != 2 or x.shape[1] != input_dim:
        raise ValueError(f"sequence {index}: expected 6D rotations [T, {input_dim}] or "
                         f"[T, {input_dim // 6}, 6], got shape {tuple(x.shape)}")
    return x


@torch.no_grad()
def encode_sequences(encoder: FGDAutoencoder,
                     sequences: Sequence[np.ndarray | torch.Tensor],
                     frame_multiple: int = FGD_FRAME_MULTIPLE) -> np.ndarray:
    """FGD latents of every sequence, pooled: ``[sum_i T_i/16, 240]`` (float64).

    Args:
        encoder: the FGD autoencoder (official weights for paper-comparable numbers).
        sequences: 6D joint rotations, each ``[T, 330]`` or ``[T, 55, 6]`` (no translation;
            generated eyes as generated, GT eyes as recorded).
        frame_multiple: each sequence is truncated to a multiple of this (32 officially).

    Raises:
        ValueError: if a sequence is shorter than ``frame_multiple`` frames or has the wrong
            channel count (the message gives its index).
    """
    if frame_multiple % encoder.config.downsample_factor:
        raise ValueError(f"frame_multiple {frame_multiple} must be a multiple of the encoder's "
                         f"downsampling factor {encoder.config.downsample_factor}")
    device = next(encoder.parameters()).device
    was_training = encoder.training
    encoder.eval()
    latents = []
    try:
        for index, sequence in enumerate(sequences):
            x = _as_rot6d(sequence, encoder.config.input_dim, index)
            usable = x.shape[0] - x.shape[0] % frame_multiple
            if usable == 0:
                raise ValueError(f"sequence {index} has {x.shape[0]} frames; FGD needs at "
                                 f"least {frame_multiple}")
            z = encoder.encode(x[None, :usable].to(device))  # [1, T/16, 240]
            latents.append(z[0].double().cpu().numpy())
    finally:
        encoder.train(was_training)
    if not latents:
        raise ValueError("no sequences to encode")
    return np.concatenate(latents, axis=0)


def fgd(encoder: FGDAutoencoder, generated: Sequence[np.ndarray | torch.Tensor],
        ground_truth: Sequence[np.ndarray | torch.Tensor],
        frame_multiple: int = FGD_FRAME_MULTIPLE) -> float:
    """Fréchet gesture distance between generated and ground-truth motion (raw, not x10).

    Args:
        encoder: the FGD autoencoder.
        generated: generated 6D rotations per sequence, ``[T, 330]`` or ``[T, 55, 6]``.
        ground_truth: ground-truth 6D rotations per sequence, same format.
        frame_multiple: truncation multiple (32).
    """
    return frechet_distance(encode_sequences(encoder, generated, frame_multiple),
                            encode_sequences(encoder, ground_truth, frame_multiple))
