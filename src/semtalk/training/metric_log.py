"""Training logs: one JSON line and long-format CSV rows per logged step, plus TensorBoard.

``log.jsonl`` holds ``{"step": s, "split": "train"|"val", "name": value, ...}`` per call;
``log.csv`` holds the same values as ``step,split,name,value`` rows, so columns never change as
new metrics appear. TensorBoard event files go to ``tensorboard/`` when the ``tensorboard``
package is installed (``pip install tensorboard``); otherwise only the text logs are written.
On resume, rows logged after the checkpoint step are dropped so the logs match the resumed run.
"""

from __future__ import annotations

import csv
import io
import json
import logging
from pathlib import Path
from typing import Any

from semtalk.fileio import write_text_atomic

LOG_JSONL = "log.jsonl"
LOG_CSV = "log.csv"
TENSORBOARD_DIR = "tensorboard"

_log = logging.getLogger(__name__)


class MetricLogger:
    """Appends metrics to ``folder``'s logs; a disabled logger (non-zero ranks) does nothing."""

    def __init__(self, folder: Path, *, enabled: bool = True, resume_step: int | None = None,
                 tensorboard: bool = True) -> None:
        self.folder = folder
        self.enabled = enabled
        self._writer: Any = None
        if not enabled:
            return
        folder.mkdir(parents=True, exist_ok=True)
        if resume_step is None:
            for name in (LOG_JSONL, LOG_CSV):
                (folder / name).unlink(missing_ok=True)
        else:
            self._truncate(resume_step)
        if tensorboard:
            self._writer = _summary_writer(folder / TENSORBOARD_DIR, resume_step)

    def _truncate(self, step: int) -> None:
        """Drop rows logged after ``step`` (they belong to the run that was interrupted)."""
        jsonl = self.folder / LOG_JSONL
        if jsonl.is_file():
            kept = [line for line in jsonl.read_text(encoding="utf-8").splitlines()
                    if line.strip() and json.loads(line)["step"] <= step]
            write_text_atomic(jsonl, "".join(line + "\n" for line in kept))
        table = self.folder / LOG_CSV
        if table.is_file():
            rows = list(csv.reader(io.StringIO(table.read_text(encoding="utf-8"))))
            kept_rows = rows[:1] + [row for row in rows[1:] if int(row[0]) <= step]
            out = io.StringIO()
            csv.writer(out, lineterminator="\n").writerows(kept_rows)
            write_text_atomic(table, out.getvalue())

    def log(self, step: int, split: str, values: dict[str, float]) -> None:
        """Record ``values`` of ``split`` at ``step``."""
        if not self.enabled or not values:
            return
        record = {"step": step, "split": split, **{k: float(v) for k, v in values.items()}}
        with (self.folder / LOG_JSONL).open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(record) + "\n")
        table = self.folder / LOG_CSV
        new = not table.is_file()
        with table.open("a", encoding="utf-8", newline="") as handle:
            writer = csv.writer(handle, lineterminator="\n")
            if new:
                writer.writerow(["step", "split", "name", "value"])
            writer.writerows([step, split, name, f"{float(value):.8g}"]
                             for name, value in values.items())
        if self._writer is not None:
            for name, value in values.items():
                self._writer.add_scalar(f"{split}/{name}", float(value), step)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.flush()
            self._writer.close()
            self._writer = None


def read_log(folder: str | Path) -> list[dict[str, Any]]:
    """The records of ``folder/log.jsonl`` in order."""
    path = Path(folder) / LOG_JSONL
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


def _summary_writer(folder: Path, resume_step: int | None) -> Any:
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        _log.info("tensorboard is not installed; writing log.jsonl and log.csv only")
        return None
    kwargs = {} if resume_step is None else {"purge_step": resume_step + 1}
    return SummaryWriter(str(folder), **kwargs)
