"""The Python API: what users call, and what cli/ calls behind its flags (parsed flags never come here:
explicit values do). May import every package below it; only cli/ and the entry points import it.

    landscape.surface, landscape.hessian_map, landscape.random_directions, landscape.target_directions,
    landscape.eigen_directions, landscape.check_targets, landscape.load_directions, landscape.load,
    landscape.make_grid, landscape.sharpness, landscape.pac_bayes_flatness, landscape.sharpness_table,
    landscape.interpolate, landscape.barrier_matrix, landscape.align; Result, Sharpness, Flatness, Table,
    Directions, Grid, JobOptions, Refine, LossPath, BarrierMatrix, Alignment.
    Curves (mode connectivity): landscape.fit_curve, landscape.evaluate_curve, landscape.curve_plane,
    landscape.load_curve; Curve, CurvePlane.
"""
from ..files.directions import Directions
from ..job.run import JobOptions
from ..space.grid import Grid, make_grid
from .align import Alignment, align
from .barrier_matrix import barrier_matrix
from .connect import LossPath, interpolate
from .curvature_map import hessian_map
from .curve import Curve, load_curve
from .curve_plane import CurvePlane, curve_plane
from .curves import evaluate_curve, fit_curve
from .directions import check_targets, load_directions, random_directions, target_directions
from .eigen import eigen_directions
from .flatness import Flatness, pac_bayes_flatness
from .loss_surface import Refine, surface
from .matrix_result import BarrierMatrix
from .result import Result
from .sharpness import Sharpness, sharpness
from .sharpness_table import Table, sharpness_table

__all__ = ["Alignment", "BarrierMatrix", "Curve", "CurvePlane", "Directions", "Flatness", "Grid", "JobOptions",
           "LossPath", "Refine", "Result", "Sharpness", "Table", "align", "barrier_matrix", "check_targets",
           "curve_plane", "eigen_directions", "evaluate_curve", "fit_curve", "hessian_map", "interpolate", "load",
           "load_curve", "load_directions", "make_grid", "pac_bayes_flatness", "random_directions", "sharpness",
           "sharpness_table", "surface", "target_directions"]


def load(path):
    """A results file (from plot_surface.py, plot_hessian_eig.py or the API) as a Result."""
    return Result.from_file(path)
