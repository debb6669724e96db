"""What landscape.hessian_map needs besides the grid job: the plan of quantities, their file layout
and resume settings, the HVP batches, and the per-point evaluation.

The choices here are validated values (no flags): plot_hessian_eig.py parses its flags into them.
"""
import torch

from .curvature import CurvaturePlan, curvature_shapes, layer_blocks, point_curvature
from .devices import strict_fp32
from .errors import LandscapeError
from .hessian import HVP_METHODS, PARAM_SUBSETS, mean_loss_hvp
from .memory import hessian_batch_size, lanczos_basis_plan
from .mpi import ranks_per_gpu
from .runner import rank0_first

DEFAULT_SAMPLES = 5000  # a fixed seeded subset, as in the paper's Hessian maps: every HVP passes over it all
TRACE_SAMPLES = 30  # default Hutchinson probes per point; accuracy in README "Trace maps"
DENSITY = (3, 40)  # default probes, steps of the spectral density, as PyHessian's 1 probe of 100 costs


class CurvatureChoiceError(LandscapeError):
    pass


def make_plan(model, names, tol=1e-3, max_iter=100, seed=0, trace=None, density=None, layers=False):
    """A CurvaturePlan; trace: probes (>= 2) or None; density: (probes >= 1, steps >= 2) or None;
    layers: also each layer's block (with the trace, at TRACE_SAMPLES probes unless given)."""
    if not (isinstance(tol, (int, float)) and tol > 0) or not (isinstance(max_iter, int) and max_iter >= 1):
        raise CurvatureChoiceError(f"tol={tol!r}, max_iter={max_iter!r}: need tol > 0 and max_iter a whole number >= 1")
    if trace is not None and (isinstance(trace, bool) or not isinstance(trace, int) or trace < 2):
        raise CurvatureChoiceError(f"trace={trace!r}: give the number of probes per point, an integer >= 2 "
                                   f"(two or more give an error bar)")
    if density is not None and not (isinstance(density, (tuple, list)) and len(density) == 2
                                    and all(isinstance(k, int) and not isinstance(k, bool) for k in density)):
        raise CurvatureChoiceError(f"density={density!r}: give (probes, steps), two whole numbers, e.g. (3, 40)")
    probes, steps = density if density is not None else (None, None)
    if density is not None and not (probes >= 1 and steps >= 2):
        raise CurvatureChoiceError(f"density={density!r}: give (probes, steps) with probes >= 1 and steps >= 2")
    if trace is None and layers:
        trace = TRACE_SAMPLES
    params = dict(model.named_parameters())
    blocks = layer_blocks(names, [params[n].numel() for n in names]) if layers else ()
    return CurvaturePlan(tol, max_iter, seed, trace, probes, steps, blocks)


def check_choices(params, hvp):
    if params not in PARAM_SUBSETS:
        raise CurvatureChoiceError(f"params={params!r} is not one of {', '.join(PARAM_SUBSETS)}")
    if hvp not in HVP_METHODS:
        raise CurvatureChoiceError(f"hvp={hvp!r} is not one of {', '.join(HVP_METHODS)}")


def plan_settings(plan):
    """What a resume must share; None for what is off, so files made before these options still resume."""
    return dict(tol=plan.tol, max_iter=plan.max_iter, seed=plan.seed, trace_samples=plan.trace_samples,
                density=f"{plan.density_probes}/{plan.density_steps}" if plan.density_probes else None,
                hessian_groups=[block[0] for block in plan.layers] or None)


def quantity_layout(plan, dim):
    """(quantity names in storage order, {name: trailing shape}, layer names) of the plan."""
    shapes = curvature_shapes(plan, dim)
    return tuple(shapes), shapes, [block[0] for block in plan.layers]


def sample_subset(x, y, samples, seed):
    """A fixed seeded subset of `samples` rows (all of them for None or more than there are)."""
    if samples is not None and samples < len(x):
        keep = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))[:samples].to(x.device)
        x, y = x[keep], y[keep]
    return x, y


def hessian_dim(model, names):
    """How many coordinates the Hessian over `names` has."""
    wanted = set(names)
    return sum(p.numel() for n, p in model.named_parameters() if n in wanted)


def hvp_batch(world, model, names, loss, x, y, batch, method, device):
    """The HVP batch: as given, or (auto) the largest that fits, probed by rank 0 for all ranks."""
    if batch != "auto":
        return int(batch)
    dim = hessian_dim(model, names)
    sharing = ranks_per_gpu(world, device)
    batch = rank0_first(world, lambda: hessian_batch_size(
        lambda b: mean_loss_hvp(model, names, loss, b, method=method), x, y, dim, device, sharing))
    if world.rank == 0:
        print(f"[hessian] HVP batch size {batch} (auto)", flush=True)
    return batch


def point_evaluator(model, names, setter, grid, batches, loss, plan, quantities, world, device, method):
    """evaluate_point(index) -> the plan's quantities at that grid point, in `quantities` order."""
    dim = hessian_dim(model, names)
    basis = lanczos_basis_plan(dim, plan.max_iter, device, ranks_per_gpu(world, device), world.local_size)
    hvp = mean_loss_hvp(model, names, loss, batches, method=method)
    layer_ops = tuple(mean_loss_hvp(model, list(block[3]), loss, batches, method=method) for block in plan.layers)

    def evaluate_point(index):
        setter.set(*grid.coords(index))
        with strict_fp32():  # TF32 noise (~1e-3) would swamp lambda_min at a minimum
            values = point_curvature(hvp, dim, plan, layer_ops, device=basis.device, dtype=basis.dtype)
        return tuple(values[name] for name in quantities)
    return evaluate_point

