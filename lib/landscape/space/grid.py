"""Grid specs, coordinates and the coarse-to-fine order in which points are handed out.

Layout rule used everywhere: a 2D array is shaped (len(y), len(x)) and value[j, i] is at (x[i], y[j]).
A 1D grid is shaped (len(x),). A point is identified by its flat index into that array (C order).
"""
import math
from dataclasses import dataclass

import numpy as np

from ..errors import GridSpecError
from ..host import available_memory, size_in_words

FLOAT64_MAX = float(np.finfo(np.float64).max)
BYTES_PER_POINT_IN_MEMORY = 128  # order, done mask, the dispatcher's list of points, a value buffer
LAYOUT = "value[j, i] is at (xcoordinates[i], ycoordinates[j]); shape (len(ycoordinates), len(xcoordinates))"
LAYOUT_1D = "value[i] is at xcoordinates[i]; shape (len(xcoordinates),)"


def parse_axis(spec, name="x"):
    """'min:max:num' -> (min, max, num). Bounds may be zero or negative; num >= 1 (num == 1 needs min == max)."""
    parts = str(spec).split(":")
    if len(parts) != 3:
        raise GridSpecError(f"--{name}={spec!r}: expected 'min:max:num', e.g. --{name}=-1:1:51")
    try:
        lo, hi = float(parts[0]), float(parts[1])
    except ValueError:
        raise GridSpecError(f"--{name}={spec!r}: min and max must be numbers") from None
    try:
        num = int(parts[2])
    except ValueError:
        raise GridSpecError(f"--{name}={spec!r}: num must be a whole number, got {parts[2]!r}") from None
    if not (np.isfinite(lo) and np.isfinite(hi)):
        raise GridSpecError(f"--{name}={spec!r}: bounds must be finite")
    if num < 1:
        raise GridSpecError(f"--{name}={spec!r}: num must be at least 1")
    if num == 1 and lo != hi:
        raise GridSpecError(f"--{name}={spec!r}: one point needs min == max")
    if num > 1 and lo >= hi:
        raise GridSpecError(f"--{name}={spec!r}: min must be below max")
    if not math.isfinite(hi - lo):
        raise GridSpecError(f"--{name}={spec!r}: max - min overflows a float64; use bounds within +-{FLOAT64_MAX / 2:g}")
    return lo, hi, num


@dataclass(frozen=True)
class Grid:
    x: np.ndarray
    y: np.ndarray = None  # None for a 1D grid

    @property
    def is_2d(self):
        return self.y is not None

    @property
    def shape(self):
        return (len(self.y), len(self.x)) if self.is_2d else (len(self.x),)

    @property
    def size(self):
        return int(np.prod(self.shape))

    @property
    def layout(self):
        return LAYOUT if self.is_2d else LAYOUT_1D

    def record(self):
        """How results files record the grid in their settings: {'x': [min, max, num], 'y': ... or None}."""
        return dict(x=_axis_record(self.x), y=_axis_record(self.y))

    def spelled(self):
        """'x=-1,1,51_y=-1,1,51': the grid in a default file name (one spelling however it was typed)."""
        return "_".join(f"{name}={a[0]:g},{a[1]:g},{a[2]}" for name, a in self.record().items() if a is not None)

    def coords(self, flat_index):
        """(a, b) step sizes along the x and y directions at one point (b = 0 for 1D)."""
        if not self.is_2d:
            return float(self.x[flat_index]), 0.0
        j, i = divmod(int(flat_index), len(self.x))
        return float(self.x[i]), float(self.y[j])


def _axis_record(axis):
    return None if axis is None else [float(axis[0]), float(axis[-1]), len(axis)]


def make_grid(x, y=None):
    """A Grid from (min, max, num) tuples or 'min:max:num' strings, validated as the --x/--y flags are;
    a grid too large to hold is refused before anything is computed. A Grid is returned as it is."""
    if isinstance(x, Grid):
        if y not in (None, ""):
            raise GridSpecError("give the grid either as a Grid or as x and y, not both")
        return _checked(x)
    axes = [_axis(x, "x")] + ([] if y in (None, "") else [_axis(y, "y")])  # --y "" is 1D, as for the drivers
    refusal = memory_refusal(math.prod(num for _, _, num in axes))  # Python ints: no int64 overflow
    if refusal:
        raise GridSpecError(f"the grid x/y (--x/--y): {refusal}; use fewer points")
    grid = Grid(*(np.linspace(*a) for a in axes))
    for name, (lo, hi, num), axis in zip("xy", axes, (grid.x, grid.y)):
        if num > 1 and not np.all(np.diff(axis) > 0):  # more points than float64 holds between the bounds
            raise GridSpecError(f"{name}=({lo!r}, {hi!r}, {num}): the points are closer than float64 can tell "
                                f"apart; use fewer points or a wider range")
    return grid


def _checked(grid):
    """A Grid made elsewhere, held to what make_grid makes: each axis an increasing linspace of finite values."""
    for name, axis in (("x", grid.x), ("y", grid.y)):
        if axis is not None and not _is_linspace(np.asarray(axis, dtype=float)):
            raise GridSpecError(f"the Grid's {name} is not an increasing, evenly spaced axis of finite values: make "
                                f"it with landscape.make_grid")
    return grid


def _is_linspace(axis):
    if axis.ndim != 1 or not len(axis) or not np.isfinite(axis).all() or np.any(np.diff(axis) <= 0):
        return False
    even = np.linspace(axis[0], axis[-1], len(axis))
    return bool(np.all(np.abs(axis - even) <= 1e-12 * np.abs(axis).max()))


def memory_refusal(points):
    """A reason why a grid of `points` cannot be held in memory, or None."""
    needed, free = points * BYTES_PER_POINT_IN_MEMORY, available_memory()
    if free is not None and needed > free:
        return f"a grid of {points:,} points needs about {size_in_words(needed)} of memory, " \
               f"{size_in_words(free)} are available"
    return None


def _axis(spec, name):
    if isinstance(spec, str):
        return parse_axis(spec, name)
    try:
        lo, hi, num = spec
    except (TypeError, ValueError):
        raise GridSpecError(f"{name}={spec!r}: give (min, max, num) or 'min:max:num'") from None
    if isinstance(num, bool) or not isinstance(num, (int, np.integer)):
        raise GridSpecError(f"{name}={spec!r}: num must be a whole number")
    return parse_axis(f"{float(lo)!r}:{float(hi)!r}:{int(num)}", name)


def coarse_to_fine(shape):
    """All flat indices of an array of `shape`, ordered so every prefix is a strided sub-grid.

    Points on the stride-2^k lattice come first, then those of stride 2^(k-1), ... down to 1,
    so a run stopped early already holds a usable low-resolution picture.
    """
    index = np.arange(int(np.prod(shape))).reshape(shape)
    stride = 1
    while stride * 2 < max(shape):
        stride *= 2
    taken = np.zeros(shape, dtype=bool)
    order = []
    while stride >= 1:
        lattice = np.ones(shape, dtype=bool)
        for axis, n in enumerate(shape):
            on_axis = np.arange(n) % stride == 0
            lattice &= on_axis.reshape([-1 if a == axis else 1 for a in range(len(shape))])
        new = lattice & ~taken
        order.append(index[new])
        taken |= new
        stride //= 2
    return np.concatenate(order)
