"""The sharpness table's figure: each measure against the generalization gap, Kendall's τ in its title
(Jiang et al. 2020 rank measures by it)."""
import math

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from .base import save_figure


def kendall_tau(measure, gap):
    """Kendall's τ (tau-b) of a measure against the gap over the checkpoints where both are finite;
    NaN with fewer than two such checkpoints."""
    from scipy.stats import kendalltau
    measure, gap = np.asarray(measure, dtype=float), np.asarray(gap, dtype=float)
    kept = np.isfinite(measure) & np.isfinite(gap)
    if kept.sum() < 2:
        return math.nan
    return float(kendalltau(measure[kept], gap[kept]).statistic)


def plot_measures_vs_gap(columns, gap, gap_label, labels=()):
    """One panel per measure {name: values}, the gap on the x axis, each point a checkpoint."""
    count = max(len(columns), 1)
    width = min(count, 3)
    rows = math.ceil(count / width)
    fig = Figure(figsize=(4.2 * width, 3.6 * rows))
    FigureCanvasAgg(fig)
    axes = np.atleast_2d(fig.subplots(rows, width, squeeze=False))
    for ax, (name, values) in zip(axes.flat, columns.items()):
        ax.scatter(gap, values, s=24)
        for label, x, y in zip(labels, gap, values):
            ax.annotate(str(label), (x, y), fontsize=7, alpha=0.7, xytext=(3, 3), textcoords="offset points")
        tau = kendall_tau(values, gap)  # NaN: fewer than two finite pairs, or a constant measure or gap
        ax.set_title(f"{name}: Kendall τ = {'n/a' if math.isnan(tau) else f'{tau:.2f}'}", fontsize=10)
        ax.xaxis.set_major_locator(MaxNLocator(5))
        ax.set_xlabel(gap_label)
        ax.set_ylabel(name)
    for ax in list(axes.flat)[len(columns):]:
        ax.set_visible(False)
    fig.tight_layout()
    return fig


def save_gap_figure(stem, columns, gap, gap_label, labels=(), formats=("png",)):
    """The figure written to stem.<format> through write_output; returns the paths."""
    return save_figure(plot_measures_vs_gap(columns, gap, gap_label, labels), stem, formats)
