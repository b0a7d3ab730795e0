"""ResidualVQ: straight-through gradients, code round trips, EMA, resets, dropout, determinism."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from semtalk.config import ConfigError, from_dict, to_dict
from semtalk.modules.quantizer import QuantizerConfig, ResidualVQ

DIM = 4


def cluster_centers(count: int, seed: int = 0, spread: float = 3.0) -> torch.Tensor:
    """``[count, DIM]`` well separated centres."""
    return torch.randn(count, DIM, generator=torch.Generator().manual_seed(seed)) * spread


def clustered(centers: torch.Tensor, gen: torch.Generator, batch: int = 4, length: int = 64,
              sigma: float = 0.05) -> torch.Tensor:
    """``[batch, length, DIM]`` points around randomly chosen ``centers``."""
    picks = torch.randint(len(centers), (batch, length), generator=gen)
    return centers[picks] + sigma * torch.randn(batch, length, DIM, generator=gen)


def make_rvq(**overrides: object) -> ResidualVQ:
    base = dict(num_quantizers=3, codebook_size=16, codebook_dim=DIM, quantize_dropout=0.0)
    base.update(overrides)
    return ResidualVQ(QuantizerConfig(**base))  # type: ignore[arg-type]


def test_straight_through_gradient_is_identity_and_commitment_reaches_input() -> None:
    torch.manual_seed(0)
    rvq = make_rvq(quantize_dropout=0.5).train()
    x = torch.randn(3, 8, DIM, requires_grad=True)
    out = rvq(x)
    weight = torch.randn_like(x)
    (out.quantized * weight).sum().backward()
    assert x.grad is not None
    assert torch.equal(x.grad, weight)
    x.grad = None
    out = rvq(x)
    out.commitment_loss.backward()
    assert out.commitment_loss.item() > 0
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_eval_forward_matches_encode_decode_and_codes_to_vectors() -> None:
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(1)
    rvq = make_rvq(quantize_dropout=0.3, sample_temperature=0.5).train()
    centers = cluster_centers(8)
    for _ in range(5):
        rvq(clustered(centers, gen))
    rvq.eval()
    x = clustered(centers, gen)
    out = rvq(x)
    assert out.codes.shape == (4, 64, 3) and out.codes.dtype == torch.long
    assert torch.equal(out.codes, rvq.encode(x))
    assert torch.equal(rvq.decode(out.codes), out.quantized)
    vectors = rvq.codes_to_vectors(out.codes)
    assert vectors.shape == (3, 4, 64, DIM)
    torch.testing.assert_close(vectors.sum(0), rvq.decode(out.codes))
    # Each layer's vector is that layer's codebook entry, not a cumulative sum.
    assert torch.equal(vectors[1, 0, 0], rvq.layers[1].codebook[out.codes[0, 0, 1]])
    # Coarse codes (Q' < Q) and -1 entries both mean "layer not used".
    coarse = out.codes.clone()
    coarse[..., 2] = -1
    assert torch.equal(rvq.decode(coarse), rvq.decode(out.codes[..., :2]))
    # More layers reconstruct better.
    errors = [(rvq.decode(out.codes[..., :q]) - x).pow(2).mean() for q in (1, 2, 3)]
    assert errors[0] > errors[1] > errors[2]


def test_ema_moves_codes_to_cluster_means() -> None:
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(1)
    centers = cluster_centers(8)
    rvq = make_rvq(num_quantizers=1, codebook_size=8, dead_code_threshold=0.0, ema_decay=0.9)
    layer = rvq.layers[0]
    layer.codebook.copy_(centers + 0.4)  # each code nearest its own cluster, but off-centre
    layer.cluster_size.fill_(1.0)
    layer.embed_sum.copy_(layer.codebook)
    layer.initialized.fill_(True)
    losses = [rvq.train()(clustered(centers, gen)).commitment_loss.item() for _ in range(80)]
    assert losses[-1] < losses[0] / 20
    torch.testing.assert_close(layer.codebook, centers, atol=0.03, rtol=0)


def test_training_on_clustered_data_raises_usage_and_lowers_loss() -> None:
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(1)
    centers = cluster_centers(8)
    rvq = make_rvq(num_quantizers=1, codebook_size=16)
    layer = rvq.layers[0]
    layer.codebook.fill_(-100.0)  # a bad start: one code at the data mean, the rest far away
    layer.codebook[0] = centers.mean(0)
    layer.cluster_size.fill_(1.0)
    layer.embed_sum.copy_(layer.codebook)
    layer.initialized.fill_(True)
    probe = clustered(centers, torch.Generator().manual_seed(7))
    before = rvq.eval()(probe)
    rvq.train()
    for _ in range(60):
        rvq(clustered(centers, gen))
    after = rvq.eval()(probe)
    assert before.usage.item() == 1 / 16
    assert after.usage.item() >= 8 / 16
    assert after.perplexity.item() > 6
    assert after.commitment_loss < before.commitment_loss / 100


def test_dead_codes_are_revived_when_data_moves() -> None:
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(1)
    centers = cluster_centers(6)
    rvq = make_rvq(num_quantizers=1, codebook_size=12, ema_decay=0.9).train()
    for _ in range(40):
        rvq(clustered(centers, gen))
    moved = centers + 20.0
    probe = clustered(moved, torch.Generator().manual_seed(7))
    before = rvq.eval()(probe).commitment_loss.item()
    rvq.train()
    for _ in range(60):
        rvq(clustered(moved, gen))
    after = rvq.eval()(probe).commitment_loss.item()
    assert before > 100
    assert after < 0.05
    nearest_code = torch.cdist(moved, rvq.layers[0].codebook).min(dim=1).values
    assert nearest_code.max() < 0.2


def test_quantize_dropout_drops_a_suffix_of_layers_in_training_only() -> None:
    torch.manual_seed(0)
    rvq = make_rvq(num_quantizers=4, quantize_dropout=1.0).train()
    x = torch.randn(64, 5, DIM)
    out = rvq(x)
    dropped = out.codes == -1  # [B, N, Q]
    assert not dropped[..., 0].any()
    assert dropped.any()
    assert torch.equal(dropped, dropped.cummax(dim=-1).values)  # once dropped, stays dropped
    assert torch.equal(dropped, dropped[:, :1].expand_as(dropped))  # per batch element
    layers_used = (~dropped[:, 0]).sum(-1)
    assert set(layers_used.tolist()) == {1, 2, 3, 4}
    for q in range(4):  # usage counts only the elements that kept the layer
        kept_codes = out.codes[..., q][out.codes[..., q] >= 0]
        assert out.usage[q].item() == pytest.approx(kept_codes.unique().numel() / 16)
    assert torch.isfinite(out.commitment_loss)
    rvq.eval()
    for _ in range(3):
        assert (rvq(x).codes >= 0).all()


def test_dropped_elements_output_only_their_kept_layers() -> None:
    torch.manual_seed(0)
    rvq = make_rvq(num_quantizers=4, quantize_dropout=1.0, dead_code_threshold=0.0).train()
    rvq(torch.randn(8, 5, DIM))  # initialise
    x = torch.randn(64, 5, DIM)
    snapshot = rvq.codebooks  # codes are chosen before this step's EMA update
    out = rvq(x)
    expected = sum(snapshot[q][out.codes[..., q].clamp_min(0)] * (out.codes[..., q:q + 1] >= 0)
                   for q in range(4))
    torch.testing.assert_close(out.quantized, expected)


def test_single_layer_vq() -> None:
    torch.manual_seed(0)
    rvq = make_rvq(num_quantizers=1, quantize_dropout=1.0).train()
    x = torch.randn(2, 10, DIM, requires_grad=True)
    out = rvq(x)
    assert out.codes.shape == (2, 10, 1)
    assert (out.codes >= 0).all()  # dropout cannot drop the only layer
    assert out.perplexity.shape == out.usage.shape == (1,)
    rvq.eval()
    out = rvq(x)
    assert torch.equal(rvq.decode(out.codes), out.quantized)
    assert torch.equal(rvq.codes_to_vectors(out.codes)[0], out.quantized)


def run_once(seed: int) -> tuple[list[torch.Tensor], dict[str, torch.Tensor]]:
    torch.manual_seed(seed)
    rvq = make_rvq(quantize_dropout=0.5, sample_temperature=0.5, codebook_size=32).train()
    gen = torch.Generator().manual_seed(3)
    outputs = []
    for _ in range(6):
        out = rvq(clustered(cluster_centers(8), gen, batch=2, length=8))
        outputs += [out.codes, out.commitment_loss.detach(), out.usage]
    return outputs, rvq.state_dict()


def test_training_is_reproducible_under_manual_seed() -> None:
    first, first_state = run_once(0)
    second, second_state = run_once(0)
    third, _ = run_once(1)
    assert all(torch.equal(a, b) for a, b in zip(first, second, strict=True))
    assert all(torch.equal(first_state[k], second_state[k]) for k in first_state)
    assert not all(torch.equal(a, b) for a, b in zip(first, third, strict=True))


def test_gumbel_sampling_in_training_only() -> None:
    torch.manual_seed(0)
    rvq = make_rvq(num_quantizers=1, sample_temperature=100.0)
    x = torch.randn(4, 32, DIM)
    rvq.train()(x)  # initialise
    nearest = rvq.encode(x)
    assert torch.equal(rvq.eval()(x).codes, nearest)
    sampled = rvq.train()(x).codes  # chosen before this step's EMA update
    assert (sampled != nearest).float().mean() > 0.5


def test_decode_rejects_bad_codes() -> None:
    rvq = make_rvq()
    with pytest.raises(ValueError, match="Q' <= 3"):
        rvq.decode(torch.zeros(1, 2, 4, dtype=torch.long))
    with pytest.raises(ValueError, match=r"\[-1, 15\]"):
        rvq.decode(torch.full((1, 2, 3), 16))
    with pytest.raises(ValueError, match="integer"):
        rvq.decode(torch.zeros(1, 2, 3))
    with pytest.raises(ValueError, match=r"\[B, N, 4\]"):
        rvq(torch.zeros(1, 2, 5))


def test_config_validation_and_round_trip() -> None:
    config = QuantizerConfig(num_quantizers=2, sample_temperature=0.5)
    assert from_dict(QuantizerConfig, to_dict(config)) == config
    with pytest.raises(ValueError, match="quantize_dropout"):
        QuantizerConfig(quantize_dropout=1.5)
    with pytest.raises(ConfigError, match="num_quantizers"):
        from_dict(QuantizerConfig, {"num_quantizers": 0})
    with pytest.raises(ConfigError, match="unknown"):
        from_dict(QuantizerConfig, {"nb_code": 256})


def _distributed_worker(rank: int, world: int, init_file: str, out_dir: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank,
                            world_size=world)
    try:
        torch.manual_seed(rank)  # replicas start from different RNG states on purpose
        rvq = make_rvq(codebook_size=16, quantize_dropout=0.3, ema_decay=0.9).train()
        gen = torch.Generator().manual_seed(100 + rank)  # and see different data
        centers = cluster_centers(8)
        for _ in range(8):
            rvq(clustered(centers, gen, batch=2, length=8))
        torch.save({k: v.clone() for k, v in rvq.state_dict().items()},
                   Path(out_dir) / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


@pytest.mark.skipif(not dist.is_available(), reason="torch.distributed not built")
def test_distributed_replicas_keep_identical_codebooks(tmp_path: Path) -> None:
    mp.spawn(_distributed_worker, args=(2, str(tmp_path / "init"), str(tmp_path)), nprocs=2)
    first = torch.load(tmp_path / "rank0.pt", weights_only=True)
    second = torch.load(tmp_path / "rank1.pt", weights_only=True)
    for name, value in first.items():
        assert torch.equal(value, second[name]), name
    assert first["layers.0.initialized"].item()
