"""Figures a reader can read: no colour stripes on a clipped 3D surface, no colliding tick labels, contour labels
and legends that cover no line, a spectral density smoothed by a stated kernel."""

import json

import numpy as np
import pytest
from matplotlib.path import Path
from mpl_toolkits.mplot3d.art3d import Poly3DCollection
from results_files import bowl
from test_curvature import gauss_legendre_uniform
from test_plotting import only

from landscape.errors import PlotOptionError
from landscape.plot.base import basin_range, near_log_levels
from landscape.plot.curvature import plot_densities
from landscape.plot.curves import plot_1d
from landscape.plot.maps import plot_contour
from landscape.plot.quantities import density_steps
from landscape.plot.surface3d import COLOUR_BANDS, band_pieces, grid_quads, plot_surface3d


def drawn(fig):
    fig.canvas.draw()
    return fig.canvas.get_renderer()


def test_clipped_3d_surface_has_no_piece_coloured_away_from_its_own_heights():
    # A steep basin cut at 10: a grid quad on its wall spans most of the colour range. Each drawn piece must be
    # coloured within one colour band of the height of every one of its points (a quad coloured by its mean
    # shows as a stripe), and nothing may stand above the cut (no lid, no clamped vertex).
    x = np.linspace(-1, 1, 15)
    z = np.ma.masked_invalid(bowl(x, x))
    low, top = float(z.min()), 10.0
    pieces, colours = band_pieces(grid_quads(x, x, z), low, top)
    assert pieces[..., 2].max() <= top
    assert np.all(np.abs(colours[:, None] - pieces[..., 2]) <= (top - low) / COLOUR_BANDS * (1 + 1e-9))
    surface = only(plot_surface3d(x, x, bowl(x, x), vmax=top).axes[0].collections, Poly3DCollection)
    np.testing.assert_allclose(np.sort(surface.get_array()), np.sort(colours))


def visible_labels(axis, renderer):
    return [label.get_window_extent(renderer) for label in axis.get_ticklabels()
            if label.get_visible() and label.get_text()]


def test_3d_tick_labels_do_not_overlap():
    x = np.linspace(-1, 1, 11)  # the tick labels depend on the axis ranges, not on the grid's size
    fig = plot_surface3d(x, x, bowl(x, x), vmax=10.0)
    renderer = drawn(fig)
    ax = fig.axes[0]
    boxes = [box for axis in (ax.xaxis, ax.yaxis, ax.zaxis) for box in visible_labels(axis, renderer)]
    assert len(boxes) >= 10
    overlapping = [(a, b) for i, a in enumerate(boxes) for b in boxes[i + 1:] if a.overlaps(b)]
    assert not overlapping


def label_outline(text, renderer):
    """The turned rectangle a contour label covers, in display space, as a closed Path."""
    angle = text.get_rotation()
    text.set_rotation(0)
    box = text.get_window_extent(renderer)
    text.set_rotation(angle)
    centre = text.get_transform().transform(text.get_position())
    w, h, turn = box.width / 2, box.height / 2, np.radians(angle)
    corners = np.array([[-w, -h], [w, -h], [w, h], [-w, h], [-w, -h]])
    rotation = np.array([[np.cos(turn), -np.sin(turn)], [np.sin(turn), np.cos(turn)]])
    return Path(corners @ rotation.T + centre, closed=True)


def test_contour_labels_cross_no_other_line_and_no_other_label():
    x = np.linspace(-1, 1, 51)  # the paper's grid, a basin whose lines crowd near its minimum
    loss = bowl(x, x)
    low, top = basin_range(loss)
    fig = plot_contour(x, x, loss, levels=near_log_levels(max(low, top * 1e-3), top))
    renderer = drawn(fig)
    lines = fig.axes[0].collections[0]
    paths = [lines.get_transform().transform_path(p) for p in lines.get_paths()]
    names = [f"{level:.3g}" for level in lines.levels]
    outlines = [(label_outline(t, renderer), names.index(t.get_text())) for t in lines.labelTexts]
    assert len(outlines) >= 3
    for outline, own in outlines:
        assert not any(outline.intersects_path(p, filled=False) for i, p in enumerate(paths) if i != own)
    for i, (a, _) in enumerate(outlines):
        assert not any(a.intersects_path(b, filled=True) for b, _ in outlines[i + 1:])


