"""Plot defaults and options that make a figure readable: basin ranges, near-log levels, labels, gaps."""

import numpy as np
import pytest
from matplotlib.collections import QuadMesh
from mpl_toolkits.mplot3d.art3d import Poly3DCollection
from test_plotting import Z_ALONG_X, X, Y, contour_set, only, with_unfinished_block

from landscape.errors import PlotOptionError
from landscape.plot.base import basin_range, near_log_levels
from landscape.plot.curves import plot_1d, plot_contour_with_path
from landscape.plot.maps import plot_contour, plot_heatmap
from landscape.plot.surface3d import band_pieces, grid_quads, plot_surface3d, xy_area


def test_log_3d_heights_are_log10_with_limits_in_z_units():
    z = 10.0 ** Z_ALONG_X
    surface = only(plot_surface3d(X, Y, z, vmin=10.0, vmax=1000.0, log=True).axes[0].collections,
                   Poly3DCollection)
    assert surface.get_clim() == (1.0, 3.0)
    # log10(10 ** x) = x: heights 0..4 along x, raised to log10(vmin) = 1 and cut at log10(vmax) = 3, in 64 colour
    # bands of 1/32. The quads between columns 0 and 1 lie flat at 1 (one piece each); those between 1 and 2, and
    # 2 and 3, rise by 1 and are sliced into 32 pieces each, coloured by their mean heights; those above 3 are gone.
    rising = (np.arange(32) + 0.5) / 32
    expected = np.concatenate([[1.0, 1.0], np.repeat(1.0 + rising, 2), np.repeat(2.0 + rising, 2)])
    np.testing.assert_allclose(sorted(surface.get_array()), expected)
    with pytest.raises(PlotOptionError, match="log scale"):
        plot_surface3d(X, Y, z, vmin=-1.0, log=True)


def test_near_log_levels_are_round_and_dense_near_the_low_end():
    np.testing.assert_allclose(near_log_levels(0.05, 10.0),
                               [0.07, 0.1, 0.15, 0.2, 0.3, 0.5, 0.7, 1, 1.5, 2, 3, 5, 7, 10])
    narrow = near_log_levels(2.2, 4.4)  # holds only the round level 3: log-spaced ones instead
    assert len(narrow) == 6 and narrow[0] > 2.2 and narrow[-1] == 4.4
    np.testing.assert_allclose(np.diff(np.log(narrow)), np.log(2) / 6, rtol=0.02)
    with pytest.raises(PlotOptionError):
        near_log_levels(0.0, 1.0)


def test_basin_range_ignores_far_outliers_but_never_passes_the_data():
    loss = np.array([0.05, 0.3, 2.0, 800.0, np.nan, 15000.0])
    assert basin_range(loss) == pytest.approx((0.05, 10.05))
    assert basin_range(np.array([0.1, 0.5, 3.0])) == pytest.approx((0.1, 3.0))  # all inside: data max


def test_surface3d_ends_in_a_rim_at_vmax_instead_of_a_lid():
    z = Z_ALONG_X * 10.0  # columns at heights 0, 10, 20, 30, 40
    pieces, colours = band_pieces(grid_quads(X, Y, np.ma.masked_invalid(z)), 0.0, 15.0)
    # The surface below 15 is the strip 0 <= x <= 1.5 (height 10 x), 2 wide in y: its pieces cover exactly
    # that area, seen from above (slicing neither loses nor doubles any of it), and nothing lies beyond it.
    assert pieces[..., 2].max() == 15.0 and pieces[..., 0].max() == pytest.approx(1.5, abs=1e-12)
    assert xy_area(pieces).sum() == pytest.approx(1.5 * 2.0, rel=1e-12)
    assert np.all(np.abs(colours[:, None] - pieces[..., 2]) <= 15.0 / 64 + 1e-12)  # each within one band


def test_contour_labels_are_thinned_so_they_do_not_pile_up():
    fig = plot_contour(X, Y, Z_ALONG_X, vmin=0.05, vmax=4.0, vlevel=0.1)
    lines = contour_set(fig)
    assert len(lines.levels) > 30
    assert 0 < len(lines.labelTexts) <= 8 * Y.size  # a label per labelled level and line, at most 8 levels


def test_maps_label_their_axes_and_colourbars():
    for fig in (plot_heatmap(X, Y, Z_ALONG_X, label="test accuracy (%)"),
                plot_contour(X, Y, Z_ALONG_X, filled=True, label="test accuracy (%)")):
        ax, colourbar = fig.axes
        assert (ax.get_xlabel(), ax.get_ylabel()) == ("x", "y")
        assert colourbar.get_ylabel() == "test accuracy (%)"
    assert plot_contour(X, Y, Z_ALONG_X).axes[0].get_xlabel() == "x"


def test_contour_lines_shade_unfinished_cells_grey():
    z = with_unfinished_block(Z_ALONG_X + 1.0)
    shade = only(plot_contour(X, Y, z).axes[0].collections, QuadMesh)
    np.testing.assert_array_equal(~np.ma.getmaskarray(shade.get_array()).reshape(z.shape), np.isnan(z))


def test_1d_honours_vmin_vmax_loss_max_and_acc_max():
    fig = plot_1d(X, X + 1, acc=X * 10, vmin=0.5, vmax=3.0)
    assert fig.axes[0].get_ylim() == (0.5, 3.0) and fig.axes[0].get_xlabel() == "x"
    fig = plot_1d(X, X + 1, acc=X * 10, vmax=3.0, loss_max=2.0, acc_max=50.0)
    assert fig.axes[0].get_ylim() == (0.0, 2.0)
    assert fig.axes[1].get_ylim() == (0.0, 50.0)
    assert plot_1d(X, X + 1, log=True, vmin=0.1, vmax=10.0).axes[0].get_ylim() == pytest.approx((0.1, 10.0))
    with pytest.raises(PlotOptionError, match="log"):
        plot_1d(X, X + 1, log=True, vmin=0.0, vmax=10.0)


def test_trajectory_contours_are_near_log_levels_around_the_path_losses():
    x = y = np.linspace(-1, 1, 21)
    xx, yy = np.meshgrid(x, y)
    z = 0.2 + 700.0 * (xx ** 2 + yy ** 2) ** 2  # 0.2 at the centre, up to ~2800 in the corners
    xs, ys = np.array([0.3, 0.2, 0.1, 0.0]), np.array([0.3, 0.2, 0.1, 0.0])
    levels = contour_set(plot_contour_with_path(x, y, z, xs, ys)).levels
    along = 0.2 + 700.0 * (2 * xs ** 2) ** 2
    assert levels[0] >= 0.8 * 0.2 and levels[-1] <= 2 * along.max() * 1.05
    assert len(levels) >= 6  # several contours near the path, not 20 even steps up to 2800
    assert set(np.round(levels / 10.0 ** np.floor(np.log10(levels)), 6)) <= {1.0, 1.5, 2.0, 3.0, 5.0, 7.0}
    narrow = contour_set(plot_contour_with_path(x, y, z, xs[3:], ys[3:])).levels  # one point at 0.2
    assert len(narrow) >= 6 and narrow[0] >= 0.16 and narrow[-1] <= 0.4 * 1.001
