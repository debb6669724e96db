"""The plan of one curvature map: the user's choices checked, the quantities they give and their
shapes, what a resume must share, and the fixed subset of samples the products pass over.

The choices are validated values (no flags): plot_hessian_eig.py parses its flags into them and
calls check_choices before it loads anything; hessian_map calls the same checks.
"""
import torch

from ..errors import CurvatureError
from ..space.groups import check_patterns
from ..space.model_io import take
from .gauss_newton import CURVATURES
from .hvp import HVP_METHODS, PARAM_SUBSETS
from .point import CurvaturePlan, layer_blocks

DEFAULT_SAMPLES = 5000  # a fixed seeded subset, as in the paper's Hessian maps: every HVP passes over it all
TRACE_SAMPLES = 30  # default Hutchinson probes per point; accuracy in README "Trace maps"
DENSITY = (3, 40)  # default probes, steps of the spectral density, as PyHessian's 1 probe of 100 costs


def check_choices(tol=1e-3, max_iter=100, trace=None, density=None, params="reference", hvp="double_backward",
                  seed=0, curvature="hessian"):
    """Refuse choices out of range with one CurvatureError naming the choice (and its flag)."""
    if not (_number(tol) and 0 < tol < 1) or not (_whole(max_iter) and max_iter >= 1):
        raise CurvatureError(f"tol={tol!r}, max_iter={max_iter!r} (--tol, --max_iter): need 0 < tol < 1 (an accuracy "
                             f"relative to max|λ|) and max_iter a whole number >= 1")
    if not _whole(seed):
        raise CurvatureError(f"seed={seed!r} (--seed): give a whole number")
    if trace is not None and not (_whole(trace) and trace >= 2):
        raise CurvatureError(f"trace={trace!r} (--trace {trace}): give the number of probes per point, a whole "
                             f"number >= 2 (two or more give an error bar), e.g. trace={TRACE_SAMPLES} "
                             f"(--trace {TRACE_SAMPLES})")
    if density is not None and not (isinstance(density, (tuple, list)) and len(density) == 2
                                    and all(_whole(k) for k in density) and density[0] >= 1 and density[1] >= 2):
        shown = "/".join(map(str, density)) if isinstance(density, (tuple, list)) else density
        raise CurvatureError(f"density={density!r} (--density {shown}): give whole numbers of probes >= 1 and "
                             f"steps >= 2, e.g. density={DENSITY} (--density {DENSITY[0]}/{DENSITY[1]})")
    if isinstance(params, (list, tuple)):
        check_patterns(params)  # which names they match is checked against the model (hessian_param_names)
    elif params not in PARAM_SUBSETS:
        raise CurvatureError(f"params={params!r} is not one of {', '.join(PARAM_SUBSETS)}, nor a list of glob "
                             f"patterns of parameter names (e.g. ['transformer.h.*.attn.*'])")
    if hvp not in HVP_METHODS:
        raise CurvatureError(f"hvp={hvp!r} is not one of {', '.join(HVP_METHODS)}")
    if not isinstance(curvature, str) or curvature not in CURVATURES:
        raise CurvatureError(f"curvature={curvature!r} (--curvature) is not one of {', '.join(CURVATURES)}")


def _whole(value):
    return isinstance(value, int) and not isinstance(value, bool)


def _number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def make_plan(model, names, tol=1e-3, max_iter=100, seed=0, trace=None, density=None, layers=False):
    """A CurvaturePlan over the parameters `names` of `model`; trace: probes (>= 2) or None; density:
    (probes >= 1, steps >= 2) or None; layers: also each layer's block (with the trace, at
    TRACE_SAMPLES probes unless given)."""
    check_choices(tol, max_iter, trace, density)
    probes, steps = density if density is not None else (None, None)
    if trace is None and layers:
        trace = TRACE_SAMPLES
    params = dict(model.named_parameters())
    blocks = layer_blocks(names, [params[n].numel() for n in names]) if layers else ()
    return CurvaturePlan(tol, max_iter, seed, trace, probes, steps, blocks)


def plan_settings(plan):
    """What a resume must share; None for what is off, so files made before these options still resume."""
    return dict(tol=plan.tol, max_iter=plan.max_iter, seed=plan.seed, trace_samples=plan.trace_samples,
                density=f"{plan.density_probes}/{plan.density_steps}" if plan.density_probes else None,
                hessian_groups=[block[0] for block in plan.layers] or None)


def sample_subset(x, y, samples, seed):
    """A fixed seeded subset of `samples` rows (all of them for None or more than there are)."""
    if samples is not None and samples < len(y):
        keep = torch.randperm(len(y), generator=torch.Generator().manual_seed(seed))[:samples].to(y.device)
        x, y = take(x, keep), y[keep]
    return x, y


def hessian_dim(model, names):
    """How many coordinates the Hessian over `names` has."""
    wanted = set(names)
    return sum(p.numel() for n, p in model.named_parameters() if n in wanted)
