"""`semtalk train base` / `train sparse` on the synthetic speaker, resume, compatibility, DDP."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from semtalk.body.parts import BodyPart
from semtalk.cli import main
from semtalk.errors import DataError
from semtalk.features.cache import FeatureCache
from semtalk.models.base_generator import BaseMotionGenerator
from semtalk.models.sparse_generator import SparseMotionGenerator
from semtalk.models.tokenizer import MotionTokenizer
from semtalk.training.generator import (
    BaseSolver,
    SparseSolver,
    load_generator_config,
)
from semtalk.training.generator_data import GeneratorWindows, token_semantic
from semtalk.training.masking import MaskSchedule
from semtalk.training.metric_log import read_log
from semtalk.training.presets import load_preset
from semtalk.training.windows import cut_windows, training_segments

FAST = ["solver.batch_size=8", "solver.log_every=1", "solver.tensorboard=false",
        "stride=32"]


@pytest.fixture(scope="module")
def tokenizer_release(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An untrained tiny tokenizer with normalisation from nothing: enough for stage plumbing."""
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("tok") / "tokenizer"
    return MotionTokenizer.from_config(load_preset("tokenizer", "tiny")).save_pretrained(folder)


def _losses(folder: Path, key: str = "loss") -> dict[int, float]:
    return {r["step"]: r[key] for r in read_log(folder) if r["split"] == "train"}


def test_mask_schedule() -> None:
    schedule = MaskSchedule(max_ratio=0.4, ramp_fraction=0.5)
    assert [schedule.ratio(s, 100) for s in (0, 25, 50, 90)] == [0.0, 0.2, 0.4, 0.4]
    seed = schedule.seed_mask((2, 8, 3))
    assert not seed[:, :4].any() and seed[:, 4:].all()
    torch.manual_seed(0)
    frames = schedule.random_mask((4, 1000, 5), 0.3)
    assert (frames == frames[..., :1]).all()  # whole frames
    assert abs(frames[..., 0].float().mean().item() - 0.3) < 0.03
    elements = MaskSchedule(unit="element").random_mask((4, 1000, 5), 0.3)
    assert not (elements == elements[..., :1]).all()
    with pytest.raises(ValueError, match="unit"):
        MaskSchedule(unit="token")


def test_windows_carry_every_input(synth_cache: Path) -> None:
    cache = FeatureCache(synth_cache)
    train, _ = training_segments(cache)
    data = GeneratorWindows(cache, cut_windows(train, 64, 20), "spectral")
    item = data[1]
    assert item["speech"].shape == (64, 240) and item["motion"].shape == (64, 337)
    assert item["parts.hands"].shape == (64, BodyPart.HANDS.dim)
    assert item["word_ids"].dtype == torch.long and item["speaker"].dtype == torch.long
    clip = cache.load(data.windows[1].clip_id)
    row = data.windows[1].start // cache.hop
    np.testing.assert_allclose(item["sentence"].numpy(), clip.windows["sentence"][row])
    # where each window comes from: the global InfoNCE skips overlapping windows of one clip
    assert int(item["start"]) == data.windows[1].start
    assert int(item["clip"]) == int(data[0]["clip"]) == 0  # windows 0 and 1: the first clip
    last = len(data) - 1
    assert data.windows[last].clip_id != data.windows[0].clip_id
    assert int(data[last]["clip"]) == len(data.clip_index) - 1
    scores = torch.tensor([[0, 0, 0, 0, 1, 1, 0, 0]], dtype=torch.float32)
    assert token_semantic(scores, 4).tolist() == [[0.0, 0.5]]
    with pytest.raises(ValueError, match="multiples of the cache hop"):
        GeneratorWindows(cache, cut_windows(train, 64, 21)[1:2], "spectral")


