"""Generator losses: InfoNCE known answers, local/global rhythm terms, code/latent/gate losses."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from semtalk.losses.generator import (
    code_classification_loss,
    gate_classification_loss,
    info_nce,
    latent_regression_loss,
    overlapping_windows,
    rhythmic_consistency_loss,
)


def reference_info_nce(query: torch.Tensor, keys: torch.Tensor, tau: float) -> float:
    """Eq. 4 written out: for each query i, -log softmax over keys j at j = i."""
    total, count = 0.0, 0
    for q_seq, k_seq in zip(query, keys, strict=True):
        for i, q in enumerate(q_seq):
            sims = torch.stack([F.cosine_similarity(q, k, dim=0) for k in k_seq]) / tau
            total -= torch.log_softmax(sims, dim=0)[i].item()
            count += 1
    return total / count


def test_info_nce_known_answers() -> None:
    aligned = torch.eye(4).expand(3, 4, 4)
    assert info_nce(aligned, aligned.clone(), temperature=0.01).item() < 1e-6
    same = torch.ones(2, 5, 3)
    assert info_nce(same, same, 0.1).item() == pytest.approx(math.log(5), rel=1e-6)
    # scaled copies: cosine similarity ignores norms
    assert info_nce(aligned * 7.0, aligned * 0.1, 0.01).item() < 1e-6
    assert info_nce(torch.randn(2, 1, 3), torch.randn(2, 1, 3)).item() == 0.0


def test_info_nce_matches_the_written_out_formula() -> None:
    gen = torch.Generator().manual_seed(0)
    query, keys = torch.randn(2, 6, 5, generator=gen), torch.randn(2, 6, 5, generator=gen)
    assert info_nce(query, keys, 0.3).item() == pytest.approx(
        reference_info_nce(query, keys, 0.3), rel=1e-5)
    # the softmax runs over keys for each query, so swapping the roles changes the value
    assert info_nce(keys, query, 0.3).item() == pytest.approx(
        reference_info_nce(keys, query, 0.3), rel=1e-5)
    assert info_nce(keys, query, 0.3).item() != pytest.approx(info_nce(query, keys, 0.3).item())
    with pytest.raises(ValueError, match="same shape"):
        info_nce(query, keys[:, :5])
    with pytest.raises(ValueError, match="temperature"):
        info_nce(query, keys, 0.0)


def test_rhythmic_local_and_global_terms() -> None:
    # tokens identical within a sequence (local = log N), samples orthogonal (global ~ 0)
    samples = torch.eye(3)[:, None, :].expand(3, 4, 3)
    loss = rhythmic_consistency_loss(samples, samples.clone(), temperature=0.01)
    assert loss["local"].item() == pytest.approx(math.log(4), rel=1e-6)
    assert loss["global"].item() < 1e-6
    torch.testing.assert_close(loss["total"], loss["local"] + loss["global"])
    # tokens orthogonal within each sequence (local ~ 0), all samples identical (global = log B)
    tokens = torch.eye(4).expand(3, 4, 4)
    loss = rhythmic_consistency_loss(tokens, tokens.clone(), temperature=0.01)
    assert loss["local"].item() < 1e-6
    assert loss["global"].item() == pytest.approx(math.log(3), rel=1e-6)


def global_reference(motion: torch.Tensor, audio: torch.Tensor, tau: float,
                     negatives: list[list[int]]) -> float:
    """The global term written out: sample i's positive is i, its negatives ``negatives[i]``."""
    m, a = motion.mean(dim=1), audio.mean(dim=1)
    total = 0.0
    for i, others in enumerate(negatives):
        keys = [i, *others]
        sims = torch.stack([F.cosine_similarity(m[i], a[j], dim=0) for j in keys]) / tau
        total -= torch.log_softmax(sims, dim=0)[0].item()
    return total / len(negatives)


