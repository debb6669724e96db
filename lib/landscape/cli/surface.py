"""plot_surface.py: loss and accuracy over a 1D or 2D grid of filter-normalized directions."""
import os
import sys

from ..errors import DataError, DirectionError
from ..evaluate import auto_batch_size, evaluate, loss_function
from ..render import render_surface
from ..surfile import KINDS, TEST_QUANTITIES
from ..trajectory import render_path_overlay
from .args import grid_parser
from .context import build_context, data_digest, input_settings, rank0_first
from .refining import add_refine_args, make_planner
from .run import guarded_main, run_job


def parser():
    p = grid_parser(__doc__)
    p.add_argument("--test", action="store_true", help="also evaluate the test set (test_loss, test_acc)")
    p.add_argument("--proj_file", help="with --plot: draw this projected optimizer path over the contours")
    add_refine_args(p, KINDS["surface"] + TEST_QUANTITIES)
    return p


def render(path, args):
    saved = render_surface(path, args)
    if args.proj_file:
        saved += render_path_overlay(path, args.proj_file, args)
    return saved


def surface_evaluator(ctx, args, world):
    loss_sum = loss_function(args.loss_name)
    sets = [ctx.train] + ([ctx.test] if args.test else [])
    batch = args.batch_size
    if batch == "auto":  # rank 0 times it and every rank uses its choice, so all sum in the same order
        batch = rank0_first(world, lambda: auto_batch_size(ctx.model, ctx.train.x, args.precision))
        if world.rank == 0:
            print(f"[surface] evaluation batch size {batch} (--batch_size auto)", flush=True)
    ctx.eval_batch = batch

    def evaluate_point(index):
        ctx.setter.set(*ctx.grid.coords(index))
        values = []
        for data in sets:
            values += evaluate(ctx.model, data.x, data.y, loss_sum, batch, args.precision)
        return tuple(values)
    return evaluate_point


def run(args, world, stop):
    ctx = build_context(args, world)
    if args.test and ctx.test is None:
        raise DataError(f"--test asks for the test set but --dataset {args.dataset} has none")
    quantities = KINDS["surface"] + (TEST_QUANTITIES if args.test else ())
    if args.proj_file and not (os.path.exists(args.proj_file) and ctx.grid.is_2d):
        raise DirectionError(f"--proj_file {args.proj_file}: the path is drawn over a 2D grid's contours; "
                             f"{'give --y' if os.path.exists(args.proj_file) else 'no such file'}")

    planner = make_planner(args, ctx.grid, quantities)

    def settings():
        return dict(input_settings(args, ctx), test=args.test,
                    test_data_sha256=data_digest(ctx.test) if args.test else None)
    return run_job(args, world, ctx, "surface", quantities, surface_evaluator(ctx, args, world), settings, stop, render,
                   planner)


def main(argv=None):
    return guarded_main(run, parser().parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
