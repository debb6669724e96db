"""landscape.hessian_map: the mean-loss Hessian's extremes (and, if asked, its trace, spectral density and
per-layer values) at every point of a grid, as plot_hessian_eig.py computes them (it is this function
behind flags); or the same quantities of the generalized Gauss–Newton matrix or the empirical Fisher
(curvature/gauss_newton.py). Products run in strict fp32; the Lanczos basis lives where memory allows.
"""
import sys
from dataclasses import dataclass

import torch

from ..curvature.gauss_newton import curvature_operator
from ..curvature.hvp import hessian_param_names
from ..curvature.plan import DEFAULT_SAMPLES, check_choices, hessian_dim, make_plan, plan_settings, sample_subset
from ..curvature.point import curvature_shapes, point_curvature
from ..files.results import hessian_layout
from ..files.resume import stored_settings
from ..inputs.first_batch import FiniteBatches, check_data, check_model, model_errors
from ..inputs.user import (
    check_batch_size,
    check_identifiable,
    check_reiterable,
    check_samples,
    is_pair,
    on_device_pair,
    probe,
    summed_loss,
)
from ..job.batch import HESSIAN_CPU_BATCH, choose_hvp_batch
from ..job.memory import kept_graph_budget, lanczos_basis_plan
from ..job.mpi import rank0_first, ranks_per_gpu
from ..job.run import GridJob, JobOptions
from ..space.evaluate import tensor_batches
from ..space.precision import strict_fp32
from .session import identity, model_in_call, provenance, run_to_result, settings_function


@dataclass(frozen=True)
class MeanLossHessian:
    """The Hessian of the mean loss over the parameters `names` of `model` (or, by `curvature`, its
    generalized Gauss–Newton matrix or empirical Fisher): its product operators over any batches, for
    all of `names` or for one block of them (a layer)."""
    model: torch.nn.Module
    names: tuple
    loss: object
    method: str
    curvature: str = "hessian"

    @property
    def dim(self):
        return hessian_dim(self.model, self.names)

    def operator(self, batches, names=None):
        return curvature_operator(self.curvature, self.model, list(names or self.names), self.loss, batches,
                                  method=self.method)


def hessian_map(model, data, loss=None, directions=None, x=(-1.0, 1.0, 51), y=None, path=None, tol=1e-3,
                max_iter=100, samples=DEFAULT_SAMPLES, params="reference", trace=None, density=None, layers=False,
                hvp_batch="auto", hvp="double_backward", seed=0, device=None, overwrite=False, settings=None,
                progress_secs=10.0, job=None, curvature="hessian"):
    """λmin and λmax of the mean-loss Hessian (and, if asked, its trace, spectral density and per-layer
    values) at every point of the grid, as plot_hessian_eig.py computes them.

    data: an (inputs, targets) pair (a fixed subset of `samples` of them, seeded by `seed`; None: all,
    cut into batches of `hvp_batch`: 'auto' times products among the sizes that fit, keeps up to 256 samples on a
    CPU in one batch, and reuses a resumed file's), or a re-iterable of batches, used whole. loss: as for surface().
    tol: accuracy of λmin and λmax relative to max|λ|; params: 'reference' (weights with more than one
    dimension), 'all', or a list of glob patterns of parameter names: the Hessian over exactly those (e.g.
    ['transformer.h.*.attn.*'], ['*lora*']; a tied weight counts once). trace: Hutchinson probes per point;
    density: (probes, steps) of stochastic Lanczos quadrature; layers: per-layer blocks too. seed: the
    subset and the Lanczos start vectors. curvature: which matrix every quantity is of: 'hessian' (the
    default), 'ggn' (the generalized Gauss–Newton matrix Jᵀ ∇²_z ℓ J of the logits z: positive
    semi-definite for a loss convex in the logits) or 'ef' (the empirical Fisher Σ g_i g_iᵀ of the
    per-sample gradients); both of those take the loss as a function of the model's logits, and `hvp`
    chooses how their products take J v: reverse-over-reverse or forward mode (curvature/gauss_newton.py).
    A resume must use the same curvature.
    x, y, path, settings, job: as for surface(). Returns a Result with max_eig, min_eig, eig_converged (per
    point: the Lanczos run met tol within max_iter steps), ...; rank 0 prints one warning line when some
    finished points did not converge (Result.unconverged).
    """
    check_choices(tol, max_iter, trace, density, params, hvp, seed, curvature)
    check_batch_size(hvp_batch, "hvp_batch")
    check_samples(samples)
    check_identifiable(data, path, settings)
    check_data(data)
    check_model(model)  # before its parameters are listed
    hessian = MeanLossHessian(model, tuple(hessian_param_names(model, params)), summed_loss(loss), hvp, curvature)
    plan = make_plan(model, hessian.names, tol, max_iter, seed, trace, density, layers)
    with model_in_call(model, directions, x, y, device) as call:
        probe(model, data, loss, hessian.loss, call.device, curvature)  # a bad model or loss fails before any file
        batches, size = _hessian_batches(call, hessian, data, samples, hvp_batch, seed, None if overwrite else path)
        layout = hessian_layout(call.grid, curvature_shapes(plan, hessian.dim), [block[0] for block in plan.layers])
        settings_of = settings_function(settings, lambda: identity(call, model, data, loss),
                                        hessian_samples=samples if is_pair(data) else "all",
                                        hessian_params=params, curvature=curvature,
                                        **plan_settings(plan))  # patterns: a JSON list
        grid_job = GridJob(None, layout, _point_evaluator(call, hessian, batches, plan, layout.quantities),
                           settings_of, dict(provenance(call, None), hvp_batch=size), call.dir_file, overwrite,
                           max_chunk=1,  # slow points
                           progress_secs=progress_secs)
        result = run_to_result(call, path, grid_job, job or JobOptions())
        if call.world.rank == 0:
            warn_unconverged(result, tol, max_iter)
        return result


