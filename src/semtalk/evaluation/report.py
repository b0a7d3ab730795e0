"""Metric tables as JSON and Markdown, in raw values and the paper's scaled units.

The paper prints some metrics scaled (Table 1: "FGD x10^-1, BC x10^-1, MSE x10^-8, LVD
x10^-5"): the printed number is the raw value divided by that factor, e.g. a raw FGD of 0.4278
is printed 4.278. :data:`UNITS` holds each metric's label and factor; every JSON report keeps
the raw value and the scaled one side by side, and every Markdown table says which it shows.
NaN never reaches JSON (it becomes ``null``).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from semtalk.fileio import write_text_atomic


@dataclass(frozen=True)
class Unit:
    """How a metric is printed.

    Attributes:
        label: column header in the paper's units (e.g. ``"FGD ×10⁻¹"``).
        raw_label: column header of the raw value.
        factor: paper value = raw / factor (``1e-1`` for FGD).
        higher_is_better: the arrow in the header.
        best_at: the value that is best when neither direction is (the arrow then reads
            ``→1``); ``None`` for the metrics ``higher_is_better`` describes.
    """

    label: str
    raw_label: str
    factor: float
    higher_is_better: bool
    best_at: float | None = None

    @property
    def arrow(self) -> str:
        if self.best_at is not None:
            return f"→{self.best_at:g}"
        return "↑" if self.higher_is_better else "↓"

    def paper(self, raw: float | None) -> float | None:
        """The value in the paper's units."""
        return None if raw is None else raw / self.factor


UNITS: dict[str, Unit] = {
    "fgd": Unit("FGD ×10⁻¹", "FGD", 1e-1, False),
    "bc": Unit("BC ×10⁻¹", "BC", 1e-1, True),
    "div": Unit("DIV", "DIV", 1.0, True),
    "face_mse": Unit("MSE ×10⁻⁸", "MSE", 1e-8, False),
    "face_lvd": Unit("LVD ×10⁻⁵", "LVD", 1e-5, False),
    "face_velocity_l1": Unit("vertex vel. L1 ×10⁻⁵", "vertex vel. L1", 1e-5, False),
    "expression_mse": Unit("expr. MSE", "expr. MSE", 1.0, False),
    "jaw_angle_deg": Unit("jaw (°)", "jaw (°)", 1.0, False),
    "expression_std": Unit("expr. std", "expr. std", 1.0, True),
    "expression_std_ratio": Unit("expr. std / GT", "expr. std / GT", 1.0, True, best_at=1.0),
    "jaw_envelope_corr": Unit("jaw–envelope r", "jaw–envelope r", 1.0, True),
    "sem_accuracy": Unit("Acc (%)", "Acc", 1e-2, True),
    "sem_balanced_accuracy": Unit("bal. Acc (%)", "bal. Acc", 1e-2, True),
    "sem_precision": Unit("precision (%)", "precision", 1e-2, True),
    "sem_recall": Unit("recall (%)", "recall", 1e-2, True),
    "sem_f1": Unit("F1 (%)", "F1", 1e-2, True),
}
"""Every metric a report can hold."""

NOT_COMPUTED = "n/c"
"""Cell of a metric that was not computed (the report lists why)."""
NOT_APPLICABLE = "—"
"""Cell of a metric that does not apply to a row (e.g. FGD of the ground truth to itself)."""


def clean(value: Any) -> Any:
    """``value`` with every NaN / Inf float replaced by ``None`` (recursively), for JSON."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [clean(v) for v in value]
    return value


def paper_units(values: Mapping[str, float | None]) -> dict[str, float | None]:
    """Raw metric values converted to the paper's units (unknown keys are kept as they are)."""
    return {k: UNITS[k].paper(v) if k in UNITS else v for k, v in values.items()}


