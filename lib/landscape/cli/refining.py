"""--refine's flags; landscape.surface(refine=Refine(...)) does the work (job/run.finish_refinement)."""
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
