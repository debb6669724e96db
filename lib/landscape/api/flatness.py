"""landscape.pac_bayes_flatness: Jiang et al.'s (2020) PAC-Bayes flatness, 1/σ² for the largest σ at which
Gaussian weight noise moves the training accuracy (or loss) by a target (curvature/flatness.py has the math).
"""
import math
from dataclasses import dataclass

from ..curvature.flatness import expected_value, largest_sigma, mean_loss_and_accuracy
from ..curvature.hvp import hessian_param_names
from ..curvature.plan import check_choices
from ..errors import ChoiceError, CurvatureError, LossError
from ..inputs.first_batch import FiniteBatches, check_data, check_model
from ..inputs.user import check_batch_size, is_pair, loss_label, on_device_pair, probe, summed_loss
from ..job.mpi import World
from ..space.evaluate import tensor_batches
from ..space.model_io import to_device
from ..space.precision import strict_fp32
from .session import evaluation_mode

QUANTITIES = ("accuracy", "loss")
MAGNITUDE_EPS = 1e-3  # Jiang et al.'s ε of pacbayes.mag.flatness
DRAWS = 10  # Monte-Carlo draws per σ, as in Jiang et al.'s search
SIGMA_TOL = 1e-2  # relative width of the final bracket of σ


@dataclass(frozen=True)
class Flatness:
    """sigma: the largest σ found whose deviation is within the target (lower end of the bracket [sigma,
    sigma_upper], sigma_upper <= sigma·(1 + tol)); flatness: 1/sigma²; base: the unperturbed accuracy
    (a fraction) or mean loss; evaluations: every (σ, Monte-Carlo mean, deviation) the search made."""
    sigma: float
    sigma_upper: float
    flatness: float
    base: float
    evaluations: tuple
    target: float
    quantity: str
    magnitude_aware: bool
    magnitude_eps: float
    draws: int
    seed: int
    tol: float
    params: tuple
    loss: str


def pac_bayes_flatness(model, data, loss=None, target=0.1, quantity="accuracy", magnitude_aware=False,
                       params="all", draws=DRAWS, seed=0, tol=SIGMA_TOL, magnitude_eps=MAGNITUDE_EPS, batch_size=256,
                       device=None):
    """PAC-Bayes flatness of the model at its parameters on `data` (Jiang et al. 2020: pacbayes.flatness,
    and pacbayes.mag.flatness when magnitude_aware): a Flatness whose .sigma is the largest σ with

        |E_u[q(w + u)] - q(w)| <= target,   u_i ~ N(0, σ²)  or  N(0, σ² w_i² + ε²) when magnitude_aware,

    q the accuracy (a fraction: target 0.1 is ten points, as in the paper) or the mean loss, and .flatness
    = 1/σ². E_u is a mean over `draws` noise draws, the same draws at every σ (seeded by `seed`); σ is
    bracketed by halving/doubling from 1 and bisected to a relative width `tol`. Noise goes on the
    parameters `params` ('all', 'reference' = those with more than one dimension, or glob patterns).
    data, loss: as for surface (a pair is cut into batches of `batch_size`). device: where it runs (None:
    where the model is); the model comes back as it was (eval mode during the call).
    """
    _check_choices(target, quantity, draws, seed, tol, magnitude_eps, params)
    check_batch_size(batch_size, "batch_size")
    check_data(data)
    check_model(model)
    names = hessian_param_names(model, params)
    loss_total = summed_loss(loss)
    with evaluation_mode(model, device, World(None)) as target_device, strict_fp32():  # TF32 noise: see sharpness
        hits = probe(model, data, loss, loss_total, target_device)
        if quantity == "accuracy" and hits is None:
            raise LossError("quantity='accuracy' needs class scores (N, classes) against integer labels (or "
                            "loss='causal_lm'); these outputs have no accuracy: use quantity='loss'")
        batches = _batches(data, target_device, batch_size)
        held = dict(model.named_parameters())
        weights = {name: held[name].detach() for name in names}

        def value(chosen):
            mean_loss, accuracy = mean_loss_and_accuracy(model, chosen, batches, loss_total,
                                                         hits if quantity == "accuracy" else None)
            return accuracy if quantity == "accuracy" else mean_loss
        base = value(weights)
        if not math.isfinite(base):
            raise CurvatureError(f"the unperturbed {quantity} is {base}: no deviation from it can be measured")
        eps = magnitude_eps if magnitude_aware else None
        means = {}

        def deviation(sigma):
            means[sigma] = expected_value(value, weights, sigma, seed, draws, eps)
            return abs(means[sigma] - base)
        search = largest_sigma(deviation, target, tol)
    return Flatness(search.lower, search.upper, 1.0 / search.lower ** 2, base,
                    tuple((s, means[s], d) for s, d in search.evaluations), target, quantity, bool(magnitude_aware),
                    magnitude_eps, draws, seed, tol, tuple(names), loss_label(loss))


def _batches(data, device, batch_size):
    """A pair cut into device-resident batches; an iterable of batches moved to the device batch by batch."""
    if is_pair(data):
        inputs, targets = on_device_pair(data, device)
        return tensor_batches(inputs, targets, batch_size)
    return _OnDevice(FiniteBatches(data), device)


class _OnDevice:
    def __init__(self, batches, device):
        self.batches, self.device = batches, device

    def __iter__(self):
        for inputs, targets in self.batches:
            yield to_device(inputs, self.device), targets.to(self.device)


def _check_choices(target, quantity, draws, seed, tol, magnitude_eps, params):
    if quantity not in QUANTITIES:
        raise ChoiceError(f"quantity={quantity!r} is not one of {', '.join(QUANTITIES)}")
    if not _number(target) or not target > 0 or (quantity == "accuracy" and not target < 1):
        raise CurvatureError(f"target={target!r}: give the deviation to reach, a number > 0 "
                             f"(below 1 for the accuracy, a fraction)")
    if isinstance(draws, bool) or not isinstance(draws, int) or draws < 1:
        raise CurvatureError(f"draws={draws!r}: give the number of noise draws per σ, a whole number >= 1")
    if not _number(magnitude_eps) or not magnitude_eps >= 0:
        raise CurvatureError(f"magnitude_eps={magnitude_eps!r}: give the noise floor ε of the magnitude-aware "
                             f"measure, a number >= 0")
    if not _number(tol) or not 0 < tol < 1:
        raise CurvatureError(f"tol={tol!r}: give the relative width of σ's final bracket, 0 < tol < 1")
    check_choices(params=params, seed=seed)  # a whole seed, a known parameter subset


def _number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
