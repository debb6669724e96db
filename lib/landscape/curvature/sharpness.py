"""Worst-case and average-case sharpness of the mean loss (pure; the API is api/sharpness.py).

Both are L(w+δ) − L(w) over the chosen parameters w, L the mean loss over every sample (token) of the
batches: the total summed loss divided by the total weight (space/losses.py), the model in eval mode.
δ lives in the set ‖δ/s‖_p ≤ ρ with s = |w| elementwise (adaptive, Kwon et al. 2021) or s = 1, p = 2 or ∞.
We optimize u = δ/s (δ = s ⊙ u, ‖u‖_p ≤ ρ): the set is then a plain ball, so the projection is exact and
cheap, and the ascent step is the steepest one in u.

Worst case: Auto-PGD (Croce & Hein 2020, Algorithm 1) as Andriushchenko et al. 2023 run it on weights:
step 2ρ, momentum α = 0.75, checkpoints at ceil(p_j·steps) with p_0 = 0, p_1 = 0.22,
p_{j+1} = p_j + max(p_j − p_{j−1} − 0.03, 0.06), where the step halves (and the iterate returns to the best
point) if fewer than 75 % of the steps since the last checkpoint raised the loss, or if neither the step nor
the best loss changed since it; a random start in the set; the best over restarts. The value is the best
loss seen (the start included) minus L(w), never below 0 since δ = 0 is in the set.
"""
import math
from dataclasses import dataclass, field

import torch

from ..errors import ChoiceError, DataError
from ..space.model_io import call_functional, to_device
from .hvp import checked_parameters

NORMS = ("l2", "linf")
MEASURES = ("worst", "average")
MOMENTUM = 0.75  # Croce & Hein's alpha
MIN_UPDATE_RATIO = 0.75  # their rho: fraction of the steps since a checkpoint that must raise the loss


class FlatLoss:
    """L(w + δ) for a flat δ over the parameters `names` of `model` (the others and the buffers held),
    over `batches` (a re-iterable of (inputs, targets)), with loss_fn(outputs, targets, inputs) -> (sum, weight).
    Puts the model in eval mode; w is the parameters' values when it is made."""

    def __init__(self, model, names, loss_fn, batches):
        params = checked_parameters(model, names, "sharpness")
        model.eval()
        self.model, self.names, self.loss_fn, self.batches = model, list(names), loss_fn, batches
        self.rest = {n: p.detach() for n, p in params.items() if n not in self.names}
        self.shapes = [params[n].shape for n in self.names]
        self.numels = [params[n].numel() for n in self.names]
        self.w = torch.cat([params[n].detach().reshape(-1) for n in self.names]).clone()

    def _named(self, flat):
        return {n: t.view(s) for n, t, s in zip(self.names, flat.split(self.numels), self.shapes)}

    def _pass(self, delta, with_grad):
        total, count = 0.0, 0
        gradient = torch.zeros_like(self.w) if with_grad else None
        for inputs, targets in self.batches:
            inputs, targets = to_device(inputs, self.w.device), targets.to(self.w.device)
            point = (self.w + delta).detach().requires_grad_(with_grad)
            with torch.set_grad_enabled(with_grad):
                loss, weight = self.loss_fn(call_functional(self.model, {**self.rest, **self._named(point)}, inputs),
                                            targets, inputs)
            if with_grad:
                gradient += torch.autograd.grad(loss, point)[0]
            total += loss.detach().to(torch.float64)
            count += int(weight)
        if count == 0:
            raise DataError("the batches for sharpness hold no samples: give it a non-empty data set")
        self.weight = count
        return total / count, (None if gradient is None else gradient / count)

    def __call__(self, delta):
        """The mean loss at w + δ, a float64 scalar."""
        return self._pass(delta, False)[0]

    def value_and_grad(self, delta):
        value, gradient = self._pass(delta, True)
        return value, gradient


@dataclass(frozen=True)
class Perturbation:
    """One measure on one set of batches: value = perturbed − loss; delta the δ found (worst case) or None
    (average case, whose δ are many); weight the batches' total weight (samples or tokens)."""
    value: float
    loss: float
    perturbed: float
    delta: object = field(default=None, repr=False)
    weight: int = 0


def scale_of(w, adaptive):
    return w.abs() if adaptive else torch.ones_like(w)


def project(u, rho, norm):
    """The nearest point of the ball ‖u‖_p ≤ ρ."""
    if norm == "linf":
        return u.clamp(-rho, rho)
    size = u.norm()
    return u * (rho / size) if size > rho else u


def ascent_step(grad_u, norm):
    """The steepest unit ascent direction of ‖·‖_p for the gradient in u."""
    if norm == "linf":
        return grad_u.sign()
    return grad_u / grad_u.norm().clamp_min(torch.finfo(grad_u.dtype).tiny)


def random_start(dim, rho, norm, generator, like):
    """A random point of the set: uniform in the L∞ cube, a uniform direction at radius ρ for L2."""
    if norm == "linf":
        u = (2 * torch.rand(dim, generator=generator, dtype=torch.float64) - 1) * rho
    else:
        u = torch.randn(dim, generator=generator, dtype=torch.float64)
        u = u * (rho / u.norm())
    return u.to(like.device, like.dtype)


