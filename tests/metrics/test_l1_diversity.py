"""L1 diversity: hand-made known answers, layouts, inputs left untouched."""

from __future__ import annotations

import numpy as np
import pytest

from semtalk.metrics import l1_deviation_sum, l1_diversity


def test_known_answer_over_two_sequences() -> None:
    moving = np.zeros((2, 55, 3))
    moving[1, 4, 0] = 2.0  # one coordinate goes 0 -> 2: deviations 1 and 1
    still = np.ones((4, 55, 3))  # no deviation at all
    assert l1_deviation_sum(moving) == pytest.approx(2.0)
    assert l1_deviation_sum(still) == 0.0
    assert l1_diversity([moving, still]) == pytest.approx(2.0 / 6)


def test_flat_and_joint_layouts_agree_and_inputs_are_not_modified() -> None:
    joints = np.random.default_rng(0).normal(size=(50, 55, 3))
    copy = joints.copy()
    value = l1_diversity([joints])
    assert value == pytest.approx(l1_diversity([joints.reshape(50, 165)]))
    assert np.array_equal(joints, copy)
    # per frame, the expected |x - mean| of a unit Gaussian is sqrt(2 / pi) per coordinate
    assert value == pytest.approx(165 * np.sqrt(2 / np.pi), rel=0.05)


def test_translation_invariance_and_scaling() -> None:
    joints = np.random.default_rng(1).normal(size=(30, 55, 3))
    base = l1_diversity([joints])
    assert l1_diversity([joints + np.array([1.0, -2.0, 3.0])]) == pytest.approx(base)
    assert l1_diversity([2.0 * joints]) == pytest.approx(2.0 * base)


def test_empty_input_is_rejected() -> None:
    with pytest.raises(ValueError, match="at least one"):
        l1_diversity([])
    with pytest.raises(ValueError, match="frames first"):
        l1_deviation_sum(np.zeros(5))
