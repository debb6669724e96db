"""landscape.eigen_directions: the top eigenvectors of the mean-loss curvature as directions, so a surface
shows the landscape where it curves most (plot_surface.py --eig_directions is this function behind flags).

The products are hessian_map's (the same operator, sample subset and HVP batch at a seed); the top-k
Ritz pairs come from one Lanczos run (curvature/top_eigen.py).
"""
import sys
from dataclasses import dataclass

import torch

from ..curvature.gauss_newton import CURVATURES
from ..curvature.hvp import hessian_param_names
from ..curvature.plan import DEFAULT_SAMPLES, check_choices
from ..curvature.top_eigen import lanczos_top
from ..errors import ChoiceError, CurvatureError, DirectionError
from ..files.directions import Directions
from ..inputs.first_batch import check_data, check_model
from ..inputs.user import check_batch_size, check_samples, is_pair, probe, summed_loss
from ..job.memory import lanczos_basis_plan
from ..job.mpi import World
from ..space.directions import named_entries
from ..space.model_io import qualified_name
from ..space.precision import strict_fp32
from ..version import __version__
from .curvature_map import MeanLossHessian, _hessian_batches
from .session import evaluation_mode

EIG_TOL = 1e-3  # residual of each Ritz pair relative to max|θ|: its direction is within tol·max|λ|/gap


def curvature_operator(model, names, loss_total, curvature):
    """The operator over the parameters `names` whose eigenvectors are drawn (.dim, .operator(batches)):
    the Hessian, the generalized Gauss-Newton matrix or the empirical Fisher of the mean loss."""
    return MeanLossHessian(model, tuple(names), loss_total, "double_backward", curvature)


@dataclass(frozen=True)
class _OneRank:
    """What _hessian_batches reads of a Call: this process alone (no collective runs: every rank that
    calls eigen_directions computes the same directions by itself) and its device."""
    world: World
    device: torch.device


def eigen_directions(model, data, loss=None, k=2, curvature="hessian", params="reference", samples=DEFAULT_SAMPLES,
                     seed=0, tol=EIG_TOL, max_iter=100, hvp_batch="auto", device=None):
    """The k (1 or 2) top unit eigenvectors of the mean-loss Hessian over the parameters `params`, as
    Directions (x the largest eigenvalue's, y the second's) with .values, the eigenvalues, largest first.

    data, loss, samples, seed, params, hvp_batch: as for hessian_map (seed also draws the Lanczos start
    vector). tol: each eigenpair's residual ||H v - λ v|| <= tol·max|λ| (stops at max_iter steps, with a
    warning, if not met). curvature: 'hessian', 'ggn' or 'ef' (see hessian_map). device: where the
    products run (None: where the model is); the model comes back as it was.

    The directions are over the model's parameters (dir_type 'weights'), zero outside `params`, and are
    NOT filter-normalized: each is a unit vector, so a grid coordinate is the Euclidean distance moved along
    it, and the 1D surface's second derivative at 0 is λ itself.
    """
    _check_choices(k, curvature, tol, max_iter, params, seed)
    check_batch_size(hvp_batch, "hvp_batch")
    check_samples(samples)
    check_data(data)
    check_model(model)  # before its parameters are listed
    names = hessian_param_names(model, params)
    loss_total = summed_loss(loss)
    curvature_of = curvature_operator(model, names, loss_total, curvature)
    alone = World(None)
    with evaluation_mode(model, device, alone) as target:
        probe(model, data, loss, loss_total, target, curvature)  # a bad model or loss fails before any product
        batches, _ = _hessian_batches(_OneRank(alone, target), curvature_of, data, samples, hvp_batch, seed, None)
        basis = lanczos_basis_plan(curvature_of.dim, max_iter, target)
        with strict_fp32():  # TF32 noise (~1e-3) would blur the eigenvectors
            top = lanczos_top(_finite(curvature_of.operator(batches)), curvature_of.dim, k, tol=tol,
                              max_iter=max_iter, seed=seed, dtype=basis.dtype, device=basis.device)
    if not top.converged:
        print(f"warning: the eigen directions did not converge within max_iter={max_iter} Lanczos steps to "
              f"tol={tol:g}: residuals {', '.join(f'{r:.3g}' for r in top.residuals.tolist())} against "
              f"|λ| up to {top.values.abs().max().item():.4g}; they are approximate eigenvectors", file=sys.stderr,
              flush=True)
    made = [_as_entries(model, names, top.vectors[:, j]) for j in range(k)]
    attrs = dict(names=[name for name, _ in named_entries(model, "weights")], dir_type="weights",
                 model=qualified_name(model), directions="eig", curvature=curvature,
                 params=params if isinstance(params, str) else list(params),
                 samples=samples if is_pair(data) and samples is not None else "all", seed=seed, tol=tol,
                 max_iter=max_iter, eig_values=top.values.tolist(), eig_residuals=top.residuals.tolist(),
                 eig_steps=top.steps, eig_converged=top.converged, landscape_version=__version__)
    return Directions(made[0], made[1] if k == 2 else None, attrs)


def _check_choices(k, curvature, tol, max_iter, params, seed):
    if k not in (1, 2) or isinstance(k, bool):
        raise DirectionError(f"k={k!r}: directions hold x and y, so give k=1 or k=2 eigenvectors")
    if curvature not in CURVATURES:
        raise ChoiceError(f"curvature={curvature!r} is not one of {', '.join(CURVATURES)}")
    check_choices(tol, max_iter, params=params, seed=seed)
    if max_iter < k:
        raise CurvatureError(f"max_iter={max_iter} Lanczos steps cannot give k={k} eigenvectors: give max_iter >= k")


def _finite(matvec):
    """The operator, refusing a product that is not finite (the loss is not finite near the model)."""
    def checked(v):
        out = matvec(v)
        if not bool(torch.isfinite(out).all()):
            raise CurvatureError("a Hessian-vector product at the model's parameters is not finite: the loss "
                                 "is not twice differentiable there in floating point; no eigen directions")
        return out
    return checked


def _as_entries(model, names, vector):
    """A flat vector over the parameters `names` (in their order) as a direction of dir_type 'weights':
    one float32 tensor per entry of named_entries, zero on the entries outside `names`. float32, as a
    direction file holds them, so directions in memory and saved ones give the same surface."""
    params = dict(model.named_parameters())
    pieces = dict(zip(names, vector.detach().to("cpu", torch.float32).split([params[n].numel() for n in names])))
    return [pieces[name].reshape(entry.shape).clone() if name in pieces else torch.zeros(entry.shape)
            for name, entry in named_entries(model, "weights")]
