"""Adaptive refinement over a fixed finest grid: error estimates, the next points, the full-grid interpolant.

Pure functions of a done mask and values; the same inputs give the same decisions on any rank count.

Method (in the plotted scale: log10 for losses; the interpolant is space/interpolant.py's):
- A lattice with at least 8 cells along the longest axis is computed first (grids under 17 points per
  axis are computed fully). Then each stride s, from that lattice's down to 2, is decided once: a cell
  between neighbouring stride-s lattice points is split (the stride-s/2 lattice points in it computed)
  when its estimated error exceeds the tolerance.
- A cell's estimate is the largest |second difference| at its four corners, along either axis, over the
  stride-s lattice (s^2 f'' where the surface is smooth), divided by ESTIMATE_DIVISOR. Only computed
  values enter it, and every lattice point counts, so a kink (the rim of a basin in log loss) between
  two lattice points is seen from both of them. Divided by 8 this would be a quadratic's bilinear error;
  the interpolant's curvature correction removes most of that where the surface is smooth, while at a
  kink its error is of that size or up to ~4x larger (a kink halfway along an edge, 3/16 m s against
  the estimate's m s / 20 for a slope change m). With 10, the 99th percentile of the error was at or
  below the tolerance on all twelve bench surfaces (docs/BENCHMARKS.md, issue 25).
- Cells with some but not all corners finite (the edge of a diverged region) are always split; cells
  with no finite corner never are.
- Stride by stride: the decisions at stride s read only the stride-s lattice, which later strides never
  add to, and each stride's points are handed out as one round. So a partly finished round (a kill, a
  resume, another rank count) changes no decision, and since an estimate only grows as more of its
  lattice is computed, a smaller tolerance, fresh or on a finished file, selects a superset.
"""
from dataclasses import dataclass

import numpy as np

from ..errors import ChoiceError
from .interpolant import interpolant, lattice

SCALES = ("log10", "linear")
LOG_FLOOR = 1e-12  # a loss of exactly 0 is drawn (and estimated) as 1e-12
ESTIMATE_DIVISOR = 10.0  # a cell's estimate: its corners' largest |second difference| / this (see above)

def scale_of(name):
    """Losses are plotted in log10; accuracies and eigenvalues linearly."""
    return "log10" if name.endswith("loss") else "linear"


def to_scale(values, scale):
    if scale not in SCALES:
        raise ChoiceError(f"scale {scale!r} is not one of {SCALES}")
    values = np.asarray(values, dtype=float)
    return np.log10(np.maximum(values, LOG_FLOOR)) if scale == "log10" else values


def from_scale(values, scale):
    to_scale(0.0, scale)  # validates the name
    return 10.0 ** values if scale == "log10" else values


def base_stride(shape, intervals=8):
    """Largest power of two leaving at least `intervals` cells along the longest axis (1 for small grids)."""
    n, s = max(shape), 1
    while (n - 1) // (2 * s) >= intervals:
        s *= 2
    return s


def _as_2d(a):
    """1D grids are handled as one row: shape (1, len(x))."""
    a = np.asarray(a)
    return a.reshape(1, -1) if a.ndim == 1 else a


def _shape_2d(shape):
    return (1, shape[0]) if len(shape) == 1 else tuple(shape)


def second_differences(v, nodes, stride, axis):
    """|s^2 f''| at the inner nodes along `axis` (divided differences, so a short last cell is fine); NaN at
    the ends and wherever a value is missing (NaN) or not finite."""
    v = np.moveaxis(v, axis, 0)
    out = np.full(v.shape, np.nan)
    if len(nodes) >= 3:
        h = np.diff(np.asarray(nodes, float)).reshape(-1, *([1] * (v.ndim - 1)))
        with np.errstate(invalid="ignore"):
            slopes = np.diff(v, axis=0) / h
            out[1:-1] = np.abs(2.0 * np.diff(slopes, axis=0) / (h[:-1] + h[1:])) * stride ** 2
    return np.moveaxis(np.where(np.isfinite(out), out, np.nan), 0, axis)


def _cells(n, s):
    lat = lattice(n, s)
    return (lat[:-1], lat[1:]) if len(lat) > 1 else (lat, lat)


def _corner_positions(m):
    """Positions, in a lattice of m nodes, of every cell's lower and upper corner (one node: itself)."""
    return (np.arange(m - 1), np.arange(1, m)) if m > 1 else (np.zeros(1, int), np.zeros(1, int))


