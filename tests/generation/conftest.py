"""A random-initialised tiny release on the session's synthetic cache (no training)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch


@pytest.fixture(scope="session")
def tiny_release(synth_cache: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``RELEASE/`` with an untrained tiny tokenizer, base and sparse model (seeded)."""
    from semtalk.generation.release import assemble_release, cache_speakers
    from semtalk.models.tokenizer import MotionTokenizer
    from semtalk.training.generator import BaseSolver, SparseSolver, load_generator_config

    torch.manual_seed(0)
    work = tmp_path_factory.mktemp("tiny_release")
    MotionTokenizer.tiny().save_pretrained(work / "tokenizer")
    config = load_generator_config("tiny")
    base_solver = BaseSolver(config, synth_cache, work / "tokenizer", work / "base_run")
    base_solver.save_release(base_solver.build_model().eval(), work / "base")
    sparse_solver = SparseSolver(config, synth_cache, work / "tokenizer", work / "base",
                                 work / "sparse_run")
    sparse_solver.save_release(sparse_solver.build_model().eval(), work / "sparse")
    return assemble_release(work / "release", tokenizer=work / "tokenizer", base=work / "base",
                            sparse=work / "sparse", speakers=cache_speakers(synth_cache))
