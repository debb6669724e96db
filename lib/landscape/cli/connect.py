"""python -m landscape.connect line: loss, accuracy and barriers on the straight line between two checkpoints.

Linear mode connectivity (Frankle et al. 2020): landscape.interpolate behind flags.

    python -m landscape.connect line --model resnet20 --model_file a.t7 --model_file2 b.t7 --dataset cifar10 --test

Prints a table of the points and the barriers. BatchNorm statistics are re-estimated at every point from
the training data (--bn recompute, the default) or interpolated (--bn keep). With --out the points are a
results file (plot_surface.py's layout over t: `python -m landscape.render` draws it) that a rerun resumes;
under mpirun the points are then split across the ranks. Exit codes as plot_surface.py's.
`python -m landscape.connect curve` (cli/curve.py): a fitted curve between the two checkpoints.
`python -m landscape.connect matrix` (cli/connect_matrix.py): the barriers between many checkpoints.
"""
import argparse
import sys

from ..api.connect import interpolate
from ..files.paths import check_apart, results_outputs
from ..job.mpi import rank0_first
from ..job.run import JobOptions
from .connect_args import add_pair_args, add_point_args, add_results_args, input_files, pair_files, read_inputs
from .connect_matrix import add_matrix_parser, run_matrix
from .curve import add_curve_command, run_curve
from .exits import EXIT_OK, EXIT_STOPPED
from .path_tables import table
from .run import guarded_main


def parser():
    p = argparse.ArgumentParser(prog="python -m landscape.connect", description=__doc__.split("\n")[0])
    commands = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    line = commands.add_parser("line", help="loss and barriers along the straight line from --model_file to "
                                            "--model_file2", description=__doc__.split("\n")[0])
    add_pair_args(line, "line")
    add_point_args(line.add_argument_group("line"), 25, "points from t = 0 to t = 1, both ends included (>= 2)")
    add_results_args(line, "results file the points are committed to; rerunning the command resumes it")
    add_curve_command(commands)
    add_matrix_parser(commands)
    return p


def run(args, world, control):
    if args.command == "matrix":
        return run_matrix(args, world, control)
    if args.command == "curve":
        return run_curve(args, world, control)
    return run_line(args, world, control)


def run_line(args, world, control):
    if args.out:  # before anything is written: the results file is none of the inputs
        rank0_first(world, lambda: check_apart(input_files(args, pair_files(args)),
                                               results_outputs("--out", args.out, world.size)))
    inputs = read_inputs(args, world)
    model_a, model_b = inputs.build(), inputs.build(args.model_file2)
    path = interpolate(model_a, model_b, inputs.data, n=args.n, loss=inputs.loss, bn=args.bn,
                       test_data=inputs.test_data, bn_batches=args.bn_batches, batch_size=args.batch_size,
                       device=args.device, precision=args.precision, path=args.out, overwrite=args.overwrite,
                       job=JobOptions(stop=control.stop, on_results=control.results.append),
                       progress_secs=args.progress_secs)
    if not path.complete:
        if world.rank == 0:
            print(f"[line] stopped with {int(path.done.sum())} of {args.n} points done; rerun the same command to "
                  f"resume (exit {EXIT_STOPPED})", flush=True)
        return EXIT_STOPPED
    if world.rank == 0:
        print(table(path), flush=True)
    return EXIT_OK


def main(argv=None):
    return guarded_main(run, parser().parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
