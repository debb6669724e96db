"""python -m landscape.connect line: loss, accuracy and barriers on the straight line between two checkpoints.

Linear mode connectivity (Frankle et al. 2020): landscape.interpolate behind flags.

    python -m landscape.connect line --model resnet20 --model_file a.t7 --model_file2 b.t7 --dataset cifar10 --test \\
        --align weights --out line.h5

Prints a table of the points and the barriers. BatchNorm statistics are re-estimated at every point from
the training data (--bn recompute, the default) or interpolated (--bn keep). With --out the points are a
results file (plot_surface.py's layout over t: `python -m landscape.render` draws it) that a rerun resumes;
under mpirun the points are then split across the ranks. --align weights|activations also evaluates the
line from model_a to model_b with its units permuted to match model_a's (landscape.align; its points in
<out stem>_aligned.h5) and prints the barriers before and after. --figure (default <out stem>_along_t with
--out) draws loss and accuracy along t, each barrier marked. Exit codes as plot_surface.py's.
`python -m landscape.connect curve` (cli/curve.py): a fitted curve between the two checkpoints.
`python -m landscape.connect matrix` (cli/connect_matrix.py): the barriers between many checkpoints.
"""
import argparse
import os
import sys

from ..api.align import METHODS as ALIGN_METHODS
from ..api.align import align
from ..api.connect import interpolate
from ..files.paths import check_apart, results_outputs
from ..job.mpi import rank0_first
from ..job.run import JobOptions
from ..plot.base import save_figure
from ..plot.connect import plot_paths
from .connect_args import FIGURES, add_pair_args, add_point_args, add_results_args, input_files, pair_files, read_inputs
from .connect_matrix import add_matrix_parser, run_matrix
from .curve import add_curve_command, run_curve
from .exits import EXIT_OK, EXIT_STOPPED
from .path_tables import comparison, table
from .run import guarded_main


def parser():
    p = argparse.ArgumentParser(prog="python -m landscape.connect", description=__doc__.split("\n")[0])
    commands = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    line = commands.add_parser("line", help="loss and barriers along the straight line from --model_file to "
                                            "--model_file2", description=__doc__.split("\n")[0])
    add_pair_args(line, "line")
    g = line.add_argument_group("line")
    add_point_args(g, 25, "points from t = 0 to t = 1, both ends included (>= 2)")
    g.add_argument("--align", choices=ALIGN_METHODS, default=None,
                   help="also the line to --model_file2 with its units permuted to match --model_file's "
                        "(landscape.align), and the barriers before and after")
    g.add_argument("--figure", metavar="STEM", default=None,
                   help="loss and accuracy along t into STEM.png and STEM.pdf (default with --out: "
                        "<out stem>_along_t)")
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
    aligned_out = aligned_file(args.out) if args.out and args.align else None
    figure = args.figure or (f"{os.path.splitext(args.out)[0]}_along_t" if args.out else None)
    outputs = [*(results_outputs("--out", args.out, world.size) if args.out else []),
               *(results_outputs("--out (the aligned line)", aligned_out, world.size) if aligned_out else []),
               *((f"--figure ({fmt})", f"{figure}.{fmt}") for fmt in (FIGURES if figure else ()))]
    # before anything is written: no output is one of the inputs
    rank0_first(world, lambda: check_apart(input_files(args, pair_files(args)), outputs))
    inputs = read_inputs(args, world)
    model_a, model_b = inputs.build(), inputs.build(args.model_file2)
    lines = [("line", _line(args, inputs, model_a, model_b, args.out, control))]
    if lines[-1][1].complete and args.align:
        used = inputs.data if args.align == "activations" else None
        partner = align(model_a, model_b, method=args.align, data=used).model
        lines.append((f"aligned ({args.align})", _line(args, inputs, model_a, partner, aligned_out, control)))
    label, path = lines[-1]
    if not path.complete:
        if world.rank == 0:
            print(f"[line] stopped with {int(path.done.sum())} of {args.n} points done ({label}); rerun the same "
                  f"command to resume (exit {EXIT_STOPPED})", flush=True)
        return EXIT_STOPPED
    if world.rank == 0:
        print(report(lines), flush=True)
        if figure:
            for made in save_figure(plot_paths(lines, title=_title(lines)), figure, FIGURES):
                print(f"[line] plot: {made}", flush=True)
    return EXIT_OK


def aligned_file(out):
    """The results file of the aligned line beside --out's: <out stem>_aligned<its extension>."""
    stem, extension = os.path.splitext(out)
    return f"{stem}_aligned{extension or '.h5'}"


def _line(args, inputs, model_a, model_b, out, control):
    return interpolate(model_a, model_b, inputs.data, n=args.n, loss=inputs.loss, bn=args.bn,
                       test_data=inputs.test_data, bn_batches=args.bn_batches, batch_size=args.batch_size,
                       device=args.device, precision=args.precision, path=out, overwrite=args.overwrite,
                       job=JobOptions(stop=control.stop, on_results=control.results.append),
                       progress_secs=args.progress_secs)


def report(lines):
    """Each line's table ([line], [aligned]); with two lines, their barriers side by side."""
    tables = [table(path, "line" if k == 0 else "aligned") for k, (_, path) in enumerate(lines)]
    return "\n".join(tables + ([comparison("line", *lines)] if len(lines) > 1 else []))


def _title(lines):
    return "Line between the models" + (", before and after alignment" if len(lines) > 1 else "")


def main(argv=None):
    return guarded_main(run, parser().parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
