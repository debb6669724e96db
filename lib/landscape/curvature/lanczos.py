"""Lanczos iteration on a symmetric operator: the Krylov core that the eigenvalue extremes, the
spectral density (stochastic Lanczos quadrature) and trace estimates share. Pure: tensors in, numbers out.

`lanczos_steps` yields the growing decomposition after every step, so each caller applies its own
stopping rule and every operator application (one per step) serves every quantity built on it.
"""
import math
from dataclasses import dataclass
from typing import Callable, Iterator, List, NamedTuple

import torch


@dataclass
class Krylov:
    """After k steps: A Q_k = Q_k T_k + beta_next q_{k+1} e_k^T, with Q_k = basis (k orthonormal vectors).

    T_k is tridiagonal with diagonal `alphas` (k values) and off-diagonal `betas` (k - 1 values).
    The lists grow in place while the generator runs: read them before asking for the next step.
    """
    alphas: List[float]
    betas: List[float]
    beta_next: float
    basis: List[torch.Tensor]

    def __eq__(self, other):  # by value: the generated __eq__ would ask a multi-element tensor for its truth
        return (isinstance(other, Krylov) and (self.alphas, self.betas, self.beta_next) ==
                (other.alphas, other.betas, other.beta_next) and len(self.basis) == len(other.basis)
                and all(torch.equal(a, b) for a, b in zip(self.basis, other.basis)))

    @property
    def steps(self):
        return len(self.alphas)

    def tridiagonal(self):
        off = torch.tensor(self.betas, dtype=torch.float64)
        return torch.diag(torch.tensor(self.alphas, dtype=torch.float64)) + torch.diag(off, 1) + torch.diag(off, -1)

    def ritz(self):
        """(theta, vecs): Ritz values ascending and the eigenvectors of T_k (columns)."""
        return torch.linalg.eigh(self.tridiagonal())

    def ritz_residuals(self, vecs):
        """||A y - theta y|| of every Ritz pair: |beta_next * last component of its T_k eigenvector|."""
        return self.beta_next * vecs[-1].abs()


def _orthogonalize(w, basis):
    """Remove the basis components of w; twice, since one Gram-Schmidt pass loses orthogonality."""
    for _ in range(2):
        for q in basis:
            w -= torch.dot(q, w) * q
    return w


def start_vector(dim, seed, dtype=torch.float64, device="cpu"):
    """A seeded Gaussian start vector, drawn on the CPU so a seed means the same vector on any device."""
    return torch.randn(dim, generator=torch.Generator().manual_seed(int(seed)), dtype=dtype).to(device)


def lanczos_steps(matvec: Callable[[torch.Tensor], torch.Tensor], v0, max_steps, *,
                  dtype=torch.float64, device=None) -> Iterator[Krylov]:
    """Lanczos with full reorthogonalization from v0 (normalized here); yields a Krylov after each step.

    Ends after max_steps, or early at a breakdown (beta_next == 0: the Krylov space is invariant and
    its Ritz values are exact eigenvalues). The basis is kept in `dtype` on `device` (default: v0's).
    """
    device = v0.device if device is None else device
    q = v0.to(device=device, dtype=dtype)
    norm = q.norm()
    if not norm > 0:
        raise ValueError("the Lanczos start vector is zero")
    state = Krylov([], [], 0.0, [q / norm])
    for _ in range(int(max_steps)):
        current = state.basis[-1]
        w = matvec(current).to(device=device, dtype=dtype)
        state.alphas.append(torch.dot(current, w).item())
        state.beta_next = _orthogonalize(w, state.basis).norm().item()
        yield state
        if state.beta_next == 0.0:
            return
        state.betas.append(state.beta_next)
        state.basis.append(w / state.beta_next)


class EigResult(NamedTuple):
    lam_min: float
    lam_max: float
    iters: int  # Lanczos steps taken
    res_min: float  # residual norm ||H y - lam y|| of the lambda_min Ritz pair
    res_max: float
    converged: bool
    hvps: int  # operator applications (one per step)
    krylov: object = None  # the run's Krylov state, so other estimates (e.g. SLQ) can reuse it


MISS_PROB = 1e-2  # bound on the chance that an eigenvalue beyond an extreme's margin is still hidden
BREAKDOWN = 1e-10  # beta_next below this times the spectral radius: the Krylov space is invariant


def log_christoffel_sum(alphas, betas, x, beta_next=None):
    """log sum_{j<k} p_j(x)^2, p_j the orthonormal polynomials of the Lanczos recurrence (p_0 = 1), k = len(alphas);
    with beta_next (> 0) the sum runs to j = k: p_k needs alpha_{k-1} and beta_next, which step k has already
    made, and no product of its own.

    This is 1 / (the Christoffel function of the start vector's spectral measure at x). Rescaled as
    it goes, since outside the spectrum the p_j grow geometrically.
    """
    betas = list(betas[:len(alphas) - 1]) + ([beta_next] if beta_next is not None else [])
    prev, cur, total, log_scale = 0.0, 1.0, 1.0, 0.0
    for j in range(len(betas)):
        cur, prev = ((x - alphas[j]) * cur - (betas[j - 1] * prev if j else 0.0)) / betas[j], cur
        total += cur * cur
        if abs(cur) > 1e100:
            cur, prev, total, log_scale = cur * 1e-100, prev * 1e-100, total * 1e-200, log_scale + 2 * math.log(1e100)
    return math.log(total) + log_scale


