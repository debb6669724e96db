"""`python -m landscape.sharpness`: every sharpness measure of every checkpoint, with λmax, the trace and the
train/test loss and error, into one resumable table (HDF5 and CSV) and a figure of each measure against the
generalization gap with Kendall's τ. The work is landscape.sharpness_table's; this module reads the flags.

    python -m landscape.sharpness --model resnet20 --checkpoints run/model_10.t7 run/model_20.t7 ...
    mpirun -n 4 python -m landscape.sharpness --model resnet56 --model_folder trained/r56 --max_epoch 300 \\
        --save_epoch 30 --measures max_eig trace 'sharpness:rho=0.05' 'sharpness:rho=0.002,adaptive=false'

A measure is a kind with its options: 'sharpness:rho=0.05,norm=linf,measure=average', 'pac_bayes_flatness:
magnitude_aware=true', 'max_eig', 'trace:probes=50', or a JSON object {"kind": ..., "name": ..., ...}.
"""
import argparse
import json
import os
import sys

import torch

from ..api import sharpness_table
from ..api.table_measures import measure_specs
from ..errors import ChoiceError, DataError
from ..files.paths import check_apart, results_outputs
from ..imports import spec_files
from ..inputs.data import data_files
from ..inputs.series import checkpoint_series
from ..job.mpi import cpu_threads_per_rank, pick_device, rank0_first
from .args import add_commit_args, add_data_args, add_run_args, job_options, json_flag, positive_int
from .context import DataFlags, ModelFlags, check_output_classes, load_data, loss_from, refuse_directory
from .exits import EXIT_OK, EXIT_STOPPED
from .run import guarded_main, stopped_line

DEFAULT_MEASURES = ("max_eig", "trace", "sharpness:rho=0.05", "sharpness:rho=0.05,measure=average",
                    "pac_bayes_flatness")
TABLE_NAME = "sharpness_table.h5"


def parser():
    p = argparse.ArgumentParser(prog="python -m landscape.sharpness", allow_abbrev=False,
                                description="The sharpness table: every measure of every checkpoint.",
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("\n", 1)[1])
    g = p.add_argument_group("model and checkpoints")
    g.add_argument("--model", default="resnet56", help="zoo name (see README) or 'package.module:factory'")
    g.add_argument("--model_kwargs", default="{}", help="JSON keyword arguments for a custom factory")
    g.add_argument("--checkpoints", nargs="+", metavar="FILE", help="the checkpoint files, in order")
    g.add_argument("--model_folder", help="instead of --checkpoints: a training run's folder (as plot_trajectory.py)")
    g.add_argument("--prefix", default="model_", help="checkpoint name before the epoch")
    g.add_argument("--suffix", default=".t7", help="checkpoint name after the epoch")
    g.add_argument("--start_epoch", type=int, default=0)
    g.add_argument("--max_epoch", type=int, default=300, help="epoch of the last checkpoint")
    g.add_argument("--save_epoch", type=positive_int, default=1, help="epochs between checkpoints")
    add_data_args(p)
    p.add_argument("--seed", type=int, default=0, help="seed of --random_labels")
    g = p.add_argument_group("measures and output")
    g.add_argument("--measures", nargs="+", default=list(DEFAULT_MEASURES), metavar="MEASURE",
                   help="the measures, each a kind and its options (see above); default: %(default)s")
    g.add_argument("--gap", default="error", choices=("error", "loss"), help="the generalization gap: test - train")
    g.add_argument("--table_file", help=f"the HDF5 table (default: {TABLE_NAME} in the checkpoints' folder); "
                                        "rerunning the same command resumes it")
    g.add_argument("--csv", help="the CSV copy (default: the table file's name with .csv)")
    g.add_argument("--figure", help="the figure's name without .png (default: the table file's name + _gap)")
    add_commit_args(g)
    add_run_args(p)
    return p


def parse_measure(text):
    """'kind:key=value,key=value' (values read as JSON where they parse: 0.05, false, null) or a JSON object."""
    if text.lstrip().startswith("{"):
        try:
            return json.loads(text)
        except json.JSONDecodeError as e:
            raise ChoiceError(f"--measures {text!r} is not a JSON object: {e}") from None
    kind, _, rest = text.partition(":")
    measure = {"kind": kind}
    for item in filter(None, rest.split(",")):
        key, equals, value = item.partition("=")
        if not equals or not key:
            raise ChoiceError(f"--measures {text!r}: each option is key=value, got {item!r}")
        try:
            measure[key] = json.loads(value)
        except json.JSONDecodeError:
            measure[key] = value  # a word: measure=average, norm=linf, params=reference
    return measure


