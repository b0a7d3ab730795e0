"""Fixtures of the evaluation tests: a trained-format FGD encoder (random weights, so FGD is
computable); ``tiny_release`` comes from tests/conftest.py."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch


@pytest.fixture(scope="session")
def fgd_encoder_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An untrained FGD encoder release (the official architecture, seeded weights)."""
    from semtalk.metrics import FGDAutoencoder, FGDEncoderConfig

    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("fgd") / "fgd_encoder"
    FGDAutoencoder(FGDEncoderConfig()).save_pretrained(folder)
    return folder
