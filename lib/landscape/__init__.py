"""landscape: loss-landscape maps of neural networks (Li et al., NeurIPS 2018) at cluster scale.

The Python API (see README, "Python API"): random_directions, target_directions, load_directions,
surface, load; Directions.save, Result.save / .plot.
"""

__version__ = "0.1.0"

from .api import load, load_directions, random_directions, surface, target_directions  # noqa: E402
from .dirfile import Directions  # noqa: E402
from .result import Result  # noqa: E402

__all__ = ["Directions", "Result", "load", "load_directions", "random_directions", "surface", "target_directions"]