def test_base_cli_trains_and_rhythmic_loss_falls(synth_cache: Path, tokenizer_release: Path,
                                                 tmp_path: Path) -> None:
    code = main(["train", "base", "--data", str(synth_cache), "--tokenizer",
                 str(tokenizer_release), "--out", str(tmp_path), "--quiet",
                 "solver.max_steps=40", "solver.validate_every=20", *FAST])
    assert code == 0
    model = BaseMotionGenerator.from_pretrained(tmp_path / "base")
    assert model.config.codes == MotionTokenizer.from_pretrained(tokenizer_release).code_spec
    features = json.loads((tmp_path / "base" / "features.json").read_text())
    assert features["speech_feature"] == "spectral"
    log = read_log(tmp_path / "base_run")
    train = [r for r in log if r["split"] == "train"]
    rhythm = [r["rhythm_local"] for r in train]
    assert np.mean(rhythm[-8:]) < np.mean(rhythm[:8])
    assert np.mean([r["loss"] for r in train[-8:]]) < np.mean([r["loss"] for r in train[:8]])
    assert {"cls_seed", "cls_self", "cls_word", "rhythm_global"} <= set(train[0])
    assert [r["step"] for r in log if r["split"] == "val"] == [20, 40]


def test_base_resume_gives_identical_next_loss(synth_cache: Path, tokenizer_release: Path,
                                               tmp_path: Path) -> None:
    config = load_generator_config("tiny", overrides=[*FAST, "solver.max_steps=4",
                                                      "solver.checkpoint_every=2"])
    BaseSolver(config, synth_cache, tokenizer_release, tmp_path / "a").fit(progress=False)
    # Interrupted after step 2 (the mask-ratio ramp follows max_steps, so the same config).
    BaseSolver(config, synth_cache, tokenizer_release, tmp_path / "b").fit(progress=False,
                                                                           stop_at=2)
    BaseSolver(config, synth_cache, tokenizer_release, tmp_path / "b").fit(progress=False)
    assert _losses(tmp_path / "a") == _losses(tmp_path / "b")


