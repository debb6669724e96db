"""landscape.sharpness: how much the mean loss can rise (worst case) or does rise on average (average case)
within a radius ρ of the model's weights, as Andriushchenko et al. 2023 measure it (curvature/sharpness.py
says exactly how, and how it differs from their code).
"""
from dataclasses import dataclass, field

from ..curvature.hvp import hessian_param_names
from ..curvature.sharpness import (
    MEASURES,
    FlatLoss,
    average_case,
    check_set,
    layer_norms,
    m_sharpness,
    set_norm,
    worst_case,
)
from ..errors import ChoiceError, DataError
from ..inputs.first_batch import FiniteBatches, check_data, check_finite_pair, check_model
from ..inputs.user import check_reiterable, is_pair, on_device_pair, probe, summed_loss
from ..job.mpi import World
from ..space.evaluate import tensor_batches
from ..space.precision import strict_fp32
from .session import evaluation_mode

CHUNK = 256  # samples per forward pass inside one batch of m (the sums, not the measure, depend on it)


@dataclass(frozen=True)
class Sharpness:
    """value = perturbed_loss − loss (mean losses; for m-sharpness, means over the batches of m weighted by
    their sizes). delta: the flat δ found over `names` (worst case, m None), else None; delta_norm: ‖δ/s‖_p,
    the norm the set bounds by ρ (s = |w| when adaptive), delta_l2: ‖δ‖_2, layers: {name: ‖δ‖_2 over it}
    (for m-sharpness each the largest over the batches, as the reference reports its δ norm); batch_values:
    each batch of m's value (m given)."""
    value: float
    loss: float
    perturbed_loss: float
    measure: str
    rho: float
    norm: str
    adaptive: bool
    names: tuple
    delta: object = field(default=None, repr=False)
    delta_norm: float = 0.0
    delta_l2: float = 0.0
    layers: dict = field(default_factory=dict, repr=False)
    batch_values: tuple = ()


def sharpness(model, data, loss=None, *, rho, measure="worst", norm="l2", adaptive=True, params="all", m=None,
              steps=20, restarts=1, samples=100, seed=0, device=None):
    """The sharpness of the mean loss at the model's weights w, over the parameters `params` ('all',
    'reference': those with more than one dimension, or glob patterns of names).

    measure 'worst': max over ‖δ/s‖_p ≤ ρ of L(w+δ) − L(w) by Auto-PGD (`steps` iterations, `restarts` random
    starts), p by norm ('l2', 'linf'), s = |w| if adaptive else 1; with m, the worst case of each batch of m
    consecutive samples of a tensor pair (or of each batch of a DataLoader made with batch_size=m), averaged
    over the batches weighted by their sizes (m-sharpness). measure 'average': the mean of L(w+δ) − L(w)
    over δ = ρ·s ⊙ ξ, ξ ~ N(0, I), `samples` antithetic pairs ±ξ. data, loss, device: as for hessian_map
    (a tensor pair, dict inputs, or a re-iterable of batches, used whole). The model comes back as it was.
    """
    check_options(rho, measure, norm, m, steps, restarts, samples, seed, data)
    check_data(data)
    check_model(model)
    loss_total = summed_loss(loss)
    names = tuple(hessian_param_names(model, params))
    # no collective: a table item runs on one rank; strict fp32: TF32's ~1e-3 noise would swamp a small rise
    with evaluation_mode(model, device, World(None)) as target, strict_fp32():
        probe(model, data, loss, loss_total, target)
        if measure == "average" or m is None or (is_pair(data) and m >= len(data[1])):
            f = FlatLoss(model, names, loss_total, whole_data(data, target))
            if measure == "average":
                return _result(average_case(f, rho, adaptive, samples, seed), measure, rho, norm, adaptive, names)
            found = worst_case(f, rho, norm, adaptive, steps, restarts, seed)
            return _result(found, measure, rho, norm, adaptive, names, f, [found])
        groups = pair_groups(data, m, target) if is_pair(data) else loader_groups(data, m)
        found, parts = m_sharpness(model, names, loss_total, groups, rho, norm, adaptive, steps, restarts, seed)
        return _result(found, measure, rho, norm, adaptive, names, FlatLoss(model, names, loss_total, []), parts)


def _result(found, measure, rho, norm, adaptive, names, f=None, parts=()):
    common = dict(value=found.value, loss=found.loss, perturbed_loss=found.perturbed, measure=measure, rho=rho,
                  norm=norm, adaptive=adaptive, names=names)
    if f is None:
        return Sharpness(**common)
    layer_sets = [layer_norms(p.delta, f.names, f.numels) for p in parts]
    return Sharpness(**common, delta=found.delta.detach().cpu() if found.delta is not None else None,
                     delta_norm=max(set_norm(p.delta, f.w, norm, adaptive) for p in parts),
                     delta_l2=max(float(p.delta.norm()) for p in parts),
                     layers={n: max(s[n] for s in layer_sets) for n in f.names},
                     batch_values=tuple(p.value for p in parts) if found.delta is None else ())


def whole_data(data, device):
    """The whole data set as one re-iterable of forward passes of CHUNK samples (a pair) or the user's batches."""
    if is_pair(data):
        return tensor_batches(*on_device_pair(data, device), CHUNK)
    return FiniteBatches(check_reiterable(data))


def pair_groups(data, m, device):
    """m-sharpness on a tensor pair: its consecutive slices of m samples (the last may be shorter), each
    cut into forward passes of CHUNK."""
    inputs, targets = on_device_pair(data, device)
    return [tensor_batches(x, y, CHUNK) for x, y in tensor_batches(inputs, targets, m)]


def loader_groups(batches, m):
    """m-sharpness on the user's batches (a DataLoader): each batch is one group, so each must hold m samples,
    the last one m or fewer (as a DataLoader with batch_size=m gives them). Yielded one at a time: a rank
    holds one batch, not the data set."""
    short = None
    for number, (inputs, targets) in enumerate(check_reiterable(batches)):
        if len(targets) > m or short is not None:
            wrong = number if len(targets) > m else short
            raise DataError(f"m-sharpness on batches takes each batch as one group of m={m} samples (only the "
                            f"last may hold fewer); batch {wrong} holds a different count: build the DataLoader "
                            f"with batch_size={m}, or give the data as a pair of tensors")
        short = number if len(targets) < m else None
        check_finite_pair(inputs, targets, f"batch {number} of the data")
        yield [(inputs, targets)]


def check_options(rho, measure, norm, m, steps, restarts, samples, seed, data):
    check_set(rho, norm)
    if measure not in MEASURES:
        raise ChoiceError(f"unknown sharpness measure {measure!r}; choose one of {MEASURES}")
    for name, value in (("steps", steps), ("restarts", restarts), ("samples", samples)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ChoiceError(f"{name} must be a whole number >= 1, got {value!r}")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ChoiceError(f"seed must be a whole number, got {seed!r}")
    if m is not None:
        if isinstance(m, bool) or not isinstance(m, int) or m < 1:
            raise ChoiceError(f"m must be a whole number of samples >= 1 or None (the whole data set), got {m!r}")
        if measure != "worst":
            raise ChoiceError("m-sharpness is a worst-case measure: give m=None with measure='average' (an average "
                              "over batches of m equals the average over the whole data set)")
