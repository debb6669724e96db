"""plot_hessian_eig.py: λmin and λmax of the mean-loss Hessian (or, with --curvature, of the Gauss-Newton
matrix or the empirical Fisher) over a grid, and |λmin/λmax| maps."""
import sys

from ..api import hessian_map
from ..curvature.hvp import HVP_METHODS, PARAM_SUBSETS, hessian_param_names
from ..curvature.plan import DEFAULT_SAMPLES
from .args import batch_size, hessian_parser, job_options, positive_float, positive_int
from .context import build_context, input_settings, loss_of, read_flags
from .curvature_args import add_curvature_args, curvature_choices, hessian_params_of
from .render import plot_hessian
from .run import guarded_main, report


def sample_count(text):
    """--hessian_samples: a positive count, or 'all' (None: every training sample)."""
    return None if text == "all" else positive_int(text)


def parser():
    p = hessian_parser(__doc__)
    g = p.add_argument_group("hessian")
    g.add_argument("--tol", type=positive_float, default=1e-3, help="accuracy of λmin and λmax, relative to max|λ| (with probability >= 99%%)")
    g.add_argument("--max_iter", type=positive_int, default=100, help="Lanczos steps at most per point")
    g.add_argument("--hessian_samples", type=sample_count, default=DEFAULT_SAMPLES,
                   help="a fixed seeded subset of N training samples (default %(default)s, as in the paper's Hessian "
                        "maps: every HVP passes over them all); 'all' for the whole training set")
    g.add_argument("--hessian_params", default=None, choices=PARAM_SUBSETS,
                   help="reference (the default): parameters with more than one dimension; all: every parameter")
    g.add_argument("--params", dest="hessian_patterns", nargs="+", metavar="PATTERN",
                   help="instead of --hessian_params: the Hessian over exactly the parameters whose names match "
                        "one of these glob patterns (quote them), e.g. --params 'transformer.h.*.attn.*' or "
                        "'*lora*'; the directions still move every parameter")
    g.add_argument("--hessian_batch", type=batch_size, default="auto",
                   help="batch size of each HVP pass (auto: the fastest product, timed among sizes that fit; up "
                        "to 256 samples on a CPU in one batch; a resume reuses the file's)")
    g.add_argument("--hvp", default="double_backward", choices=HVP_METHODS,
                   help="how HVPs are taken: double backward (measured faster) or torch.func forward-over-reverse; for "
                        "--curvature ggn/ef, how their Jacobian-vector products are: reverse-over-reverse or forward "
                        "mode (which is faster depends on the model)")
    add_curvature_args(g)
    return p


def run(args, world, control):
    choices = curvature_choices(args)  # checks the curvature flags before any data is loaded
    flags = read_flags(args)
    loss = loss_of(flags)
    params = hessian_params_of(args)
    ctx = build_context(flags, world, check_model_choices=lambda model: hessian_param_names(model, params))
    result = hessian_map(ctx.model, (ctx.train.x, ctx.train.y), loss=loss, directions=ctx.dirs, x=ctx.grid,
                         path=ctx.surf_file, tol=args.tol, max_iter=args.max_iter, samples=args.hessian_samples,
                         params=params, hvp_batch=args.hessian_batch, hvp=args.hvp, seed=args.seed,
                         device=ctx.device, overwrite=args.overwrite, settings=lambda: input_settings(flags, ctx),
                         progress_secs=args.progress_secs, job=job_options(args, control), curvature=args.curvature,
                         **choices)
    return report(result, args, world, "hessian", ctx.surf_file, plot_hessian, control=control)


def main(argv=None):
    return guarded_main(run, parser().parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
