"""2D maps of a surface: contour lines, filled contours, heatmap, 3D surface.

z is shaped (ny, nx) with z[j, i] at (x[i], y[j]); NaN cells show blank. log=True draws z on a
log10 scale (values <= 0 blank) with vmin/vmax/levels still in z units.
"""

import numpy as np
from matplotlib.colors import ListedColormap, LogNorm, Normalize
from mpl_toolkits.mplot3d.art3d import Poly3DCollection

from ..errors import PlotOptionError
from .base import (
    as_grid,
    contour_levels,
    log_bound,
    log_label,
    masked,
    near_log_levels,
    new_figure,
    set_title,
    value_range,
)

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


def draw_contour_lines(ax, x, y, values, levels, **kwargs):
    """Contour lines with inline labels on at most MAX_LABELLED_LEVELS levels, so labels do not collide."""
    lines = ax.contour(x, y, values, levels=levels, **kwargs)
    shown = lines.levels
    if len(shown):
        step = int(np.ceil(len(shown) / MAX_LABELLED_LEVELS))
        ax.clabel(lines, shown[::step], inline=True, inline_spacing=3, fontsize=7, fmt="%.3g")
    return lines


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


def clip_below(polygon, top):
    """The part of a 3D polygon with z <= top (Sutherland-Hodgman against one plane); edges that
    cross the plane are cut where they cross it, so a clipped surface ends in a smooth rim."""
    kept = []
    for start, end in zip(polygon, np.roll(polygon, -1, axis=0)):
        if start[2] <= top:
            kept.append(start)
        if (start[2] <= top) != (end[2] <= top):
            t = (top - start[2]) / (end[2] - start[2])
            kept.append(start + t * (end - start))
    return np.array(kept)


def grid_quads(x, y, values, top=np.inf):
    """Polygons (each (k, 3)) and mean height of the grid quads whose four corners are all finished.

    Quads reaching above `top` are clipped to the part below it (no flat lid, no sawtooth).
    """
    xx, yy = np.meshgrid(x, y)
    heights = values.filled(np.nan)
    corner_slices = [(slice(None, -1), slice(None, -1)), (slice(None, -1), slice(1, None)),
                     (slice(1, None), slice(1, None)), (slice(1, None), slice(None, -1))]
    corners = np.stack([np.stack([xx[s], yy[s], heights[s]], axis=-1) for s in corner_slices], axis=-2)
    # A quad touching an unfinished cell is dropped whole: drawing it would invent the missing value.
    quads = corners[np.isfinite(corners[..., 2]).all(axis=-1)].reshape(-1, 4, 3)
    below = (quads[..., 2] <= top).all(axis=-1)
    crossing = (quads[..., 2] <= top).any(axis=-1) & ~below
    polygons = list(quads[below]) + [clip_below(quad, top) for quad in quads[crossing]]
    return polygons, np.array([polygon[:, 2].mean() for polygon in polygons])


def plot_surface3d(x, y, z, vmin=None, vmax=None, log=False, title=None, label="z"):
    """3D surface coloured by height, ending in a rim at vmax (no flat lid) and raised to vmin below it.

    With log the heights are log10(z) (vmin/vmax still in z units).
    """
    x, y, z = as_grid(x, y, z)
    values = positive_if(z, log)
    if log:
        values, vmin, vmax = np.ma.log10(values), log_bound(vmin, "vmin"), log_bound(vmax, "vmax")
    low, high = value_range(values, vmin, vmax)
    quads, heights = grid_quads(x, y, np.ma.maximum(values, low), top=high)
    fig = new_figure(figsize=(7, 5.5))
    ax = fig.add_subplot(projection="3d")
    surface = Poly3DCollection(quads, cmap="coolwarm", linewidth=0, antialiased=False)
    surface.set_array(heights)
    surface.set_clim(low, high)
    ax.add_collection3d(surface)
    ax.set_xlim(x[0], x[-1])
    ax.set_ylim(y[0], y[-1])
    ax.set_zlim(low, high)
    ax.set_xlabel("x")
    ax.set_ylabel("y")
    # The colourbar sits left of the axes: on the right it covers the z ticks.
    fig.colorbar(surface, ax=ax, shrink=0.55, aspect=12, pad=0.02, location="left", label=log_label(label, log))
    set_title(ax, title)
    return fig
