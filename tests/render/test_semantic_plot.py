"""Semantic-score plots: image size, emphasis shading, label thinning, per-token scores."""

from __future__ import annotations

import matplotlib.image as mpimg
import numpy as np
import pytest

from semtalk.data.textgrid import Word
from semtalk.render import plot_semantic_score
from semtalk.render.plots import choose_labels

EMPHASIS_RGB = np.array([0xD1, 0x49, 0x5B]) / 255


def emphasis_pixels(image: np.ndarray) -> int:
    """Pixels close to the emphasis colour or its light shade (the filled area)."""
    rgb = image[..., :3]
    solid = np.abs(rgb - EMPHASIS_RGB).max(-1) < 0.08
    shade = np.abs(rgb - (0.25 * EMPHASIS_RGB + 0.75)).max(-1) < 0.05
    return int((solid | shade).sum())


def test_frame_scores_plot_has_requested_size_and_shades_emphasis(tmp_path):
    fps, num_frames = 30, 150
    psi = np.full(num_frames, 0.2)
    words = [("we", 0.1, 0.3), ("never", 0.4, 0.9), ("stop", 1.0, 1.6), ("here", 3.0, 3.5)]
    calm = plot_semantic_score(psi, fps, words, tmp_path / "calm.png")
    psi[30:60] = 0.9
    loud = plot_semantic_score(psi, fps, words, tmp_path / "loud.png", title="clip")
    calm_img, loud_img = mpimg.imread(calm), mpimg.imread(loud)
    assert calm_img.shape[:2] == loud_img.shape[:2] == (360, 1600)
    assert emphasis_pixels(calm_img) == 0
    assert emphasis_pixels(loud_img) > 2000  # shaded region plus the highlighted word
    assert sorted(p.name for p in tmp_path.iterdir()) == ["calm.png", "loud.png"]


def test_per_token_scores_accept_textgrid_words_and_check_counts(tmp_path):
    words = [Word("big", 0.0, 0.5), Word("red", 0.6, 1.0)]
    out = plot_semantic_score(np.array([0.8, 0.1]), None, words, tmp_path / "t.png",
                              size=(800, 300))
    assert mpimg.imread(out).shape[:2] == (300, 800)
    with pytest.raises(ValueError, match="one score per word"):
        plot_semantic_score(np.array([0.8]), None, words, tmp_path / "bad.png")
    assert not (tmp_path / "bad.png").exists()


def test_crowded_labels_are_thinned_keeping_the_highest_scores():
    centres = np.array([0.0, 0.5, 1.0, 1.5, 10.0])
    widths = np.full(5, 1.2)
    priority = np.array([0.1, 0.9, 0.2, 0.3, 0.0])
    # 0.5 is placed first and spans [-0.1, 1.1]: the labels at 0, 1 and 1.5 would overlap it
    assert choose_labels(centres, widths, priority) == [1, 4]
    assert choose_labels(centres, np.full(5, 0.4), priority) == [0, 1, 2, 3, 4]
    many = np.linspace(0, 10, 200)
    chosen = choose_labels(many, np.full(200, 0.5), np.zeros(200))
    assert 15 <= len(chosen) <= 21
    assert np.diff(many[chosen]).min() >= 0.5
