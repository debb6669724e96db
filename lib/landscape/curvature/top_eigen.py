"""The top-k eigenpairs of a symmetric operator from one Lanczos run: the core of the eigenvector
directions (api/eigen.py). Pure: tensors in, tensors out.

The Lanczos run (lanczos_steps, full reorthogonalization) keeps its basis Q_k, so the Ritz vectors are
Q_k s for the eigenvectors s of T_k, at no extra product. The run stops when each of the k largest Ritz
pairs (theta, y) has a residual ||A y - theta y|| <= tol * max|theta| (ARPACK's test): then theta is
within that of an eigenvalue, and y within residual / gap of its eigenvector. Unlike lanczos_extremes'
certificate this does not prove that no larger eigenvalue is still hidden from the start vector; the
largest ones are what Lanczos finds first, and a trained network's top eigenvalues stand apart from the bulk.
"""
from typing import Callable, NamedTuple

import torch

from ..errors import CurvatureError
from .lanczos import BREAKDOWN, lanczos_steps, start_vector


class TopEigen(NamedTuple):
    values: torch.Tensor     # (k,) float64, largest first
    vectors: torch.Tensor    # (dim, k) unit Ritz vectors, column j for values[j], largest entry positive
    residuals: torch.Tensor  # (k,) ||A y - theta y|| of each pair (float64)
    steps: int               # Lanczos steps, one operator application each
    converged: bool          # the residual test met (or the Krylov space exhausted) within max_iter


def lanczos_top(matvec: Callable[[torch.Tensor], torch.Tensor], dim, k, *, tol=1e-3, max_iter=100, seed=0,
                dtype=torch.float64, device="cpu"):
    """The k largest (algebraic) eigenvalues of the symmetric operator `matvec` on R^dim and their unit
    eigenvectors, from one Lanczos run from a seeded Gaussian start (deterministic given seed).

    Stops once the k largest Ritz pairs have residuals <= tol * max|theta|, at max_iter steps
    (converged=False unless met), or at dim steps / a breakdown, where the Ritz pairs are exact. A start
    vector only reaches one vector of a repeated eigenvalue's eigenspace, so an eigenvalue of multiplicity
    m counts once here. Refuses (CurvatureError) a Krylov space of fewer than k dimensions (the operator
    has fewer than k distinct eigenvalues, e.g. it is zero). The basis is kept in `dtype` on `device`.
    """
    if not 1 <= k <= dim or max_iter < k or not tol > 0:
        raise ValueError(f"need 1 <= k <= dim, max_iter >= k, tol > 0; got k={k}, dim={dim}, max_iter={max_iter}, "
                         f"tol={tol}")
    v0 = start_vector(dim, seed, dtype, device)
    for state in lanczos_steps(matvec, v0, min(max_iter, dim), dtype=dtype, device=device):
        theta, vecs = state.ritz()
        radius = theta.abs().max().item()
        residuals = state.ritz_residuals(vecs)
        exact = state.steps == dim or state.beta_next <= BREAKDOWN * radius
        met = state.steps >= k and bool((residuals[-k:] <= tol * radius).all())
        if met or exact:
            break
    if state.steps < k:
        raise CurvatureError(f"the operator has only {state.steps} distinct eigenvalue(s) that a start vector "
                             f"reaches (is it zero?), fewer than the {k} eigenvectors asked for")
    top = torch.arange(state.steps - 1, state.steps - 1 - k, -1)  # T_k's eigenvalues come ascending
    vectors = _signed(_unit(_ritz_vectors(state.basis, vecs[:, top], dim, dtype, device)))
    return TopEigen(theta[top], vectors, residuals[top], state.steps, met or exact)


def _ritz_vectors(basis, coefficients, dim, dtype, device):
    """Q_k S, one basis vector at a time (stacking the basis would hold it twice)."""
    out = torch.zeros(dim, coefficients.shape[1], dtype=dtype, device=device)
    for q, row in zip(basis, coefficients.to(dtype=dtype, device=device)):
        out += q[:, None] * row[None, :]
    return out


def _unit(vectors):
    """Columns of norm 1: Q_k is orthonormal to rounding, so this only removes the rounding."""
    return vectors / vectors.norm(dim=0, keepdim=True)


def _signed(vectors):
    """Each column's sign fixed (its largest entry positive): an eigenvector's sign is arbitrary, and a
    fixed one makes the same directions on every run and device."""
    largest = vectors.abs().argmax(dim=0)
    signs = torch.sign(vectors[largest, torch.arange(vectors.shape[1])])
    return vectors * signs
