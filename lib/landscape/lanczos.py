"""Lanczos iteration on a symmetric operator: the Krylov core that the eigenvalue extremes, the
spectral density (stochastic Lanczos quadrature) and trace estimates share. Pure: tensors in, numbers out.

`lanczos_steps` yields the growing decomposition after every step, so each caller applies its own
stopping rule and every operator application (one per step) serves every quantity built on it.
"""
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
    krylov: object = None


def lanczos_extremes(matvec: Callable[[torch.Tensor], torch.Tensor], dim, *, tol=1e-3, max_iter=100,
                     seed=0, dtype=torch.float64, device='cpu'):
    """lambda_min and lambda_max of a symmetric operator from one Lanczos run.

    Stops when both extreme Ritz pairs have residual <= tol * max(|lambda_min|, |lambda_max|)
    (the spectral-radius estimate; |lambda_max| for a Hessian near a minimum): each Ritz value
    is then within that distance of an eigenvalue. Stops at max_iter steps (converged=False unless
    met), or at dim steps, where the Krylov space is everything and the Ritz values are exact.
    A breakdown (beta ~ 0: an invariant subspace) has zero residuals and so counts as met.
    A residual bounds the distance to *some* eigenvalue: as with ARPACK, a start vector nearly
    orthogonal to an extreme eigenvector can stop the run at the next eigenvalue (rare; see
    docs/bench_hessian.md).
    The basis is kept in `dtype` on `device` (dim * iters numbers); deterministic given seed.
    """
    if dim < 1 or max_iter < 1 or not tol > 0:
        raise ValueError(f"need dim >= 1, max_iter >= 1, tol > 0; got dim={dim}, max_iter={max_iter}, tol={tol}")
    v0 = start_vector(dim, seed, dtype, device)
    for state in lanczos_steps(matvec, v0, min(max_iter, dim), dtype=dtype, device=device):
        theta, vecs = state.ritz()
        res = state.ritz_residuals(vecs)
        lam_min, lam_max, res_min, res_max = theta[0].item(), theta[-1].item(), res[0].item(), res[-1].item()
        met = max(res_min, res_max) <= tol * max(abs(lam_min), abs(lam_max))
        if met:
            break
    step = state.steps
    exact = step == dim or state.beta_next == 0.0
    return EigResult(lam_min, lam_max, step, res_min, res_max, met or exact, step, krylov=state)
