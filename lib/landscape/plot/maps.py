"""2D maps of a surface: contour lines, filled contours, heatmap (the 3D surface: surface3d.py).

z is shaped (ny, nx) with z[j, i] at (x[i], y[j]); NaN cells show blank. log=True draws z on a
log10 scale (values <= 0 blank) with vmin/vmax/levels still in z units.
"""

import numpy as np
from matplotlib.colors import ListedColormap, LogNorm, Normalize

from ..errors import PlotOptionError
from .base import as_grid, contour_levels, log_bound, masked, near_log_levels, new_figure, set_title, value_range
from .contour_labels import label_lines

MAX_LABELLED_LEVELS = 8  # more inline labels than this crowd each other on a small figure


def positive_if(values, log):
    """Masked values; on a log scale the values <= 0 are masked too (they have no place on it)."""
    values = masked(values)
    return np.ma.masked_less_equal(values, 0.0) if log else values


def colour_norm(vmin, vmax, log):
    if log:
        log_bound(vmin, "vmin")
        log_bound(vmax, "vmax")
        return LogNorm(vmin, vmax)
    return Normalize(vmin, vmax)


def draw_contour_lines(ax, x, y, values, levels, labelled=True, **kwargs):
    """Contour lines, with inline labels (label_levels) unless labelled=False: label them after drawing
    any other lines on the axes, which the labels then keep clear of too."""
    lines = ax.contour(x, y, values, levels=levels, **kwargs)
    if labelled:
        label_levels(lines)
    return lines


def label_levels(lines):
    """Inline labels on at most MAX_LABELLED_LEVELS levels, each where it has room (contour_labels.py), so
    labels collide neither with each other nor with the neighbouring lines and curves."""
    shown = lines.levels
    if len(shown):
        step = int(np.ceil(len(shown) / MAX_LABELLED_LEVELS))
        label_lines(lines, shown[::step])


def shade_gaps(ax, x, y, values):
    """Light grey cells where values are masked, so line plots show their gaps too."""
    gaps = np.ma.getmaskarray(values)
    if gaps.any():
        ax.pcolormesh(x, y, np.ma.masked_where(~gaps, np.ones(gaps.shape)), shading="nearest",
                      cmap=ListedColormap(["0.88"]), zorder=0)


def fit_axes_to_grid(ax, x, y, xlabel="x", ylabel="y"):
    ax.set_xlim(x[0], x[-1])
    ax.set_ylim(y[0], y[-1])
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)


def map_levels(values, vmin, vmax, vlevel, levels, log):
    """Explicit levels; else arange(vmin, vmax, vlevel); on a log scale without vlevel, near-log levels."""
    if levels is not None:
        return np.asarray(levels, dtype=float)
    if log and vlevel is None:
        low, high = value_range(values, vmin, vmax)
        return near_log_levels(low, high)
    return contour_levels(values, vmin, vmax, vlevel)


def plot_contour(x, y, z, vmin=None, vmax=None, vlevel=None, log=False, filled=False, title=None,
                 levels=None, label="z"):
    """Contour lines (labelled inline) or, with filled=True, filled contours with a colorbar.

    levels, when given, are drawn as they are; else arange(vmin, vmax, vlevel), a bound not given
    coming from the finite data and 20 steps without vlevel (near-log levels on a log scale).
    """
    x, y, z = as_grid(x, y, z)
    values = positive_if(z, log)
    levels = map_levels(values, vmin, vmax, vlevel, levels, log)
    if log and len(levels) and not levels[0] > 0:
        raise PlotOptionError(f"contour levels from {levels[0]} cannot be drawn on a log scale; give vmin > 0 "
                              "(in z units, not log10)")
    norm = colour_norm(levels[0], levels[-1], log) if len(levels) > 1 else None
    fig = new_figure()
    ax = fig.add_subplot()
    if filled:
        bands = ax.contourf(x, y, values, levels=levels, cmap="viridis", norm=norm, extend="both")
        fig.colorbar(bands, ax=ax, label=scale_label(label, log))
    else:
        shade_gaps(ax, x, y, values)
        draw_contour_lines(ax, x, y, values, levels, cmap="viridis", norm=norm)
    fit_axes_to_grid(ax, x, y)
    set_title(ax, title)
    return fig


def scale_label(label, log):
    return f"{label} (log scale)" if log else label


def extend_of(values, vmin, vmax):
    """Colorbar arrows for values beyond the colour range, so a clipped map says it is clipped."""
    low = values.count() and values.min() < vmin
    high = values.count() and values.max() > vmax
    return {(False, False): "neither", (True, False): "min", (False, True): "max"}.get((bool(low), bool(high)),
                                                                                        "both")


def draw_heatmap(ax, x, y, values, vmin=None, vmax=None, cmap="viridis", label=None, log=False):
    """One cell per grid point, centred on (x[i], y[j]); masked cells stay blank."""
    vmin, vmax = value_range(values, vmin, vmax)
    mesh = ax.pcolormesh(x, y, values, shading="nearest", cmap=cmap, norm=colour_norm(vmin, vmax, log))
    # Clip the outer half cells so the axes span the grid exactly, like the contour plots.
    fit_axes_to_grid(ax, x, y)
    ax.figure.colorbar(mesh, ax=ax, label=scale_label(label, log), extend=extend_of(values, vmin, vmax))
    return mesh


def plot_heatmap(x, y, z, vmin=None, vmax=None, log=False, cmap="viridis", title=None, label=None):
    """Heatmap with x horizontal and y vertical (y grows upwards) and a colorbar named by label.

    vmin/vmax bound the colour range (default: the finite data); values beyond it get the end colours.
    """
    x, y, z = as_grid(x, y, z)
    fig = new_figure()
    ax = fig.add_subplot()
    draw_heatmap(ax, x, y, positive_if(z, log), vmin, vmax, cmap, label or "z", log)
    set_title(ax, title)
    return fig