def test_1d_legend_covers_no_loss_or_accuracy_curve():
    # The loss leaves the upper left empty, where the accuracy runs: a legend placed for the loss axis alone
    # lands on the accuracy curve.
    x = np.linspace(-1, 1, 51)
    loss = 0.2 + 0.8 * (x + 1) / 2
    acc = 95.0 - 40.0 * (x + 1)
    fig = plot_1d(x, loss, acc=acc, test_loss=loss * 1.1, test_acc=acc - 5.0)
    renderer = drawn(fig)
    box = fig.axes[0].get_legend().get_window_extent(renderer)
    curves = [line.get_transform().transform_path(line.get_path()) for ax in fig.axes for line in ax.get_lines()]
    assert len(curves) == 4 and not any(c.intersects_bbox(box, filled=False) for c in curves)


def test_density_figure_states_its_kernel_and_draws_a_curve_of_mass_one():
    nodes_a, weights_a = gauss_legendre_uniform(20)
    points = [("a", nodes_a - 0.3, weights_a), ("b", np.array([-0.5, 0.0, 2.0]), np.array([0.1, 0.6, 0.3]))]
    fig = plot_densities(points, steps=20)
    ax = fig.axes[0]
    sigma = (2.0 - (-0.5)) / 20  # the span of every drawn node over the steps, one kernel for both curves
    assert f"σ = {sigma:.3g}" in ax.get_title() and "20 Lanczos steps" in ax.get_title()
    assert (ax.get_xscale(), ax.get_yscale()) == ("linear", "log") and ax.get_xlim()[0] < -0.5
    for line in ax.get_lines()[:2]:
        t, rho = line.get_xydata().T
        # 5 sigma beyond the extreme nodes: the tails left out hold 2.9e-7 of the mass
        assert np.sum(rho) * (t[1] - t[0]) == pytest.approx(1.0, abs=1e-6)
    given = plot_densities(points, sigma=0.01).axes[0].get_title()
    assert "σ = 0.01" in given and "steps" not in given
    with pytest.raises(PlotOptionError, match="non-finite"):
        plot_densities([("nan", np.array([np.nan, 1.0]), np.array([0.5, 0.5]))])


def test_density_steps_are_the_nodes_per_point_over_the_probes():
    settings = {"hessian_settings": json.dumps({"density": "3/40"})}
    assert density_steps({"attrs": settings, "esd_nodes": np.zeros((2, 3, 120))}) == 40
    assert density_steps({"attrs": settings, "esd_nodes": np.zeros((2, 3, 30))}) == 10  # a 10-dimensional matrix
    assert density_steps({"attrs": {}, "esd_nodes": np.zeros((2, 3, 30))}) is None


def test_rendered_density_names_the_files_steps_and_each_points_negative_mass(monkeypatch):
    from landscape.plot import render_curvature
    from landscape.space.grid import Grid
    figures = []
    monkeypatch.setattr(render_curvature, "save_figure", lambda fig, stem: figures.append(fig) or [stem])
    nodes = np.tile(np.linspace(-1.0, 3.0, 8), (3, 1))  # 2 probes of 4 steps per point
    nodes[2] = np.nan  # a point whose loss was NaN (everything NaN, and done), the farthest: picked, not drawn
    r = {"grid": Grid(np.array([-0.5, 0.0, 1.0]), None), "hessian_done": np.ones(3, dtype=np.uint8),
         "esd_nodes": nodes, "esd_weights": np.full((3, 8), 1 / 8), "neg_mass": np.array([0.125, 0.25, np.nan]),
         "neg_share": np.array([0.3, 0.2, np.nan]), "attrs": {"hessian_settings": json.dumps({"density": "2/4"})}}
    render_curvature.render_curvature(r, lambda name: name)
    ax = figures[-1].axes[0]
    assert "σ = 1 (eigenvalue span / 4 Lanczos steps)" in ax.get_title()
    legend = sorted(t.get_text() for t in ax.get_legend().get_texts())
    assert legend == ["x = -0.5: 12.5% below 0", "x = 0: 25% below 0"]
