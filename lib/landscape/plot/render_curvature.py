"""Plots of the curvature maps (trace, density, per-layer) from a results file's arrays; render.py calls this."""
import numpy as np

from .base import save_figure
from .curvature import plot_densities, plot_layer_curvature, plot_negative_mass, plot_trace_map
from .quantities import density_steps, operator_name


def _finished(r, name):
    done = r["hessian_done"].astype(bool)
    values = r[name]
    return np.where(done.reshape(done.shape + (1,) * (values.ndim - done.ndim)), values, np.nan)


def density_points(r):
    """Flat indices worth a density plot: the point nearest the origin, the one with the largest
    negative share, and the corner farthest from the origin; finished ones only, no repeats."""
    g = r["grid"]
    done = r["hessian_done"].astype(bool).reshape(-1)
    coords = np.array([g.coords(i) for i in range(g.size)], dtype=float)
    radius = np.linalg.norm(coords, axis=1)
    share = np.where(done, np.nan_to_num(r["neg_share"].reshape(-1), nan=-1.0), -np.inf)
    picks = [np.argmin(np.where(done, radius, np.inf)), np.argmax(share), np.argmax(np.where(done, radius, -np.inf))]
    return [int(i) for i in dict.fromkeys(picks) if done[i]]


def _label(g, index):
    a, b = g.coords(index)
    return f"({a:.3g}, {b:.3g})" if g.is_2d else f"x = {a:.3g}"


def render_curvature(r, stem, contour=None):
    """Save every curvature figure the results dict `r` (files.results.read_results) has data for.

    stem(name) gives the path stem of figure `name`; contour is a finished 2D loss map or None.
    """
    g, saved = r["grid"], []
    y = g.y if g.is_2d else None
    if "trace" in r:
        err = _finished(r, "trace_err") if "trace_err" in r else None  # a file written by other tools may lack it
        fig = plot_trace_map(g.x, y, _finished(r, "trace"), err, contour=contour, operator=operator_name(r))
        saved += save_figure(fig, stem("trace"))
    if "esd_nodes" in r:
        fig = plot_negative_mass(g.x, y, _finished(r, "neg_mass"), _finished(r, "neg_share"), contour=contour)
        saved += save_figure(fig, stem("negative_mass"))
        nodes, weights = (r[k].reshape(g.size, -1) for k in ("esd_nodes", "esd_weights"))
        mass = r["neg_mass"].reshape(-1)
        points = [(f"{_label(g, i)}: {100 * mass[i]:.3g}% below 0", nodes[i], weights[i]) for i in density_points(r)
                  if np.isfinite(nodes[i]).all()]  # a point whose loss was NaN stores NaN for everything
        if points:
            saved += save_figure(plot_densities(points, steps=density_steps(r), operator=operator_name(r)),
                                 stem("density"))
    if "layer_max_eig" in r:
        layers = [str(name) for name in r["dataset_attrs"]["layer_max_eig"]["layers"]]
        saved += save_figure(plot_layer_curvature(g.x, y, layers, _finished(r, "layer_max_eig"),
                                                  operator=operator_name(r)), stem("layer_max_eig"))
    return saved