def format_value(value: float | None, missing: str = NOT_APPLICABLE) -> str:
    """Four significant digits (plain notation between 1e-3 and 1e5), ``missing`` for None."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return missing
    if value == 0:
        return "0"
    if 1e-3 <= abs(value) < 1e5:
        digits = max(0, 3 - math.floor(math.log10(abs(value))))
        return f"{value:.{digits}f}"
    return f"{value:.3e}"


ALIGNMENT = {"l": ":---", "c": ":---:", "r": "---:"}


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[str]],
                   align: str | None = None) -> str:
    """A GitHub Markdown table.

    ``align``: one of ``l``/``c``/``r`` per column (default: the first column left, the
    others right).
    """
    align = align or "l" + "r" * (len(headers) - 1)
    if len(align) != len(headers):
        raise ValueError(f"{len(headers)} columns but alignment {align!r}")
    lines = ["| " + " | ".join(headers) + " |",
             "|" + "|".join(ALIGNMENT[a] for a in align) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def metric_cells(values: Mapping[str, float | None], metrics: Sequence[str],
                 not_computed: Mapping[str, str], *, raw: bool = False,
                 spread: Mapping[str, float | None] | None = None) -> list[str]:
    """Table cells of ``metrics`` for one row (paper units unless ``raw``); with ``spread``
    (standard deviations over seeds), ``mean ± std``."""
    cells = []
    for key in metrics:
        value = values.get(key)
        if value is None:
            cells.append(NOT_COMPUTED if key in not_computed else NOT_APPLICABLE)
            continue
        cell = format_value(value if raw else UNITS[key].paper(value))
        std = None if spread is None else spread.get(key)
        if std is not None:
            cell += " ± " + format_value(std if raw else UNITS[key].paper(std))
        cells.append(cell)
    return cells


def metric_headers(metrics: Sequence[str], *, raw: bool = False) -> list[str]:
    """Column headers with the direction arrow."""
    return [f"{UNITS[k].raw_label if raw else UNITS[k].label} {UNITS[k].arrow}" for k in metrics]


def reasons_markdown(not_computed: Mapping[str, str]) -> str:
    """Bullet list of the metrics not computed and why (empty string when all were)."""
    if not not_computed:
        return ""
    grouped: dict[str, list[str]] = {}
    for key, reason in not_computed.items():
        grouped.setdefault(reason, []).append(UNITS[key].raw_label if key in UNITS else key)
    return "\n".join(f"- {', '.join(names)}: not computed — {reason}"
                     for reason, names in grouped.items())


def write_json(path: str | Path, data: Any) -> Path:
    """``data`` (NaN -> null) as indented JSON, atomically."""
    path = Path(path)
    write_text_atomic(path, json.dumps(clean(data), indent=1, allow_nan=False) + "\n")
    return path


def write_markdown(path: str | Path, text: str) -> Path:
    """``text`` with a final newline, atomically."""
    path = Path(path)
    write_text_atomic(path, text.rstrip("\n") + "\n")
    return path


# ---------------------------------------------------------------------- `semtalk evaluate`
EVALUATION_METRICS: tuple[str, ...] = ("fgd", "bc", "div", "face_mse", "face_lvd",
                                       "sem_accuracy", "expression_mse", "jaw_angle_deg",
                                       "expression_std_ratio", "jaw_envelope_corr")
"""Columns of the evaluation table: Table 1's metrics, Table 2's Acc, the vertex-free face
errors, and whether the face moves (expression std against the GT's, jaw following the
speech envelope)."""


def evaluation_markdown(report: Mapping[str, Any]) -> str:
    """The Markdown page of an evaluation report (see :mod:`semtalk.evaluation.evaluate`)."""
    scoring = report["scoring"]
    not_computed = scoring["not_computed"]
    rows = report["rows"]
    paper = [[row["label"], *metric_cells(row["values"], EVALUATION_METRICS, not_computed)]
             for row in rows]
    raw = [[row["label"], *metric_cells(row["values"], EVALUATION_METRICS, not_computed,
                                        raw=True)] for row in rows]
    frames = sum(scoring["frames"])
    fgd = scoring["fgd_encoder"]
    parts = [
        f"# Evaluation of `{report['release']}`",
        "",
        f"{len(scoring['clips'])} `{scoring['split']}` clips of `{report['data']}` "
        f"({frames} frames, {frames / 30:.1f} s); joints from the **{scoring['body_model']}** "
        f"body model; FGD encoder: "
        + (f"{fgd['kind']} (`{fgd['path']}`)" if fgd else "none") + ".",
        "",
        "## Paper units",
        "",
        markdown_table(["", *metric_headers(EVALUATION_METRICS)], paper),
        "",
        "## Raw values",
        "",
        markdown_table(["", *metric_headers(EVALUATION_METRICS, raw=True)], raw),
        "",
        "## Notes",
        "",
        f"- BC speed normaliser: {scoring['bc']['speed_normaliser']}; audio read from "
        f"`{scoring['bc']['audio']}`"
        + ("; official quirks reproduced" if scoring["bc"]["official_quirks"] else "") + "."
        + (f" Joints {scoring['bc']['excluded_joints']} never move in the train split and are "
           f"left out of BC." if scoring["bc"]["excluded_joints"] else ""),
        f"- BC controls: {scoring['bc']['shuffled_control']}. The gap between a row and its "
        f"shuffled-audio control is what the motion's beats owe to its own speech.",
        "- Ground truth: FGD and the face errors compare GT with itself (0 by definition) "
        "and are left out; Acc needs a predicted ψ.",
        "- expr. std / GT: the generated expressions' std over time (mean over the 100 "
        "coefficients) over the GT's; 0 is a frozen face. jaw–envelope r: Pearson "
        "correlation of the jaw's rotation angle with the speech RMS envelope at 30 fps, per "
        "clip, frame-weighted; the GT row gives the data's own value.",
        "- Acc: per-token ψ > 0.5 against the clips' semantic labels (token label: mean "
        "frame score > 0).",
    ]
    reasons = reasons_markdown(not_computed)
    if reasons:
        parts += [reasons]
    return "\n".join(parts)


# ---------------------------------------------------------------------- `semtalk ablate`
TABLE2_METRICS: tuple[str, ...] = ("fgd", "bc", "div", "sem_accuracy")
"""Paper Table 2 columns."""
TABLE3_METRICS: tuple[str, ...] = ("fgd", "bc", "div", "face_mse", "face_lvd")
"""Paper Table 3 columns (after the component switches)."""
EXTRA_METRICS: tuple[str, ...] = ("sem_balanced_accuracy", "sem_f1", "expression_mse",
                                  "jaw_angle_deg")
"""Further values every variant has, listed below the paper's tables."""
COMPONENTS: tuple[str, ...] = ("RC", "SE", "C2F", "RVQ")
UNGATED = "no_gate"
"""Table 2's "w/o Sem-gate": ψ is 1 everywhere, so its Acc is the share of semantic tokens."""


