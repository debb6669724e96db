"""The full grid from the points computed so far: interpolation down a hierarchy of dyadic lattices.

Pure functions of a done mask and values (already in the plotted scale: log10 for losses).
- The stride-s lattice of an axis of n points holds the indices 0, s, 2s, ... and n - 1, so any n works.
- Starting from a lattice that is fully computed, each finer lattice (half the stride) is predicted from
  the coarser one along one axis and then the other, and its computed values replace the prediction.
- A prediction is the linear interpolant plus a curvature correction, -f''/2 (x - x0)(x1 - x): f'' is
  estimated at each coarse node from its two neighbours, and the correction takes the smaller of the two
  ends' values when they have the same sign, none otherwise. A quadratic is reproduced exactly; at a kink
  (the two ends disagree, or one end sees the kink and the other does not) the correction shrinks
  towards the linear interpolant instead of overshooting, as an unlimited cubic would.
"""
import numpy as np


def lattice(n, stride):
    """Indices of the stride lattice of an axis of n points: 0, s, 2s, ... and always n - 1."""
    return np.union1d(np.arange(0, n, stride), [n - 1])


def _node_curvature(v, nodes):
    """f'' at every node along axis 0 from its neighbours (divided differences); the ends copy the next one."""
    h = np.diff(nodes).reshape(-1, *([1] * (v.ndim - 1)))
    slopes = np.diff(v, axis=0) / h
    inner = 2.0 * np.diff(slopes, axis=0) / (h[:-1] + h[1:])
    return np.concatenate([inner[:1], inner, inner[-1:]], axis=0)


def _limited(a, b):
    """The smaller of a and b in size where they have the same sign, else 0."""
    return np.where(a * b > 0, np.sign(a) * np.minimum(np.abs(a), np.abs(b)), 0.0)


def predict_axis(v, coarse, fine, axis):
    """v, sampled at the indices `coarse` along `axis`, at the indices `fine` (a superset of `coarse`)."""
    if len(coarse) == 1:
        return v
    v = np.moveaxis(v, axis, 0)
    c, f = np.asarray(coarse, float), np.asarray(fine, float)
    k = np.clip(np.searchsorted(c, f, side="right") - 1, 0, len(c) - 2)
    column = (-1,) + (1,) * (v.ndim - 1)
    left, right = (f - c[k]).reshape(column), (c[k + 1] - f).reshape(column)
    lo, hi = v[k], v[k + 1]
    with np.errstate(invalid="ignore"):  # inf - inf at a diverged point: NaN, handled below
        linear = lo + left / (left + right) * (hi - lo)
        out = linear
        if len(c) >= 3:
            curvature = _node_curvature(v, c)
            out = linear - 0.5 * left * right * _limited(curvature[k], curvature[k + 1])
        out = np.where(np.isfinite(out), out, linear)
    return np.moveaxis(out, 0, axis)


def interpolant(done, values, top):
    """The full grid from the stride-`top` lattice down: computed values kept, the rest predicted.

    done, values: 2D (1D grids as one row). The stride-`top` lattice must be computed.
    """
    ny, nx = done.shape
    ly, lx = lattice(ny, top), lattice(nx, top)
    if not done[np.ix_(ly, lx)].all():
        raise ValueError("the coarsest lattice must be computed before anything is interpolated")
    current, s = values[np.ix_(ly, lx)], top
    while s > 1:
        s //= 2
        fy, fx = lattice(ny, s), lattice(nx, s)
        predicted = predict_axis(predict_axis(current, ly, fy, 0), lx, fx, 1)
        at = np.ix_(fy, fx)
        current = np.where(done[at], values[at], predicted)
        ly, lx = fy, fx
    return current
