"""Plotting: figures hold the data where the grid convention says, NaN stays blank, options are checked."""

import numpy as np
import pytest
from matplotlib.collections import QuadMesh
from matplotlib.colors import LogNorm
from matplotlib.contour import ContourSet
from matplotlib.figure import Figure
from matplotlib.path import Path
from mpl_toolkits.mplot3d.art3d import Poly3DCollection

from landscape.errors import LandscapeError, PlotOptionError
from landscape.plot.base import save_figure
from landscape.plot.curves import plot_1d, plot_contour_with_path, plot_trajectory
from landscape.plot.hessian import plot_eig_maps, plot_eig_ratio
from landscape.plot.maps import plot_contour, plot_heatmap
from landscape.plot.surface3d import plot_surface3d

# A non-square grid: 5 points along x, 3 along y, so any transposition shows up.
X = np.linspace(0.0, 4.0, 5)
Y = np.linspace(10.0, 12.0, 3)
Z_ALONG_X = np.tile(X, (Y.size, 1))  # z[j, i] = x[i]: grows along x only


def only(items, kind):
    found = [item for item in items if isinstance(item, kind)]
    assert len(found) == 1, f"expected one {kind.__name__}, found {len(found)}"
    return found[0]


def quad_mesh(fig):
    return only(fig.axes[0].collections, QuadMesh)


def contour_set(fig):
    return only(fig.axes[0].collections, ContourSet)


def as_nan_filled(values):
    return np.ma.filled(np.ma.asarray(values, dtype=float), np.nan)


def test_every_plot_returns_a_figure():
    xs, ys = np.array([0.0, 1.0, 2.0]), np.array([10.0, 11.0, 11.5])
    min_eig, max_eig = -np.ones_like(Z_ALONG_X), 2 * np.ones_like(Z_ALONG_X)
    figures = [
        plot_1d(X, X + 1, acc=X * 10),
        plot_contour(X, Y, Z_ALONG_X),
        plot_contour(X, Y, Z_ALONG_X, filled=True),
        plot_heatmap(X, Y, Z_ALONG_X),
        plot_surface3d(X, Y, Z_ALONG_X),
        plot_eig_ratio(X, Y, min_eig, max_eig, contour=Z_ALONG_X),
        plot_eig_ratio(X, None, min_eig[0], max_eig[0]),
        plot_eig_maps(X, Y, min_eig, max_eig),
        plot_eig_maps(X, None, min_eig[0], max_eig[0]),
        plot_trajectory(xs, ys),
        plot_contour_with_path(X, Y, Z_ALONG_X, xs, ys),
    ]
    assert all(isinstance(fig, Figure) for fig in figures)


def test_heatmap_cells_sit_at_their_coordinates_on_a_non_square_grid():
    fig = plot_heatmap(X, Y, Z_ALONG_X)
    mesh = quad_mesh(fig)
    np.testing.assert_array_equal(as_nan_filled(mesh.get_array()).reshape(Y.size, X.size), Z_ALONG_X)
    corners = mesh.get_coordinates()  # (ny + 1, nx + 1, 2) cell edges
    centres = (corners[:-1, :-1] + corners[1:, 1:]) / 2
    np.testing.assert_allclose(centres[..., 0], np.tile(X, (Y.size, 1)))
    np.testing.assert_allclose(centres[..., 1], np.tile(Y[:, None], (1, X.size)))
    assert fig.axes[0].get_xlim() == (X[0], X[-1])
    assert fig.axes[0].get_ylim() == (Y[0], Y[-1])


def test_contour_lines_of_a_surface_growing_along_x_are_vertical():
    fig = plot_contour(X, Y, Z_ALONG_X, vmin=0.5, vmax=4.0, vlevel=1.0)
    paths = contour_set(fig).get_paths()
    for level, path in zip([0.5, 1.5, 2.5, 3.5], paths):
        np.testing.assert_allclose(path.vertices[:, 0], level)
        assert path.vertices[:, 1].min() == pytest.approx(Y[0])
        assert path.vertices[:, 1].max() == pytest.approx(Y[-1])
    assert fig.axes[0].get_xlim() == (X[0], X[-1])
    assert fig.axes[0].get_ylim() == (Y[0], Y[-1])