def test_overlapping_windows_of_one_clip() -> None:
    clips, starts = torch.tensor([0, 0, 0, 1]), torch.tensor([0, 20, 64, 20])
    expected = torch.tensor([[1, 1, 0, 0],  # 0..63 and 20..83 share frames; 64.. does not
                             [1, 1, 1, 0],  # 20..83 and 64..127 share 64..83
                             [0, 1, 1, 0],
                             [0, 0, 0, 1]], dtype=torch.bool)  # another clip: never
    assert torch.equal(overlapping_windows(clips, starts, 64), expected)


def test_global_term_skips_overlapping_windows_of_one_clip() -> None:
    gen = torch.Generator().manual_seed(3)
    motion, audio = torch.randn(4, 5, 6, generator=gen), torch.randn(4, 5, 6, generator=gen)
    # samples 0 and 1: overlapping windows of clip 0; 2: the same clip, far away; 3: clip 1
    same = overlapping_windows(torch.tensor([0, 0, 0, 1]), torch.tensor([0, 20, 200, 0]), 64)
    masked = rhythmic_consistency_loss(motion, audio, 0.2, local=False, same_source=same)
    assert masked["global"].item() == pytest.approx(global_reference(
        motion, audio, 0.2, [[2, 3], [2, 3], [0, 1, 3], [0, 1, 2]]), rel=1e-5)
    unmasked = rhythmic_consistency_loss(motion, audio, 0.2, local=False)
    assert unmasked["global"].item() == pytest.approx(global_reference(
        motion, audio, 0.2, [[1, 2, 3], [0, 2, 3], [0, 1, 3], [0, 1, 2]]), rel=1e-5)
    assert masked["global"].item() != pytest.approx(unmasked["global"].item())
    # every other sample a false negative: nothing to contrast, exactly 0, finite gradients
    motion.requires_grad_(True)
    alone = rhythmic_consistency_loss(motion, audio, 0.2, local=False,
                                      same_source=torch.ones(4, 4, dtype=torch.bool))
    assert alone["global"].item() == 0.0
    alone["total"].backward()
    assert motion.grad is not None and torch.isfinite(motion.grad).all()
    with pytest.raises(ValueError, match="exclude"):
        rhythmic_consistency_loss(motion, audio, same_source=torch.ones(3, 3, dtype=torch.bool))


def test_rhythmic_switches_and_single_sample_batch() -> None:
    gen = torch.Generator().manual_seed(1)
    motion = torch.randn(1, 8, 6, generator=gen, requires_grad=True)
    audio = torch.randn(1, 8, 6, generator=gen)
    loss = rhythmic_consistency_loss(motion, audio)
    assert loss["global"].item() == 0.0  # B = 1: no negatives, documented as 0
    assert torch.equal(loss["total"], loss["local"] + loss["global"])
    loss["total"].backward()
    assert motion.grad is not None and motion.grad.abs().sum() > 0
    batch_motion, batch_audio = torch.randn(2, 8, 6), torch.randn(2, 8, 6)
    only_local = rhythmic_consistency_loss(batch_motion, batch_audio, global_=False)
    only_global = rhythmic_consistency_loss(batch_motion, batch_audio, local=False)
    assert only_local["global"].item() == 0.0 and only_local["local"].item() > 0
    assert only_global["local"].item() == 0.0 and only_global["global"].item() > 0
    both = rhythmic_consistency_loss(batch_motion, batch_audio)
    torch.testing.assert_close(both["total"], only_local["total"] + only_global["total"])


def test_code_classification_known_values() -> None:
    batch, tokens, layers, codes_per_layer = 2, 5, 3, 7
    uniform = torch.zeros(batch, tokens, layers, codes_per_layer)
    codes = torch.randint(codes_per_layer, (batch, tokens, layers))
    expected = math.log(codes_per_layer) * (1 + 1 / 2 + 1 / 3)
    assert code_classification_loss(uniform, codes).item() == pytest.approx(expected)
    confident = F.one_hot(codes, codes_per_layer).float() * 50
    assert code_classification_loss(confident, codes).item() < 1e-6
    custom = code_classification_loss(uniform, codes, layer_weights=[1.0, 0.0, 2.0])
    assert custom.item() == pytest.approx(3 * math.log(codes_per_layer))
    with pytest.raises(ValueError, match="layer_weights needs 3"):
        code_classification_loss(uniform, codes, layer_weights=[1.0])
    with pytest.raises(ValueError, match=r"\[B, N, Q, K\]"):
        code_classification_loss(uniform, codes[..., :2])


