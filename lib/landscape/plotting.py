"""Figures of loss landscapes: functions that take arrays and return matplotlib Figures.

Nothing here reads or writes files except save_figure. Figures are built on the Agg canvas
without pyplot, so they are freed like any object. Grid convention: x (nx,), y (ny,), 2D
arrays (ny, nx) with z[j, i] at (x[i], y[j]); NaN marks unfinished cells and shows blank.
log=True draws a map on a log10 colour (or 3D height) scale with values <= 0 blank, and puts
plot_1d's loss axis on a log scale; vmin/vmax/vlevel/levels stay in z's own units either way.
"""

from landscape.plotting_base import PlotOptionError, save_figure
from landscape.plotting_curves import plot_1d, plot_contour_with_path, plot_trajectory
from landscape.plotting_hessian import eig_abs_ratio, plot_eig_maps, plot_eig_ratio
from landscape.plotting_maps import plot_contour, plot_heatmap, plot_surface3d

__all__ = [
    "PlotOptionError",
    "eig_abs_ratio",
    "plot_1d",
    "plot_contour",
    "plot_contour_with_path",
    "plot_eig_maps",
    "plot_eig_ratio",
    "plot_heatmap",
    "plot_surface3d",
    "plot_trajectory",
    "save_figure",
]
