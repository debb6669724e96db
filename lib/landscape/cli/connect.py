"""python -m landscape.connect line: loss, accuracy and barriers on the straight line between two checkpoints.

Linear mode connectivity (Frankle et al. 2020): landscape.interpolate behind flags.

    python -m landscape.connect line --model resnet20 --model_file a.t7 --model_file2 b.t7 --dataset cifar10 --test

Prints a table of the points and the barriers. BatchNorm statistics are re-estimated at every point from
the training data (--bn recompute, the default) or interpolated (--bn keep). With --out the points are a
results file (plot_surface.py's layout over t: `python -m landscape.render` draws it) that a rerun resumes;
under mpirun the points are then split across the ranks. Exit codes as plot_surface.py's.
"""
import argparse
import math
import sys

import torch

from ..api.connect import BN_CHOICES, interpolate
from ..errors import DataError, LossError, ModelError
from ..files.paths import check_apart, results_outputs
from ..imports import import_callable, spec_files
from ..inputs.data import data_files
from ..job.mpi import cpu_threads_per_rank, rank0_first
from ..job.run import JobOptions
from ..space.losses import LOSS_NAMES
from ..space.precision import PRECISIONS
from .args import add_data_args, json_flag, non_negative_finite, non_negative_int, positive_int
from .context import DataFlags, ModelFlags, load_data
from .curve import add_curve_command, run_curve
from .exits import EXIT_OK, EXIT_STOPPED
from .run import guarded_main


def parser():
    p = argparse.ArgumentParser(prog="python -m landscape.connect", description=__doc__.split("\n")[0])
    commands = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    line = commands.add_parser("line", help="loss and barriers along the straight line from --model_file to "
                                            "--model_file2", description=__doc__.split("\n")[0])
    g = line.add_argument_group("models")
    g.add_argument("--model", default="resnet56", help="zoo name (see README) or 'package.module:factory'")
    g.add_argument("--model_kwargs", default="{}", help="JSON keyword arguments for a custom factory")
    g.add_argument("--model_file", required=True, help="checkpoint of model_a, the line's t = 0")
    g.add_argument("--model_file2", required=True, help="checkpoint of model_b, the line's t = 1")
    add_data_args(line)
    g.add_argument("--seed", type=int, default=0, help="seed of --random_labels")
    g = line.add_argument_group("line")
    g.add_argument("--n", type=int, default=25, help="points from t = 0 to t = 1, both ends included (>= 2)")
    g.add_argument("--bn", choices=BN_CHOICES, default="recompute",
                   help="BatchNorm statistics at each t: re-estimated from training batches, or interpolated")
    g.add_argument("--bn_batches", type=positive_int, default=None,
                   help="--bn recompute: the first N training batches (default: all of them)")
    g.add_argument("--batch_size", type=positive_int, default=256,
                   help="batch size of evaluation and of the BatchNorm estimate")
    g.add_argument("--precision", default="fp32", choices=PRECISIONS)
    g.add_argument("--test", action="store_true", help="also evaluate the test set (test_loss, test_acc)")
    g.add_argument("--loss_name", default="crossentropy", choices=LOSS_NAMES)
    g.add_argument("--loss", default=None, metavar="MODULE:FUNCTION",
                   help="your loss(outputs, targets) -> the batch's mean loss (replaces --loss_name)")
    g.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    g.add_argument("--threads", type=non_negative_int, default=0,
                   help="CPU threads per rank (0: cores / ranks per node)")
    g = line.add_argument_group("results file")
    g.add_argument("--out", help="results file the points are committed to; rerunning the command resumes it")
    g.add_argument("--overwrite", action="store_true", help="delete an existing --out and start over")
    g.add_argument("--progress_secs", type=non_negative_finite, default=10.0, help="seconds between progress lines")
    add_curve_command(commands)
    return p


def run(args, world, control):
    if args.command == "curve":
        return run_curve(args, world, control)
    torch.set_num_threads(args.threads or cpu_threads_per_rank())
    loss = args.loss_name if args.loss is None else import_callable(args.loss, LossError, "--loss")
    if args.out:  # before anything is written: the results file is none of the inputs
        rank0_first(world, lambda: check_apart(_inputs(args), results_outputs("--out", args.out, world.size)))
    data = DataFlags(args.dataset, args.datapath, json_flag(args.dataset_kwargs, "--dataset_kwargs", DataError),
                     args.raw_data, args.download, tuple(args.synthetic_size), args.synthetic_seed,
                     args.num_classes, (args.data_split, args.split_idx), args.random_labels, args.seed)
    train, test = load_data(data, world)
    if args.test and test is None:
        raise DataError(f"--test asks for the test set but --dataset {args.dataset} has none")
    model = ModelFlags(args.model, json_flag(args.model_kwargs, "--model_kwargs", ModelError), args.model_file)
    model_a, model_b = model.build(train.num_classes), model.build(train.num_classes, args.model_file2)
    path = interpolate(model_a, model_b, (train.x, train.y), n=args.n, loss=loss, bn=args.bn,
                       test_data=(test.x, test.y) if args.test else None, bn_batches=args.bn_batches,
                       batch_size=args.batch_size, device=args.device, precision=args.precision, path=args.out,
                       overwrite=args.overwrite, job=JobOptions(stop=control.stop, on_results=control.results.append),
                       progress_secs=args.progress_secs)
    if not path.complete:
        if world.rank == 0:
            print(f"[line] stopped with {int(path.done.sum())} of {args.n} points done; rerun the same command to "
                  f"resume (exit {EXIT_STOPPED})", flush=True)
        return EXIT_STOPPED
    if world.rank == 0:
        print(table(path), flush=True)
    return EXIT_OK


def _inputs(args):
    specs = (("--model", args.model), ("--dataset", args.dataset), ("--loss", args.loss))
    return [("--model_file", args.model_file), ("--model_file2", args.model_file2),
            *(("--dataset", path) for path in data_files(args.dataset, args.datapath)), *spec_files(specs)]


def table(path):
    """The points, one line each, then the barriers of every quantity (a rise of loss, a drop of accuracy)."""
    names = [name for name in ("train_loss", "train_acc", "test_loss", "test_acc") if getattr(path, name) is not None]
    lines = [f"[line] {'t':>8} " + " ".join(f"{name:>12}" for name in names)]
    for i, t in enumerate(path.t):
        lines.append(f"[line] {t:8.4f} " + " ".join(_number(getattr(path, name)[i]) for name in names))
    for kind in ("linear", "mean"):
        lines.append(f"[line] barrier ({kind}): " + ", ".join(f"{name} {path.barrier(name, kind):.6g}"
                                                              for name in names))
    bn = f"re-estimated from {path.bn_batches} batch(es)" if path.bn_batches else \
        "interpolated" if path.bn == "keep" else "none in the model"
    lines.append(f"[line] BatchNorm statistics: {bn}")
    return "\n".join(lines)


def _number(value):
    return f"{value:12.6g}" if math.isfinite(value) else f"{value!s:>12}"


def main(argv=None):
    return guarded_main(run, parser().parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