def checkpoint_files(args):
    """(names, paths): --checkpoints as given, or the --model_folder series; every file must exist."""
    if bool(args.checkpoints) == bool(args.model_folder):
        raise ChoiceError("give the checkpoints either as --checkpoints FILE ... or as --model_folder with "
                          "--max_epoch/--save_epoch, not both or neither")
    paths = args.checkpoints or checkpoint_series(args.model_folder, args.prefix, args.suffix, args.start_epoch,
                                                  args.max_epoch, args.save_epoch)
    for path in paths:
        refuse_directory(path, "checkpoints")
    missing = [path for path in paths if not os.path.isfile(path)]
    if missing:
        raise DataError(f"{len(missing)} of {len(paths)} checkpoints are missing: {', '.join(missing[:5])}")
    stems = [os.path.splitext(os.path.basename(path))[0] for path in paths]
    return (stems if len(set(stems)) == len(stems) else list(paths)), list(paths)


def output_paths(args, paths):
    table = args.table_file or os.path.join(args.model_folder or os.path.dirname(paths[0]) or ".", TABLE_NAME)
    refuse_directory(table, "table_file")
    stem = os.path.splitext(table)[0]
    return table, args.csv or stem + ".csv", args.figure or stem + "_gap"


def run(args, world, control):
    specs = measure_specs([parse_measure(text) for text in args.measures])  # bad measures: refused first
    names, paths = checkpoint_files(args)
    table, csv, figure = output_paths(args, paths)
    model_flags = ModelFlags(args.model, _json(args.model_kwargs, "--model_kwargs"))
    data_flags = DataFlags(args.dataset, args.datapath, _json(args.dataset_kwargs, "--dataset_kwargs"), args.raw_data,
                           args.download, tuple(args.synthetic_size), args.synthetic_seed, args.num_classes,
                           (args.data_split, args.split_idx), args.random_labels, args.seed)
    reads = [("--checkpoints", path) for path in paths] + [("--dataset", path) for path in
                                                            data_files(args.dataset, args.datapath)]
    reads += spec_files((("--model", args.model), ("--dataset", args.dataset), ("--loss", args.loss)))
    writes = results_outputs("--table_file", table, world.size) + [("--csv", csv), ("--figure", figure + ".png")]
    rank0_first(world, lambda: check_apart(reads, writes))
    device = pick_device(world, "cuda" if args.cuda else args.device)
    torch.set_num_threads(args.threads or cpu_threads_per_rank())
    train, test = load_data(data_flags, world)
    if test is None:
        raise DataError(f"the generalization gap needs a test set; --dataset {args.dataset} has none")
    loss = loss_from(args.loss_name, args.loss)
    check_output_classes(model_flags.build(train.num_classes, paths[0]), train, args.model, loss)
    checkpoints = [(name, _factory(model_flags, train.num_classes, path)) for name, path in zip(names, paths)]
    result = sharpness_table(checkpoints, (train.x, train.y), (test.x, test.y), loss=loss, measures=specs,
                             path=table, csv=csv, figure=figure, gap=args.gap, device=device,
                             overwrite=args.overwrite, progress_secs=args.progress_secs,
                             job=job_options(args, control))
    return world.bcast(report(result, args.gap, world, table, started=bool(control.results)))


def _factory(model_flags, num_classes, path):
    return lambda: model_flags.build(num_classes, path)


def _json(text, flag):
    return json_flag(text, flag, ChoiceError)


def report(table, gap, world, path, started):
    """Rank 0 prints; the exit code is every rank's (the caller broadcasts rank 0's)."""
    if not table.complete:
        if world.rank != 0:
            return EXIT_STOPPED
        print(stopped_line("table", "table", path, started), flush=True)
        return EXIT_STOPPED
    if world.rank != 0:
        return EXIT_OK
    for name, tau in table.taus.items():
        shown = "n/a (fewer than two finite pairs, or a constant measure or gap)" if tau != tau else f"{tau:.3f}"
        print(f"[table] {name}: Kendall τ against the {gap} gap = {shown}", flush=True)
    for out in (table.path, table.csv, *table.figures):
        print(f"[table] wrote {out}", flush=True)
    return EXIT_OK


def main(argv=None):
    return guarded_main(run, parser().parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
