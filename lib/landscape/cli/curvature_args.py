"""The curvature flags of plot_hessian_eig.py (--trace, --density, --hessian_groups): parsing and checks.

The flags are read as text and checked here, so a bad value is one `error:` line with exit 2
(as every other refused input), before any data is loaded.
"""
from ..curvature_job import DENSITY as DENSITY_PAIR, TRACE_SAMPLES
from ..errors import LandscapeError

DENSITY = "/".join(map(str, DENSITY_PAIR))
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


def curvature_choices(args):
    """The flags as hessian_map's trace, density and layers; checked now, before any data is loaded."""
    if args.hessian_groups not in HESSIAN_GROUPS:
        raise CurvatureFlagError(f"--hessian_groups {args.hessian_groups!r} is not one of "
                                 f"{', '.join(HESSIAN_GROUPS)}")
    return dict(trace=_trace_samples(args.trace) if args.trace is not None else None,
                density=_density(args.density) if args.density is not None else None,
                layers=args.hessian_groups == "layer")
