"""Fréchet distance and FGD: known answers, invariances, truncation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from semtalk.metrics import (
    FGDAutoencoder,
    FGDEncoderConfig,
    encode_sequences,
    fgd,
    frechet,
    frechet_distance,
    frechet_distance_from_statistics,
)


@pytest.fixture(scope="module")
def encoder() -> FGDAutoencoder:
    torch.manual_seed(0)
    return FGDAutoencoder(FGDEncoderConfig()).eval()


def test_identical_sets_give_zero() -> None:
    samples = np.random.default_rng(0).normal(size=(2000, 8))
    assert abs(frechet_distance(samples, samples)) < 1e-9


def test_shift_adds_squared_norm() -> None:
    rng = np.random.default_rng(1)
    samples = rng.normal(size=(2000, 8)) @ rng.normal(size=(8, 8))  # correlated
    shift = rng.normal(size=8)
    assert frechet_distance(samples, samples + shift) == pytest.approx(shift @ shift, abs=1e-8)
    other = rng.normal(size=(1500, 8))
    base = frechet_distance(samples, other)
    mean_gap = samples.mean(0) - other.mean(0)
    expected = base + shift @ shift + 2 * shift @ mean_gap
    assert frechet_distance(samples + shift, other) == pytest.approx(expected, rel=1e-9)


def test_closed_form_for_commuting_covariances() -> None:
    # diagonal covariances: FD = |mu_a - mu_b|^2 + sum (s_a - s_b)^2 with s the std devs
    std_a, std_b = np.array([1.0, 2.0, 0.5]), np.array([3.0, 1.0, 0.5])
    mu_a, mu_b = np.array([0.0, 1.0, 2.0]), np.array([1.0, 1.0, 0.0])
    value = frechet_distance_from_statistics(mu_a, np.diag(std_a**2), mu_b, np.diag(std_b**2))
    assert value == pytest.approx(5.0 + 4.0 + 1.0)


def test_singular_covariances_give_a_finite_value() -> None:
    sigma, other = np.diag([1.0, 0.0, 0.0]), np.diag([0.0, 1.0, 0.0])
    value = frechet_distance_from_statistics(np.zeros(3), sigma, np.zeros(3), other)
    assert value == pytest.approx(2.0, abs=1e-9)


def test_non_finite_square_root_retries_with_diagonal_offset(monkeypatch) -> None:
    calls = []

    def flaky_sqrtm(matrix):
        calls.append(matrix.copy())
        return np.full_like(matrix, np.nan) if len(calls) == 1 else scipy_sqrtm(matrix)

    from scipy.linalg import sqrtm as scipy_sqrtm

    monkeypatch.setattr(frechet.linalg, "sqrtm", flaky_sqrtm)
    sigma_a, sigma_b = np.diag([1.0, 4.0]), np.diag([9.0, 1.0])
    value = frechet_distance_from_statistics(np.zeros(2), sigma_a, np.zeros(2), sigma_b)
    assert len(calls) == 2
    assert np.allclose(calls[1], (sigma_a + 1e-6 * np.eye(2)) @ (sigma_b + 1e-6 * np.eye(2)))
    assert value == pytest.approx((1 - 3) ** 2 + (2 - 1) ** 2, abs=1e-5)


def test_covariances_that_are_not_psd_raise() -> None:
    with pytest.raises(ValueError, match="imaginary"):
        frechet_distance_from_statistics(np.zeros(2), np.diag([-1.0, 1.0]), np.zeros(2),
                                         np.eye(2))


def test_mismatched_statistics_are_rejected() -> None:
    with pytest.raises(ValueError, match="mismatched"):
        frechet_distance_from_statistics(np.zeros(2), np.eye(2), np.zeros(3), np.eye(3))
    with pytest.raises(ValueError, match=r"N >= 2"):
        frechet_distance(np.zeros((1, 4)), np.zeros((5, 4)))


def test_fgd_of_identical_sets_is_zero(encoder: FGDAutoencoder) -> None:
    g = torch.Generator().manual_seed(0)
    sequences = [torch.randn(1024, 330, generator=g) * 0.3 for _ in range(4)]  # 256 latents
    assert abs(fgd(encoder, sequences, sequences)) < 1e-6
    other = [torch.randn(1024, 330, generator=g) * 0.3 + 0.2 for _ in range(4)]
    assert fgd(encoder, sequences, other) > 1.0


def test_sequences_are_truncated_to_multiples_of_32(encoder: FGDAutoencoder) -> None:
    g = torch.Generator().manual_seed(1)
    long = torch.randn(100, 55, 6, generator=g)  # [T, 55, 6] accepted; 100 -> 96 frames
    latents = encode_sequences(encoder, [long.numpy(), long[:70]])  # 96/16 + 64/16 steps
    assert latents.shape == (6 + 4, 240) and latents.dtype == np.float64
    with torch.no_grad():
        direct = encoder.encode(long[None, :96].reshape(1, 96, 330))[0].double().numpy()
    assert np.array_equal(latents[:6], direct)
    with pytest.raises(ValueError, match="sequence 1 has 20 frames"):
        encode_sequences(encoder, [long, long[:20]])
    with pytest.raises(ValueError, match="sequence 0"):
        encode_sequences(encoder, [torch.zeros(64, 300)])