def cell_estimates(done, scaled, s):
    """Cells between neighbouring stride-s lattice points: (y cells, x cells, estimate, corners computed).

    Reads only the stride-s lattice's points; values that are not computed count as missing."""
    ny, nx = done.shape
    ly, lx = lattice(ny, s), lattice(nx, s)
    computed = done[np.ix_(ly, lx)]
    known = np.where(computed, scaled[np.ix_(ly, lx)], np.nan)
    node = np.fmax(second_differences(known, ly, s, 0), second_differences(known, lx, s, 1))
    node = np.where(np.isnan(node), 0.0, node)  # no second difference: no sign of curvature
    shape = (max(len(ly) - 1, 1), max(len(lx) - 1, 1))
    largest, finite, corners_done = np.zeros(shape), np.zeros(shape, int), np.ones(shape, bool)
    for ys in _corner_positions(len(ly)):
        for xs in _corner_positions(len(lx)):
            at = np.ix_(ys, xs)
            largest = np.maximum(largest, node[at])
            finite += np.isfinite(known[at])
            corners_done &= computed[at]
    est = largest / ESTIMATE_DIVISOR
    est = np.where((finite > 0) & (finite < 4), np.inf, est)  # the edge of a diverged region
    est = np.where(finite == 0, 0.0, est)
    return _cells(ny, s), _cells(nx, s), est, corners_done


def _owners(cells, points):
    """For each point index, the first and (if on a shared edge) second cell that contains it."""
    lo, hi = cells
    first = np.clip(np.searchsorted(hi, points, side="left"), 0, len(hi) - 1)
    second = first + 1
    shared = (second < len(lo)) & (points == hi[first])
    return first, np.where(shared, second, first)


def split_points(cells_y, cells_x, priority, selected, done, s):
    """Undone stride-s/2 lattice points inside selected cells, with the largest priority of their cells."""
    ny, nx = done.shape
    fy, fx = lattice(ny, max(s // 2, 1)), lattice(nx, max(s // 2, 1))
    oy, ox = _owners(cells_y, fy), _owners(cells_x, fx)
    best = np.full((len(fy), len(fx)), -np.inf)
    for cy in oy:
        for cx in ox:
            sel = selected[np.ix_(cy, cx)]
            best = np.maximum(best, np.where(sel, priority[np.ix_(cy, cx)], -np.inf))
    take = (best > -np.inf) & ~done[np.ix_(fy, fx)]
    jj, ii = np.nonzero(take)
    return fy[jj] * nx + fx[ii], best[jj, ii]


@dataclass(frozen=True)
class Refinement:
    """Settings of one refinement; `next_points` is the planner that job.run_grid asks between rounds."""
    shape: tuple
    tol: float
    quantity: str = "train_loss"
    budget: int = None  # most computed points in the file, all runs together; None: no limit
    base_intervals: int = 8

    @property
    def scale(self):
        return scale_of(self.quantity)

    @property
    def base(self):
        return base_stride(self.shape, self.base_intervals)

    def base_points(self):
        ny, nx = _shape_2d(self.shape)
        ly, lx = lattice(ny, self.base), lattice(nx, self.base)
        return (ly[:, None] * nx + lx[None, :]).reshape(-1)

    def candidates(self, done, values):
        """Flat indices of the next round, most urgent first (not cut to the budget): the base lattice's
        missing points, or those of the first stride whose selected cells are not all split yet."""
        done, scaled = _as_2d(done).astype(bool), _as_2d(to_scale(values, self.scale))
        base = self.base_points()
        missing = base[~done.reshape(-1)[base]]
        s = self.base
        while not len(missing) and s > 1:
            cells_y, cells_x, est, corners = cell_estimates(done, scaled, s)
            missing, urgency = split_points(cells_y, cells_x, est, corners & (est > self.tol), done, s)
            missing = missing[np.lexsort((missing, -urgency))]
            s //= 2
        return missing

    def next_points(self, done, values):
        todo = self.candidates(done, values)
        if self.budget is not None:
            todo = todo[:max(0, self.budget - int(np.count_nonzero(done)))]
        return todo

    def interpolate(self, done, values, scale):
        """The full grid: computed values kept, the rest from space/interpolant.py's interpolant."""
        done2 = _as_2d(done).astype(bool)
        full = from_scale(interpolant(done2, _as_2d(to_scale(values, scale)), self.base), scale)
        full = np.where(done2, _as_2d(values), full)
        return full.reshape(np.shape(done))
