"""plot_hessian_eig.py: λmin and λmax of the mean-loss Hessian over a grid, and |λmin/λmax| maps."""
import sys

import torch

from ..devices import strict_fp32
from ..errors import LossError
from ..evaluate import loss_function
from ..hessian import HVP_METHODS, PARAM_SUBSETS, hessian_param_names, mean_loss_hvp
from ..imports import import_callable
from ..curvature import point_curvature
from ..memory import hessian_batch_size, lanczos_basis_plan
from ..mpi import ranks_per_gpu
from ..runner import rank0_first
from .args import batch_size, hessian_parser, positive_float, positive_int
from .curvature_args import add_curvature_args, curvature_layout, curvature_plan, curvature_settings, layer_operators
from .context import build_context, input_settings
from .render import plot_hessian
from .run import guarded_main, run_job


DEFAULT_HESSIAN_SAMPLES = 5000


def sample_count(text):
    """--hessian_samples: a positive count, or 'all' (None: every training sample)."""
    return None if text == "all" else positive_int(text)


def parser():
    p = hessian_parser(__doc__)
    g = p.add_argument_group("hessian")
    g.add_argument("--tol", type=positive_float, default=1e-3, help="accuracy of λmin and λmax, relative to max|λ| (with probability >= 99%%)")
    g.add_argument("--max_iter", type=positive_int, default=100, help="Lanczos steps at most per point")
    g.add_argument("--hessian_samples", type=sample_count, default=DEFAULT_HESSIAN_SAMPLES,
                   help="a fixed seeded subset of N training samples (default %(default)s, as in the paper's Hessian "
                        "maps: every HVP passes over them all); 'all' for the whole training set")
    g.add_argument("--hessian_params", default="reference", choices=PARAM_SUBSETS,
                   help="reference: parameters with more than one dimension; all: every parameter")
    g.add_argument("--hessian_batch", type=batch_size, default="auto",
                   help="batch size of each HVP pass (auto: 256 on CPU; on GPU the largest that fits, probed)")
    g.add_argument("--hvp", default="double_backward", choices=HVP_METHODS,
                   help="how HVPs are taken: double backward (measured faster) or torch.func forward-over-reverse")
    add_curvature_args(g)
    return p


def hessian_batches(data, samples, batch, seed):
    x, y = data.x, data.y
    if samples is not None and samples < len(x):
        keep = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))[:samples].to(x.device)
        x, y = x[keep], y[keep]
    return [(x[i:i + batch], y[i:i + batch]) for i in range(0, len(x), batch)]


def mean_loss(args):
    """The batch-mean loss the Hessian is taken of: --loss (a user's) or --loss_name."""
    if args.loss is not None:
        return import_callable(args.loss, LossError, "--loss")
    total = loss_function(args.loss_name)
    return lambda logits, y: total(logits, y) / len(y)


def hessian_evaluator(ctx, args, world, plan, quantities):
    """evaluate_point(index) -> the plan's quantities at that grid point, in `quantities` order."""
    names = hessian_param_names(ctx.model, args.hessian_params)
    params = dict(ctx.model.named_parameters())
    dim = sum(params[n].numel() for n in names)
    # issue 15 hooks: a probed HVP batch (rank 0 probes, all ranks use it) and the Lanczos basis placement
    sharing = ranks_per_gpu(world, ctx.device)
    batch = args.hessian_batch
    if batch == "auto":
        def hvp_of(b):
            return mean_loss_hvp(ctx.model, names, mean_loss(args), b, method=args.hvp)
        batch = rank0_first(world, lambda: hessian_batch_size(hvp_of, ctx.train.x, ctx.train.y, dim, ctx.device,
                                                              sharing))
        if world.rank == 0:
            print(f"[hessian] HVP batch size {batch} (--hessian_batch auto)", flush=True)
    basis = lanczos_basis_plan(dim, args.max_iter, ctx.device, sharing, world.local_size)
    batches = hessian_batches(ctx.train, args.hessian_samples, batch, args.seed)
    hvp = mean_loss_hvp(ctx.model, names, mean_loss(args), batches, method=args.hvp)
    layer_ops = layer_operators(plan, lambda subset: mean_loss_hvp(ctx.model, subset, mean_loss(args), batches,
                                                                   method=args.hvp))

    def evaluate_point(index):
        ctx.setter.set(*ctx.grid.coords(index))
        with strict_fp32():  # TF32 noise (~1e-3) would swamp lambda_min at a minimum
            values = point_curvature(hvp, dim, plan, layer_ops, device=basis.device, dtype=basis.dtype)
        return tuple(values[name] for name in quantities)
    return evaluate_point


def run(args, world, stop):
    plan_of = curvature_plan(args)  # checks the curvature flags before any data is loaded
    ctx = build_context(args, world)
    names = hessian_param_names(ctx.model, args.hessian_params)
    plan = plan_of(ctx.model, names)
    params = dict(ctx.model.named_parameters())
    quantities, layout = curvature_layout(plan, sum(params[n].numel() for n in names))
    def settings():  # the seed picks the sample subset and the Lanczos start vector
        return dict(input_settings(args, ctx), tol=args.tol, max_iter=args.max_iter, seed=args.seed,
                    hessian_samples=args.hessian_samples, hessian_params=args.hessian_params,
                    **curvature_settings(plan))
    evaluate_point = hessian_evaluator(ctx, args, world, plan, quantities)
    return run_job(args, world, ctx, "hessian", quantities, evaluate_point, settings, stop, plot_hessian,
                   max_chunk=1, layout=layout)  # slow points: one at a time, so ranks end a grid together


def main(argv=None):
    return guarded_main(run, parser().parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
