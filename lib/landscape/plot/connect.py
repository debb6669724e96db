"""Figures of mode connectivity: loss and accuracy along paths between two networks (the line, a curve)
with each path's barrier marked, and the loss over a curve's plane with the curve drawn on it
(Garipov et al. 2018's figures).

A path here is any object with arrays t, train_loss (and train_acc, test_loss, test_acc, or None) and a
barrier(name) method: landscape's LossPath. Accuracies are percentages.
"""
import numpy as np
from matplotlib.colors import LogNorm
from matplotlib.ticker import FormatStrFormatter, NullFormatter

from ..errors import PlotOptionError
from .base import as_axis, as_grid, masked, near_log_levels, new_figure, set_title
from .maps import fit_axes_to_grid

PATH_COLOURS = ("tab:grey", "tab:blue", "tab:green", "tab:purple")


def plot_paths(paths, title=None):
    """Loss (top) and, where the paths have it, accuracy (bottom) over t for each (label, path): train
    solid, test dashed, one colour per path. Each path's train barrier is marked where it is highest: a
    vertical bar from the chord between the ends (dotted) up to the loss (down to the accuracy), its
    height in the legend (beside the panels). The loss axis is logarithmic where the losses span more
    than WIDE times (a test loss far above the train loss)."""
    if not paths:
        raise PlotOptionError("plot_paths needs at least one (label, path)")
    accuracy = any(path.train_acc is not None for _, path in paths)
    fig = new_figure(figsize=(9.0, 7.2 if accuracy else 4.4))
    axes = fig.subplots(2 if accuracy else 1, 1, sharex=True, squeeze=False)[:, 0]
    panels = [(axes[0], "loss", False)] + ([(axes[1], "acc", True)] if accuracy else [])
    for (label, path), colour in zip(paths, PATH_COLOURS):
        t = as_axis(path.t, "t")
        for ax, quantity, higher in panels:
            train = getattr(path, f"train_{quantity}")
            if train is None:
                continue
            finished = getattr(path, "complete", True)  # a stopped run's file: no barrier yet, no mark
            height = f"{path.barrier(f'train_{quantity}'):.3g}{' %' if higher else ''}" if finished else "unfinished"
            ax.plot(t, masked(train), "-", color=colour, linewidth=1.5, label=f"{label}, train (barrier {height})")
            test = getattr(path, f"test_{quantity}")
            if test is not None:
                ax.plot(t, masked(test), "--", color=colour, linewidth=1, label=f"{label}, test")
            if finished:
                _mark_barrier(ax, t, np.asarray(train, dtype=float), higher, colour)
    axes[0].set_ylabel("Loss")
    if accuracy:
        axes[1].set_ylabel("Accuracy (%)")
    axes[-1].set_xlabel("t (0: model_a, 1: model_b)")
    _log_if_wide(axes[0])
    for ax in axes:
        ax.set_xlim(0.0, 1.0)
        # beside the panel, never over a curve or a barrier's marker
        ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize="small", borderaxespad=0.0)
    set_title(axes[0], title)
    return fig


WIDE = 10.0  # losses spanning more than this factor get a log axis: a high test loss leaves the train curves legible


def _log_if_wide(ax):
    """A log loss axis where the drawn losses span more than WIDE times (all positive), else linear."""
    values = np.concatenate([np.asarray(line.get_ydata(), dtype=float) for line in ax.get_lines()])
    values = values[np.isfinite(values)]
    if values.size and values.min() > 0 and values.max() > WIDE * values.min():
        ax.set_yscale("log")
        ax.set_ylabel("Loss (log scale)")


def _mark_barrier(ax, t, values, higher_is_better, colour):
    """The chord between the ends (dotted) and a bar from it to the value where the path strays furthest."""
    chord = (1.0 - t) * values[0] + t * values[-1]
    away = chord - values if higher_is_better else values - chord
    if not np.isfinite(away).any():
        return
    i = int(np.nanargmax(away))
    ax.plot(t, chord, ":", color=colour, linewidth=0.8)
    ax.plot([t[i], t[i]], [chord[i], values[i]], "-", color=colour, linewidth=3, alpha=0.5)
    ax.plot([t[i]], [values[i]], "o", color=colour, markersize=5)


def plot_curve_plane(x, y, z, curve_xy, ends_xy, bends_xy, label="train_loss", title=None):
    """Filled contours of z over the plane (log colour scale, near-log levels from just above its lowest
    value to its highest) with the straight line between the ends (dashed), the curve's points joined (solid), the
    ends (circles, A at t = 0 and B at t = 1) and the bends (crosses) over them."""
    x, y, z = as_grid(x, y, z)
    values = np.ma.masked_less_equal(masked(z), 0.0)
    if values.count() == 0:
        raise PlotOptionError(f"{label} has no finite positive value over the plane to draw")
    low, high = float(values.min()), float(values.max())
    levels = near_log_levels(low, high) if high > low else np.array([low, low * 1.01])
    fig = new_figure(figsize=(6.4, 5.2))
    ax = fig.add_subplot()
    bands = ax.contourf(x, y, values, levels=levels, cmap="viridis", norm=LogNorm(levels[0], levels[-1]),
                        extend="both")
    ax.contour(x, y, values, levels=levels, colors="k", linewidths=0.3, alpha=0.5)
    shown = levels[::int(np.ceil(len(levels) / 10))]  # a log colorbar of contours labels no tick on its own
    bar = fig.colorbar(bands, ax=ax, label=f"{label} (log scale)", ticks=shown)
    bar.ax.yaxis.set_major_formatter(FormatStrFormatter("%.3g"))
    bar.ax.yaxis.set_minor_formatter(NullFormatter())  # within a decade, log axes label their minor ticks too
    curve_xy, ends_xy, bends_xy = (np.asarray(a, dtype=float).reshape(-1, 2) for a in (curve_xy, ends_xy, bends_xy))
    ax.plot(ends_xy[:, 0], ends_xy[:, 1], "--", color="white", linewidth=1, label="line")
    ax.plot(curve_xy[:, 0], curve_xy[:, 1], "-", color="white", linewidth=2, label="curve")
    ax.plot(bends_xy[:, 0], bends_xy[:, 1], "x", color="tab:red", markersize=9, markeredgewidth=2, label="bends")
    ax.plot(ends_xy[:, 0], ends_xy[:, 1], "o", color="black", markerfacecolor="white", markersize=8, label="ends")
    for (px, py), name in zip(ends_xy, ("A", "B")):
        ax.annotate(name, (px, py), textcoords="offset points", xytext=(6, 6), color="white", fontweight="bold")
    fit_axes_to_grid(ax, x, y, "u: along w_b - w_a (weight-space distance)", "v: towards the bend")
    ax.legend(loc="best", fontsize="small", framealpha=0.7)
    set_title(ax, title)
    return fig