def hidden_weight_log_limit(dim, miss_prob=MISS_PROB):
    """log K such that sum p_j(x)^2 >= K leaves an eigenvector at x unseen with probability <= miss_prob.

    An eigenvector's weight in a Gaussian start is g^2 / ||v0||^2 ~ chi2_1 / dim, and
    P(chi2_1 <= dim / K) <= sqrt(2 dim / (pi K)); that is miss_prob for K = 2 dim / (pi miss_prob^2).
    """
    return math.log(2 * dim / (math.pi * miss_prob ** 2))


def lanczos_extremes(matvec: Callable[[torch.Tensor], torch.Tensor], dim, *, tol=1e-3, max_iter=100,
                     seed=0, dtype=torch.float64, device='cpu', miss_prob=MISS_PROB):
    """lambda_min and lambda_max of a symmetric operator from one Lanczos run, each within
    tol * max(|lambda_min|, |lambda_max|) of the true extreme (with probability >= 1 - miss_prob each).

    Why not a residual test: a small residual proves that a Ritz value is near *some* eigenvalue,
    not the extreme one. At a trained minimum the spectrum is a large bulk near 0 with a small
    negative outlier below it; the lowest Ritz value sits in the bulk with a tiny residual for many
    steps before the outlier (whose share of a random start is ~1/dim) shows up.

    The rule used instead bounds what can still be hidden. Ritz values are inside the spectrum, so
    theta_min >= lambda_min and theta_max <= lambda_max; the question is only whether an eigenvalue
    lies beyond them. With p_j the orthonormal Lanczos polynomials of the start vector's spectral
    measure, an eigenvalue at x has weight w <= 1 / sum_{j<k} p_j(x)^2 in the start vector (the
    Christoffel function bounds any point mass), and that sum only grows as x moves away from the
    Ritz values. So once the sum reaches K = 2 dim / (pi miss_prob^2) at x = theta_min - margin
    (margin = tol * the spectral-radius estimate), every eigenvalue below x carries weight <= 1/K,
    which a Gaussian start gives a fixed eigenvector with probability <= miss_prob; likewise at
    theta_max + margin. The run stops when both sides pass. The sum comes from T_k alone: no HVPs.
    It runs to p_k (beta_next is known once step k's product is made), so it is the exact Christoffel function
    of the moments that k products determine: the largest weight any spectrum matching them can put beyond
    x. No bound from those moments is sharper, and the chi2_1 tail is tight at small weights, so at this
    guarantee the rule stops as early as what it has seen allows (summing only to p_{k-1}, as before, cost
    one product more per run).

    What the certificate costs: the steps after both Ritz extremes have settled within tol, spent until
    no eigenvalue can hide beyond them. At trained tiny nets (λmin/λmax -2.4 % to -4 %) the Ritz values
    settle after 18-29 steps and the certificate stops after 32-57 (medians over 10 starts: 14 to 28 steps
    more); at known spectra of that shape 14-18 against 22-25. With miss_prob 0.05 or 0.1 it would stop 1-12
    steps earlier, and then left an extreme off by more than tol in 4 and 7 of 60 runs (0 of 60 at 0.01):
    bench/bench_certificate.py. At a trained ResNet-20 it stopped after 24 steps and at a small GPT-2 after
    33, where an unguarded run needed 15 and 18 (bench/bench_peers.py, docs/BENCHMARKS.md). A density or
    trace at the same point reuses these steps (its first probe, its deflation space), so they are spent
    for λmin/λmax alone only in maps of the extremes.
    Stops at max_iter (converged=False unless met), or at dim steps / a breakdown (beta_next <= BREAKDOWN *
    spectral radius), where the Ritz values are exact. Residuals are reported, not used to stop.
    The basis is kept in `dtype` on `device` (dim * iters numbers); deterministic given seed.
    """
    if dim < 1 or max_iter < 1 or not tol > 0 or not 0 < miss_prob < 1:
        raise ValueError(f"need dim >= 1, max_iter >= 1, tol > 0, 0 < miss_prob < 1; got dim={dim}, "
                         f"max_iter={max_iter}, tol={tol}, miss_prob={miss_prob}")
    limit = hidden_weight_log_limit(dim, miss_prob)
    v0 = start_vector(dim, seed, dtype, device)
    for state in lanczos_steps(matvec, v0, min(max_iter, dim), dtype=dtype, device=device):
        theta, vecs = state.ritz()
        lam_min, lam_max = theta[0].item(), theta[-1].item()
        margin = tol * max(abs(lam_min), abs(lam_max))
        exact = state.steps == dim or state.beta_next <= BREAKDOWN * max(abs(lam_min), abs(lam_max))
        met = not exact and margin > 0 and all(
            log_christoffel_sum(state.alphas, state.betas, x, state.beta_next) >= limit
            for x in (lam_min - margin, lam_max + margin))
        if met or exact:
            break
    res = state.ritz_residuals(vecs)
    return EigResult(lam_min, lam_max, state.steps, res[0].item(), res[-1].item(), met or exact, state.steps,
                     state)
