"""landscape: loss-landscape maps of neural networks (Li et al., NeurIPS 2018) at cluster scale.

The Python API (see README, "Python API"): random_directions, target_directions, eigen_directions, check_targets,
load_directions, surface, hessian_map, load, make_grid, sharpness, pac_bayes_flatness, sharpness_table,
interpolate, barrier_matrix, align, fit_curve, evaluate_curve, load_curve, curve_plane; Directions.save,
Result.save / .plot; JobOptions and Refine for the calls. They live in landscape.api and are imported on first use, so
that `import landscape.job` (e.g. the coordinator's simulation at 64 ranks) does not load torch.

The packages, each importing only those listed before it (README, "Code layout"):
errors, imports, host, version (shared leaves) < space < curvature < inputs < files < job < plot < training < api < cli.
"""

from .version import __version__  # noqa: F401

_API = ("load", "load_directions", "random_directions", "surface", "hessian_map", "target_directions", "check_targets",
        "eigen_directions", "make_grid", "sharpness", "Sharpness", "pac_bayes_flatness", "Flatness",
        "sharpness_table", "Table", "Refine", "Directions", "Result", "Grid", "JobOptions", "interpolate",
        "LossPath", "barrier_matrix", "BarrierMatrix", "align", "Alignment", "fit_curve", "evaluate_curve",
        "load_curve", "curve_plane", "Curve", "CurvePlane")
__all__ = sorted(_API)


def __getattr__(name):
    if name not in _API:
        raise AttributeError(f"module 'landscape' has no attribute {name!r}")
    from . import api
    return getattr(api, name)