def checkpoints(steps):
    """Croce & Hein's checkpoints ceil(p_j·steps) after the start: p_1 = 0.22, growing gaps down to 0.06."""
    p, points = [0.0, 0.22], []
    while p[-1] <= 1:
        points.append(math.ceil(p[-1] * steps))
        p.append(p[-1] + max(p[-1] - p[-2] - 0.03, 0.06))
    return sorted(set(c for c in points if 0 < c < steps))


def apgd(f, rho, norm, adaptive, steps, generator):
    """(best loss, its δ) of one Auto-PGD run from a random start, f a FlatLoss."""
    scale = scale_of(f.w, adaptive)
    u = random_start(f.w.numel(), rho, norm, generator, f.w)
    loss, grad = f.value_and_grad(scale * u)
    best, best_u, best_grad = loss, u, grad
    eta, previous_u = 2 * rho, u
    marks, last_mark, raised = checkpoints(steps), 0, 0
    eta_at_mark, best_at_mark = eta, best
    for k in range(steps):
        z = project(u + eta * ascent_step(scale * grad, norm), rho, norm)
        if k == 0:
            following = z
        else:
            following = project(u + MOMENTUM * (z - u) + (1 - MOMENTUM) * (u - previous_u), rho, norm)
        previous_u, u = u, following
        loss, grad = f.value_and_grad(scale * u)
        if loss > best:
            raised += 1
            best, best_u, best_grad = loss, u, grad
        if k + 1 in marks:
            too_few = raised < MIN_UPDATE_RATIO * (k + 1 - last_mark)
            stalled = eta == eta_at_mark and best == best_at_mark
            eta_at_mark, best_at_mark, last_mark, raised = eta, best, k + 1, 0
            if too_few or stalled:
                eta /= 2
                u, previous_u, grad = best_u, best_u, best_grad
    return best, scale * best_u


def worst_case(f, rho, norm="l2", adaptive=True, steps=20, restarts=1, seed=0):
    """max over ‖δ/s‖_p ≤ ρ of L(w+δ) − L(w), by Auto-PGD with `restarts` random starts (seeded)."""
    check_set(rho, norm)
    generator = torch.Generator().manual_seed(seed)
    loss = f(torch.zeros_like(f.w))
    best, best_delta = loss, torch.zeros_like(f.w)
    for _ in range(restarts):
        found, delta = apgd(f, rho, norm, adaptive, steps, generator)
        # The set is symmetric and so is the quadratic term; the odd terms (gradient, cubic) decide which of
        # ±δ is higher, and a start near the lower pole converges there: one more pass checks the mirror.
        mirrored = f(-delta)
        if mirrored > found:
            found, delta = mirrored, -delta
        if found > best:
            best, best_delta = found, delta
    return Perturbation(float(best - loss), float(loss), float(best), best_delta, f.weight)


def average_case(f, rho, adaptive=True, samples=100, seed=0):
    """E over δ = ρ s ⊙ ξ, ξ ~ N(0, I), of L(w+δ) − L(w), by `samples` antithetic pairs ±ξ (seeded): each
    pair's mean of L(w+δ) and L(w−δ) is unbiased, and its odd-order terms (the gradient's) cancel exactly."""
    check_set(rho, "l2")
    generator = torch.Generator().manual_seed(seed)
    scale = scale_of(f.w, adaptive)
    loss = f(torch.zeros_like(f.w))
    total = 0.0
    for _ in range(samples):
        xi = torch.randn(f.w.numel(), generator=generator, dtype=torch.float64).to(f.w.device, f.w.dtype)
        delta = rho * scale * xi
        total += (f(delta) + f(-delta)) / 2
    perturbed = total / samples
    return Perturbation(float(perturbed - loss), float(loss), float(perturbed), None, f.weight)


def m_sharpness(model, names, loss_fn, groups, rho, norm="l2", adaptive=True, steps=20, restarts=1, seed=0):
    """The worst case of each group of batches (each a batch of m samples), and their mean weighted by the
    groups' weights: (Perturbation of the mean, whose delta is None, [each group's Perturbation]).
    Every group starts from the same seed, as one group alone would."""
    parts = [worst_case(FlatLoss(model, names, loss_fn, group), rho, norm, adaptive, steps, restarts, seed)
             for group in groups]
    weight = sum(p.weight for p in parts)
    loss, perturbed = (sum(getattr(p, key) * p.weight for p in parts) / weight for key in ("loss", "perturbed"))
    return Perturbation(perturbed - loss, loss, perturbed, None, weight), parts


def check_set(rho, norm):
    if norm not in NORMS:
        raise ChoiceError(f"unknown sharpness norm {norm!r}; choose one of {NORMS}")
    if isinstance(rho, bool) or not isinstance(rho, (int, float)) or not rho > 0 or not math.isfinite(rho):
        raise ChoiceError(f"rho must be a finite number > 0, got {rho!r}")


def set_norm(delta, w, norm, adaptive):
    """‖δ/s‖_p: the norm the set bounds by ρ."""
    u = delta / scale_of(w, adaptive)
    u = torch.where(delta == 0, torch.zeros_like(u), u)  # s = 0 only where δ = 0 (adaptive holds those at w)
    return float(u.abs().max() if norm == "linf" else u.norm())


def layer_norms(delta, names, numels):
    """{parameter name: ‖δ‖_2 over it}."""
    return {n: float(t.norm()) for n, t in zip(names, delta.split(numels))}
