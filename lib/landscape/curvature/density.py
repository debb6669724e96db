"""Eigenvalue spectral density by stochastic Lanczos quadrature (Ghorbani et al., 2019), pure.

For a unit probe v, m Lanczos steps from v give T_m; its eigenvalues (nodes) and the squared
first components of its eigenvectors (weights, summing to 1) form the m-point Gauss quadrature of
the measure sum_i (u_i^T v)^2 delta(t - lambda_i). It reproduces v^T H^j v exactly for j <= 2m-1,
so sum w*lambda = v^T H v and sum w*lambda^2 = ||H v||^2. Averaging P Gaussian probes
estimates the spectral density (1/n) sum_i delta(t - lambda_i): E[sum w*lambda] = tr(H)/n and
E[sum w*lambda^2] = ||H||_F^2 / n. Nodes are Ritz values, so they lie in [lambda_min, lambda_max].

The first probe can be the Lanczos run that found the extremes (its start is a seeded Gaussian
vector too): its first m steps are reused, and the run is continued if it stopped earlier. The probes'
runs advance in step, so a block product (blocks.py) serves all of them at each step.
"""
import numpy as np
import torch

from .lanczos import Krylov, _orthogonalize, start_vector


def gauss_quadrature(alphas, betas):
    """(nodes ascending, weights) of the tridiagonal matrix with diagonal alphas, off-diagonal betas."""
    off = torch.tensor(list(betas), dtype=torch.float64)
    t = torch.diag(torch.tensor(list(alphas), dtype=torch.float64)) + torch.diag(off, 1) + torch.diag(off, -1)
    nodes, vecs = torch.linalg.eigh(t)
    return nodes.numpy(), (vecs[0] ** 2).numpy()


def form_next(state, last_product):
    """Form a Krylov state's next basis vector from `last_product` (matvec of its last basis vector), without
    another product: a run stopped right after a step (lanczos_extremes breaks there) has not formed it yet.
    A state whose next vector exists, or at a breakdown (an invariant subspace), is left as it is."""
    if state.beta_next != 0.0 and len(state.basis) == state.steps:
        w = _orthogonalize(last_product.clone().to(state.basis[0]), state.basis)
        state.betas.append(state.beta_next)
        state.basis.append(w / state.beta_next)


def continue_lanczos(matvec, state, last_product, steps):
    """Extend a Krylov state (from lanczos_steps) in place to `steps` steps; returns products spent.

    `last_product` is matvec of the state's last basis vector (see form_next). A state at a breakdown
    cannot grow and is left as it is.
    """
    if state.steps >= steps or state.beta_next == 0.0:
        return 0
    form_next(state, last_product)
    return in_step(lambda block: torch.stack([matvec(v) for v in block]), [state], steps)


def in_step(block_matvec, states, steps, record=None):
    """Grow Krylov states, each with its next basis vector formed, to `steps` steps in step: each step applies
    block_matvec ((m, dim) -> (m, dim)) once to the last basis vectors of the m states still growing; a state
    at a breakdown stops. The arithmetic of each state is lanczos_steps' own, so with products equal to
    single ones each state is what its own run would give. record(state index, vector, product) sees every
    product. Returns the products spent."""
    if any(s.beta_next != 0.0 and len(s.basis) == s.steps < steps for s in states):
        raise ValueError("a Krylov state to grow must have its next basis vector formed (form_next)")
    spent = 0
    while True:
        growing = [i for i, s in enumerate(states) if s.steps < steps and s.beta_next != 0.0 or s.steps == 0]
        if not growing:
            return spent
        products = block_matvec(torch.stack([states[i].basis[-1] for i in growing]))
        spent += len(growing)
        for i, w in zip(growing, products):
            state, current = states[i], states[i].basis[-1]
            if record is not None:
                record(i, current, w)
            w = w.to(current).clone()
            state.alphas.append(torch.dot(current, w).item())
            state.beta_next = _orthogonalize(w, state.basis).norm().item()
            if state.beta_next != 0.0:
                state.betas.append(state.beta_next)
                state.basis.append(w / state.beta_next)