def test_transposed_grid_is_refused_with_the_shapes_named():
    with pytest.raises(PlotOptionError, match=r"\(5, 3\).*\(3, 5\)"):
        plot_heatmap(X, Y, Z_ALONG_X.T)


def with_unfinished_block(values):
    values = np.array(values, dtype=float)
    values[1:3, 2:4] = np.nan
    return values


def test_heatmap_masks_unfinished_cells():
    z = with_unfinished_block(Z_ALONG_X)
    values = quad_mesh(plot_heatmap(X, Y, z)).get_array()
    mask = np.ma.getmaskarray(values).reshape(z.shape)
    np.testing.assert_array_equal(mask, np.isnan(z))
    np.testing.assert_array_equal(np.ma.filled(values, 0).reshape(z.shape)[~mask], z[~mask])


def filled_at(path, point):
    """Even-odd rule over the path's rings, so a band's holes count as unfilled."""
    rings = path.to_polygons()
    return sum(Path(ring).contains_point(point) for ring in rings) % 2 == 1


def test_contours_treat_unfinished_cells_as_missing_not_zero():
    x, y = np.linspace(-1, 1, 9), np.linspace(-1, 1, 7)
    z = np.full((7, 9), 5.5)
    z[2:5, 3:6] = np.nan  # were this read as 0, lines at 1..5 would ring the block
    lines = contour_set(plot_contour(x, y, z, vmin=1.0, vmax=6.0, vlevel=1.0))
    assert all(len(path.vertices) == 0 for path in lines.get_paths())
    bands = contour_set(plot_contour(x, y, z, vmin=1.0, vmax=6.0, vlevel=1.0, filled=True))
    assert not any(filled_at(path, (0.0, 0.0)) for path in bands.get_paths())
    assert any(filled_at(path, (0.9, 0.9)) for path in bands.get_paths())


def test_surface3d_drops_quads_touching_unfinished_cells():
    z = with_unfinished_block(Z_ALONG_X)
    surface = only(plot_surface3d(X, Y, z).axes[0].collections, Poly3DCollection)
    # Every quad uses row 1, which is NaN in columns 2 and 3: only the quads between columns 0 and 1 are
    # complete, one per row pair, rising from 0 to 1 along x. The colour range is 0..4 (column 4 of row 0 is
    # finished), cut into 64 bands of 1/16: each quad is drawn as 16 slices coloured by their mean heights.
    np.testing.assert_allclose(sorted(surface.get_array()), np.repeat((np.arange(16) + 0.5) / 16, 2))


def test_curves_leave_gaps_at_unfinished_points():
    loss = np.array([1.0, np.nan, 3.0, 4.0, 5.0])
    acc = np.array([50.0, 60.0, np.nan, 80.0, 90.0])
    fig = plot_1d(X, loss, acc=acc)
    loss_line, acc_line = fig.axes[0].get_lines()[0], fig.axes[1].get_lines()[0]
    # NaN exactly where unfinished, every other point drawn as it is (assert_array_equal matches NaN with NaN)
    np.testing.assert_array_equal(as_nan_filled(loss_line.get_ydata()), loss)
    np.testing.assert_array_equal(as_nan_filled(acc_line.get_ydata()), acc)


def test_given_levels_are_arange_of_vmin_vmax_vlevel():
    for filled in (False, True):
        fig = plot_contour(X, Y, Z_ALONG_X, vmin=0.1, vmax=3.0, vlevel=0.5, filled=filled)
        np.testing.assert_allclose(contour_set(fig).levels, np.arange(0.1, 3.0, 0.5))


