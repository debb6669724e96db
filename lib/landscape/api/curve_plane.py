"""landscape.curve_plane: the loss over the plane through a curve's ends and its (first) bend, with the
curve's points projected on it: Garipov et al.'s (2018) plane figure.

    plane = landscape.curve_plane(curve, (x, y), points=21)
    plane.surface.train_loss            # (points, points), over plane.surface.x, plane.surface.y
    plane.plot()                        # contours, the curve, the ends and the bends

Axes (Gram-Schmidt, in units of distance in weight space): u = (w_b - w_a) / |w_b - w_a| and v = the
bend's part orthogonal to u, normalised; w_a sits at (0, 0), w_b at (|w_b - w_a|, 0). A point (a, b) of
the grid has the parameters w_a + a u + b v. With one bend the whole curve lies in the plane; with more,
the points drawn are the curve's projections on it.

The grid is evaluated by path_eval.evaluate_grid, as the line and the curve are (not landscape.surface,
which keeps the BatchNorm statistics of its centre at every point): BatchNorm statistics are estimated
again at every point (bn='recompute', as Garipov et al. do), or ('keep') taken on the line between the
ends' at the point's place along u, clipped to the ends. With path= the grid is a results file in
landscape.surface's layout (landscape.load, python -m landscape.render read it), resumed by the same call.
"""
import contextlib
from dataclasses import dataclass

import numpy as np
import torch

from ..errors import GridSpecError
from ..space.curves import curve_parameters, curve_tensors, plane_basis, plane_coordinates, unflatten
from ..space.grid import make_grid
from ..space.paths import is_interpolated, write_state
from .path_eval import PathOptions, check_path_options, evaluate_grid, path_identity
from .result import Result

FLAT = 1e-5  # a bend this close to the line (relative to its length) spans no plane that float32 weights can tell


@dataclass(frozen=True, eq=False)
class CurvePlane:
    """surface: a Result over the plane (x along u, y along v; values shaped (len(y), len(x))); t and
    curve_xy: points of the curve and their (a, b) coordinates; ends_xy, bends_xy: the ends' and the
    bends'; length: |w_b - w_a|."""
    surface: Result
    t: np.ndarray
    curve_xy: np.ndarray
    ends_xy: np.ndarray
    bends_xy: np.ndarray
    length: float

    def plot(self, name="train_loss", title=None):
        """A matplotlib Figure: contours of `name` over the plane, the curve, the line, the ends and bends."""
        from ..plot.connect import plot_curve_plane  # matplotlib only once something is drawn
        values = self.surface.values.get(name)
        if values is None:
            raise KeyError(f"no {name!r} over this plane; it has {', '.join(sorted(self.surface.values))}")
        return plot_curve_plane(self.surface.x, self.surface.y, values, self.curve_xy, self.ends_xy, self.bends_xy,
                                label=name, title=title)


def curve_plane(curve, data, points=21, margin=0.2, curve_points=61, test_data=None, loss=None, bn="recompute",
                bn_batches=None, batch_size=256, device=None, precision="fp32", path=None, overwrite=False,
                settings=None, job=None, progress_secs=10.0):
    """The loss (and accuracy) over a points x points grid of the plane of `curve` (a Curve) that spans the
    projections of the ends, the bends and curve_points points of the curve, widened by `margin` of that
    span on every side (Garipov et al.'s figure: 0.2). The other arguments are evaluate_curve's. Returns a
    CurvePlane."""
    check_path_options(2, bn, bn_batches, batch_size)
    for name, value in (("points", points), ("curve_points", curve_points)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 2:
            raise GridSpecError(f"{name}={value!r}: give a whole number >= 2")
    if not (isinstance(margin, (int, float)) and np.isfinite(margin) and margin >= 0):
        raise GridSpecError(f"margin={margin!r}: give a finite number >= 0")
    names = list(curve.bends[0])
    params_a, params_b = ({name: end[name] for name in names} for end in (curve.end_a, curve.end_b))
    u, v, length, height = plane_basis(params_a, curve.bends[0], params_b)
    if length == 0 or height <= FLAT * length:
        raise GridSpecError(f"the curve's first bend lies on the line between its ends (at {height:.3g} from it, the "
                            f"line {length:.3g} long): it spans no plane; fit the curve first")
    t = np.linspace(0.0, 1.0, curve_points)
    curve_xy = np.array([plane_coordinates(curve_parameters(curve.kind, params_a, curve.bends, params_b, s), params_a,
                                           u, v) for s in t])
    ends_xy = np.array([[0.0, 0.0], [length, 0.0]])
    bends_xy = np.array([plane_coordinates(bend, params_a, u, v) for bend in curve.bends])
    grid = _plane_grid(np.concatenate([curve_xy, ends_xy, bends_xy]), points, margin)
    options = PathOptions(data, test_data, loss, bn, bn_batches, batch_size, device, precision, path, overwrite,
                          settings, job, progress_secs)
    identity = path_identity(grid, options, lambda: curve.described("plane"))
    walked = evaluate_grid(curve.module, grid, lambda target: _plane_positions(curve, (u, v, length), target),
                           lambda p: f"at (a, b) = ({p[0]:g}, {p[1]:g}) of the curve's plane", identity, options,
                           dir_file="(plane of a curve)")
    surface = Result(grid.x, grid.y, walked.columns, {"surface": walked.done}, dir_file="(plane of a curve)")
    surface.path = walked.path
    return CurvePlane(surface, t, curve_xy, ends_xy, bends_xy, length)


def _plane_grid(xy, points, margin):
    low, high = xy.min(axis=0), xy.max(axis=0)
    pad = margin * (high - low)
    return make_grid((low[0] - pad[0], high[0] + pad[0], points), (low[1] - pad[1], high[1] + pad[1], points))


@contextlib.contextmanager
def _plane_positions(curve, basis, device):
    """move_to((a, b)): the curve's module at w_a + a u + b v, its float buffers on the line between the
    ends' at s = a / |w_b - w_a| clipped to [0, 1], its integer ones model_a's; w_a back at the end."""
    u, v, length = basis
    live = curve_tensors(curve.module)
    start = {name: t.clone() for name, t in live.items()}
    names = list(curve.bends[0])
    origin = torch.cat([curve.end_a[name].double().reshape(-1) for name in names]).to(device)
    u, v = u.to(device), v.to(device)
    end_a, end_b = ({name: t.to(device) for name, t in end.items()} for end in (curve.end_a, curve.end_b))

    @torch.no_grad()
    def move_to(point):
        a, b = point
        params = unflatten(origin + a * u + b * v, {name: live[name] for name in names})
        s = min(max(a / length, 0.0), 1.0)
        for name, target in live.items():
            if name in params:
                target.copy_(params[name])
            else:
                first = end_a[name]
                target.copy_(first * (1.0 - s) + end_b[name] * s if is_interpolated(first) else first)
    try:
        yield move_to
    finally:
        write_state(live, start)
