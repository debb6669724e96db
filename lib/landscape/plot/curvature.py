"""Figures of the curvature maps: trace, negative spectral mass, spectral densities, per-layer λmax.

2D grids: x (nx,), y (ny,), maps (ny, nx). 1D grids: y=None and maps (nx,), drawn as curves.
NaN (not computed yet) shows blank. Every function takes arrays and returns a Figure.
"""
import numpy as np

from ..curvature.density import resolved_width, smoothed_density
from ..errors import PlotOptionError
from .base import (
    DEFAULT_LEVEL_COUNT,
    as_axis,
    as_curve,
    as_grid,
    basin_range,
    masked,
    near_log_levels,
    new_figure,
    plot_curves,
    set_title,
    value_range,
)
from .maps import draw_contour_lines, draw_heatmap, fit_axes_to_grid

DENSITY_DECADES = 7  # the log density axis spans this many decades below the highest peak
DENSITY_REACH = 5  # kernel widths beyond the extreme nodes: the curves hold their whole mass (to 3e-7)
DENSITY_GRID, MAX_DENSITY_GRID = 2000, 200_000  # points of the eigenvalue grid
POINTS_PER_SIGMA = 8  # grid points per kernel width at least: a Riemann sum of the curve is then its integral
MAX_PANELS = 6  # per-layer small maps: the layers with the largest λmax


def basin_levels(loss):
    """Near-log levels over the loss basin, as the loss maps and the |λmin/λmax| map draw them (dense near the
    minimum); DEFAULT_LEVEL_COUNT even steps where the loss is not positive."""
    low, top = basin_range(loss)
    low = max(low, top * 1e-3)
    return near_log_levels(low, top) if 0 < low < top else DEFAULT_LEVEL_COUNT


def _over_contours(ax, x, y, contour):
    if contour is not None:
        _, _, loss = as_grid(x, y, contour, "contour")
        draw_contour_lines(ax, x, y, masked(loss), basin_levels(loss), colors="white", linewidths=0.8)
        fit_axes_to_grid(ax, x, y)


def plot_trace_map(x, y, trace, trace_err, contour=None, title=None, operator="Hessian"):
    """Hessian trace: a heatmap (2D) under optional loss contours, or a curve with its ±1σ band (1D;
    trace_err None draws none)."""
    fig = new_figure()
    ax = fig.add_subplot()
    if y is None:
        x = as_axis(x, "x")
        trace, err = as_curve(x, trace, "trace"), as_curve(x, trace_err, "trace_err")
        if err is not None:
            ax.fill_between(x, masked(trace - err), masked(trace + err), color="tab:blue", alpha=0.3, label="±1σ")
        ax.plot(x, masked(trace), "b-", linewidth=1, label="trace")
        ax.axhline(0.0, color="gray", linewidth=0.5)
        ax.set_xlim(x[0], x[-1])
        ax.set_xlabel("x")
        ax.set_ylabel(f"{operator} trace")
        ax.legend()
    else:
        x, y, trace = as_grid(x, y, trace, "trace")
        values = masked(trace)
        draw_heatmap(ax, x, y, values, *value_range(values, name="trace"), cmap="magma", label=f"{operator} trace")
        _over_contours(ax, x, y, contour)
    set_title(ax, title)
    return fig


def plot_negative_mass(x, y, neg_mass, neg_share, contour=None, title=None):
    """The density's mass below 0 and its |λ|-weighted share: two maps (2D) or two curves (1D)."""
    if y is None:
        x = as_axis(x, "x")
        curves = [(as_curve(x, neg_mass, "neg_mass"), "b-", "mass below 0"),
                  (as_curve(x, neg_share, "neg_share"), "r--", "|λ|-weighted share")]
        return plot_curves(x, curves, "negative spectral mass", title, ylim=(0.0, 1.0))
    fig = new_figure(figsize=(11, 4.2), layout="constrained")
    for ax, values, name in zip(fig.subplots(1, 2), (neg_mass, neg_share), ("mass below 0", "|λ|-weighted share")):
        x, y, values = as_grid(x, y, values, name)
        draw_heatmap(ax, x, y, masked(values), 0.0, max(value_range(masked(values), name=name)[1], 1e-6), label=name)
        _over_contours(ax, x, y, contour)
        ax.set_title(name)
    if title is not None:
        fig.suptitle(title)
    return fig


def density_width(points, steps=None):
    """The default kernel width of plot_densities: the span of every drawn point's nodes over the Lanczos steps
    per probe (density.resolved_width), one width for all curves so that they compare; steps None counts
    every node of a point as a step (the narrowest width the file could justify)."""
    nodes = np.concatenate([np.asarray(n, dtype=float).ravel() for _, n, _ in points])
    steps = steps if steps is not None else max(np.size(n) for _, n, _ in points)
    return resolved_width(nodes.min(), nodes.max(), steps)