def test_missing_levels_come_from_the_finite_data():
    z = with_unfinished_block(Z_ALONG_X + 1.0)
    levels = contour_set(plot_contour(X, Y, z, filled=True)).levels
    assert levels[0] == pytest.approx(1.0)
    assert len(levels) == 20 and levels[-1] < 5.0


@pytest.mark.parametrize("options, message", [
    (dict(vmin=0.0, vmax=1.0, vlevel=0.0), "vlevel must be > 0"),
    (dict(vmin=0.0, vmax=1.0, vlevel=-0.1), "vlevel must be > 0"),
    (dict(vmin=2.0, vmax=1.0, vlevel=0.1), "vmin must be < vmax"),
    (dict(vmin=9.0), "vmin must be < vmax"),
    (dict(vmin=0.0, vmax=1.0, vlevel=1e-6), "contour levels"),
])
def test_invalid_levels_raise_a_clear_value_error(options, message):
    with pytest.raises(ValueError, match=message) as raised:
        plot_contour(X, Y, Z_ALONG_X, **options)
    assert isinstance(raised.value, LandscapeError)


def test_all_unfinished_grid_is_refused():
    with pytest.raises(PlotOptionError, match="no finite values"):
        plot_heatmap(X, Y, np.full(Z_ALONG_X.shape, np.nan))


def test_log_takes_levels_and_limits_in_z_units_and_blanks_non_positive_values():
    z = 10.0 ** Z_ALONG_X
    z[0, 0] = 0.0
    # Levels on grid values, so the lines sit on grid columns whatever the interpolation between them.
    fig = plot_contour(X, Y, z, levels=[10.0, 100.0, 1000.0], log=True)
    paths = contour_set(fig).get_paths()
    assert len(paths) == 3  # zip() below stops at the shorter list
    for column, path in zip([1.0, 2.0, 3.0], paths):
        assert len(path.vertices) >= 2, f"no line drawn at level {10 ** column:g}"  # an empty path passes allclose
        np.testing.assert_allclose(path.vertices[:, 0], column, rtol=1e-6)
        assert path.vertices[:, 1].max() == pytest.approx(Y[-1])
    assert isinstance(contour_set(fig).norm, LogNorm)
    mesh = quad_mesh(plot_heatmap(X, Y, z, vmin=10.0, vmax=1000.0, log=True))
    assert isinstance(mesh.norm, LogNorm) and (mesh.norm.vmin, mesh.norm.vmax) == (10.0, 1000.0)
    values = mesh.get_array().reshape(z.shape)
    assert np.ma.getmaskarray(values)[0, 0]
    np.testing.assert_allclose(values[1:], z[1:])


def test_1d_log_puts_the_loss_axis_on_a_log_scale():
    assert plot_1d(X, X + 1.0, log=True).axes[0].get_yscale() == "log"
    assert plot_1d(X, X + 1.0).axes[0].get_yscale() == "linear"


def test_1d_has_twin_axes_with_train_solid_and_test_dashed():
    fig = plot_1d(X, X + 1, acc=X * 10, test_loss=X + 2, test_acc=X * 9)
    assert len(fig.axes) == 2
    loss_axes, acc_axes = fig.axes
    assert [line.get_linestyle() for line in loss_axes.get_lines()] == ["-", "--"]
    assert [line.get_linestyle() for line in acc_axes.get_lines()] == ["-", "--"]
    np.testing.assert_allclose(as_nan_filled(loss_axes.get_lines()[1].get_ydata()), X + 2)
    np.testing.assert_allclose(as_nan_filled(acc_axes.get_lines()[1].get_ydata()), X * 9)
    assert acc_axes.get_ylim() == (0.0, 100.0)


def test_1d_without_accuracy_has_one_axis():
    fig = plot_1d(X, X + 1)
    assert len(fig.axes) == 1 and len(fig.axes[0].get_lines()) == 1


