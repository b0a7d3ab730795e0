"""Fixtures of the official-family tests: the fixture folder, synthetic official checkpoints
(written by the fixture's ``make_checkpoints.py``, about 10 s and 1.65 GB) and their conversion
into a release (once per test session)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[2].parent / "shared"
FIXTURE = SHARED / "official-fixture"
GOLDEN = FIXTURE / "golden"


def require_fixture() -> Path:
    """The fixture folder, or skip the test with the reason."""
    if not (FIXTURE / "make_checkpoints.py").is_file():
        pytest.skip(f"the official fixture is not at {FIXTURE} (it sits beside the project in "
                    f"the development checkout and in CI)")
    return FIXTURE


@pytest.fixture(scope="session")
def official_checkpoints(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with the synthetic official files in their official relative paths, checked
    against the digests ``golden/`` was computed from."""
    fixture = require_fixture()
    out = tmp_path_factory.mktemp("official-checkpoints")
    subprocess.run([sys.executable, str(fixture / "make_checkpoints.py"), str(out)], check=True,
                   stdout=subprocess.DEVNULL)
    made = json.loads((out / "TENSOR_DIGESTS.json").read_text())
    golden = json.loads((GOLDEN / "checkpoints.TENSOR_DIGESTS.json").read_text())
    different = [name for name in golden
                 if made[name]["tensor_sha256"] != golden[name]["tensor_sha256"]]
    if different:
        pytest.skip(f"this numpy/torch writes other synthetic values for {different}: "
                    f"golden/ does not apply")
    return out


@pytest.fixture(scope="session")
def official_release(official_checkpoints: Path,
                     tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The synthetic official weights converted by ``convert_official``."""
    from semtalk.official.convert import convert_official

    out = tmp_path_factory.mktemp("official-release") / "release"
    convert_official(official_checkpoints, out)
    return out
