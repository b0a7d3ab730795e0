"""How predictable the synthetic speaker's semantic labels are from its words: the ceiling for ψ.

Scores two rules token by token (a token's label: any of its 4 frames has a semantic score >
0.1, as in training) against the ``sem/`` annotations of a synthetic dataset root
(``semtalk synth`` / ``semtalk demo``'s ``DIR/data``), per split:

- ``keywords``: a token is semantic when it overlaps a keyword's gesture span (from 0.10 s
  before the keyword to ``max(end + 0.30, start + 0.60)`` s), what a gate that recognises the
  keywords and the span after them can reach;
- ``keywords + history``: the same, skipping a keyword that follows the previous gesture too
  closely (the generator does not gesture it), i.e. a gate that also remembers the previous
  gesture: the labels' exact rule.

Usage: ``python benchmarks/semantic_ceiling.py ROOT``.

Measured on ``semtalk demo``'s dataset (10 min, seed 0): ``keywords`` balanced accuracy 0.94
on test (TPR 1.00, TNR 0.88), 0.96 on val; ``keywords + history`` 1.00. The demo's learned gate
reached 0.73 (test) at the time, so the gap is the gate's, not the data's.
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import numpy as np

from semtalk.constants import MOTION_FPS
from semtalk.data.synthetic.performer import GESTURE_GAP
from semtalk.data.synthetic.script import KEYWORD_CLASS
from semtalk.data.textgrid import read_textgrid


def frame_scores(path: Path, frames: int) -> np.ndarray:
    """Per-frame scores of a ``sem`` file: the first row covering a frame, 0 when <= 0.1."""
    scores = np.zeros(frames)
    times = np.arange(frames) / MOTION_FPS
    for line in path.read_text().splitlines():
        fields = line.split("\t")
        if len(fields) < 5:
            continue
        start, end, score = float(fields[1]), float(fields[2]), float(fields[4])
        inside = (times >= start) & (times <= end) & (scores == 0)
        scores[inside] = score if score > 0.1 else 0.0
    return scores


def predicted(words: list, frames: int, history: bool) -> np.ndarray:
    """Frames of the keyword rule (see the module docstring)."""
    out = np.zeros(frames)
    times = np.arange(frames) / MOTION_FPS
    free = 0.0
    for word in words:
        if word.text not in KEYWORD_CLASS:
            continue
        if history and (word.start - 0.45 < free or word.end + 0.8 > frames / MOTION_FPS):
            continue
        end = max(word.end + 0.30, word.start + 0.60)
        out[(times >= word.start - 0.10) & (times <= end)] = 1
        free = end + 0.45 + GESTURE_GAP
    return out


def tokens(values: np.ndarray) -> np.ndarray:
    count = len(values) // 4
    return values[:count * 4].reshape(count, 4).max(axis=1) > 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("root", type=Path, help="synthetic dataset root (BEAT2 layout)")
    root = parser.parse_args().root
    splits = {row["id"]: row["type"]
              for row in csv.DictReader((root / "train_test_split.csv").open())}
    results: dict[tuple[str, str], list[tuple[np.ndarray, np.ndarray]]] = {}
    for grid in sorted((root / "textgrid").glob("*.TextGrid")):
        clip = grid.stem
        words = list(next(iter(read_textgrid(grid).values())))
        frames = int(max(w.end for w in words) * MOTION_FPS)
        truth = tokens(frame_scores(root / "sem" / f"{clip}.txt", frames))
        for name, history in (("keywords", False), ("keywords + history", True)):
            guess = tokens(predicted(words, frames, history))
            results.setdefault((splits.get(clip, "?"), name), []).append((truth, guess))
    for (split, name), pairs in sorted(results.items()):
        truth = np.concatenate([t for t, _ in pairs])
        guess = np.concatenate([g for _, g in pairs])
        tpr = (guess & truth).sum() / max(truth.sum(), 1)
        tnr = (~guess & ~truth).sum() / max((~truth).sum(), 1)
        print(f"{split:6s} {name:20s} tokens {len(truth):5d} semantic {truth.mean():.3f}  "
              f"balanced accuracy {(tpr + tnr) / 2:.3f} (TPR {tpr:.3f}, TNR {tnr:.3f})")


if __name__ == "__main__":
    main()
