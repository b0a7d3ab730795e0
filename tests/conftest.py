"""Shared fixtures: the real BEAT2 sample clip (when ../shared is present) and tmp roots."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SAMPLE_DIR = Path(os.environ.get("SEMTALK_BEAT2_SAMPLE",
                                 REPO.parent / "shared" / "data" / "beat2-sample"))
SAMPLE_ID = "2_scott_0_1_1"


@pytest.fixture(scope="session")
def beat2_sample() -> Path:
    """Folder with the real BEAT2 clip 2_scott_0_1_1 (npz, wav, TextGrid)."""
    if not (SAMPLE_DIR / f"{SAMPLE_ID}.npz").is_file():
        pytest.skip(f"real BEAT2 sample not found at {SAMPLE_DIR} (it lives in ../shared beside "
                    "the repository; set SEMTALK_BEAT2_SAMPLE to point elsewhere)")
    return SAMPLE_DIR


def make_beat2_root(root: Path, sample: Path, split: str = "test") -> Path:
    """A BEAT2-layout root holding the sample clip (symlinks, so nothing is copied)."""
    layout = {"smplxflame_30": ".npz", "wave16k": ".wav", "textgrid": ".TextGrid"}
    for folder, suffix in layout.items():
        (root / folder).mkdir(parents=True, exist_ok=True)
        (root / folder / f"{SAMPLE_ID}{suffix}").symlink_to(sample / f"{SAMPLE_ID}{suffix}")
    (root / "train_test_split.csv").write_text(f"id,type\n{SAMPLE_ID},{split}\n")
    return root


@pytest.fixture()
def beat2_root(tmp_path: Path, beat2_sample: Path) -> Path:
    return make_beat2_root(tmp_path / "beat2", beat2_sample)
