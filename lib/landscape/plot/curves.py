"""1D loss/accuracy curves and optimizer trajectories (alone or over loss contours).

NaN points (not computed yet) leave gaps in the curves. Accuracies are percentages (0-100);
PCA ratios are fractions (explained_variance_ratio_, 0-1).
"""

import numpy as np
from matplotlib.colors import LogNorm

from ..errors import PlotOptionError
from .base import (
    as_axis,
    as_curve,
    as_grid,
    contour_levels,
    finite_range,
    masked,
    near_log_levels,
    new_figure,
    set_title,
)
from .maps import draw_contour_lines, label_levels
from .overlap import free_legend


def loss_curve(values, log):
    """Masked values for the loss axis; on a log axis values <= 0 cannot be drawn, so they are gaps."""
    values = masked(values)
    return np.ma.masked_less_equal(values, 0.0) if log else values


def positive_or_none(value, name):
    if value is not None and not value > 0:
        raise PlotOptionError(f"{name} must be > 0, got {value}")
    return value


def loss_axis_limits(ax, vmin, vmax, loss_max, log):
    """The loss axis from vmin (0 on a linear axis) to loss_max or vmax; unset ends autoscale."""
    top = loss_max if loss_max is not None else vmax
    bottom = vmin if vmin is not None else (None if log or top is None else 0.0)
    if bottom is not None and top is not None and not bottom < top:
        raise PlotOptionError(f"the loss axis needs bottom < top, got {bottom} and {top}")
    if log and bottom is not None and not bottom > 0:
        raise PlotOptionError(f"vmin={bottom} cannot bound a log loss axis; give a loss > 0")
    ax.set_ylim(bottom=bottom, top=top)


def plot_1d(x, loss, acc=None, test_loss=None, test_acc=None, log=False, title=None, loss_max=None,
            vmin=None, vmax=None, acc_max=None, xlabel="x"):
    """Loss (left axis, blue) and accuracy % (right axis, red), train solid and test dashed.

    log=True draws the loss axis on a log scale. The loss axis spans vmin..vmax, loss_max (the
    reference's --loss_max) taking precedence over vmax; acc_max (--acc_max) tops the accuracy
    axis (default 100). Bounds not given autoscale; all are in loss or % units, also with log.
    """
    x = as_axis(x, "x")
    loss = as_curve(x, loss, "loss")
    acc = as_curve(x, acc, "acc")
    test_loss = as_curve(x, test_loss, "test_loss")
    test_acc = as_curve(x, test_acc, "test_acc")
    positive_or_none(loss_max, "loss_max")
    positive_or_none(acc_max, "acc_max")
    fig = new_figure()
    ax_loss = fig.add_subplot()
    handles = [ax_loss.plot(x, loss_curve(loss, log), "b-", linewidth=1, label="Train loss")[0]]
    if test_loss is not None:
        handles += ax_loss.plot(x, loss_curve(test_loss, log), "b--", linewidth=1, label="Test loss")
    if log:
        ax_loss.set_yscale("log")
    loss_axis_limits(ax_loss, vmin, vmax, loss_max, log)
    ax_loss.set_ylabel("Loss", color="b")
    ax_loss.set_xlabel(xlabel)
    ax_loss.tick_params("y", colors="b")
    if acc is not None or test_acc is not None:
        ax_acc = ax_loss.twinx()
        # At the default top (100 %) a net at 100 % would lie under the frame: drawn over it, unclipped.
        over_frame = dict(clip_on=False, zorder=3) if acc_max is None else {}
        if acc is not None:
            handles += ax_acc.plot(x, masked(acc), "r-", linewidth=1, label="Train accuracy", **over_frame)
        if test_acc is not None:
            handles += ax_acc.plot(x, masked(test_acc), "r--", linewidth=1, label="Test accuracy", **over_frame)
        ax_acc.set_ylim(0.0, 100.0 if acc_max is None else acc_max)
        ax_acc.set_ylabel("Accuracy (%)", color="r")
        ax_acc.tick_params("y", colors="r")
    if x.size > 1:
        ax_loss.set_xlim(x[0], x[-1])
    free_legend(ax_loss, fig.axes, handles=handles, fontsize="small")  # clear of the loss and accuracy curves
    set_title(ax_loss, title)
    return fig


