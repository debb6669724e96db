"""The grid drivers' flags in small groups; each driver's parser takes only the groups it reads, so a flag
that would do nothing there is refused. Names follow the reference code so its users' commands carry over."""
import argparse
import json
import math

from ..job.run import JobOptions
from ..space.directions import DIR_TYPES, IGNORES, NORMS
from ..space.losses import LOSS_NAMES
from ..space.precision import PRECISIONS


def positive_int(text):
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def non_negative_int(text):
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {text}")
    return value


def positive_float(text):
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


def non_negative_finite(text):
    value = float(text)
    if not (math.isfinite(value) and value >= 0):
        raise argparse.ArgumentTypeError(f"must be a finite number, 0 or more, got {text}")
    return value


class Remembered(argparse.Action):
    """Stores a flag's value and notes in `given` that it was typed, so an existing direction file can
    be checked against exactly the flags the user gave (a default never contradicts a file)."""

    def __call__(self, parser, namespace, values, option_string=None):
        setattr(namespace, self.dest, self.const if self.nargs == 0 else values)
        namespace.given = getattr(namespace, "given", frozenset()) | {self.dest}


def json_flag(text, flag, error):
    """A JSON object flag (--model_kwargs, --dataset_kwargs), or `error` naming the flag."""
    try:
        value = json.loads(text)
    except ValueError as e:
        raise error(f"{flag} {text!r} is not valid JSON ({e}); e.g. {flag} '{{\"width\": 2}}'") from None
    if not isinstance(value, dict):
        raise error(f"{flag} {text!r} must be a JSON object of keyword arguments")
    return value


def batch_size(text):
    return text if text == "auto" else positive_int(text)


def add_model_args(p):
    g = p.add_argument_group("model")
    g.add_argument("--model", default="resnet56", help="zoo name (see README) or 'package.module:factory'")
    g.add_argument("--model_kwargs", default="{}", help="JSON keyword arguments for a custom factory")
    g.add_argument("--model_file", help="checkpoint: bare state_dict or {'state_dict': ...}; "
                                         "without it the model's seeded initialisation is used")
    g.add_argument("--model_file2", help="x direction = model_file2 - model_file (1D interpolation)")
    g.add_argument("--model_file3", help="y direction = model_file3 - model_file")


def add_data_args(p):
    g = p.add_argument_group("data")
    g.add_argument("--dataset", default="cifar10",
                   help="cifar10, cifar100, synthetic, a .pt/.npz file with x and y, or 'module:factory'")
    g.add_argument("--dataset_kwargs", default="{}", help="JSON keyword arguments for a 'module:factory' data set")
    g.add_argument("--datapath", default="cifar10/data", help="folder holding cifar-10-batches-py/")
    g.add_argument("--download", action="store_true", help="fetch the official data set (needs a network)")
    g.add_argument("--raw_data", action="store_true", help="scale pixels to [0, 1] but do not normalize")
    g.add_argument("--data_split", type=positive_int, default=1, help="split the training set into K parts")
    g.add_argument("--split_idx", type=int, default=0, help="... and use part i")
    g.add_argument("--random_labels", type=float, default=0.0,
                   help="replace this fraction of training labels by random ones (seeded by --seed)")
    g.add_argument("--synthetic_size", type=int, nargs=2, default=(5000, 1000), metavar=("N_TRAIN", "N_TEST"),
                   help="sizes of --dataset synthetic")
    g.add_argument("--synthetic_seed", type=int, default=0,
                   help="which synthetic data set (landscape.train takes the same flag, so both see one set)")
    g.add_argument("--num_classes", type=positive_int, default=None,
                   help="number of classes, for data that cannot say (files, factories: default largest label + 1)")


DIRECTION_DEFAULTS = dict(xnorm="filter", ynorm="filter", xignore="biasbn", yignore="biasbn")


def add_direction_args(p):
    g = p.add_argument_group("directions")
    g.add_argument("--dir_type", default="weights", choices=DIR_TYPES)
    g.add_argument("--dir_file", help="direction file to use or create (reference layout)")
    # None means "not given": a new direction file gets DIRECTION_DEFAULTS, an existing one keeps its own
    g.add_argument("--xnorm", choices=NORMS, help="default filter")
    g.add_argument("--ynorm", choices=NORMS, help="default filter")
    g.add_argument("--xignore", choices=IGNORES, help="default biasbn")
    g.add_argument("--yignore", choices=IGNORES, help="default biasbn")
    g.add_argument("--same_dir", action=Remembered, nargs=0, const=True, default=False,
                   help="use the x direction for y too")
    g.add_argument("--seed", action=Remembered, type=int, default=0,
                   help="seed of the random directions (stored in the file)")
    p.set_defaults(given=frozenset())


