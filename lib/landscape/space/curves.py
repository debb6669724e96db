"""Curves between two networks' weights (Garipov et al. 2018, "Loss surfaces, mode connectivity, and fast
ensembling of DNNs"): pure functions over state dicts.

A curve of k bends has k + 2 points P_0 = w_a, P_1..P_k = the bends theta_1..theta_k, P_{k+1} = w_b, and
phi(t) = sum_i c_i(t) P_i for t in [0, 1]:

    bezier:     c_i(t) = C(k+1, i) t^i (1 - t)^(k+1-i)   (the Bernstein form; one bend:
                phi(t) = (1 - t)^2 w_a + 2 t (1 - t) theta + t^2 w_b)
    polychain:  piecewise linear through P_0..P_{k+1} at t = i / (k + 1)

phi(0) = w_a and phi(1) = w_b exactly (the coefficients are then 1 and 0). Only parameters lie on the
curve; float buffers (BatchNorm running statistics) move on the straight line between the ends' and
integer ones stay model_a's, as on the line (space/paths.py).

The plane of a curve: u = (w_b - w_a) / |w_b - w_a| and v = the first bend's part orthogonal to u,
normalised (Gram-Schmidt), with w_a at the origin; a point's coordinates are its projections on u and v.
"""
import itertools
import math

import torch

from ..errors import ChoiceError
from .paths import is_interpolated

KINDS = ("bezier", "polychain")


def check_kind(kind):
    if kind not in KINDS:
        raise ChoiceError(f"kind={kind!r} is not one of {', '.join(KINDS)}")


def curve_tensors(model):
    """{name: tensor} of the model's parameters, then its buffers, detached but sharing the model's storage
    (writing them moves the model), each tensor once: a tied weight under its first name only, so that
    writing a state never sets it twice."""
    named = itertools.chain(model.named_parameters(), model.named_buffers())
    return {name: t.detach() for name, t in named}


def coefficients(kind, bends, t):
    """[c_0(t), ..., c_{k+1}(t)] as Python floats (float64), for k = bends."""
    check_kind(kind)
    t = float(t)
    degree = bends + 1
    if kind == "bezier":
        return [math.comb(degree, i) * t ** i * (1.0 - t) ** (degree - i) for i in range(degree + 1)]
    segment = min(int(t * degree), degree - 1)  # t = 1 lies in the last segment
    s = t * degree - segment
    weights = [0.0] * (degree + 1)
    weights[segment], weights[segment + 1] = 1.0 - s, s
    return weights


def knots(bends):
    """The t at which the bends sit on the line when a curve starts: i / (k + 1), i = 1..k."""
    return [i / (bends + 1) for i in range(1, bends + 1)]


def combine(points, weights):
    """sum_i weights[i] * points[i] for tensors of one entry, every term included (a bend whose
    coefficient is 0 still gets a zero gradient, so its momentum moves it as in Garipov et al.'s code)."""
    total = points[0] * weights[0]
    for point, weight in zip(points[1:], weights[1:]):
        total = total + point * weight
    return total


def line_bends(params_a, params_b, bends):
    """The bends of a curve that starts as the straight line: theta_i = (1 - t_i) w_a + t_i w_b at t_i =
    knots(). Both kinds then trace the line itself (the Bernstein form is linear-precise)."""
    return [{name: a * (1.0 - t) + params_b[name] * t for name, a in params_a.items()} for t in knots(bends)]


def curve_parameters(kind, params_a, bends, params_b, t):
    """{name: phi(t)} over the parameters (differentiable in the bends)."""
    weights = coefficients(kind, len(bends), t)
    return {name: combine([a, *(bend[name] for bend in bends), params_b[name]], weights)
            for name, a in params_a.items()}


def curve_state(kind, state_a, bends, state_b, t):
    """A new state dict at phi(t): parameters (the bends' entries) on the curve, the other float
    entries on the line between the ends, integer and non-tensor entries model_a's."""
    names = bends[0].keys() if bends else ()
    on_curve = curve_parameters(kind, {n: state_a[n] for n in names}, bends, {n: state_b[n] for n in names}, t)
    return {name: on_curve[name] if name in on_curve else
            a * (1.0 - t) + state_b[name] * t if is_interpolated(a) else a for name, a in state_a.items()}


@torch.no_grad()
def write_curve_state(targets, kind, state_a, bends, state_b, t):
    """Set the tensors `targets` (paths.model_tensors(): the model's own storage) to phi(t) in place."""
    state = curve_state(kind, state_a, bends, state_b, t)
    for name, target in targets.items():
        if torch.is_tensor(state[name]):
            target.copy_(state[name])


def _flat(state, names):
    return torch.cat([state[name].detach().double().reshape(-1).cpu() for name in names])


def plane_basis(params_a, bend, params_b):
    """(u, v, |w_b - w_a|, |v's part before normalising|) over the parameters, flat float64 vectors:
    u along the line, v the bend's part orthogonal to it (Gram-Schmidt)."""
    names = list(params_a)
    origin = _flat(params_a, names)
    along = _flat(params_b, names) - origin
    length = float(along.norm())
    u = along / length if length > 0 else along
    towards = _flat(bend, names) - origin
    across = towards - (towards @ u) * u
    height = float(across.norm())
    return u, (across / height if height > 0 else across), length, height


def plane_coordinates(params, params_a, u, v):
    """(a, b): the projection of a point's parameters on the plane's axes, w_a at (0, 0)."""
    offset = _flat(params, list(params_a)) - _flat(params_a, list(params_a))
    return float(offset @ u), float(offset @ v)


def unflatten(vector, like):
    """{name: tensor} shaped and typed as `like`'s entries, from one flat vector."""
    out, start = {}, 0
    for name, t in like.items():
        out[name] = vector[start:start + t.numel()].reshape(t.shape).to(t.dtype)
        start += t.numel()
    return out
