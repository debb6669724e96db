"""PAC-Bayes flatness (Jiang et al. 2020, "Fantastic generalization measures", pacbayes.flatness and
pacbayes.mag.flatness): the largest σ at which Gaussian noise on the weights moves the expected loss (or
accuracy) by a target, reported as 1/σ².

Noise: u_i = s_i(σ) z_i with z ~ N(0, I) and s_i = σ (plain) or s_i = sqrt(σ² w_i² + ε²) (magnitude-aware).
The expectation E_u[q(w + u)] is a Monte-Carlo mean over `draws` draws z_1..z_k that are the SAME at every σ
(common random numbers: draw j's z is regenerated from (seed, j)), so the estimate is a smooth function of
σ, monotone wherever the loss grows along every ray, and the bisection does not chase fresh noise.
Pure: tensors and functions only.
"""
from typing import Callable, NamedTuple

import numpy as np
import torch

from ..errors import CurvatureError, UnreachableTargetError
from ..space.model_io import call_functional

MAX_HALVINGS = 60  # σ from `start` down to start·2^-60 (or up to start·2^60) before the search gives up


class SigmaSearch(NamedTuple):
    """The bracket [lower, upper] of the crossing: deviation(lower) <= target < deviation(upper), upper <=
    lower·(1 + tol); evaluations: every (σ, deviation) the search made, in order."""
    lower: float
    upper: float
    evaluations: tuple


def draw_seed(seed, draw):
    """The generator seed of Monte-Carlo draw `draw` at `seed`: distinct for distinct (seed, draw) pairs."""
    return int(np.random.SeedSequence([seed, draw]).generate_state(1, dtype=np.uint64)[0] >> np.uint64(1))


def standard_normals(weights, seed, draw):
    """z ~ N(0, I) shaped like each of `weights` (a dict name -> tensor), on their device and in their dtype;
    the same numbers for the same (seed, draw) on the same kind of device."""
    first = next(iter(weights.values()))
    generator = torch.Generator(device=first.device).manual_seed(draw_seed(seed, draw))
    return {name: torch.randn(w.shape, generator=generator, device=w.device, dtype=w.dtype)
            for name, w in weights.items()}


def noise_scale(weight, sigma, magnitude_eps=None):
    """The standard deviation of the noise on each entry of `weight`: σ, or sqrt(σ² w² + ε²) when
    magnitude-aware (ε = magnitude_eps)."""
    if magnitude_eps is None:
        return sigma
    return torch.sqrt((sigma * weight) ** 2 + magnitude_eps ** 2)


def perturbed(weights, normals, sigma, magnitude_eps=None):
    """w + s(σ) ⊙ z for each named weight."""
    return {name: w + noise_scale(w, sigma, magnitude_eps) * normals[name] for name, w in weights.items()}


def expected_value(evaluate, weights, sigma, seed, draws, magnitude_eps=None):
    """The Monte-Carlo mean of evaluate(w + u) over draws 0..draws-1 of the noise at σ."""
    total = 0.0
    for draw in range(draws):
        total += evaluate(perturbed(weights, standard_normals(weights, seed, draw), sigma, magnitude_eps))
    return total / draws


def largest_sigma(deviation_at: Callable[[float], float], target, tol, start=1.0):
    """The largest σ with deviation_at(σ) <= target, to a relative tolerance: σ is halved (or doubled) from
    `start` until the target is bracketed, then the bracket is bisected until upper <= lower·(1 + tol).
    A deviation that is not finite (the noise broke the model) counts as beyond the target."""
    evaluations = []

    def beyond(sigma):
        deviation = float(deviation_at(sigma))
        evaluations.append((sigma, deviation))
        return not deviation <= target  # NaN is beyond

    lower, upper = _bracket(beyond, start)
    while upper > lower * (1 + tol):
        middle = 0.5 * (lower + upper)
        lower, upper = (lower, middle) if beyond(middle) else (middle, upper)
    return SigmaSearch(lower, upper, tuple(evaluations))


def _bracket(beyond, start):
    """(lower, upper) a factor 2 apart with the deviation within the target at lower and beyond it at upper."""
    sigma, factor = start, (0.5 if beyond(start) else 2.0)
    for _ in range(MAX_HALVINGS):
        after = sigma * factor
        if beyond(after) != (factor == 0.5):
            return (after, sigma) if factor == 0.5 else (sigma, after)
        sigma = after
    where = "down to" if factor == 0.5 else "up to"
    raise UnreachableTargetError(f"the deviation stays {'beyond' if factor == 0.5 else 'within'} the target for noise "
                         f"σ from {start:g} {where} {sigma:g}: no σ reaches it (is the target reachable from the "
                         f"unperturbed value?)")


@torch.no_grad()
def mean_loss_and_accuracy(model, weights, batches, loss_total, hits=None):
    """(mean loss, accuracy as a fraction or None) of the model with its tensors `weights` replaced
    (torch.func.functional_call; the others as they are), over the (inputs, targets) batches."""
    loss = right = None
    weight = 0
    for inputs, targets in batches:
        outputs = call_functional(model, weights, inputs)
        total, batch_weight = loss_total(outputs, targets, inputs)
        loss = total.double() if loss is None else loss + total.double()
        weight = weight + batch_weight
        if hits is not None:
            count = hits(outputs, targets, inputs)
            right = count if right is None else right + count
    if loss is None:
        raise CurvatureError("the data hold no samples")
    weight = float(weight)
    return loss.item() / weight, (None if hits is None else float(right) / weight)