def warn_unconverged(result, tol, max_iter):
    """One line when finished points of the map hold λmin/λmax that did not converge (Result.unconverged)."""
    unconverged, done = result.unconverged, result.done["hessian"]
    count = 0 if unconverged is None else int(unconverged.sum())
    if count:
        print(f"warning: {count} of {int(done.sum())} finished points did not converge within max_iter={max_iter} "
              f"(--max_iter {max_iter}) to tol={tol:g} (--tol {tol:g}): their λmin/λmax may be off by more than "
              f"tol·max|λ|; they are marked in eig_converged and in the plots (a larger max_iter needs a new "
              f"results file)", file=sys.stderr, flush=True)


def _hessian_batches(call, hessian, data, samples, batch, seed, resumed):
    """(batches every product passes over, their size or None): a tensor pair's fixed subset in HVP batches,
    or the user's batches. resumed: the results file whose recorded batch an 'auto' resume reuses, or None."""
    if not is_pair(data):
        return FiniteBatches(check_reiterable(data)), None  # used as given, as by surface(); probe() refuses empty
    inputs, targets = sample_subset(*on_device_pair(data, call.device), samples, seed)
    size = _choose_hvp_batch(call, hessian, inputs, targets, batch, resumed)
    return tensor_batches(inputs, targets, size), size


def _choose_hvp_batch(call, hessian, inputs, targets, batch, resumed):
    """The HVP batch: as given; or (auto) the one the resumed file's first run recorded (the batch sets the
    sums' rounding), HESSIAN_CPU_BATCH on a CPU for a file from before batches were recorded, else the
    fastest product among the sizes that fit, timed by rank 0 for all ranks (job/batch.py)."""
    if batch != "auto":
        return int(batch)
    sharing = ranks_per_gpu(call.world, call.device)

    def choose():
        stored = None if resumed is None else stored_settings(resumed, "hessian", "provenance")
        if stored is not None and stored.get("hvp_batch"):
            return stored["hvp_batch"], f"reused from {resumed}"
        if stored is not None and call.device.type != "cuda":
            return min(HESSIAN_CPU_BATCH, len(targets)), f"auto's batch when {resumed} was made"
        with model_errors(hessian.model, during="in the HVP batch-size probe"):
            choice = choose_hvp_batch(hessian.operator, inputs, targets, hessian.dim, call.device, sharing)
        return choice.size, choice.note()
    batch, how = rank0_first(call.world, choose)
    if call.world.rank == 0:
        print(f"[hessian] HVP batch size {batch} (auto: {how})", flush=True)
    return batch


def _point_evaluator(call, hessian, batches, plan, quantities):
    """evaluate_point(index) -> the plan's quantities at that grid point, in `quantities` order."""
    dim = hessian.dim
    basis = lanczos_basis_plan(dim, plan.max_iter, call.device, ranks_per_gpu(call.world, call.device),
                               call.world.local_size)
    hvp = hessian.operator(batches)
    layer_ops = tuple(hessian.operator(batches, block[3]) for block in plan.layers)
    keep = kept_graph_budget(call.device, dim, plan.max_iter + (plan.density_width(dim) if plan.density_probes else 0),
                             call.world.local_size)

    def evaluate_point(index):
        call.setter.set(*call.grid.coords(index))
        with strict_fp32():  # TF32 noise (~1e-3) would swamp lambda_min at a minimum
            values = point_curvature(hvp, dim, plan, layer_ops, device=basis.device, dtype=basis.dtype,
                                     keep_bytes=keep)
        return tuple(values[name] for name in quantities)
    return evaluate_point
