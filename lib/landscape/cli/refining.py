"""--refine for grid drivers: the flags, the planner they describe, and the file's final interpolation."""
from ..errors import GridSpecError
from ..refine import Refinement, scale_of
from ..surfile import done_name, open_checked, write_interp
from .args import positive_float, positive_int


def add_refine_args(p, quantities):
    g = p.add_argument_group("adaptive refinement (--x/--y give the finest grid)")
    g.add_argument("--refine", type=positive_float, metavar="TOL", default=None,
                   help="compute a coarse lattice, then split cells whose estimated interpolation error exceeds "
                        "TOL (in log10 for losses); a rerun with a smaller TOL refines further")
    g.add_argument("--refine_on", default=None, choices=quantities,
                   help=f"quantity whose error decides (default {quantities[0]}; losses in log10, others linearly)")
    g.add_argument("--refine_budget", type=positive_int, default=None, metavar="N",
                   help="stop once the file holds N computed points")


def make_planner(args, grid, quantities):
    """A Refinement for --refine, else None; refine flags without --refine are refused (they would do nothing)."""
    if args.refine is None:
        for flag in ("refine_budget", "refine_on"):
            if getattr(args, flag) is not None:
                raise GridSpecError(f"--{flag} needs --refine TOL")
        return None
    quantity = args.refine_on or quantities[0]
    if quantity not in quantities:
        raise GridSpecError(f"--refine_on {quantity}: this run computes only {', '.join(quantities)}")
    return Refinement(grid.shape, args.refine, quantity, args.refine_budget)


def refinement_summary(planner, done):
    return dict(tol=planner.tol, quantity=planner.quantity, scale=planner.scale, budget=planner.budget,
                base_stride=planner.base, spread=planner.spread, computed=int(done.sum()), points=int(done.size),
                method="hierarchical surplus, piecewise bilinear on dyadic cells (lib/landscape/refine.py)")


def finish_refinement(path, kind, quantities, planner):
    """Rank 0 after the run: True and '<name>_interp' written when the planner wants no more points."""
    with open_checked(path) as f:
        done = f[done_name(kind)][()].astype(bool)
        values = {name: f[name][()] for name in quantities}
    if len(planner.next_points(done, values[planner.quantity])):
        return False
    arrays = {name: planner.interpolate(done, v, scale_of(name)) for name, v in values.items()}
    write_interp(path, kind, arrays, refinement_summary(planner, done))
    share = 100.0 * done.mean()
    print(f"[{kind}] refinement to {planner.tol:g} ({planner.scale} {planner.quantity}) done: "
          f"{int(done.sum())}/{done.size} points computed ({share:.1f}%), the rest interpolated into "
          f"{', '.join(n + '_interp' for n in quantities)}", flush=True)
    return True