def test_save_figure_writes_png_and_pdf(tmp_path):
    stem = tmp_path / "nested" / "surface_train_loss"
    paths = save_figure(plot_heatmap(X, Y, Z_ALONG_X), stem)
    assert paths == [f"{stem}.png", f"{stem}.pdf"]
    with open(paths[0], "rb") as png, open(paths[1], "rb") as pdf:
        assert png.read(8) == b"\x89PNG\r\n\x1a\n"
        assert pdf.read(5) == b"%PDF-"


def test_save_figure_refuses_an_unknown_format(tmp_path):
    with pytest.raises(PlotOptionError, match="bogus"):
        save_figure(plot_1d(X, X), tmp_path / "f", formats=("bogus",))


def test_trajectory_axes_name_the_explained_variance():
    xs, ys = np.array([0.0, 1.0, 1.5]), np.array([0.0, 0.5, 0.2])
    for fig in (plot_trajectory(xs, ys, ratio_x=0.452, ratio_y=0.123),
                plot_contour_with_path(X, Y, Z_ALONG_X, xs + 1, ys + 10, ratio_x=0.452,
                                                ratio_y=0.123)):
        ax = fig.axes[0]
        assert ax.get_xlabel() == "PC1: 45.20 %"
        assert ax.get_ylabel() == "PC2: 12.30 %"
        path = ax.get_lines()[0]
        assert path.get_marker() == "." and len(path.get_xdata()) == 3


def test_trajectory_refuses_a_percentage_given_as_ratio():
    with pytest.raises(PlotOptionError, match="fraction"):
        plot_trajectory([0.0, 1.0], [0.0, 1.0], ratio_x=45.2)


def test_eig_ratio_heatmap_shows_abs_min_over_max_in_the_reference_range():
    xx, yy = np.meshgrid(X, Y)
    min_eig, max_eig = -(xx + 1.0), (yy - 9.0) * 4.0
    max_eig[0, 0] = 0.0
    fig = plot_eig_ratio(X, Y, min_eig, max_eig)
    mesh = quad_mesh(fig)
    values = mesh.get_array().reshape(min_eig.shape)
    expected = (xx + 1.0) / ((yy - 9.0) * 4.0)
    assert np.ma.getmaskarray(values)[0, 0]
    np.testing.assert_allclose(values.ravel()[1:], expected.ravel()[1:])
    assert mesh.get_clim() == (0.0, 0.5)


def test_eig_ratio_overlays_loss_contours_when_given():
    ones = np.ones_like(Z_ALONG_X)
    fig = plot_eig_ratio(X, Y, -ones, ones, contour=Z_ALONG_X, levels=[1.5, 2.5])
    np.testing.assert_allclose(contour_set(fig).levels, [1.5, 2.5])
    plain = plot_eig_ratio(X, Y, -ones, ones)
    assert not any(isinstance(c, ContourSet) for c in plain.axes[0].collections)


def test_eig_ratio_on_a_1d_grid_is_a_curve():
    fig = plot_eig_ratio(X, None, -X, np.full(X.shape, 8.0))
    np.testing.assert_allclose(as_nan_filled(fig.axes[0].get_lines()[0].get_ydata()), X / 8.0)
    assert fig.axes[0].get_ylim() == (0.0, 1.0)


def test_eig_maps_show_min_and_max():
    min_eig, max_eig = -Z_ALONG_X, Z_ALONG_X + 10.0
    meshes = [only(ax.collections, QuadMesh) for ax in plot_eig_maps(X, Y, min_eig, max_eig).axes
              if ax.get_title()]
    assert len(meshes) == 2
    np.testing.assert_allclose(meshes[0].get_array().reshape(min_eig.shape), min_eig)
    np.testing.assert_allclose(meshes[1].get_array().reshape(max_eig.shape), max_eig)
    lines = plot_eig_maps(X, None, min_eig[0], max_eig[0]).axes[0].get_lines()
    curves = [line for line in lines if len(line.get_ydata()) == X.size]  # not the y=0 guide line
    drawn = sorted(tuple(as_nan_filled(line.get_ydata())) for line in curves)
    assert drawn == sorted([tuple(min_eig[0]), tuple(max_eig[0])])
