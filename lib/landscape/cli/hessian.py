"""plot_hessian_eig.py: λmin and λmax of the mean-loss Hessian over a grid, and |λmin/λmax| maps."""
import sys

import torch

from ..curvature import point_curvature
from ..evaluate import loss_function
from ..hessian import HVP_METHODS, PARAM_SUBSETS, hessian_param_names, mean_loss_hvp
from ..render import render_hessian
from .args import grid_parser, positive_float, positive_int
from .curvature_args import add_curvature_args, curvature_layout, curvature_plan, curvature_settings, layer_operators
from .context import build_context, input_settings
from .run import guarded_main, run_job


def parser():
    p = grid_parser(__doc__)
    g = p.add_argument_group("hessian")
    g.add_argument("--tol", type=positive_float, default=1e-3, help="Ritz residual bound, relative to |λmax|")
    g.add_argument("--max_iter", type=positive_int, default=100, help="Lanczos steps at most per point")
    g.add_argument("--hessian_samples", type=positive_int, default=None,
                   help="use a fixed random subset of N training samples (default: all)")
    g.add_argument("--hessian_params", default="reference", choices=PARAM_SUBSETS,
                   help="reference: parameters with more than one dimension; all: every parameter")
    g.add_argument("--hessian_batch", type=positive_int, default=256, help="batch size of each HVP pass")
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


def mean_loss(name):
    total = loss_function(name)
    return lambda logits, y: total(logits, y) / len(y)


def hessian_evaluator(ctx, args, plan, names, hvp_of):
    """evaluate_point(index) -> the plan's quantities at that grid point, in `names` order."""
    hvp = hvp_of(hessian_param_names(ctx.model, args.hessian_params))
    layer_ops = layer_operators(plan, hvp_of)

    def evaluate_point(index):
        ctx.setter.set(*ctx.grid.coords(index))
        values = point_curvature(hvp, hvp.dim, plan, layer_ops, device=ctx.device)
        return tuple(values[name] for name in names)
    return evaluate_point


def run(args, world, stop):
    plan_of = curvature_plan(args)  # checks the curvature flags before any data is loaded
    ctx = build_context(args, world)
    batches = hessian_batches(ctx.train, args.hessian_samples, args.hessian_batch, args.seed)
    def hvp_of(names):
        return mean_loss_hvp(ctx.model, names, mean_loss(args.loss_name), batches, method=args.hvp)
    names = hessian_param_names(ctx.model, args.hessian_params)
    plan = plan_of(ctx.model, names)
    quantities, layout = curvature_layout(plan, hvp_of(names).dim)
    def settings():  # the seed picks the sample subset and the Lanczos start vector
        return dict(input_settings(args, ctx), tol=args.tol, max_iter=args.max_iter, seed=args.seed,
                    hessian_samples=args.hessian_samples, hessian_params=args.hessian_params,
                    **curvature_settings(plan))
    return run_job(args, world, ctx, "hessian", quantities, hessian_evaluator(ctx, args, plan, quantities, hvp_of),
                   settings, stop, render_hessian, layout=layout)


def main(argv=None):
    return guarded_main(run, parser().parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
