"""The Python API: what users call, and what cli/ calls behind its flags (parsed flags never come here:
explicit values do). May import every package below it; only cli/ and the entry points import it.

    landscape.surface, landscape.hessian_map, landscape.random_directions, landscape.target_directions,
    landscape.eigen_directions, landscape.check_targets, landscape.load_directions, landscape.load,
    landscape.make_grid, landscape.interpolate; Result, Directions, Grid, JobOptions, Refine, LossPath.
    Curves (mode connectivity): landscape.fit_curve, landscape.evaluate_curve, landscape.curve_plane,
    landscape.load_curve; Curve, CurvePlane.
"""
from ..files.directions import Directions
from ..job.run import JobOptions
from ..space.grid import Grid, make_grid
from .connect import LossPath, interpolate
from .curvature_map import hessian_map
from .curve import Curve, load_curve
from .curve_plane import CurvePlane, curve_plane
from .curves import evaluate_curve, fit_curve
from .directions import check_targets, load_directions, random_directions, target_directions
from .eigen import eigen_directions
from .loss_surface import Refine, surface
from .result import Result

__all__ = ["Directions", "Grid", "JobOptions", "LossPath", "Refine", "Result", "check_targets", "eigen_directions",
           "hessian_map", "interpolate", "load", "load_directions", "make_grid", "random_directions", "surface",
           "target_directions"]
__all__ += ["Curve", "CurvePlane", "curve_plane", "evaluate_curve", "fit_curve", "load_curve"]


def load(path):
    """A results file (from plot_surface.py, plot_hessian_eig.py or the API) as a Result."""
    return Result.from_file(path)
