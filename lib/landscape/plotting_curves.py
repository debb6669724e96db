"""1D loss/accuracy curves and optimizer trajectories (alone or over loss contours).

NaN points (not computed yet) leave gaps in the curves. Accuracies are percentages (0-100);
PCA ratios are fractions (explained_variance_ratio_, 0-1).
"""

import numpy as np

from landscape.plotting_base import (PlotOptionError, as_axis, as_curve, as_grid, contour_levels, masked,
                                     new_figure, set_title)
from landscape.plotting_maps import draw_contour_lines


def loss_curve(values, log):
    """Masked values for the loss axis; on a log axis values <= 0 cannot be drawn, so they are gaps."""
    values = masked(values)
    return np.ma.masked_less_equal(values, 0.0) if log else values


def plot_1d(x, loss, acc=None, test_loss=None, test_acc=None, log=False, title=None, loss_max=None):
    """Loss (left axis, blue) and accuracy % (right axis, red), train solid and test dashed.

    log=True draws the loss axis on a log scale. loss_max (the reference's --loss_max) fixes the
    top of the loss axis; None autoscales.
    """
    x = as_axis(x, "x")
    loss = as_curve(x, loss, "loss")
    acc = as_curve(x, acc, "acc")
    test_loss = as_curve(x, test_loss, "test_loss")
    test_acc = as_curve(x, test_acc, "test_acc")
    if loss_max is not None and not loss_max > 0:
        raise PlotOptionError(f"loss_max must be > 0, got {loss_max}")
    fig = new_figure()
    ax_loss = fig.add_subplot()
    handles = [ax_loss.plot(x, loss_curve(loss, log), "b-", linewidth=1, label="Train loss")[0]]
    if test_loss is not None:
        handles += ax_loss.plot(x, loss_curve(test_loss, log), "b--", linewidth=1, label="Test loss")
    if log:
        ax_loss.set_yscale("log")
    if loss_max is not None:
        ax_loss.set_ylim(top=loss_max)
        if not log:
            ax_loss.set_ylim(bottom=0.0)
    ax_loss.set_ylabel("Loss", color="b")
    ax_loss.tick_params("y", colors="b")
    if acc is not None or test_acc is not None:
        ax_acc = ax_loss.twinx()
        if acc is not None:
            handles += ax_acc.plot(x, masked(acc), "r-", linewidth=1, label="Train accuracy")
        if test_acc is not None:
            handles += ax_acc.plot(x, masked(test_acc), "r--", linewidth=1, label="Test accuracy")
        ax_acc.set_ylim(0.0, 100.0)
        ax_acc.set_ylabel("Accuracy (%)", color="r")
        ax_acc.tick_params("y", colors="r")
    if x.size > 1:
        ax_loss.set_xlim(x[0], x[-1])
    ax_loss.legend(handles=handles, loc="best", fontsize="small")
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


def plot_contour_with_path(x, y, z, xs, ys, ratio_x=None, ratio_y=None, vmin=None, vmax=None,
                           vlevel=None, log=False, title=None):
    """Loss contour lines (levels as in plot_contour, log10(z) with log=True) with the path over them."""
    x, y, z = as_grid(x, y, z)
    xs, ys = path_arrays(xs, ys)
    values = masked(z, log)
    fig = new_figure()
    ax = fig.add_subplot()
    draw_contour_lines(ax, x, y, values, contour_levels(values, vmin, vmax, vlevel), cmap="viridis")
    draw_path(ax, xs, ys, ratio_x, ratio_y)
    set_title(ax, title)
    return fig
