"""The curvature flags of plot_hessian_eig.py (--curvature, --trace, --density, --hessian_groups,
--hessian_params, --params): text to values.

The flags are read as text here and checked by the API's own checks (curvature/plan.check_choices),
before any data is loaded, so a bad value is one `error:` line with exit 2 like every refused input.
"""
from ..curvature.gauss_newton import CURVATURES
from ..curvature.plan import DENSITY, TRACE_SAMPLES, check_choices
from ..errors import CurvatureError

HESSIAN_GROUPS = ("none", "layer")
EXAMPLES = {"--trace": str(TRACE_SAMPLES), "--density": "/".join(map(str, DENSITY))}


def add_curvature_args(g):
    density = "/".join(map(str, DENSITY))
    g.add_argument("--curvature", default="hessian", choices=CURVATURES,
                   help="which matrix every quantity is of: hessian (the default); ggn, the generalized "
                        "Gauss-Newton matrix J^T (d2 loss/d logits2) J (positive semi-definite for cross-entropy "
                        "and causal_lm); ef, the empirical Fisher, the mean of the per-sample gradients' outer "
                        "products. ggn and ef read the loss as a function of the model's logits")
    g.add_argument("--trace", nargs="?", const=str(TRACE_SAMPLES), default=None, metavar="PROBES",
                   help=f"also map the Hessian trace and its error bar, with PROBES Hutchinson probes per point "
                        f"on top of the extremes' Krylov space (default {TRACE_SAMPLES})")
    g.add_argument("--density", nargs="?", const=density, default=None, metavar="PROBES/STEPS",
                   help=f"also store the eigenvalue density (stochastic Lanczos quadrature) and the negative "
                        f"spectral mass at every point (default {density}; the first probe is the extremes' run)")
    g.add_argument("--hessian_groups", default="none", metavar="{none,layer}",
                   help="layer: also λmin, λmax and trace of each layer's diagonal Hessian block "
                        "(the traces share the --trace probes; --trace at its default is implied)")


def _numbers(text, flag, form):
    """'30' -> (30,), '3/40' -> (3, 40); text not of the form is refused naming the flag."""
    try:
        numbers = tuple(int(part) for part in text.split("/"))
    except ValueError:
        numbers = ()
    if len(numbers) != form.count("/") + 1:
        raise CurvatureError(f"{flag} {text!r}: give {form} as whole numbers, e.g. {flag} {EXAMPLES[flag]}")
    return numbers


def hessian_params_of(args):
    """hessian_map's params: --params' patterns, or --hessian_params (default reference), never both."""
    if args.hessian_patterns is not None and args.hessian_params is not None:
        raise CurvatureError(f"--params {' '.join(args.hessian_patterns)} and --hessian_params "
                             f"{args.hessian_params} both choose the Hessian's parameters: give one of them")
    if args.hessian_patterns is not None:
        return list(args.hessian_patterns)
    return args.hessian_params or "reference"


def curvature_choices(args):
    """The flags as hessian_map's trace, density and layers (the plan's choices), checked now with --curvature
    and the rest, before any data is loaded."""
    if args.hessian_groups not in HESSIAN_GROUPS:
        raise CurvatureError(f"--hessian_groups {args.hessian_groups!r} is not one of {', '.join(HESSIAN_GROUPS)}")
    trace = None if args.trace is None else _numbers(args.trace, "--trace", "PROBES")[0]
    density = None if args.density is None else _numbers(args.density, "--density", "PROBES/STEPS")
    check_choices(args.tol, args.max_iter, trace, density, hessian_params_of(args), args.hvp,
                  curvature=args.curvature)
    return dict(trace=trace, density=density, layers=args.hessian_groups == "layer")