def pc_label(index, ratio):
    """'PC1: 45.20 %' from an explained-variance fraction; a plain axis name without one."""
    if ratio is None:
        return f"direction {index}"
    if not 0.0 <= ratio <= 1.0:
        raise PlotOptionError(f"explained variance ratio of PC{index} must be a fraction in [0, 1] "
                              f"(PCA's explained_variance_ratio_), got {ratio}")
    return f"PC{index}: {100.0 * ratio:.2f} %"


def path_arrays(xs, ys):
    xs = np.asarray(xs, dtype=float)
    ys = np.asarray(ys, dtype=float)
    if xs.ndim != 1 or xs.shape != ys.shape or xs.size < 1:
        raise PlotOptionError(f"xs and ys must be 1D with one value per checkpoint and the same length, "
                              f"got shapes {xs.shape} and {ys.shape}")
    return masked(xs), masked(ys)


def draw_path(ax, xs, ys, ratio_x, ratio_y):
    """The projected path, one marker per checkpoint, with its start and end marked."""
    ax.plot(xs, ys, marker=".", color="tab:blue", linewidth=1, label="trajectory")
    ax.plot(xs[:1], ys[:1], marker="o", color="tab:green", linestyle="none", label="first checkpoint")
    ax.plot(xs[-1:], ys[-1:], marker="*", markersize=10, color="tab:red", linestyle="none",
            label="last checkpoint")
    ax.set_xlabel(pc_label(1, ratio_x))
    ax.set_ylabel(pc_label(2, ratio_y))
    ax.legend(loc="best", fontsize="small")


def plot_trajectory(xs, ys, ratio_x=None, ratio_y=None, title=None):
    """Optimizer path projected on two directions; ratios (fractions) label the axes 'PC1: 45.20 %'."""
    xs, ys = path_arrays(xs, ys)
    fig = new_figure()
    ax = fig.add_subplot()
    draw_path(ax, xs, ys, ratio_x, ratio_y)
    set_title(ax, title)
    return fig


def path_levels(x, y, values, xs, ys):
    """Near-log levels around the losses met along the path: from its lowest loss to twice its highest.

    The surface is sampled at the path's points (linear interpolation between grid points), so the
    contours are dense where the optimizer went, not spread evenly over far-away peaks.
    """
    from scipy.interpolate import RegularGridInterpolator  # scipy costs every driver ~0.5 s to import
    on_path = RegularGridInterpolator((y, x), values.filled(np.nan), bounds_error=False)(
        np.column_stack([ys.filled(np.nan), xs.filled(np.nan)]))
    on_path = on_path[np.isfinite(on_path) & (on_path > 0)]
    low, high = finite_range(np.ma.masked_less_equal(values, 0.0), "z")
    if on_path.size:
        low, high = max(low, 0.8 * on_path.min()), min(high, 2.0 * on_path.max())
    if not 0 < low < high:
        return contour_levels(values)
    return near_log_levels(low, high)


def plot_contour_with_path(x, y, z, xs, ys, ratio_x=None, ratio_y=None, vmin=None, vmax=None,
                           vlevel=None, log=False, title=None, levels=None):
    """Loss contour lines with the path over them.

    Levels: `levels` as given; else arange(vmin, vmax, vlevel) when any of those is given; else
    near-log levels around the losses along the path. log=True colours them on a log scale.
    """
    x, y, z = as_grid(x, y, z)
    xs, ys = path_arrays(xs, ys)
    values = masked(z)
    if levels is None:
        given = any(v is not None for v in (vmin, vmax, vlevel))
        levels = contour_levels(values, vmin, vmax, vlevel) if given else path_levels(x, y, values, xs, ys)
    norm = LogNorm(levels[0], levels[-1]) if log and len(levels) > 1 and levels[0] > 0 else None
    fig = new_figure()
    ax = fig.add_subplot()
    lines = draw_contour_lines(ax, x, y, values, levels, labelled=False, cmap="viridis", norm=norm)
    draw_path(ax, xs, ys, ratio_x, ratio_y)
    label_levels(lines)  # after the path, so that no label covers it
    set_title(ax, title)
    return fig
