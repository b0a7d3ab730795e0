"""Semantic classification accuracy of the sem-gate ψ (paper Table 2 "Acc", spec §8.5).

The sem-gate predicts, per frame (or per 4-frame token), the probability ψ that the motion
there is semantically emphasised. A prediction is *semantic* when ψ exceeds the fusion
threshold β = 0.5 (the official code takes the arg-max of a two-way softmax, which is the same
as ψ > 0.5, ties going to "not semantic"). The label of a frame is semantic when its semantic
score is > 0 (the official ``1[sem > 0]``), so raw BEAT2 scores can be passed directly.

Unlike the official code, which only logs accuracy on training batches, this is meant for
held-out data (DESIGN §1).

Degenerate cases are reported, not hidden: a ratio whose denominator is zero is NaN
(``float("nan")``) — recall without any semantic label, precision without any semantic
prediction, F1 when there is neither a label nor a prediction nor a hit
(``2TP + FP + FN = 0``). Balanced accuracy averages the recalls of the classes present in the
labels, so with a single class present it is that class's recall. NaN is not valid JSON; report
writers should turn it into ``null``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

SEMANTIC_THRESHOLD = 0.5
"""β: ψ above this means "semantic"."""


@dataclass(frozen=True)
class SemanticScores:
    """Binary classification scores of ψ against semantic labels (semantic = positive).

    Attributes:
        accuracy: fraction of frames classified correctly.
        balanced_accuracy: mean of the per-class recalls over the classes present.
        precision: TP / (TP + FP), NaN without semantic predictions.
        recall: TP / (TP + FN), NaN without semantic labels.
        f1: 2TP / (2TP + FP + FN), NaN when that denominator is 0.
        true_positives, false_positives, true_negatives, false_negatives: the counts.
    """

    accuracy: float
    balanced_accuracy: float
    precision: float
    recall: float
    f1: float
    true_positives: int
    false_positives: int
    true_negatives: int
    false_negatives: int

    @property
    def num_positive(self) -> int:
        """Frames labelled semantic."""
        return self.true_positives + self.false_negatives

    @property
    def num_negative(self) -> int:
        """Frames labelled not semantic."""
        return self.true_negatives + self.false_positives


def _ratio(numerator: int, denominator: int) -> float:
    return numerator / denominator if denominator else float("nan")


def _flat(values: np.ndarray | torch.Tensor, name: str) -> np.ndarray:
    array = values.detach().cpu().numpy() if isinstance(values, torch.Tensor) else values
    array = np.asarray(array, dtype=np.float64).reshape(-1)
    if np.isnan(array).any():
        raise ValueError(f"{name} contains NaN")
    return array


def semantic_accuracy(psi: np.ndarray | torch.Tensor, labels: np.ndarray | torch.Tensor,
                      mask: np.ndarray | torch.Tensor | None = None,
                      threshold: float = SEMANTIC_THRESHOLD) -> SemanticScores:
    """Scores of ψ against labels over all frames (any matching shapes, flattened).

    Args:
        psi: gate probabilities in [0, 1].
        labels: semantic scores or 0/1 labels; > 0 means semantic.
        mask: optional, True (or nonzero) for frames to count (e.g. not padding).
        threshold: β; ψ > β predicts semantic.

    Raises:
        ValueError: on mismatched sizes, NaN inputs, ψ outside [0, 1] or no frame to score.
    """
    scores, truth = _flat(psi, "psi"), _flat(labels, "labels")
    if scores.shape != truth.shape:
        raise ValueError(f"psi has {scores.size} values but labels {truth.size}")
    if scores.size and (scores.min() < 0 or scores.max() > 1):
        raise ValueError("psi must lie in [0, 1]")
    keep = np.ones_like(scores, dtype=bool) if mask is None else _flat(mask, "mask") != 0
    if keep.shape != scores.shape:
        raise ValueError(f"mask has {keep.size} values but psi {scores.size}")
    predicted, actual = scores[keep] > threshold, truth[keep] > 0
    if predicted.size == 0:
        raise ValueError("no frames to score")
    tp = int(np.sum(predicted & actual))
    fp = int(np.sum(predicted & ~actual))
    tn = int(np.sum(~predicted & ~actual))
    fn = int(np.sum(~predicted & actual))
    recalls = [r for r in (_ratio(tp, tp + fn), _ratio(tn, tn + fp)) if not np.isnan(r)]
    return SemanticScores(
        accuracy=(tp + tn) / predicted.size,
        balanced_accuracy=float(np.mean(recalls)),
        precision=_ratio(tp, tp + fp),
        recall=_ratio(tp, tp + fn),
        f1=_ratio(2 * tp, 2 * tp + fp + fn),
        true_positives=tp, false_positives=fp, true_negatives=tn, false_negatives=fn,
    )
