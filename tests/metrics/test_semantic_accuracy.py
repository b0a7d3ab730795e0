"""Semantic accuracy of ψ: confusion-matrix known answers and degenerate label sets."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from semtalk.metrics import semantic_accuracy


def test_known_confusion_matrix() -> None:
    psi = [0.9, 0.6, 0.4, 0.1, 0.5, 0.7, 0.2]
    labels = [1, 0, 1, 0, 1, 1, 0]  # psi = 0.5 is not above beta: a miss
    scores = semantic_accuracy(psi, labels)
    assert (scores.true_positives, scores.false_positives, scores.true_negatives,
            scores.false_negatives) == (2, 1, 2, 2)
    assert scores.accuracy == pytest.approx(4 / 7)
    assert scores.precision == pytest.approx(2 / 3)
    assert scores.recall == pytest.approx(2 / 4)
    assert scores.f1 == pytest.approx(2 * 2 / (2 * 2 + 1 + 2))
    assert scores.balanced_accuracy == pytest.approx((2 / 4 + 2 / 3) / 2)
    assert (scores.num_positive, scores.num_negative) == (4, 3)


def test_raw_semantic_scores_tensors_and_mask() -> None:
    psi = torch.tensor([[0.8, 0.3], [0.9, 0.2]])
    sem = np.array([[0.35, 0.0], [0.0, 0.7]])  # BEAT2 scores: > 0 means semantic
    scores = semantic_accuracy(psi, sem)
    assert (scores.true_positives, scores.false_positives, scores.true_negatives,
            scores.false_negatives) == (1, 1, 1, 1)
    masked = semantic_accuracy(psi, sem, mask=[[1, 1], [0, 0]])
    assert masked.accuracy == 1.0 and masked.true_positives + masked.true_negatives == 2


def test_all_negative_labels() -> None:
    scores = semantic_accuracy([0.2, 0.8, 0.1], [0, 0, 0])
    assert scores.accuracy == pytest.approx(2 / 3)
    assert math.isnan(scores.recall)  # no semantic frame to recall
    assert scores.precision == 0.0
    assert scores.f1 == 0.0
    assert scores.balanced_accuracy == pytest.approx(2 / 3)  # recall of the negatives only


def test_all_negative_labels_and_predictions() -> None:
    scores = semantic_accuracy([0.1, 0.2], [0, 0])
    assert scores.accuracy == 1.0 and scores.balanced_accuracy == 1.0
    assert math.isnan(scores.precision) and math.isnan(scores.recall) and math.isnan(scores.f1)


def test_threshold_is_an_argument() -> None:
    assert semantic_accuracy([0.4], [1], threshold=0.3).true_positives == 1


def test_bad_inputs_are_rejected() -> None:
    with pytest.raises(ValueError, match="labels"):
        semantic_accuracy([0.1, 0.2], [1])
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        semantic_accuracy([1.5], [1])
    with pytest.raises(ValueError, match="NaN"):
        semantic_accuracy([float("nan")], [1])
    with pytest.raises(ValueError, match="no frames"):
        semantic_accuracy([0.2], [1], mask=[0])
