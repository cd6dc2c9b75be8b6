"""matplotlib is optional (the `viz` extra). Without it, lessons print their numbers and say how
to get the pictures; with it, every figure has a title and labelled axes and is saved as PNG."""

from __future__ import annotations

import contextlib
from pathlib import Path

VIZ_HINT = 'matplotlib is not installed, so no pictures this time: pip install -e ".[viz]"'


def pyplot():
    """matplotlib.pyplot on the file-only Agg backend, or None when matplotlib is missing."""
    try:
        import matplotlib
    except ImportError:
        return None
    matplotlib.use("Agg")  # never open a window, never need a display
    import matplotlib.pyplot as plt

    return plt


@contextlib.contextmanager
def figure(path: Path, rows: int = 1, cols: int = 1, dpi: int = 110, tight: bool = True, **options):
    """The matplotlib preamble and epilogue of every lesson picture, in one place:

        with plots.figure(out / "name.png", 1, 2, figsize=(11, 4)) as (fig, axes):
            if fig is None:
                return []          # matplotlib missing: the hint has been printed
            axes[0].plot(...)

    `axes` is a 2-D array when rows > 1 and cols > 1, 1-D when one of them is 1, else one Axes
    (as plt.subplots gives). The figure is saved as PNG at `dpi` and closed when the block ends
    without an error, and its path printed. tight=False keeps a layout the block set by hand."""
    plt = pyplot()
    if plt is None:
        print("\n" + VIZ_HINT)
        yield None, None
        return
    fig, axes = plt.subplots(rows, cols, **options)
    try:
        yield fig, axes
        if tight and fig.get_layout_engine() is None:
            fig.tight_layout()
        fig.savefig(path, dpi=dpi)
        print(f"wrote {path}")
    finally:
        plt.close(fig)


# A tick label needs its font size times this much room along the axis (line height plus a gap).
LABEL_PITCH = 1.4


def tick_step(count: int, axis_points: float, fontsize: float) -> int:
    """Label every k-th of `count` ticks so that labels `fontsize` points tall, laid across an
    axis `axis_points` long, do not overlap: k = 1 while they fit."""
    fits = max(1, int(axis_points // (fontsize * LABEL_PITCH)))
    return max(1, -(-count // fits))  # ceil(count / fits)


def token_ticks(ax, labels, which: str = "x", fontsize: float = 7, rotation=None) -> int:
    """Label a heatmap axis with tokens (one cell each), thinned to every k-th token when there
    are too many to read; the axis's caption says so. Returns k. which: "x" or "y"."""
    labels = [str(label) for label in labels]
    position = ax.get_position()  # in figure fractions; the layout engine only shrinks it a little
    width, height = ax.figure.get_size_inches()
    axis_points = 72 * (position.width * width if which == "x" else position.height * height)
    step = tick_step(len(labels), axis_points, fontsize)
    ticks = list(range(0, len(labels), step))
    shown = [labels[i] for i in ticks]
    if which == "x":
        if rotation is None:
            rotation = 90 if max(map(len, labels), default=0) > 3 or step > 1 else 0
        ax.set_xticks(ticks)
        ax.set_xticklabels(shown, rotation=rotation, fontsize=fontsize)
    else:
        ax.set_yticks(ticks)
        ax.set_yticklabels(shown, fontsize=fontsize)
    return step


def heatmap(ax, matrix, row_labels, col_labels, title, xlabel, ylabel, cmap="viridis",
            vmin=None, vmax=None, annotate=False, fontsize=7):
    image = ax.imshow(matrix, cmap=cmap, vmin=vmin, vmax=vmax, aspect="auto")
    x_step = token_ticks(ax, col_labels, "x", fontsize)
    y_step = token_ticks(ax, row_labels, "y", fontsize)
    if x_step > 1:
        xlabel = f"{xlabel} (one label per {x_step} tokens)"
    if y_step > 1:
        ylabel = f"{ylabel} (one label per {y_step} tokens)"
    ax.set_title(title, fontsize=fontsize + 2)
    ax.set_xlabel(xlabel, fontsize=fontsize + 1)
    ax.set_ylabel(ylabel, fontsize=fontsize + 1)
    if annotate:
        for i in range(len(row_labels)):
            for j in range(len(col_labels)):
                ax.text(j, i, f"{matrix[i][j]:.2f}", ha="center", va="center",
                        fontsize=fontsize - 1, color="white" if matrix[i][j] < (vmax or 1) * 0.6 else "black")
    return image


def title_text(text: str, width: int) -> str:
    """A quoted text for a plot title, cut to `width` characters."""
    return repr(text) if len(text) <= width else repr(text[: width - 3]) + "..."
