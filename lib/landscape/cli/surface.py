"""plot_surface.py: loss and accuracy over a 1D or 2D grid of filter-normalized directions."""
import os
import sys

from ..devices import check_precision_applies
from ..errors import DataError, DirectionError, LossError
from ..evaluate import auto_batch_size, evaluate, loss_function, mean_loss_total, probe_loss
from ..imports import import_callable
from ..mpi import ranks_per_gpu
from ..render import render_surface
from ..runner import rank0_first
from ..surfile import KINDS, TEST_QUANTITIES, stored_settings
from ..trajectory import render_path_overlay
from .args import levels_of, surface_parser
from .context import build_context, data_digest, input_settings
from .refining import add_refine_args, make_planner
from .render import render_options
from .run import guarded_main, run_job


def parser():
    p = surface_parser(__doc__)
    p.add_argument("--test", action="store_true", help="also evaluate the test set (test_loss, test_acc)")
    p.add_argument("--proj_file", help="with --plot: draw this projected optimizer path over the contours")
    add_refine_args(p, KINDS["surface"] + TEST_QUANTITIES)
    return p


def render(path, args):
    saved = render_surface(path, render_options(args))
    if args.proj_file:
        saved += render_path_overlay(path, args.proj_file, **levels_of(args))
    return saved


def loss_sum_of(args):
    """The summed-over-batch loss: --loss (a user's mean loss) or --loss_name."""
    if args.loss is None:
        return loss_function(args.loss_name)
    return mean_loss_total(import_callable(args.loss, LossError, "--loss"))


def pick_batch(ctx, args, sharing):
    """The batch size a resume used before (it changes the sums' rounding, so it is a compared
    setting), else the fastest measured here (leaving room for the other ranks on a shared GPU)."""
    stored = None if args.overwrite else stored_settings(ctx.surf_file, "surface")
    if stored and stored.get("eval_batch"):
        return stored["eval_batch"], f"reused from {ctx.surf_file}"
    return auto_batch_size(ctx.model, ctx.train.x, args.precision, ranks_sharing=sharing), "timed"


def surface_evaluator(ctx, args, world, loss_sum, accuracy):
    sets = [ctx.train] + ([ctx.test] if args.test else [])
    batch = args.batch_size
    if batch == "auto":  # rank 0 picks it and every rank uses its choice, so all sum in the same order
        sharing = ranks_per_gpu(world, ctx.device)  # the probe leaves room for the other ranks on its GPU
        batch, how = rank0_first(world, lambda: pick_batch(ctx, args, sharing))
        if world.rank == 0:
            print(f"[surface] evaluation batch size {batch} (--batch_size auto: {how})", flush=True)
    ctx.eval_batch = batch

    def evaluate_point(index):
        ctx.setter.set(*ctx.grid.coords(index))
        values = []
        for data in sets:
            mean, acc = evaluate(ctx.model, data.x, data.y, loss_sum, batch, args.precision, accuracy)
            values += [mean] + ([acc] if accuracy else [])
        return tuple(values)
    return evaluate_point


def run(args, world, stop):
    loss_sum = loss_sum_of(args)  # a bad --loss is refused before any file is made
    ctx = build_context(args, world, args.precision)
    check_precision_applies(args.precision, ctx.device.type)
    if args.test and ctx.test is None:
        raise DataError(f"--test asks for the test set but --dataset {args.dataset} has none")
    accuracy = probe_loss(ctx.model, ctx.train.x, ctx.train.y, loss_sum)
    quantities = tuple(q for q in KINDS["surface"] + (TEST_QUANTITIES if args.test else ())
                       if accuracy or not q.endswith("_acc"))
    if args.proj_file and not (os.path.exists(args.proj_file) and ctx.grid.is_2d):
        raise DirectionError(f"--proj_file {args.proj_file}: the path is drawn over a 2D grid's contours; "
                             f"{'give --y' if os.path.exists(args.proj_file) else 'no such file'}")

    planner = make_planner(args, ctx.grid, quantities)

    def settings():
        return dict(input_settings(args, ctx, args.precision), test=args.test, eval_batch=ctx.eval_batch,
                    test_data_sha256=data_digest(ctx.test) if args.test else None)
    evaluate_point = surface_evaluator(ctx, args, world, loss_sum, accuracy)
    return run_job(args, world, ctx, "surface", quantities, evaluate_point, settings, stop, render, planner)


def main(argv=None):
    return guarded_main(run, parser().parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