def _variant_rows(report: Mapping[str, Any], names: Sequence[str], metrics: Sequence[str],
                  not_computed: Mapping[str, str], *, components: bool = False,
                  raw: bool = False) -> list[list[str]]:
    rows = []
    for name in names:
        result = report["variants"].get(name)
        if result is None:
            continue
        cells = metric_cells(result["values"], metrics, not_computed, raw=raw,
                             spread=result.get("std"))
        if name == UNGATED and "sem_accuracy" in metrics:
            index = list(metrics).index("sem_accuracy")
            cells[index] = f"({cells[index]})¹" if cells[index] != NOT_APPLICABLE else cells[index]
        head = ([("✓" if result["components"][c] else "–") for c in COMPONENTS] if components
                else [result["label"]])
        rows.append(head + cells)
    return rows


def ablation_markdown(report: Mapping[str, Any], table2: Sequence[str] = (),
                      table3: Sequence[str] = ()) -> str:
    """Tables 2 and 3 of an ablation report in the paper's layout, then raw values, controls
    and run times. ``table2`` / ``table3``: row order (default: the variants' own order)."""
    scoring = report["scoring"]
    not_computed = scoring["not_computed"]
    variants = report["variants"]
    table2 = [n for n in (table2 or ()) if n in variants]
    table3 = [n for n in (table3 or ()) if n in variants]
    frames = sum(scoring["frames"])
    fgd = scoring["fgd_encoder"]
    parts = [
        "# Ablations",
        "",
        f"Preset `{report['preset']}` (steps x{report['steps_scale']}) on `{report['data']}`; "
        f"scored on {len(scoring['clips'])} `{scoring['split']}` clip(s), {frames} frames "
        f"({frames / 30:.1f} s); joints from the {scoring['body_model']} body model; FGD "
        "encoder: " + (f"{fgd['kind']} (`{fgd['path']}`)" if fgd else "none") + ". "
        "Values in the paper's units.",
    ]
    seeds = report.get("seeds") or []
    if len(seeds) > 1:
        parts += ["", f"Each row: mean ± standard deviation over {len(seeds)} training seeds "
                      f"({', '.join(map(str, seeds))}) of the generator stages (base and "
                      "sparse; the tokenizers are shared); per-seed values in "
                      "`ablation.json`."]
    if table2:
        parts += ["", "## Table 2: sem-gate", "",
                  markdown_table(["Method", *metric_headers(TABLE2_METRICS)],
                                 _variant_rows(report, table2, TABLE2_METRICS, not_computed))]
        if UNGATED in table2:
            parts += ["", "¹ without a gate ψ is 1 everywhere: every token is predicted "
                          "semantic, so this is the share of semantic tokens (the paper "
                          "prints \"-\")."]
    if table3:
        parts += ["", "## Table 3: components", "",
                  markdown_table([*COMPONENTS, *metric_headers(TABLE3_METRICS)],
                                 _variant_rows(report, table3, TABLE3_METRICS, not_computed,
                                               components=True),
                                 align="c" * len(COMPONENTS) + "r" * len(TABLE3_METRICS))]
    names = list(dict.fromkeys([*table2, *table3, *variants]))
    raw_metrics = ("fgd", "bc", "div", "sem_accuracy", *EXTRA_METRICS)
    extra_rows = [[variants[n]["label"],
                   *metric_cells(variants[n]["values"], raw_metrics, not_computed, raw=True,
                                 spread=variants[n].get("std")),
                   format_value(variants[n]["bc_shuffled"]),
                   format_value(variants[n]["sparse_token_share"])] for n in names]
    truth = report["ground_truth"]
    extra_rows.append(["ground truth", *metric_cells(truth, raw_metrics, not_computed, raw=True),
                       format_value(report["ground_truth_bc_shuffled"]), NOT_APPLICABLE])
    parts += ["", "## Raw values, controls and extras", "",
              markdown_table(["", *metric_headers(raw_metrics, raw=True),
                              "BC, shuffled audio", "sparse tokens"], extra_rows),
              "", "\"BC, shuffled audio\": the same motion scored against another clip's "
                  "audio (the control); \"sparse tokens\": share of tokens that took the "
                  "sparse codes (ψ > β)."]
    stage_rows = []
    for stage, seconds in report["stage_seconds"].items():
        users = [n for n in names if stage in variants[n]["stages"].values()]
        stage_rows.append([stage, f"{seconds:.0f}",
                           ", ".join(users) if users else "all (FGD encoder)"])
    eval_rows = [[variants[n]["label"], f"{variants[n]['eval_seconds']:.0f}"] for n in names]
    parts += ["", "## Run times", "",
              markdown_table(["training stage", "seconds", "used by"], stage_rows, "lrl"), "",
              markdown_table(["evaluation", "seconds"], eval_rows), "",
              f"Training and evaluation of every stage and variant: "
              f"{report['compute_seconds']:.0f} s in all (each shared stage counted once); "
              f"wall time of the last `semtalk ablate` run: {report['wall_seconds']:.0f} s "
              "(stages and evaluations finished earlier are reused, not repeated)."]
    reasons = reasons_markdown(not_computed)
    if reasons:
        parts += ["", reasons]
    return "\n".join(parts)
