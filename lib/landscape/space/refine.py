"""Adaptive refinement over a fixed finest grid: error estimates, the next points, the full-grid interpolant.

Pure functions of a done mask and values; the same inputs give the same decisions on any rank count.

Method (hierarchical surplus on dyadic lattices, in the plotted scale: log10 for losses):
- The stride-s lattice of an axis of n points holds the indices 0, s, 2s, ... and n - 1, so any n works.
- The interpolant starts from the coarsest lattice; at each finer stride it predicts the new lattice points
  by bilinear interpolation from the coarser one and keeps computed values where they exist. Inside a cell
  that was never split this is the bilinear interpolant of its corners (re-sampling a bilinear function at
  half steps reproduces it), and computed points on a cell's edge are honoured.
- A computed point's surplus (|value - prediction|) is the interpolation error of the coarser cell it split.
  Bilinear error grows with the square of the cell size, so a cell of size h whose corner p was new at
  stride s_p (predicted across 2 s_p) has estimated error surplus_p * (h / (2 s_p))^2; the cell's estimate is
  the largest over its corners. For a quadratic surface this is the cell's exact maximum error.
- Each round splits every cell whose estimate (the largest among it and its 8 neighbours, so a feature
  between two lucky midpoints is still found) exceeds the tolerance, computing the next lattice's points in
  it. A whole round is handed out at once, so all ranks stay busy; rounds end when no cell exceeds the
  tolerance or the budget of computed points is spent. The final set does not depend on the order in which
  points finished, so a resume, a smaller tolerance or another rank count reach the same points.
"""
from dataclasses import dataclass

import numpy as np

from ..errors import ChoiceError

SCALES = ("log10", "linear")
LOG_FLOOR = 1e-12  # a loss of exactly 0 is drawn (and estimated) as 1e-12


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


def lattice(n, stride):
    """Indices of the stride lattice of an axis of n points: 0, s, 2s, ... and always n - 1."""
    return np.union1d(np.arange(0, n, stride), [n - 1])


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


def _interp_axis(v, coarse, fine, axis):
    """Linear interpolation of v (sampled at indices `coarse` along `axis`) onto the indices `fine`."""
    if len(coarse) == 1:
        return v
    k = np.clip(np.searchsorted(coarse, fine, side="right") - 1, 0, len(coarse) - 2)
    w = (fine - coarse[k]) / (coarse[k + 1] - coarse[k])
    lo, hi = np.take(v, k, axis=axis), np.take(v, k + 1, axis=axis)
    w = w.reshape([-1 if a == axis else 1 for a in range(v.ndim)])
    return lo + w * (hi - lo)


def hierarchy(done, values, top):
    """(interpolant, surplus, stride at which each point is new) from the stride-`top` lattice down.

    done, values: 2D, values already in the estimation scale. Surplus is NaN where undefined.
    """
    ny, nx = done.shape
    ly, lx = lattice(ny, top), lattice(nx, top)
    if not done[np.ix_(ly, lx)].all():
        raise ValueError("the coarsest lattice must be computed before anything is interpolated")
    current = values[np.ix_(ly, lx)]
    surplus = np.full(done.shape, np.nan)
    new_at = np.full(done.shape, top)
    s = top
    while s > 1:
        s //= 2
        fy, fx = lattice(ny, s), lattice(nx, s)
        predicted = _interp_axis(_interp_axis(current, ly, fy, 0), lx, fx, 1)
        d, f = done[np.ix_(fy, fx)], values[np.ix_(fy, fx)]
        new = ~(np.isin(fy, ly)[:, None] & np.isin(fx, lx)[None, :])
        block = np.where(d & new, np.abs(f - predicted), np.nan)
        surplus[np.ix_(fy, fx)] = np.where(new, block, surplus[np.ix_(fy, fx)])
        new_at[np.ix_(fy, fx)] = np.where(new, s, new_at[np.ix_(fy, fx)])
        current = np.where(d, f, predicted)
        ly, lx = fy, fx
    return current, surplus, new_at


def _cells(n, s):
    lat = lattice(n, s)
    return (lat[:-1], lat[1:]) if len(lat) > 1 else (lat, lat)


def cell_estimates(done, scaled, surplus, new_at, s):
    """Cells between neighbouring stride-s lattice points: (y cells, x cells, estimate, corners computed)."""
    (y0, y1), (x0, x1) = _cells(done.shape[0], s), _cells(done.shape[1], s)
    size = np.maximum.outer(y1 - y0, x1 - x0).astype(float)
    est = np.zeros(size.shape)
    has_surplus = np.zeros(size.shape, dtype=bool)
    corners_done = np.ones(size.shape, dtype=bool)
    finite = np.zeros(size.shape, dtype=int)
    for ys in (y0, y1):
        for xs in (x0, x1):
            at = np.ix_(ys, xs)
            corners_done &= done[at]
            finite += np.isfinite(scaled[at]) & done[at]
            sp = surplus[at]
            term = sp * (size / (2.0 * new_at[at])) ** 2
            has_surplus |= np.isfinite(sp)
            est = np.where(np.isfinite(sp), np.maximum(est, term), est)
    est = np.where(has_surplus, est, np.inf)
    est = np.where((finite > 0) & (finite < 4), np.inf, est)  # the edge of a diverged (NaN/inf) region
    est = np.where(finite == 0, 0.0, est)
    return (y0, y1), (x0, x1), est, corners_done


def _dilate(est, defined):
    """Largest defined estimate among each cell and its 8 neighbours."""
    padded = np.pad(np.where(defined, est, -np.inf), 1, constant_values=-np.inf)
    ny, nx = est.shape
    out = np.full(est.shape, -np.inf)
    for dy in range(3):
        for dx in range(3):
            out = np.maximum(out, padded[dy:dy + ny, dx:dx + nx])
    return out


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
    spread: bool = True

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
        """Flat indices of the next round, most urgent first (not cut to the budget)."""
        done, scaled = _as_2d(done).astype(bool), _as_2d(to_scale(values, self.scale))
        base = self.base_points()
        missing = base[~done.reshape(-1)[base]]
        if len(missing) or self.base == 1:
            return missing
        _, surplus, new_at = hierarchy(done, scaled, 2 * self.base)
        found, urgency = [], []
        s = self.base
        while s > 1:
            cy, cx, est, corners_done = cell_estimates(done, scaled, surplus, new_at, s)
            priority = _dilate(est, corners_done) if self.spread else np.where(corners_done, est, -np.inf)
            points, prio = split_points(cy, cx, priority, corners_done & (priority > self.tol), done, s)
            found.append(points)
            urgency.append(prio)
            s //= 2
        points, prio = np.concatenate(found), np.concatenate(urgency)
        by_urgency = np.argsort(-prio, kind="stable")  # so np.unique keeps each point's largest priority
        points, first = np.unique(points[by_urgency], return_index=True)
        order = np.lexsort((points, -prio[by_urgency][first]))
        return points[order]

    def next_points(self, done, values):
        todo = self.candidates(done, values)
        if self.budget is not None:
            todo = todo[:max(0, self.budget - int(np.count_nonzero(done)))]
        return todo

    def interpolate(self, done, values, scale):
        """The full grid: computed values kept, the rest from the refined cells' bilinear interpolant."""
        done2 = _as_2d(done).astype(bool)
        full, _, _ = hierarchy(done2, _as_2d(to_scale(values, scale)), 2 * self.base)
        full = from_scale(full, scale)
        full = np.where(done2, _as_2d(values), full)
        return full.reshape(np.shape(done))