def test_code_classification_ignores_minus_one_and_weights_tokens() -> None:
    gen = torch.Generator().manual_seed(2)
    logits = torch.randn(2, 4, 2, 6, generator=gen)
    codes = torch.randint(6, (2, 4, 2), generator=gen)
    per_token = F.cross_entropy(logits.permute(0, 3, 1, 2), codes, reduction="none")
    dropped = codes.clone()
    dropped[0, :2, 1] = -1  # quantizer dropout markers on layer 1
    garbage = logits.clone()
    garbage[0, :2, 1] = torch.randn(2, 6) * 100  # logits there must not matter
    layer1 = per_token[..., 1].flatten()[2:].mean()  # the 6 valid tokens of layer 1
    expected = per_token[..., 0].mean() + layer1 / 2
    torch.testing.assert_close(code_classification_loss(garbage, dropped), expected)

    weights = torch.tensor([[1.0, 0.0, 0.0, 2.0], [0.0, 0.0, 0.5, 1.0]])
    expected = sum((per_token[..., q] * weights).sum() / 8 / (q + 1) for q in range(2))
    torch.testing.assert_close(code_classification_loss(logits, codes, weights), expected)
    zero_weighted = logits.clone()
    zero_weighted[weights == 0] = torch.randn(int((weights == 0).sum()), 2, 6) * 100
    torch.testing.assert_close(code_classification_loss(zero_weighted, codes, weights), expected)
    all_dropped = torch.full_like(codes, -1)
    assert code_classification_loss(logits, all_dropped).item() == 0.0
    with pytest.raises(ValueError, match="weights must be"):
        code_classification_loss(logits, codes, torch.ones(2, 3))


def test_latent_regression_weights() -> None:
    latents, targets = torch.zeros(2, 3, 4, 5), torch.ones(2, 3, 4, 5)
    assert latent_regression_loss(latents, targets).item() == pytest.approx(1.0)
    weights = torch.tensor([[1.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 3.0]])
    assert latent_regression_loss(latents, targets, weights).item() == pytest.approx(4 / 8)
    targets.transpose(1, 2)[weights == 0] = 1e6  # zero-weighted tokens do not matter
    assert latent_regression_loss(latents, targets, weights).item() == pytest.approx(0.5)
    with pytest.raises(ValueError, match="same shape"):
        latent_regression_loss(latents, targets[:, :2])


def test_gate_classification_loss() -> None:
    gen = torch.Generator().manual_seed(3)
    logits = torch.randn(2, 5, 2, generator=gen)
    labels = torch.randint(2, (2, 5), generator=gen)
    expected = F.cross_entropy(logits.reshape(-1, 2), labels.flatten())
    torch.testing.assert_close(gate_classification_loss(logits, labels), expected)
    torch.testing.assert_close(gate_classification_loss(logits, labels.float()), expected)
    weighted = F.cross_entropy(logits.reshape(-1, 2), labels.flatten(),
                               weight=torch.tensor([1.0, 4.0]))
    torch.testing.assert_close(gate_classification_loss(logits, labels, [1.0, 4.0]), weighted)
    perfect = F.one_hot(labels, 2).float() * 50
    assert gate_classification_loss(perfect, labels).item() < 1e-6
    with pytest.raises(ValueError, match=r"0 .* or 1"):
        gate_classification_loss(logits, labels + 1)
    with pytest.raises(ValueError, match=r"0 .* or 1"):
        gate_classification_loss(logits, labels * 0.5)
    with pytest.raises(ValueError, match=r"\[B, N, 2\]"):
        gate_classification_loss(torch.randn(2, 5, 3), labels)
