"""Maps of the Hessian's extreme eigenvalues: |λmin/λmax| (the paper's convexity map), λmin and λmax.

2D grids: x (nx,), y (ny,), arrays (ny, nx). 1D grids: y=None and arrays (nx,), drawn as curves.
NaN (not computed yet) shows blank. `unconverged` (a bool array shaped like the values) marks the points
whose Lanczos run did not converge with an '×' (2D: at the grid point; 1D: on each curve).
"""

import numpy as np
from matplotlib.ticker import MaxNLocator

from ..errors import PlotOptionError
from .base import as_axis, as_curve, as_grid, masked, new_figure, plot_curves, set_title, value_range
from .maps import draw_contour_lines, draw_heatmap, fit_axes_to_grid

# The reference's plot_2d_eig_ratio draws |λmin/λmax| with vmin=0, vmax=0.5, and its
# plot_1d_eig_ratio sets the y axis to (0, 1).
EIG_RATIO_VMAX_2D = 0.5
EIG_RATIO_VMAX_1D = 1.0
UNCONVERGED_LABEL = "did not converge"  # the legend entry of the '×' marks


def mark_unconverged(ax, x, y, unconverged, curves=()):
    """An '×' at each unconverged point: at (x, y) on a 2D map, or at (x, value) on each 1D curve; nothing
    when there is none. Returns the marks' Line2D (its data are the marked coordinates) or None."""
    if unconverged is None or not np.any(unconverged):
        return None
    mask = np.asarray(unconverged, dtype=bool)
    if y is None:
        xs = np.concatenate([np.asarray(x, dtype=float)[mask] for _ in curves])
        ys = np.concatenate([np.asarray(curve, dtype=float)[mask] for curve in curves])
    else:
        cols, rows = np.meshgrid(np.asarray(x), np.asarray(y))
        xs, ys = cols[mask], rows[mask]
    marks, = ax.plot(xs, ys, "x", color="red", markersize=7, markeredgewidth=1.5, linestyle="none",
                     clip_on=False, label=f"{UNCONVERGED_LABEL} ({int(mask.sum())})")  # edge points whole
    if y is None:  # on a map a legend would hide marks; the title's note says what they are
        ax.legend(loc="best", fontsize="small")
    return marks


def eig_abs_ratio(min_eig, max_eig):
    """|λmin / λmax| per point; NaN where λmax is 0 or either value is missing."""
    min_eig = np.asarray(min_eig, dtype=float)
    max_eig = np.asarray(max_eig, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.abs(min_eig / max_eig)
    return np.where(max_eig == 0, np.nan, ratio)


def eig_arrays(x, y, min_eig, max_eig):
    """Checked (x, y, min_eig, max_eig); y stays None for a 1D grid."""
    if y is None:
        x = as_axis(x, "x")
        return x, None, as_curve(x, min_eig, "min_eig"), as_curve(x, max_eig, "max_eig")
    x, y, min_eig = as_grid(x, y, min_eig, "min_eig")
    _, _, max_eig = as_grid(x, y, max_eig, "max_eig")
    return x, y, min_eig, max_eig


def plot_eig_ratio(x, y, min_eig, max_eig, vmax=None, contour=None, title=None, levels=None, unconverged=None):
    """Heatmap (2D) or curve (1D, y=None) of |λmin/λmax|, optionally under loss contour lines.

    vmax: top of the colour range (2D) or of the y axis (1D); None takes the reference's values,
    0.5 for 2D and 1.0 for 1D. contour: a (ny, nx) loss array whose contour lines (at levels,
    default 20 steps over its finite range) are drawn over the 2D heatmap. unconverged: points marked '×'.
    """
    x, y, min_eig, max_eig = eig_arrays(x, y, min_eig, max_eig)
    ratio = masked(eig_abs_ratio(min_eig, max_eig))
    fig = new_figure()
    ax = fig.add_subplot()
    if y is None:
        if contour is not None:
            raise PlotOptionError("contour lines need a 2D grid; got y=None")
        ax.plot(x, ratio, "b-", linewidth=1)
        ax.set_xlim(x[0], x[-1])
        ax.set_ylim(*value_range(ratio, 0.0, EIG_RATIO_VMAX_1D if vmax is None else vmax, "ratio"))
        ax.set_ylabel("|λmin / λmax|")
        ax.set_xlabel("x")
        mark_unconverged(ax, x, None, unconverged, [ratio.filled(np.nan)])
    else:
        vmin, vmax = value_range(ratio, 0.0, EIG_RATIO_VMAX_2D if vmax is None else vmax, "ratio")
        draw_heatmap(ax, x, y, ratio, vmin, vmax, "viridis", "|λmin / λmax|")
        if contour is not None:
            _, _, loss = as_grid(x, y, contour, "contour")
            draw_contour_lines(ax, x, y, masked(loss), levels if levels is not None else 20,
                               colors="white", linewidths=0.8)
            fit_axes_to_grid(ax, x, y)
        mark_unconverged(ax, x, y, unconverged)
    set_title(ax, title)
    return fig


def plot_eig_maps(x, y, min_eig, max_eig, title=None, unconverged=None, operator="Hessian"):
    """λmin and λmax side by side as heatmaps (2D), or as two curves on one axes (1D, y=None);
    unconverged points are marked '×' (on both curves in 1D)."""
    x, y, min_eig, max_eig = eig_arrays(x, y, min_eig, max_eig)
    if y is None:
        fig = plot_curves(x, [(max_eig, "r-", "λmax"), (min_eig, "b-", "λmin")], f"{operator} eigenvalue", title,
                          zero_line=True)
        mark_unconverged(fig.axes[0], x, None, unconverged, [max_eig, min_eig])
        return fig
    fig = new_figure(figsize=(11, 4.2), layout="constrained")
    for ax, values, name in zip(fig.subplots(1, 2), (min_eig, max_eig), ("λmin", "λmax")):
        values = masked(values)
        draw_heatmap(ax, x, y, values, *value_range(values, name=name), label=name)
        mark_unconverged(ax, x, y, unconverged)
        ax.xaxis.set_major_locator(MaxNLocator(6))  # two panels side by side: fewer ticks, none overlapping
        ax.set_title(name, pad=9)  # clear of the marks on the top row
    if title is not None:
        fig.suptitle(title)
    return fig

