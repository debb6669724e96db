"""python -m landscape.connect matrix: the barrier between every two of many checkpoints, before and after
aligning their units, and the minimum spanning tree of those barriers (Draxler et al. 2018).

    python -m landscape.connect matrix --model resnet20 --checkpoints a.t7 b.t7 c.t7 --dataset cifar10 \\
        --n 11 --bn recompute --align weights --out matrix.h5

landscape.barrier_matrix behind flags. Prints the matrix of the train-loss barriers (and of the test loss
with --test), before and after alignment, and each matrix's minimum spanning tree. With --out the (line, t)
points are a results file that a rerun resumes, split across the ranks under mpirun, and the barriers of
every line go to <out stem>_barriers.csv, the heatmaps to <out stem>_barriers.png.
"""
import functools
import os

import torch

from ..api.barrier_matrix import ALIGN_METHODS, barrier_matrix
from ..api.connect import BN_CHOICES
from ..errors import DataError, LossError, ModelError
from ..files.paths import check_apart, results_outputs
from ..imports import import_callable, spec_files
from ..inputs.data import data_files
from ..job.mpi import cpu_threads_per_rank, rank0_first
from ..job.run import JobOptions
from ..space.losses import LOSS_NAMES
from ..space.paths import BARRIER_KINDS
from ..space.precision import PRECISIONS
from .args import add_data_args, json_flag, non_negative_finite, non_negative_int, positive_int
from .context import DataFlags, ModelFlags, load_data
from .exits import EXIT_OK, EXIT_STOPPED

SHOWN = ("train_loss", "test_loss")  # the matrices printed; the CSV holds the accuracies' too


def add_matrix_parser(commands):
    first_line = __doc__.split("\n")[0]
    p = commands.add_parser("matrix", help="barriers between every two --checkpoints, their minimum spanning tree",
                            description=first_line)
    g = p.add_argument_group("models")
    g.add_argument("--model", default="resnet56", help="zoo name (see README) or 'package.module:factory'")
    g.add_argument("--model_kwargs", default="{}", help="JSON keyword arguments for a custom factory")
    g.add_argument("--checkpoints", nargs="+", required=True, metavar="FILE",
                   help="two or more checkpoints of --model (named by their file names)")
    add_data_args(p)
    g.add_argument("--seed", type=int, default=0, help="seed of --random_labels")
    g = p.add_argument_group("lines")
    g.add_argument("--n", type=int, default=11, help="points per line from t = 0 to t = 1, both ends included (>= 2)")
    g.add_argument("--bn", choices=BN_CHOICES, default="recompute",
                   help="BatchNorm statistics at each t: re-estimated from training batches, or interpolated")
    g.add_argument("--bn_batches", type=positive_int, default=None,
                   help="--bn recompute: the first N training batches (default: all of them)")
    g.add_argument("--align", choices=ALIGN_METHODS, default=None,
                   help="also the lines from each model to the next one aligned to it (landscape.align)")
    g.add_argument("--kind", choices=BARRIER_KINDS, default="linear",
                   help="barrier above the chord between the ends (linear) or above their mean")
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
    g = p.add_argument_group("results file")
    g.add_argument("--out", help="results file the points are committed to (rerunning resumes it); also "
                                 "<stem>_barriers.csv and <stem>_barriers.png")
    g.add_argument("--overwrite", action="store_true", help="delete an existing --out and start over")
    g.add_argument("--progress_secs", type=non_negative_finite, default=10.0, help="seconds between progress lines")
    return p


def run_matrix(args, world, control):
    torch.set_num_threads(args.threads or cpu_threads_per_rank())
    loss = args.loss_name if args.loss is None else import_callable(args.loss, LossError, "--loss")
    if args.out:  # before anything is written: no output is one of the inputs
        stem = os.path.splitext(args.out)[0]
        outputs = [*results_outputs("--out", args.out, world.size), ("the CSV", f"{stem}_barriers.csv"),
                   ("the figure", f"{stem}_barriers.png")]
        rank0_first(world, lambda: check_apart(_inputs(args), outputs))
    data = DataFlags(args.dataset, args.datapath, json_flag(args.dataset_kwargs, "--dataset_kwargs", DataError),
                     args.raw_data, args.download, tuple(args.synthetic_size), args.synthetic_seed,
                     args.num_classes, (args.data_split, args.split_idx), args.random_labels, args.seed)
    train, test = load_data(data, world)
    if args.test and test is None:
        raise DataError(f"--test asks for the test set but --dataset {args.dataset} has none")
    model = ModelFlags(args.model, json_flag(args.model_kwargs, "--model_kwargs", ModelError))
    models = [(name, functools.partial(model.build, train.num_classes, path))  # built by the ranks that use them
              for name, path in zip(checkpoint_names(args.checkpoints), args.checkpoints)]
    matrix = barrier_matrix(models, (train.x, train.y), n=args.n, test_data=(test.x, test.y) if args.test else None,
                            loss=loss, bn=args.bn, bn_batches=args.bn_batches, align=args.align, kind=args.kind,
                            batch_size=args.batch_size, device=args.device, precision=args.precision, path=args.out,
                            overwrite=args.overwrite, progress_secs=args.progress_secs,
                            job=JobOptions(stop=control.stop, on_results=control.results.append))
    if not matrix.complete:
        if world.rank == 0:
            print(f"[matrix] stopped with {int(matrix.done.sum())} of {matrix.done.size} points done; rerun the same "
                  f"command to resume (exit {EXIT_STOPPED})", flush=True)
        return EXIT_STOPPED
    if world.rank == 0:
        print(matrix_report(matrix), flush=True)
    return EXIT_OK


def checkpoint_names(paths):
    """Each checkpoint's file name without its extension, or the paths as given where two names would clash."""
    names = [os.path.splitext(os.path.basename(path))[0] for path in paths]
    return names if len(set(names)) == len(names) else list(paths)


def _inputs(args):
    specs = (("--model", args.model), ("--dataset", args.dataset), ("--loss", args.loss))
    return [*(("--checkpoints", path) for path in args.checkpoints),
            *(("--dataset", path) for path in data_files(args.dataset, args.datapath)), *spec_files(specs)]


def matrix_report(matrix):
    """Each loss's matrix, before and after alignment, with its minimum spanning tree; the files written."""
    lines = []
    width = max(10, *(len(name) for name in matrix.names))
    for name in (name for name in SHOWN if name in matrix.values):
        for aligned in (False, True)[:1 + matrix.aligned]:
            when = (", after alignment" if aligned else ", before alignment") if matrix.aligned else ""
            lines.append(f"[matrix] {name} barrier ({matrix.kind}){when}:")
            lines.append("[matrix] " + " " * width + "".join(f" {n:>{width}}" for n in matrix.names))
            for label, row in zip(matrix.names, matrix.matrix(name, aligned=aligned)):
                lines.append(f"[matrix] {label:<{width}}" + "".join(f" {v:>{width}.6g}" for v in row))
            tree = matrix.tree(name, aligned=aligned)
            lines.append(f"[matrix] minimum spanning tree: {tree.describe(6)} (the highest edge is the barrier of the "
                         f"best chain of lines through the other models)")
    files = ([f"barriers of every line {matrix.csv}"] if matrix.csv else []) + \
        [f"figure {path}" for path in matrix.figures]
    if files:
        lines.append(f"[matrix] {'; '.join(files)}")
    return "\n".join(lines)
