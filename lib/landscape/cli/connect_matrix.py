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

from ..api.barrier_matrix import ALIGN_METHODS, barrier_matrix
from ..files.paths import check_apart, results_outputs
from ..job.mpi import rank0_first
from ..job.run import JobOptions
from ..space.paths import BARRIER_KINDS
from .connect_args import add_model_args, add_point_args, add_results_args, input_files, read_inputs
from .exits import EXIT_OK, EXIT_STOPPED

SHOWN = ("train_loss", "test_loss")  # the matrices printed; the CSV holds the accuracies' too


def add_matrix_parser(commands):
    first_line = __doc__.split("\n")[0]
    p = commands.add_parser("matrix", help="barriers between every two --checkpoints, their minimum spanning tree",
                            description=first_line)
    add_model_args(p, [("--checkpoints", dict(nargs="+", required=True, metavar="FILE",
                                              help="two or more checkpoints of --model (named by their file "
                                                   "names)"))])
    g = p.add_argument_group("lines")
    add_point_args(g, 11, "points per line from t = 0 to t = 1, both ends included (>= 2)")
    g.add_argument("--align", choices=ALIGN_METHODS, default=None,
                   help="also the lines from each model to the next one aligned to it (landscape.align)")
    g.add_argument("--kind", choices=BARRIER_KINDS, default="linear",
                   help="barrier above the chord between the ends (linear) or above their mean")
    add_results_args(p, "results file the points are committed to (rerunning resumes it); also "
                        "<stem>_barriers.csv and <stem>_barriers.png")
    return p


def run_matrix(args, world, control):
    if args.out:  # before anything is written: no output is one of the inputs
        stem = os.path.splitext(args.out)[0]
        outputs = [*results_outputs("--out", args.out, world.size), ("the CSV", f"{stem}_barriers.csv"),
                   ("the figure", f"{stem}_barriers.png")]
        reads = input_files(args, [("--checkpoints", path) for path in args.checkpoints])
        rank0_first(world, lambda: check_apart(reads, outputs))
    inputs = read_inputs(args, world)
    models = [(name, functools.partial(inputs.build, path))  # built by the ranks that use them
              for name, path in zip(checkpoint_names(args.checkpoints), args.checkpoints)]
    matrix = barrier_matrix(models, inputs.data, n=args.n, test_data=inputs.test_data, loss=inputs.loss, bn=args.bn,
                            bn_batches=args.bn_batches, align=args.align, kind=args.kind, batch_size=args.batch_size,
                            device=args.device, precision=args.precision, path=args.out, overwrite=args.overwrite,
                            progress_secs=args.progress_secs,
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
