"""plot_surface.py: loss and accuracy over a 1D or 2D grid of filter-normalized (or eigenvector) directions."""
import os
import sys

from ..api import Refine, surface
from ..api.eigen import CURVATURES
from ..curvature.plan import DEFAULT_SAMPLES
from ..errors import DirectionError, GridSpecError
from ..files.projection import read_projection
from ..files.results import QUANTITIES
from ..inputs.user import data_digest
from .args import Remembered, job_options, levels_of, surface_parser
from .context import build_context, input_settings, loss_of, read_flags
from .hessian import sample_count
from .refining import add_refine_args
from .render import render_options
from .run import guarded_main, report


def parser():
    p = surface_parser(__doc__)
    p.add_argument("--test", action="store_true", help="also evaluate the test set (test_loss, test_acc)")
    p.add_argument("--proj_file", help="with --plot: draw this projected optimizer path over the contours")
    p.add_argument("--params", dest="dir_params", nargs="+", metavar="PATTERN",
                   help="random directions move only the entries whose names match one of these glob patterns "
                        "(quote them), e.g. --params '*lora*' or 'transformer.h.*.attn.*'; zero elsewhere; with "
                        "--eig_directions: the Hessian's parameters (default: those with more than one dimension)")
    p.add_argument("--eig_directions", nargs="?", const="hessian", choices=CURVATURES, metavar="CURVATURE",
                   help="instead of random directions: the top eigenvectors of the mean-loss Hessian (x the largest "
                        "eigenvalue's, y the second's), unit vectors, not filter-normalized: a coordinate is the "
                        "distance along one, and the 1D curve's second derivative at 0 is λmax. Made on rank 0 "
                        "and stored with the eigenvalues in the direction file. CURVATURE: hessian (the default)")
    p.add_argument("--eig_samples", action=Remembered, type=sample_count, default=DEFAULT_SAMPLES, metavar="N",
                   help="--eig_directions' Hessian over a fixed subset of N training samples, seeded by --seed "
                        "(default %(default)s); 'all' for the whole training set")
    add_refine_args(p, QUANTITIES["surface"])
    return p


def render(path, args):
    from ..plot.render import render_surface  # matplotlib only once there is something to plot
    from ..plot.trajectory import render_path_overlay
    saved = render_surface(path, render_options(args))
    if args.proj_file:
        saved += render_path_overlay(path, args.proj_file, **levels_of(args))
    return saved


def refine_of(args):
    """--refine TOL [--refine_on Q] [--refine_budget N] as a Refine; refine flags without --refine are refused."""
    if args.refine is None:
        for flag in ("refine_budget", "refine_on"):
            if getattr(args, flag) is not None:  # it would do nothing
                raise GridSpecError(f"--{flag} needs --refine TOL")
        return None
    if args.refine_on and args.refine_on.startswith("test_") and not args.test:
        raise GridSpecError(f"--refine_on {args.refine_on} needs --test: without it no test values are computed")
    return Refine(args.refine, args.refine_on, args.refine_budget)


def check_path_overlay(args, grid):
    """Before any work: the path can be drawn (a 2D grid, a readable projection file of finite values)."""
    if args.proj_file and not (os.path.exists(args.proj_file) and grid.is_2d):
        raise DirectionError(f"--proj_file {args.proj_file}: the path is drawn over a 2D grid's contours; "
                             f"{'give --y' if os.path.exists(args.proj_file) else 'no such file'}")
    if args.proj_file:
        read_projection(args.proj_file)


def run(args, world, control):
    return run_surface(args, world, control)[0]


def run_surface(args, world, control):
    """(exit code, results file): plot_surface.py's work, also the surface stage of plot_trajectory.py."""
    flags = read_flags(args)
    loss = loss_of(flags)  # bad flags are refused before any file is made
    refine = refine_of(args)
    check_path_overlay(args, flags.grid)
    # refuses a precision the device would ignore, a missing test set, an output that is an input
    ctx = build_context(flags, world, args.precision, reads=[("--proj_file", args.proj_file)])

    def settings():
        return dict(input_settings(flags, ctx, args.precision), test=args.test,
                    test_data_sha256=data_digest((ctx.test.x, ctx.test.y)) if args.test else None)
    result = surface(ctx.model, (ctx.train.x, ctx.train.y), loss=loss, directions=ctx.dirs, x=ctx.grid,
                     test_data=(ctx.test.x, ctx.test.y) if args.test else None, path=ctx.surf_file,
                     batch_size=args.batch_size, device=ctx.device, precision=args.precision,
                     overwrite=args.overwrite, refine=refine, settings=settings,
                     progress_secs=args.progress_secs, job=job_options(args, control))
    code = report(result, args, world, "surface", ctx.surf_file, render, refined=args.refine is not None,
                  control=control)
    return code, result.path or ctx.surf_file  # where the run left it (moved with its folder, it is there)


def main(argv=None):
    return guarded_main(run, parser().parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
