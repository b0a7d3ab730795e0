"""Report writers: paper units, number formatting, NaN-free JSON, Markdown tables."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from semtalk.evaluation.report import (
    NOT_APPLICABLE,
    NOT_COMPUTED,
    UNITS,
    clean,
    format_value,
    markdown_table,
    metric_cells,
    paper_units,
    write_json,
)


def test_paper_units_match_the_papers_examples() -> None:
    # SemTalk Table 1: FGD 4.278 <-> 0.4278, BC 7.770 <-> 0.7770, MSE 6.153 x1e-8, LVD x1e-5
    scaled = paper_units({"fgd": 0.4278, "bc": 0.777, "div": 12.91, "face_mse": 6.153e-8,
                          "face_lvd": 6.938e-5, "sem_accuracy": 0.8276, "fgd_extra": 3.0})
    assert scaled["fgd"] == pytest.approx(4.278)
    assert scaled["bc"] == pytest.approx(7.77)
    assert scaled["div"] == pytest.approx(12.91)
    assert scaled["face_mse"] == pytest.approx(6.153)
    assert scaled["face_lvd"] == pytest.approx(6.938)
    assert scaled["sem_accuracy"] == pytest.approx(82.76)
    assert scaled["fgd_extra"] == 3.0  # unknown keys pass through
    assert UNITS["fgd"].paper(None) is None


def test_format_value() -> None:
    assert format_value(4.27812) == "4.278"
    assert format_value(12.9149) == "12.91"
    assert format_value(0.0123456) == "0.01235"
    assert format_value(0) == "0"
    assert format_value(1.5e-9) == "1.500e-09"
    assert format_value(None) == NOT_APPLICABLE
    assert format_value(float("nan"), "x") == "x"


def test_cells_tell_not_computed_from_not_applicable() -> None:
    values = {"fgd": None, "bc": 0.5, "div": None}
    cells = metric_cells(values, ("fgd", "bc", "div"), {"fgd": "no encoder"})
    assert cells == [NOT_COMPUTED, "5.000", NOT_APPLICABLE]
    assert metric_cells(values, ("bc",), {}, raw=True) == ["0.5000"]


def test_json_has_no_nan(tmp_path: Path) -> None:
    data = {"a": float("nan"), "b": [1.0, float("inf")], "c": {"d": 2}}
    assert clean(data) == {"a": None, "b": [1.0, None], "c": {"d": 2}}
    path = write_json(tmp_path / "r.json", data)
    assert json.loads(path.read_text()) == {"a": None, "b": [1.0, None], "c": {"d": 2}}
    assert not list(tmp_path.glob(".*tmp*"))  # written atomically, nothing left behind
    assert math.isnan(data["a"])  # the input is not modified


def test_markdown_table_layout() -> None:
    table = markdown_table(["", "x", "y"], [["row", "1", "2"]], align="lcr")
    assert table.splitlines() == ["|  | x | y |", "|:---|:---:|---:|", "| row | 1 | 2 |"]
    with pytest.raises(ValueError, match="3 columns"):
        markdown_table(["", "x", "y"], [], align="lr")