def density_grid(points, sigma):
    """Points enough to resolve a kernel of width sigma, from DENSITY_REACH sigma below the lowest node of all
    points to as far above the highest (so each curve holds its whole mass)."""
    nodes = np.concatenate([np.asarray(n, dtype=float).ravel() for _, n, _ in points])
    lo, hi = nodes.min() - DENSITY_REACH * sigma, nodes.max() + DENSITY_REACH * sigma
    return np.linspace(lo, hi, int(min(max(DENSITY_GRID, POINTS_PER_SIGMA * (hi - lo) / sigma), MAX_DENSITY_GRID)))


def plot_densities(points, steps=None, sigma=None, title=None, operator="Hessian"):
    """Spectral densities: each point's quadrature (nodes, weights) smoothed by one Gaussian kernel, on a log
    density axis as PyHessian draws them, its width stated in the title.

    points: [(label, nodes, weights)]. sigma: the kernel's standard deviation, in eigenvalue units; default
    density_width(points, steps), steps being the Lanczos steps per probe. The eigenvalue axis is linear, as
    eigenvalues may be negative; the density axis ends DENSITY_DECADES below the highest curve's peak.
    """
    if not points:
        raise PlotOptionError("no points with a finished spectral density to draw")
    if sigma is not None and not sigma > 0:
        raise PlotOptionError(f"the density's kernel width must be > 0, got {sigma}")
    if not all(np.isfinite(nodes).all() and np.isfinite(weights).all() for _, nodes, weights in points):
        raise PlotOptionError("a spectral density to draw holds non-finite nodes or weights")
    stated = sigma is not None
    sigma = sigma if stated else density_width(points, steps)
    grid = density_grid(points, sigma)
    fig = new_figure()
    ax = fig.add_subplot()
    peak = 0.0
    for label, nodes, weights in points:
        rho = smoothed_density(nodes, weights, grid, sigma)
        ax.plot(grid, rho, linewidth=1, label=label)
        peak = max(peak, rho.max())
    ax.set_yscale("log", nonpositive="clip")
    ax.set_ylim(peak * 10.0 ** -DENSITY_DECADES, peak * 2)
    ax.set_xlim(grid[0], grid[-1])
    ax.axvline(0.0, color="gray", linewidth=0.5)
    ax.set_xlabel(f"eigenvalue of the {operator}")
    ax.set_ylabel("density (log scale)")
    ax.legend(fontsize=8, title="point", title_fontsize=8)
    how = "" if stated else (f" (eigenvalue span / {steps} Lanczos steps)" if steps is not None else
                             f" (eigenvalue span / {max(np.size(n) for _, n, _ in points)} nodes)")
    heading = f"{operator} spectral density, smoothed by a Gaussian kernel\nσ = {sigma:.3g}{how}"
    ax.set_title(heading if title is None else f"{title}\n{heading}", fontsize=10)
    return fig


def top_layers(layer_values, count=MAX_PANELS):
    """Indices of the layers with the largest finite value anywhere on the grid, largest first."""
    flat = np.asarray(layer_values, dtype=float).reshape(-1, np.shape(layer_values)[-1])
    peak = np.nanmax(np.where(np.isfinite(flat), flat, -np.inf), axis=0)
    return [int(i) for i in np.argsort(-peak, kind="stable")[:count]]


def plot_layer_curvature(x, y, layers, layer_max_eig, count=MAX_PANELS, title=None, operator="Hessian"):
    """λmax of the top layers' diagonal blocks: curves along a 1D grid, small maps on a 2D grid.

    layers: names along the last axis of layer_max_eig, which is (nx, L) or (ny, nx, L).
    """
    values = np.asarray(layer_max_eig, dtype=float)
    if values.shape[-1] != len(layers):
        raise PlotOptionError(f"layer_max_eig has {values.shape[-1]} layers but {len(layers)} names were given")
    chosen = top_layers(values, count)
    if y is None:
        x = as_axis(x, "x")
        fig = new_figure()
        ax = fig.add_subplot()
        for i in chosen:
            ax.plot(x, masked(as_curve(x, values[:, i], layers[i])), linewidth=1, label=layers[i])
        ax.set_xlim(x[0], x[-1])
        ax.set_xlabel("x")
        ax.set_ylabel(f"λmax of the layer's {operator} block")
        ax.legend(fontsize=8)
        set_title(ax, title)
        return fig
    cols = min(3, len(chosen))
    rows = -(-len(chosen) // cols)
    fig = new_figure(figsize=(4.2 * cols, 3.4 * rows), layout="constrained")
    axes = np.atleast_1d(fig.subplots(rows, cols)).ravel()
    for ax, i in zip(axes, chosen):
        _, _, grid = as_grid(x, y, values[..., i], layers[i])
        draw_heatmap(ax, x, y, masked(grid), *value_range(masked(grid), name=layers[i]), label="λmax")
        ax.set_title(f"layer {layers[i]}", fontsize=9)
    for ax in axes[len(chosen):]:
        ax.set_visible(False)
    if title is not None:
        fig.suptitle(title)
    return fig
