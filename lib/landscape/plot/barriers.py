"""The barrier matrix's figure: one annotated heatmap of models × models per matrix, before and after
alignment side by side (one shared colour scale per row, so the two compare), the edges of each matrix's
minimum spanning tree outlined."""
import numpy as np
from matplotlib.colors import Normalize
from matplotlib.patches import Rectangle

from .base import new_figure, save_figure

TREE_COLOUR = "#00c8ff"


def plot_barrier_matrices(names, rows, colorbar_labels):
    """rows: [[(title, matrix (M, M), tree edges [(i, j, height)]), ...], ...], one colour scale per row;
    colorbar_labels: one per row. The diagonal is grey; so are NaN cells (unfinished lines), marked '…'."""
    count, width = len(names), max(len(row) for row in rows)
    side = 1.2 + 0.55 * count
    fig = new_figure(figsize=(side * width + 1.2, side * len(rows) + 0.6), layout="constrained")
    axes = np.atleast_2d(fig.subplots(len(rows), width, squeeze=False))
    for ax_row, row, label in zip(axes, rows, colorbar_labels):
        finite = np.concatenate([m[np.isfinite(m) & ~np.eye(count, dtype=bool)] for _, m, _ in row])
        top = float(finite.max()) if finite.size and finite.max() > 0 else 1.0
        norm = Normalize(0.0, top)
        for ax, (title, matrix, edges) in zip(ax_row, row):
            image = _heatmap(ax, names, matrix, norm)
            _outline(ax, edges)
            ax.set_title(title, fontsize=9)
        for ax in ax_row[len(row):]:
            ax.set_visible(False)
        fig.colorbar(image, ax=list(ax_row[:len(row)]), shrink=0.8, label=label)
    return fig


def _heatmap(ax, names, matrix, norm):
    count = len(names)
    shown = np.ma.masked_invalid(np.where(np.eye(count, dtype=bool), np.nan, matrix))
    ax.set_facecolor("#d9d9d9")  # the diagonal and unfinished lines show through
    image = ax.imshow(shown, cmap="magma_r", norm=norm)
    for i in range(count):
        for j in range(count):
            if i != j and np.isfinite(matrix[i, j]):
                dark = norm(matrix[i, j]) > 0.55  # white text on the dark end of magma_r
                ax.text(j, i, f"{matrix[i, j]:.3g}", ha="center", va="center", fontsize=7,
                        color="white" if dark else "black")
            elif i != j:  # grey like the diagonal, but marked: this line is not finished
                ax.text(j, i, "…", ha="center", va="center", fontsize=9, color="#666666")
    ax.set_xticks(range(count), names, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(count), names, fontsize=8)
    return image


def _outline(ax, edges):
    """A frame inside both cells of every tree edge (inset, so the frames of neighbouring cells stay apart)."""
    for i, j, _ in edges:
        for row, col in ((i, j), (j, i)):
            ax.add_patch(Rectangle((col - 0.44, row - 0.44), 0.88, 0.88, fill=False, edgecolor=TREE_COLOUR,
                                   linewidth=2))


def save_barrier_figure(stem, names, rows, colorbar_labels, formats=("png",)):
    """The figure written to stem.<format>; returns the paths."""
    return save_figure(plot_barrier_matrices(names, rows, colorbar_labels), stem, formats)