def probe_quadrature(state, steps):
    """Nodes and weights from the first `steps` steps of a Krylov state (all of them if fewer)."""
    m = min(steps, state.steps)
    return gauss_quadrature(state.alphas[:m], state.betas[:m - 1])


def _fresh(dim, seed, dtype, device):
    q = start_vector(dim, seed, dtype, device)
    return Krylov([], [], 0.0, [q / q.norm()])


def slq(matvec, dim, probes, steps, *, seed=0, first=None, dtype=torch.float64, device="cpu", block_matvec=None,
        record_first=None):
    """Spectral density from `probes` Lanczos runs of `steps` steps: (nodes, weights, products spent).

    Both arrays have probes * min(steps, dim) entries sorted by node, weights summing to 1. A probe
    that ends early at a breakdown (exact on its invariant subspace) is padded with zero-weight
    copies of its largest node, so every point stores the same number of entries.
    first: a Krylov state already run from a seeded Gaussian start (e.g. the extremes' run); it serves as
    the first probe. One shorter than `steps` must have its next basis vector formed (form_next): it is
    continued here, its products shown to record_first(vector, product) and counted in the products spent.
    Probe p >= 1 (or p >= 0 without `first`) starts from start_vector(dim, seed + p).
    block_matvec ((m, dim) -> (m, dim), e.g. blocks.block_products): the runs advance in step, one block
    product per step for all of them (the numbers are those of separate runs); default: matvec per vector.
    """
    if probes < 1 or steps < 1:
        raise ValueError(f"need probes >= 1 and steps >= 1; got {probes} and {steps}")
    width = min(steps, dim)
    states = [first if p == 0 and first is not None else _fresh(dim, seed + p, dtype, device) for p in range(probes)]
    block_matvec = block_matvec or (lambda block: torch.stack([matvec(v) for v in block]))
    record = None if record_first is None or first is None else (
        lambda i, v, w: record_first(v, w) if i == 0 else None)
    spent = in_step(block_matvec, states, width, record)
    nodes, weights = [], []
    for state in states:
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


def resolved_width(lowest, highest, steps):
    """The narrowest Gaussian kernel (standard deviation) whose smoothing an m-step quadrature of nodes in
    [lowest, highest] resolves: span / m, the span being highest - lowest.

    The m-point Gauss quadrature integrates polynomials up to degree 2m - 1 exactly, and a Gaussian of
    standard deviation sigma anywhere on an interval of length `span` is approximated there to 1% of its peak
    by a polynomial of degree about 1.3 span / sigma (Chebyshev fits, for span / sigma from 10 to 100). So
    with sigma = span / m the smoothed quadrature is the probe's smoothed spectral measure to within about 2% of
    the kernel's peak (twice that error, both measures having mass 1), while a much narrower kernel draws the
    individual Ritz values, a comb of spikes, instead of the spectrum.
    A span of 0 (all nodes equal) counts as max(|node|, 1).
    """
    if steps < 1:
        raise ValueError(f"need steps >= 1; got {steps}")
    span = float(highest) - float(lowest)
    return (span if span > 0 else max(abs(float(lowest)), abs(float(highest)), 1.0)) / steps


def smoothed_density(nodes, weights, grid, sigma):
    """The quadrature measure sum_k w_k delta(t - node_k) convolved with a Gaussian of standard deviation sigma,
    at the points t of `grid`. Nothing is renormalised: over the whole line it integrates to sum(w), 1 for
    slq's weights, so on a grid reaching several sigma beyond the extreme nodes its Riemann sum is that too."""
    if not sigma > 0:
        raise ValueError(f"the kernel width must be > 0; got {sigma}")
    nodes, weights = np.asarray(nodes, dtype=float), np.asarray(weights, dtype=float)
    grid = np.asarray(grid, dtype=float)
    chunk = max(1, 2 ** 22 // max(nodes.size, 1))  # grid points per kernel block: 32 MB of float64 at most
    blocks = [np.exp(-0.5 * ((grid[i:i + chunk, None] - nodes[None, :]) / sigma) ** 2) @ weights
              for i in range(0, grid.size, chunk)]
    return np.concatenate(blocks) / (sigma * np.sqrt(2 * np.pi)) if blocks else np.zeros(0)
