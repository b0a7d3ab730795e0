"""Static plots of the semantic score ψ over a clip, with the words that were spoken."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from semtalk.data.textgrid import Word
from semtalk.fileio import atomic_path
from semtalk.render.style import (
    BACKGROUND,
    DPI,
    EMPHASIS_COLOUR,
    MUTED_COLOUR,
    PSI_THRESHOLD,
    TEXT_COLOUR,
)
from semtalk.render.words import WordLike, normalise_words

LABEL_FONT_PT = 9.0
CHAR_WIDTH_EM = 0.62
"""Average width of a label character in ems (DejaVu Sans), used to keep labels apart."""


def _word_scores(psi: np.ndarray, fps: float | None, words: list[Word]) -> np.ndarray:
    """The score of each word: its own for per-token ψ, else the peak over its frames."""
    if fps is None:
        return psi
    scores = np.zeros(len(words))
    for i, w in enumerate(words):
        first = int(np.floor(w.start * fps))
        last = max(int(np.ceil(w.end * fps)), first + 1)
        window = psi[max(first, 0) : min(last, psi.shape[0])]
        scores[i] = window.max() if window.size else 0.0
    return scores


def choose_labels(centres: np.ndarray, widths: np.ndarray, priority: np.ndarray) -> list[int]:
    """Indices of labels to draw so that none overlap, preferring high priority.

    Args:
        centres: ``[N]`` label centres along the axis.
        widths: ``[N]`` label widths in the same units.
        priority: ``[N]``; ties go to the earlier label.

    Returns:
        Chosen indices in ascending order.
    """
    placed: list[tuple[float, float]] = []
    chosen = []
    for i in sorted(range(len(centres)), key=lambda k: (-priority[k], k)):
        left, right = centres[i] - widths[i] / 2, centres[i] + widths[i] / 2
        if all(right <= a or left >= b for a, b in placed):
            placed.append((left, right))
            chosen.append(i)
    return sorted(chosen)


def _draw_words(ax: Axes, words: list[Word], scores: np.ndarray, threshold: float,
                axes_width_px: float, span_s: float) -> None:
    if not words:
        return
    centres = np.array([(w.start + w.end) / 2 for w in words])
    seconds_per_px = span_s / axes_width_px
    label_px = LABEL_FONT_PT * DPI / 72
    widths = np.array([(len(w.text) * CHAR_WIDTH_EM + 0.8) * label_px for w in words])
    trans = ax.get_xaxis_transform()  # x in seconds, y in axes fraction
    ax.vlines(centres, 0.97, 1.0, transform=trans, color=MUTED_COLOUR, lw=0.6)
    for i in choose_labels(centres, widths * seconds_per_px, scores):
        above = scores[i] > threshold
        ax.text(centres[i], 1.02, words[i].text, transform=trans, ha="center", va="bottom",
                fontsize=LABEL_FONT_PT, color=EMPHASIS_COLOUR if above else TEXT_COLOUR,
                weight="bold" if above else "normal")


def plot_semantic_score(
    psi: np.ndarray,
    fps: float | None,
    words: Sequence[WordLike] | None,
    out_png: str | Path,
    threshold: float = PSI_THRESHOLD,
    title: str | None = None,
    size: tuple[int, int] = (1600, 360),
) -> Path:
    """Plot ψ over time: threshold line, shaded emphasis, word labels; write a PNG atomically.

    Args:
        psi: ``[T]`` frame-level scores at ``fps``, or, with ``fps=None``, one score per word
            (``[len(words)]``) drawn as a bar over each word's time span.
        fps: frame rate of ``psi``; ``None`` for per-token scores.
        words: ``(text, start_s, end_s)`` tuples or :class:`~semtalk.data.textgrid.Word`;
            labelled at their centres, thinned out (keeping the highest-scoring words) where
            they would overlap.
        out_png: the PNG to write.
        threshold: ψ above it counts as semantic emphasis (shaded, labels highlighted).
        title: plot title.
        size: ``(width, height)`` of the image in pixels.

    Returns:
        ``out_png`` as a :class:`~pathlib.Path`.
    """
    scores = np.asarray(psi, dtype=np.float64).reshape(-1)
    word_list = normalise_words(words)
    if scores.size == 0 or not np.isfinite(scores).all():
        raise ValueError(f"psi must be non-empty and finite, got shape {scores.shape}")
    if fps is None and scores.shape[0] != len(word_list):
        raise ValueError(f"per-token psi needs one score per word: {scores.shape[0]} scores, "
                         f"{len(word_list)} words")
    if fps is not None and not fps > 0:
        raise ValueError(f"fps must be positive or None, got {fps}")
    width, height = int(size[0]), int(size[1])
    if min(width, height) < 100:
        raise ValueError(f"size must be at least 100x100 pixels, got {width}x{height}")

    fig = Figure(figsize=(width / DPI, height / DPI), dpi=DPI, facecolor=BACKGROUND)
    FigureCanvasAgg(fig)
    box = (60 / width, 52 / height, 1 - 80 / width, 1 - (122 if title else 92) / height)
    ax = fig.add_axes(box)
    ax.set_facecolor("#ffffff")
    if fps is None:
        starts = np.array([w.start for w in word_list])
        spans = np.array([max(w.end - w.start, 1e-3) for w in word_list])
        colours = [EMPHASIS_COLOUR if s > threshold else "#9a9a9a" for s in scores]
        ax.bar(starts, scores, width=spans, align="edge", color=colours, alpha=0.8)
        end = float((starts + spans).max())
    else:
        times = np.arange(scores.shape[0]) / fps
        ax.fill_between(times, 0, scores, where=scores > threshold, interpolate=True,
                        color=EMPHASIS_COLOUR, alpha=0.25, lw=0)
        ax.plot(times, scores, color="#444444", lw=1.2)
        end = max(float(times[-1]), word_list[-1].end if word_list else 0.0)
    ax.axhline(threshold, color=MUTED_COLOUR, lw=0.9, ls="--")
    ax.set_xlim(0, max(end, 1e-3))
    ax.set_ylim(min(0.0, float(scores.min())), max(1.05, float(scores.max()) * 1.05))
    ax.set_xlabel("time (s)", color=TEXT_COLOUR)
    ax.set_ylabel("ψ", color=TEXT_COLOUR)
    ax.tick_params(colors=MUTED_COLOUR)
    _draw_words(ax, word_list, _word_scores(scores, fps, word_list), threshold,
                box[2] * width, max(end, 1e-3))
    if title:
        fig.text(box[0], 1 - 12 / height, title, ha="left", va="top", fontsize=12,
                 color=TEXT_COLOUR)
    out = Path(out_png)
    with atomic_path(out) as tmp:
        fig.savefig(tmp, format="png", dpi=DPI, facecolor=fig.get_facecolor())
    return out
