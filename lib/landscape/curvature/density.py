"""Eigenvalue spectral density by stochastic Lanczos quadrature (Ghorbani et al., 2019), pure.

For a unit probe v, m Lanczos steps from v give T_m; its eigenvalues (nodes) and the squared
first components of its eigenvectors (weights, summing to 1) form the m-point Gauss quadrature of
the measure sum_i (u_i^T v)^2 delta(t - lambda_i). It reproduces v^T H^j v exactly for j <= 2m-1,
so sum w*lambda = v^T H v and sum w*lambda^2 = ||H v||^2. Averaging P Gaussian probes
estimates the spectral density (1/n) sum_i delta(t - lambda_i): E[sum w*lambda] = tr(H)/n and
E[sum w*lambda^2] = ||H||_F^2 / n. Nodes are Ritz values, so they lie in [lambda_min, lambda_max].

The first probe can be the Lanczos run that found the extremes (its start is a seeded Gaussian
vector too): its first m steps are reused, and the run is continued if it stopped earlier.
"""
import numpy as np
import torch

from .lanczos import _orthogonalize, lanczos_steps, start_vector


def gauss_quadrature(alphas, betas):
    """(nodes ascending, weights) of the tridiagonal matrix with diagonal alphas, off-diagonal betas."""
    off = torch.tensor(list(betas), dtype=torch.float64)
    t = torch.diag(torch.tensor(list(alphas), dtype=torch.float64)) + torch.diag(off, 1) + torch.diag(off, -1)
    nodes, vecs = torch.linalg.eigh(t)
    return nodes.numpy(), (vecs[0] ** 2).numpy()


def continue_lanczos(matvec, state, last_product, steps):
    """Extend a Krylov state (from lanczos_steps) in place to `steps` steps; returns products spent.

    `last_product` is matvec of the state's last basis vector: a run stopped right after a step
    has not formed its next vector yet, and this finishes it without another product. A state at
    a breakdown (an invariant subspace) cannot grow and is left as it is.
    """
    spent = 0
    if state.steps >= steps or state.beta_next == 0.0:
        return spent
    if len(state.basis) == state.steps:
        w = _orthogonalize(last_product.clone().to(state.basis[0]), state.basis)
        state.betas.append(state.beta_next)
        state.basis.append(w / state.beta_next)
    while True:
        current = state.basis[-1]
        w = matvec(current).to(current)
        spent += 1
        state.alphas.append(torch.dot(current, w).item())
        state.beta_next = _orthogonalize(w, state.basis).norm().item()
        if state.steps >= steps or state.beta_next == 0.0:
            return spent
        state.betas.append(state.beta_next)
        state.basis.append(w / state.beta_next)


def probe_quadrature(state, steps):
    """Nodes and weights from the first `steps` steps of a Krylov state (all of them if fewer)."""
    m = min(steps, state.steps)
    return gauss_quadrature(state.alphas[:m], state.betas[:m - 1])


def _run(matvec, dim, steps, seed, dtype, device):
    state = None
    for state in lanczos_steps(matvec, start_vector(dim, seed, dtype, device), min(steps, dim),
                               dtype=dtype, device=device):
        pass
    return state


def slq(matvec, dim, probes, steps, *, seed=0, first=None, dtype=torch.float64, device="cpu"):
    """Spectral density from `probes` Lanczos runs of `steps` steps: (nodes, weights, products spent).

    Both arrays have probes * min(steps, dim) entries sorted by node, weights summing to 1. A probe
    that ends early at a breakdown (exact on its invariant subspace) is padded with zero-weight
    copies of its largest node, so every point stores the same number of entries.
    first: a Krylov state already run from a seeded Gaussian start (e.g. the extremes' run, already
    continued to `steps` with continue_lanczos); it serves as the first probe. Probe p >= 1 (or
    p >= 0 without `first`) starts from start_vector(dim, seed + p).
    """
    if probes < 1 or steps < 1:
        raise ValueError(f"need probes >= 1 and steps >= 1; got {probes} and {steps}")
    width = min(steps, dim)
    nodes, weights, spent = [], [], 0
    for p in range(probes):
        if p == 0 and first is not None:
            state = first
        else:
            state = _run(matvec, dim, width, seed + p, dtype, device)
            spent += state.steps
        theta, w = probe_quadrature(state, width)
        pad = width - len(theta)
        nodes.append(np.concatenate([theta, np.full(pad, theta[-1])]))
        weights.append(np.concatenate([w, np.zeros(pad)]) / probes)
    nodes, weights = np.concatenate(nodes), np.concatenate(weights)
    order = np.argsort(nodes, kind="stable")
    return nodes[order], weights[order], spent


def negative_mass(nodes, weights, cutoff):
    """(mass, share): the density's weight on nodes below -cutoff, and its share of sum w*|lambda|.

    The cutoff (>= 0) keeps nodes that are zero within the run's accuracy out of the count: a bulk
    of near-zero eigenvalues at a minimum would otherwise split by the sign of rounding noise.
    The share weighs each node by |lambda|, so it measures how much curvature is negative.
    """
    nodes, weights = np.asarray(nodes, dtype=float), np.asarray(weights, dtype=float)
    below = nodes < -cutoff
    magnitude = weights * np.abs(nodes)
    total = magnitude.sum()
    share = magnitude[below].sum() / total if total > 0 else 0.0
    return float(weights[below].sum()), float(share)


def density_curve(nodes, weights, num=2000, variance=None):
    """(grid, density): the quadrature measure smoothed by Gaussians, integrating to 1 on the grid.

    The default kernel variance is 1e-5 * max(1, range of the nodes), PyHessian's choice, so the
    pictures compare; the grid extends 1% of the range beyond the extreme nodes.
    """
    nodes, weights = np.asarray(nodes, dtype=float), np.asarray(weights, dtype=float)
    lo, hi = nodes.min(), nodes.max()
    span = max(hi - lo, 1e-12)
    variance = 1e-5 * max(1.0, span) if variance is None else variance
    grid = np.linspace(lo - 0.01 * span - 3 * variance ** 0.5, hi + 0.01 * span + 3 * variance ** 0.5, num)
    kernel = np.exp(-(grid[:, None] - nodes[None, :]) ** 2 / (2 * variance)) / np.sqrt(2 * np.pi * variance)
    density = kernel @ weights
    area = density.sum() * (grid[1] - grid[0])
    return grid, density / area if area > 0 else density
