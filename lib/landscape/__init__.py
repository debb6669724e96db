"""landscape: loss-landscape maps of neural networks (Li et al., NeurIPS 2018) at cluster scale.

The Python API (see README, "Python API"): random_directions, target_directions, load_directions,
surface, hessian_map, load; Directions.save, Result.save / .plot; JobOptions and Refine for the calls.
They are imported on first use, so that `import landscape.job` (e.g. the coordinator's simulation at
64 ranks) does not load torch.
"""

__version__ = "0.1.0"

_API = {"load": "api", "load_directions": "api", "random_directions": "api", "surface": "api", "hessian_map": "api",
        "target_directions": "api", "Refine": "api", "Directions": "dirfile", "Result": "result",
        "JobOptions": "runner"}
__all__ = sorted(_API)


def __getattr__(name):
    if name not in _API:
        raise AttributeError(f"module 'landscape' has no attribute {name!r}")
    import importlib
    return getattr(importlib.import_module(f".{_API[name]}", __name__), name)
