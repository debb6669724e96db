"""2D maps of a surface: contour lines, filled contours, heatmap, 3D surface.

z is shaped (ny, nx) with z[j, i] at (x[i], y[j]); NaN cells show blank. log=True plots
log10(z) (values <= 0 blank) and vmin/vmax/vlevel are then in log10 units.
"""

import numpy as np
from mpl_toolkits.mplot3d.art3d import Poly3DCollection

from landscape.plotting_base import (as_grid, contour_levels, log_label, masked, new_figure,
                                     set_title, value_range)


def draw_contour_lines(ax, x, y, values, levels, **kwargs):
    """Contour lines with inline value labels, as in the paper's 2D figures."""
    lines = ax.contour(x, y, values, levels=levels, **kwargs)
    if len(lines.levels):
        ax.clabel(lines, inline=True, fontsize=8)
    return lines


def fit_axes_to_grid(ax, x, y):
    ax.set_xlim(x[0], x[-1])
    ax.set_ylim(y[0], y[-1])


def plot_contour(x, y, z, vmin=None, vmax=None, vlevel=None, log=False, filled=False, title=None):
    """Contour lines (labelled inline) or, with filled=True, filled contours with a colorbar.

    Levels are arange(vmin, vmax, vlevel); a bound not given comes from the finite data, and
    without vlevel the range is cut into 20 steps.
    """
    x, y, z = as_grid(x, y, z)
    values = masked(z, log)
    levels = contour_levels(values, vmin, vmax, vlevel)
    fig = new_figure()
    ax = fig.add_subplot()
    if filled:
        bands = ax.contourf(x, y, values, levels=levels, cmap="viridis", extend="both")
        fig.colorbar(bands, ax=ax, label=log_label("z", log))
    else:
        draw_contour_lines(ax, x, y, values, levels, cmap="viridis")
    fit_axes_to_grid(ax, x, y)
    set_title(ax, title)
    return fig


def draw_heatmap(ax, x, y, values, vmin=None, vmax=None, cmap="viridis", label=None):
    """One cell per grid point, centred on (x[i], y[j]); masked cells stay blank."""
    mesh = ax.pcolormesh(x, y, values, shading="nearest", cmap=cmap, vmin=vmin, vmax=vmax)
    # Clip the outer half cells so the axes span the grid exactly, like the contour plots.
    fit_axes_to_grid(ax, x, y)
    ax.figure.colorbar(mesh, ax=ax, label=label)
    return mesh


def plot_heatmap(x, y, z, vmin=None, vmax=None, log=False, cmap="viridis", title=None, label=None):
    """Heatmap with x horizontal and y vertical (y grows upwards) and a colorbar.

    vmin/vmax bound the colour range (default: the finite data); label names the colorbar.
    """
    x, y, z = as_grid(x, y, z)
    values = masked(z, log)
    vmin, vmax = value_range(values, vmin, vmax)
    fig = new_figure()
    ax = fig.add_subplot()
    draw_heatmap(ax, x, y, values, vmin, vmax, cmap, log_label(label or "z", log))
    set_title(ax, title)
    return fig


def grid_quads(x, y, values):
    """Corners (n, 4, 3) and mean height of each grid quad whose four corners are all finished."""
    xx, yy = np.meshgrid(x, y)
    heights = values.filled(np.nan)
    corner_slices = [(slice(None, -1), slice(None, -1)), (slice(None, -1), slice(1, None)),
                     (slice(1, None), slice(1, None)), (slice(1, None), slice(None, -1))]
    corners = np.stack([np.stack([xx[s], yy[s], heights[s]], axis=-1) for s in corner_slices], axis=-2)
    # A quad touching an unfinished cell is dropped whole: drawing it would invent the missing value.
    complete = np.isfinite(corners[..., 2]).all(axis=-1)
    quads = corners[complete]
    return quads, quads[..., 2].mean(axis=-1)


def plot_surface3d(x, y, z, vmin=None, vmax=None, log=False, title=None):
    """3D surface coloured by height. vmin/vmax clip the heights (like the reference's zmax)."""
    x, y, z = as_grid(x, y, z)
    values = masked(z, log)
    low, high = value_range(values, vmin, vmax)
    values = np.ma.clip(values, low, high)
    quads, heights = grid_quads(x, y, values)
    fig = new_figure()
    ax = fig.add_subplot(projection="3d")
    surface = Poly3DCollection(quads, cmap="coolwarm", linewidth=0, antialiased=False)
    surface.set_array(heights)
    surface.set_clim(low, high)
    ax.add_collection3d(surface)
    ax.set_xlim(x[0], x[-1])
    ax.set_ylim(y[0], y[-1])
    ax.set_zlim(low, high)
    fig.colorbar(surface, ax=ax, shrink=0.5, aspect=5, label=log_label("z", log))
    set_title(ax, title)
    return fig
