"""The curvature flags of plot_hessian_eig.py (--trace, --density, --hessian_groups): parsing, checks, plan.

The flags are read as text and checked here, so a bad value is one `error:` line with exit 2
(as every other refused input), before any data is loaded.
"""
from ..curvature import CurvaturePlan, curvature_shapes, layer_blocks
from ..errors import LandscapeError
from ..surfile import hessian_layout

TRACE_SAMPLES = 30  # default Hutchinson probes per point; accuracy in README "Trace maps"
DENSITY = "3/40"  # default probes/steps of the spectral density, as PyHessian's 1 probe of 100 costs
HESSIAN_GROUPS = ("none", "layer")


class CurvatureFlagError(LandscapeError):
    pass


def add_curvature_args(g):
    g.add_argument("--trace", nargs="?", const=str(TRACE_SAMPLES), default=None, metavar="PROBES",
                   help=f"also map the Hessian trace and its error bar, with PROBES Hutchinson probes per point "
                        f"on top of the extremes' Krylov space (default {TRACE_SAMPLES})")
    g.add_argument("--density", nargs="?", const=DENSITY, default=None, metavar="PROBES/STEPS",
                   help=f"also store the eigenvalue density (stochastic Lanczos quadrature) and the negative "
                        f"spectral mass at every point (default {DENSITY}; the first probe is the extremes' run)")
    g.add_argument("--hessian_groups", default="none", metavar="{none,layer}",
                   help="layer: also λmin, λmax and trace of each layer's diagonal Hessian block "
                        "(the traces share the --trace probes; --trace at its default is implied)")


def _trace_samples(text):
    try:
        value = int(text)
    except ValueError:
        value = None
    if value is None or value < 2:
        raise CurvatureFlagError(f"--trace {text!r}: give the number of probes per point, an integer >= 2 "
                                 f"(two or more give an error bar); e.g. --trace {TRACE_SAMPLES}")
    return value


def _density(text):
    parts = text.split("/")
    try:
        probes, steps = (int(p) for p in parts)
    except ValueError:
        probes = steps = None
    if probes is None or probes < 1 or steps < 2:
        raise CurvatureFlagError(f"--density {text!r}: give PROBES/STEPS, integers with PROBES >= 1 and "
                                 f"STEPS >= 2; e.g. --density {DENSITY}")
    return probes, steps


def curvature_plan(args):
    """Checks the flags now; returns plan_of(model, names) -> CurvaturePlan once the model is built."""
    if args.hessian_groups not in HESSIAN_GROUPS:
        raise CurvatureFlagError(f"--hessian_groups {args.hessian_groups!r} is not one of "
                                 f"{', '.join(HESSIAN_GROUPS)}")
    layers = args.hessian_groups == "layer"
    trace = _trace_samples(args.trace) if args.trace is not None else (TRACE_SAMPLES if layers else None)
    probes, steps = _density(args.density) if args.density is not None else (None, None)

    def plan_of(model, names):
        params = dict(model.named_parameters())
        blocks = layer_blocks(names, [params[n].numel() for n in names]) if layers else ()
        return CurvaturePlan(args.tol, args.max_iter, args.seed, trace, probes, steps, blocks)
    return plan_of


def curvature_settings(plan):
    """What a resume must share; None for what is off, so files made before these flags still resume."""
    return dict(trace_samples=plan.trace_samples,
                density=f"{plan.density_probes}/{plan.density_steps}" if plan.density_probes else None,
                hessian_groups=[block[0] for block in plan.layers] or None)


def curvature_layout(plan, dim):
    """(quantity names in storage order, surfile.prepare keyword arguments for their shapes)."""
    shapes = curvature_shapes(plan, dim)
    return tuple(shapes), hessian_layout(shapes, [block[0] for block in plan.layers])


def layer_operators(plan, hvp_of):
    """One HVP operator per layer block of the plan: the Hessian restricted to that layer's parameters."""
    return tuple(hvp_of(list(param_names)) for _, _, _, param_names in plan.layers)
