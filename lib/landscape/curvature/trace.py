"""Stochastic trace estimates of a symmetric operator, with honest one-sigma error bars (pure).

`deflated_hutchinson` is the estimator the Hessian driver uses. It splits tr(H) along a subspace
Q (orthonormal columns) that a Lanczos run has already built, together with the products H Q it
already paid for:

    tr(H) = tr(Q^T H Q) + tr(P H P),   P = I - Q Q^T.

The first term is exact and free. The second is estimated with Hutchinson's Rademacher probes g
(samples (Pg)^T H (Pg), one product each). Why this beats Hutch++ here: Hutch++ (Meyer et al.,
2021) spends 2/3 of its budget on a one-step block sketch of the top eigenspace; the Lanczos run
of the extremes has built a better one (a Krylov space converges to the extreme eigenvectors) at
no extra cost, so the whole budget goes to the remainder, whose variance 2 ||P H P||_F^2 no
longer contains the outliers that dominate ||H||_F at a minimum. `hutchpp` is kept as the baseline.

The error bar is a standard error of the probes' mean (the exact part has none): the larger of the
samples' spread and the Rademacher variance bound 2 ||P H P||_F^2, estimated from the same products
(see _error_bar).

Blocks: for a diagonal block D (a 0/1 mask over the coordinates of one layer),
tr(D H) = sum_j (D q_j)^T (2 H q_j - Q Q^T H q_j) + E[(D g)^T P H P g]; the same probes and
products give every block's trace, and the blocks' estimates sum to the whole one.
"""
from typing import NamedTuple, Sequence

import torch


class TraceEstimate(NamedTuple):
    trace: float
    err: float  # one standard error of `trace`
    hvps: int  # operator applications spent here (the subspace's own products are not counted)
    group_trace: tuple = ()  # per block, in the order of `groups`
    group_err: tuple = ()


def rademacher(dim, seed, dtype=torch.float64, device="cpu"):
    """A seeded vector of +-1, drawn on the CPU so a seed means the same probe on any device."""
    gen = torch.Generator().manual_seed(int(seed))
    return (torch.randint(0, 2, (dim,), generator=gen) * 2 - 1).to(device=device, dtype=dtype)


def _error_bar(samples, squared_norms):
    """Standard error of the mean of `samples` (Rademacher quadratic forms g'Bg with B = A or A D).

    Var(g'Ag) = 2 (||A||_F^2 - sum_i A_ii^2) <= 2 ||A||_F^2 = 2 E||A g||^2 (and 2 ||D A||_F^2 for a
    block), and the products already give ||A g||^2: the bound, so estimated, is far steadier than the
    samples' own spread, which a few probes that miss a strong remaining direction can shrink (seen
    as 4-sigma misses when the Krylov space leaves only a few such directions). The larger of the two is used.
    """
    m = samples.shape[0]
    if m < 2:
        raise ValueError("a standard error needs at least 2 samples")
    spread = samples.var(dim=0, unbiased=True)
    bound = 2 * squared_norms.mean(0)
    return (torch.maximum(spread, bound) / m) ** 0.5


def _block_sums(values, groups):
    """Sum of `values` (length dim) over each (start, stop) block."""
    return torch.stack([values[start:stop].sum() for start, stop in groups])


def deflated_hutchinson(matvec, dim, samples, *, basis=(), products=(), groups: Sequence = (), seed=0,
                        dtype=torch.float64, device="cpu", block_matvec=None, per_pass=1):
    """Trace of the operator: exact on span(basis), Hutchinson with `samples` probes on the rest.

    basis: orthonormal vectors (e.g. a Lanczos basis; may be empty); products: matvec of each.
    groups: (start, stop) coordinate blocks whose diagonal-block traces are wanted as well.
    The probes are seeded by `seed`; samples >= 2 so that the error bar exists.
    block_matvec ((m, dim) -> (m, dim), e.g. blocks.block_products) takes `per_pass` probes at a time;
    each probe's numbers are those of its own product (default: matvec per probe).
    """
    if samples < 2:
        raise ValueError(f"the trace needs at least 2 probes for an error bar; got {samples}")
    if len(basis) != len(products):
        raise ValueError(f"{len(basis)} basis vectors but {len(products)} products")
    blocks = list(groups) or [(0, dim)]
    q = torch.stack([b.to(device, dtype) for b in basis], 1) if len(basis) else torch.zeros(dim, 0, dtype=dtype,
                                                                                            device=device)
    hq = torch.stack([p.to(device, dtype) for p in products], 1) if len(products) else torch.zeros_like(q)
    exact_diag = (q * (2 * hq - q @ (q.T @ hq))).sum(1)  # diag of (Q Q^T H + P H Q Q^T), per coordinate
    exact = _block_sums(exact_diag, blocks)

    def project(v):
        return v - q @ (q.T @ v)
    block_matvec = block_matvec or (lambda rows: torch.stack([matvec(v) for v in rows]))
    per_block, block_norms, norms = [], [], []
    for start in range(0, samples, max(1, per_pass)):
        probes = [rademacher(dim, seed + i, dtype, device) for i in range(start, min(samples, start + per_pass))]
        for g, hg in zip(probes, block_matvec(torch.stack([project(g) for g in probes]))):
            w = project(hg.to(device, dtype))
            per_block.append(_block_sums(g * w, blocks))
            block_norms.append(_block_sums(w * w, blocks))
            norms.append((w * w).sum())
    per_block = torch.stack(per_block)  # (samples, blocks)
    block_trace = exact + per_block.mean(0)
    block_err = _error_bar(per_block, torch.stack(block_norms))
    totals = per_block.sum(1)
    trace = exact.sum().item() + totals.mean().item()
    err = _error_bar(totals, torch.stack(norms)).item()
    if groups:
        return TraceEstimate(trace, err, samples, tuple(block_trace.tolist()), tuple(block_err.tolist()))
    return TraceEstimate(trace, err, samples)


def hutchpp(matvec, dim, budget, *, seed=0, dtype=torch.float64, device="cpu"):
    """Hutch++ (Meyer, Musco, Musco, Woodruff 2021) with `budget` products: the baseline to beat.

    A third of the budget sketches S, a third computes H Q for Q = orth(H S) (exact part), and the
    rest are Hutchinson probes of the deflated remainder. Returns the estimate only.
    """
    k = budget // 3
    if k < 1 or budget - 2 * k < 1:
        raise ValueError(f"Hutch++ needs a budget of at least 3 products; got {budget}")
    sketch = torch.stack([matvec(rademacher(dim, seed + i, dtype, device)).to(device, dtype) for i in range(k)], 1)
    q, _ = torch.linalg.qr(sketch)
    hq = torch.stack([matvec(q[:, j]).to(device, dtype) for j in range(k)], 1)
    exact = (q * hq).sum().item()
    rest = []
    for i in range(budget - 2 * k):
        g = rademacher(dim, seed + k + i, dtype, device)
        u = g - q @ (q.T @ g)
        rest.append(torch.dot(u, matvec(u).to(device, dtype)).item())
    return exact + sum(rest) / len(rest)
