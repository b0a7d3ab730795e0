"""Fixtures of the command-line tests: the lead's ``tiny_release``."""

from __future__ import annotations

import importlib.util
from pathlib import Path

# ``tiny_release`` lives in tests/generation/conftest.py; conftest fixtures are visible only
# below their folder, so the fixture function is imported from there and registered here too.
_GENERATION_CONFTEST = Path(__file__).resolve().parents[1] / "generation" / "conftest.py"
_spec = importlib.util.spec_from_file_location("_generation_conftest_cli", _GENERATION_CONFTEST)
assert _spec is not None and _spec.loader is not None
_module = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_module)
tiny_release = _module.tiny_release