def add_grid_args(p):
    g = p.add_argument_group("grid and output")
    g.add_argument("--x", default="-1:1:51", help="min:max:num along the x direction")
    g.add_argument("--y", default=None, help="min:max:num along the y direction (2D)")
    g.add_argument("--surf_file", help="results file (default: next to the direction file)")
    add_commit_args(g)


def add_commit_args(g):
    """How a job commits, reports and stops: the flags job_options reads, and --overwrite."""
    g.add_argument("--overwrite", action="store_true", help="delete an existing results file and start over")
    g.add_argument("--flush_points", type=positive_int, default=None,
                   help="commit results at least every N points (default 256, spaced so commits cost <= 2%% of "
                        "the time; given explicitly, either flag is kept to the letter)")
    g.add_argument("--flush_secs", type=non_negative_finite, default=None, help="... and at least every T seconds (60)")
    g.add_argument("--progress_secs", type=non_negative_finite, default=10.0, help="seconds between progress lines")
    g.add_argument("--serial_io", action="store_true", help="rank 0 writes everything even if h5py has MPI")
    g.add_argument("--stop_margin", type=positive_float, default=300.0,
                   help="seconds between a stop signal and the kill (sbatch --signal=USR1@300): once a point takes "
                        "longer, each rank commits its finished points before starting another")


def add_loss_device_args(g):
    """--loss_name, --loss (a user's function, replacing it) and --device, into the argument group g."""
    g.add_argument("--loss_name", default="crossentropy", choices=LOSS_NAMES)
    g.add_argument("--loss", default=None, metavar="MODULE:FUNCTION",
                   help="your loss(outputs, targets) -> the batch's mean loss (replaces --loss_name)")
    g.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))


def add_run_args(p):
    g = p.add_argument_group("run")
    add_loss_device_args(g)
    g.add_argument("--cuda", action="store_true", help="same as --device cuda (the reference's flag)")
    g.add_argument("--mpi", action="store_true", help="accepted for the reference's commands; MPI is detected")
    g.add_argument("--threads", type=non_negative_int, default=0,
                   help="CPU threads per rank (0: cores / ranks per node)")


def add_evaluation_args(p):
    """The loss evaluation's own flags: the Hessian driver has --hessian_batch and runs in strict fp32."""
    g = p.add_argument_group("evaluation")
    g.add_argument("--batch_size", type=batch_size, default="auto",
                   help="evaluation batch size (auto: timed on CPU, largest that fits on GPU; a resume reuses "
                        "the file's choice)")
    g.add_argument("--precision", default="fp32", choices=PRECISIONS)


def add_plot_args(p):
    g = p.add_argument_group("plots")
    g.add_argument("--plot", action="store_true", help="render PNG and PDF plots when the grid is complete")
    return g


def add_level_args(g):
    """Contour levels and colour range of loss plots (the Hessian plots draw loss contours at default levels)."""
    g.add_argument("--vmin", type=float, default=None)
    g.add_argument("--vmax", type=float, default=None)
    g.add_argument("--vlevel", type=float, default=None)
    g.add_argument("--log", action="store_true", help="log-scale loss plots")


def job_options(args, control):
    """The commit, I/O and stop flags as the API's JobOptions; --flush_points/--flush_secs given are
    kept to the letter, without either the defaults are spaced to cost <= 2 % of the time (schedule.py).
    control: guarded_main's (cli/run.Control): its stop event, and its record of the results file."""
    return JobOptions(flush_points=args.flush_points, flush_secs=args.flush_secs, serial_io=args.serial_io,
                      stop_margin=args.stop_margin, stop=control.stop, on_results=control.results.append)


def add_ratio_top_arg(g):
    g.add_argument("--vmax", type=float, default=None,
                   help="top of the |λmin/λmax| colours (default 0.5, the paper's)")


def levels_of(args):
    """The plot-level flags as the keyword arguments of the plotting functions."""
    return dict(vmin=args.vmin, vmax=args.vmax, vlevel=args.vlevel, log=args.log)


def grid_parser(description):
    """The flags every grid driver reads: model, data, directions, grid and output, run."""
    p = argparse.ArgumentParser(description=description)
    for add in (add_model_args, add_data_args, add_direction_args, add_grid_args, add_run_args):
        add(p)
    return p


def surface_parser(description):
    p = grid_parser(description)
    add_evaluation_args(p)
    add_level_args(add_plot_args(p))
    return p


def hessian_parser(description):
    p = grid_parser(description)
    p.epilog = ("No --batch_size or --precision: HVPs take --hessian_batch and always run in strict fp32 "
                "(TF32 noise would swamp λmin at a minimum).")
    add_ratio_top_arg(add_plot_args(p))
    return p