@pytest.fixture(scope="module")
def base_release(synth_cache: Path, tokenizer_release: Path,
                 tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("base")
    config = load_generator_config("tiny", overrides=[*FAST, "solver.max_steps=2"])
    best = BaseSolver(config, synth_cache, tokenizer_release, out / "run").fit(progress=False)
    return best


def test_sparse_stage_trains_gate_and_reports_semantic_scores(
        synth_cache: Path, tokenizer_release: Path, base_release: Path, tmp_path: Path) -> None:
    code = main(["train", "sparse", "--data", str(synth_cache), "--tokenizer",
                 str(tokenizer_release), "--base", str(base_release), "--out", str(tmp_path),
                 "--quiet", "solver.max_steps=30", "solver.validate_every=30", *FAST])
    assert code == 0
    model = SparseMotionGenerator.from_pretrained(tmp_path / "sparse")
    assert model.config.vocab_size == len(FeatureCache(synth_cache).vocab)
    assert (tmp_path / "sparse" / "vocab.json").is_file()
    log = read_log(tmp_path / "sparse_run")
    gate = [r["gate_self"] for r in log if r["split"] == "train"]
    assert np.mean(gate[-6:]) < np.mean(gate[:6])
    val = [r for r in log if r["split"] == "val"][-1]
    assert 0.0 <= val["sem_balanced_accuracy"] <= 1.0 and "sem_recall" in val
    # the release is selected by ψ's balanced accuracy (ties: code accuracy), not the loss
    assert val["selection"] == pytest.approx(1 - val["sem_balanced_accuracy"]
                                             + 1e-3 * (1 - val["code_acc"]), abs=1e-9)


def test_word_dropout_trains_the_unk_embedding(synth_cache: Path, tokenizer_release: Path,
                                               base_release: Path, tmp_path: Path) -> None:
    """No training frame is UNK (the vocabulary comes from the train split), so without word
    dropout the UNK row, what every unseen word gets at inference, keeps its initial values;
    with it, UNK is trained like any word. Rows of words never seen stay as initialised."""
    vocab = FeatureCache(synth_cache).vocab
    rows = {}
    for rate in (0.0, 0.5):
        config = load_generator_config("tiny", overrides=[
            *FAST, "solver.max_steps=3", "solver.validate_every=0",
            f"sparse.word_dropout={rate}"])
        best = SparseSolver(config, synth_cache, tokenizer_release, base_release,
                            tmp_path / str(rate)).fit(progress=False)
        rows[rate] = SparseMotionGenerator.from_pretrained(best).semantic.word_embedding.weight
    assert torch.equal(rows[0.0][0], rows[0.5][0])  # PAD: never in the data, same init
    assert not torch.equal(rows[0.0][vocab.unk_id], rows[0.5][vocab.unk_id])


def test_sparse_stage_can_have_its_own_batch_size(synth_cache: Path, tokenizer_release: Path,
                                                  base_release: Path, tmp_path: Path) -> None:
    """``sparse.batch_size`` sets the sparse stage's batch (recorded in its run), the base
    stage keeps ``solver.batch_size``; a size below 1 is refused when the config loads."""
    config = load_generator_config("tiny", overrides=[
        *FAST, "solver.max_steps=1", "solver.validate_every=0", "sparse.batch_size=3"])
    sparse = SparseSolver(config, synth_cache, tokenizer_release, base_release, tmp_path / "s")
    assert sparse.solver_config.batch_size == 3
    sparse.fit(progress=False)
    run = json.loads((tmp_path / "s" / "run.json").read_text())
    assert run["solver"]["batch_size"] == 3 and run["config"]["sparse"]["batch_size"] == 3
    base = BaseSolver(config, synth_cache, tokenizer_release, tmp_path / "b")
    assert base.solver_config.batch_size == 8
    with pytest.raises(ValueError, match=r"sparse\.batch_size must be >= 1"):
        load_generator_config("tiny", overrides=["sparse.batch_size=0"])


def test_sparse_passes_share_their_score_with_the_same_loss_and_gradients(
        synth_cache: Path, tokenizer_release: Path, base_release: Path, tmp_path: Path) -> None:
    """A step's three passes share the sparse model's score (ψ, f_t) and the frozen base's
    audio latents, computed once: loss and every gradient equal computing them per pass."""
    config = load_generator_config("tiny", overrides=[
        *FAST, "sparse_model.dropout=0.0", "sparse.word_dropout=0.0"])
    solver = SparseSolver(config, synth_cache, tokenizer_release, base_release, tmp_path)
    torch.manual_seed(0)
    model = solver.build_model()
    batch = torch.utils.data.default_collate([solver.train_dataset()[i] for i in range(4)])

    def gradients(step: Callable[[], torch.Tensor]) -> tuple[float, dict[str, torch.Tensor]]:
        model.zero_grad()
        torch.manual_seed(1)  # the same random mask
        loss = step()
        loss.backward()
        return loss.item(), {n: p.grad.clone() for n, p in model.named_parameters()
                             if p.grad is not None}

    shared_loss, shared = gradients(lambda: solver.training_loss(model, batch, 10)[0])

    def per_pass() -> torch.Tensor:  # the passes computed apart (shared=None)
        forward = solver._forward
        solver._forward = lambda m, b, mask, w, _=None: forward(m, b, mask, w)  # type: ignore
        try:
            return solver.training_loss(model, batch, 10)[0]
        finally:
            del solver._forward

    apart_loss, apart = gradients(per_pass)
    assert shared_loss == pytest.approx(apart_loss, rel=1e-5)
    assert shared.keys() == apart.keys() and len(shared) > 10
    for name, grad in shared.items():
        torch.testing.assert_close(grad, apart[name], rtol=1e-4, atol=1e-6, msg=name)


def test_sparse_refuses_an_incompatible_base(synth_cache: Path, tokenizer_release: Path,
                                             tmp_path: Path) -> None:
    config = load_generator_config("tiny", overrides=FAST)
    other = BaseMotionGenerator(load_preset("base_generator", "tiny", speech_dim=240, beat_dim=4,
                                            num_speakers=7))
    other.save_pretrained(tmp_path / "other_base")
    with pytest.raises(DataError, match="num_speakers: base 7 vs sparse 25"):
        SparseSolver(config, synth_cache, tokenizer_release, tmp_path / "other_base",
                     tmp_path / "run")


def test_sparse_variants_build(synth_cache: Path, tokenizer_release: Path, base_release: Path,
                               tmp_path: Path) -> None:
    for gate, weighting in (("random", "none"), ("none", "label")):
        config = load_generator_config("tiny", overrides=[
            *FAST, "solver.max_steps=1", f"sparse_model.gate={gate}",
            f"sparse.loss_weighting={weighting}", "sparse_model.feature_weighting=false"])
        solver = SparseSolver(config, synth_cache, tokenizer_release, base_release,
                              tmp_path / gate)
        best = solver.fit(progress=False)
        assert SparseMotionGenerator.from_pretrained(best).config.gate == gate


def test_two_process_ddp_training(synth_cache: Path, tokenizer_release: Path,
                                  tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2",
               f"--master_port={port}", "-m", "semtalk.cli", "train", "base", "--data",
               str(synth_cache), "--tokenizer", str(tokenizer_release), "--out",
               str(tmp_path), "--quiet", "solver.max_steps=3", "solver.validate_every=3",
               "solver.device=cpu", *FAST]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert BaseMotionGenerator.from_pretrained(tmp_path / "base") is not None
    steps = sorted(_losses(tmp_path / "base_run"))
    assert steps == [1, 2, 3]  # one log, written by rank 0 only


def test_word_vectors_initialise_the_embedding_and_are_recorded(
        synth_cache: Path, tokenizer_release: Path, base_release: Path, tmp_path: Path) -> None:
    """``train sparse --word-vectors FILE.vec``: the fastText-format vectors are the embedding's
    initial rows (words the file lacks start random), the release records the file, and a file
    of another dimension is refused naming both sizes."""
    vocab = FeatureCache(synth_cache).vocab
    words = [t for t in vocab.tokens[len(vocab.specials):]][:5]
    rng = np.random.default_rng(3)
    table = {w: rng.normal(size=16).round(4) for w in words}
    vec = tmp_path / "tiny.vec"
    vec.write_text(f"{len(table) + 1} 16\n" + "".join(
        f"{w} {' '.join(str(x) for x in v)}\n" for w, v in table.items())
        + "notinvocab " + " ".join(["1.0"] * 16) + "\n")
    config = load_generator_config("tiny", overrides=[
        *FAST, "solver.max_steps=1", "solver.validate_every=0",
        f"sparse.word_vectors={vec}"])
    solver = SparseSolver(config, synth_cache, tokenizer_release, base_release,
                          tmp_path / "run")
    weight = solver.build_model().semantic.word_embedding.weight  # type: ignore[union-attr]
    for word, vector in table.items():
        np.testing.assert_allclose(weight[vocab.index(word)].detach().numpy(), vector,
                                   rtol=1e-6)
    best = solver.fit(progress=False)
    record = json.loads((best / "word_vectors.json").read_text())
    assert record["file"] == "tiny.vec" and record["covered"] == len(table)
    assert record["dim"] == 16 and len(record["sha256"]) == 64
    wide = load_generator_config("tiny", overrides=[
        *FAST, "sparse_model.word_dim=8", f"sparse.word_vectors={vec}"])
    with pytest.raises(DataError, match=r"16 dimensions but sparse_model\.word_dim is 8"):
        SparseSolver(wide, synth_cache, tokenizer_release, base_release,
                     tmp_path / "wide").build_model()
