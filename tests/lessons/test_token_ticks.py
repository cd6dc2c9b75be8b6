"""PNG tick labels stay readable for long inputs: lessons.plots thins token labels to every k-th
one when they would overlap, and leaves short inputs labelled token by token."""

from __future__ import annotations

import pytest

from lessons import plots

plt = plots.pyplot()
pytestmark = pytest.mark.skipif(plt is None, reason="matplotlib (the viz extra) is not installed")

TOKENS_128 = [f"tok{i}" for i in range(128)]


def _label_boxes(fig, ax, which):
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    labels = ax.get_xticklabels() if which == "x" else ax.get_yticklabels()
    return [label.get_window_extent(renderer) for label in labels if label.get_text()]


def _overlapping(boxes, which) -> int:
    spans = sorted((b.x0, b.x1) if which == "x" else (b.y0, b.y1) for b in boxes)
    return sum(1 for (a0, a1), (b0, b1) in zip(spans, spans[1:]) if b0 < a1)


@pytest.mark.parametrize("figsize, layout", [((11, 4.8), "constrained"), ((2.6, 2.6), None)])
def test_128_tokens_get_thinned_labels_that_do_not_overlap(figsize, layout):
    fig, ax = plt.subplots(figsize=figsize, layout=layout)
    try:
        plots.heatmap(ax, [[0.0] * 128] * 128, TOKENS_128, TOKENS_128, "t", "key", "query", fontsize=7)
        for which in ("x", "y"):
            boxes = _label_boxes(fig, ax, which)
            assert 1 < len(boxes) < 128
            assert _overlapping(boxes, which) == 0
        assert "one label per" in ax.get_xlabel()
    finally:
        plt.close(fig)


def test_short_inputs_keep_every_label():
    tokens = ["[CLS]", "the", "bank", "[SEP]"]
    fig, ax = plt.subplots(figsize=(4, 4))
    try:
        assert plots.token_ticks(ax, tokens, "x") == 1
        assert plots.token_ticks(ax, tokens, "y") == 1
        assert [t.get_text() for t in ax.get_yticklabels()] == tokens
    finally:
        plt.close(fig)


def test_tick_step():
    assert plots.tick_step(10, axis_points=200, fontsize=7) == 1
    assert plots.tick_step(128, axis_points=200, fontsize=7) == 7  # 20 labels fit in 200 pt
