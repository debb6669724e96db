"""python -m landscape.connect curve: fit a low-loss curve between two checkpoints (Garipov et al. 2018),
then compare the loss along it with the straight line's.

    python -m landscape.connect curve --model resnet20 --model_file a.t7 --model_file2 b.t7 --dataset cifar10 \\
        --kind bezier --bends 1 --epochs 50 --lr 0.03 --out curve.h5 --test --plane

The fit is checkpointed to --out after every epoch; rerunning the command resumes it (other fit settings
are refused; --overwrite starts over). Then the line and the curve are evaluated at --n points each
(BatchNorm statistics re-estimated at every point with --bn recompute), their barriers printed, and
<out>_along_t.png/.pdf drawn (loss and accuracy over t, each barrier marked). --plane adds the loss over
the plane through the ends and the first bend, into the results file <out>_plane.h5 (resumed by a
rerun) and the figure <out>_plane.png/.pdf. One process: it refuses mpirun.
"""
import os

import torch

from ..api.connect import BN_CHOICES, interpolate
from ..api.curve_plane import curve_plane
from ..api.curves import evaluate_curve, fit_curve
from ..errors import ChoiceError, DataError, LossError, ModelError
from ..files.paths import check_apart, results_outputs
from ..imports import import_callable, spec_files
from ..inputs.data import data_files
from ..job.mpi import cpu_threads_per_rank
from ..job.run import JobOptions
from ..job.stops import defer_stops
from ..plot.base import save_figure
from ..plot.connect import plot_paths
from ..space.curves import KINDS
from ..space.losses import LOSS_NAMES
from ..space.precision import PRECISIONS
from ..training.curve import SCHEDULES
from .args import add_data_args, json_flag, non_negative_finite, non_negative_int, positive_int
from .context import DataFlags, ModelFlags, load_data
from .exits import EXIT_OK, EXIT_STOPPED

FIGURES = ("png", "pdf")


def add_curve_command(commands):
    p = commands.add_parser("curve", help="fit a low-loss curve from --model_file to --model_file2 and compare it "
                                          "with the line", description=__doc__.split("\n")[0])
    g = p.add_argument_group("models")
    g.add_argument("--model", default="resnet56", help="zoo name (see README) or 'package.module:factory'")
    g.add_argument("--model_kwargs", default="{}", help="JSON keyword arguments for a custom factory")
    g.add_argument("--model_file", required=True, help="checkpoint of model_a, the curve's t = 0")
    g.add_argument("--model_file2", required=True, help="checkpoint of model_b, the curve's t = 1")
    add_data_args(p)
    g.add_argument("--seed", type=int, default=0, help="seed of --random_labels")
    g = p.add_argument_group("fit (Garipov et al. 2018)")
    g.add_argument("--out", required=True, help="the curve file: checkpointed every epoch, resumed by a rerun")
    g.add_argument("--overwrite", action="store_true", help="start the fit over, replacing --out and its outputs")
    g.add_argument("--kind", choices=KINDS, default="bezier")
    g.add_argument("--bends", type=positive_int, default=1, help="bends between the ends")
    g.add_argument("--epochs", type=positive_int, default=20)
    g.add_argument("--lr", type=float, default=0.05, help="SGD's learning rate")
    g.add_argument("--momentum", type=float, default=0.9)
    g.add_argument("--weight_decay", type=float, default=0.0, help="on the point of the curve, as Garipov et al.")
    g.add_argument("--schedule", choices=SCHEDULES, default="garipov",
                   help="garipov: lr for half the epochs, then down to 1%% of it at 90%%; constant")
    g.add_argument("--fit_batch_size", type=positive_int, default=128, help="training batch size")
    g.add_argument("--fit_seed", type=int, default=0, help="the order of the samples, the t drawn, dropout")
    g = p.add_argument_group("evaluation")
    g.add_argument("--n", type=int, default=61, help="points from t = 0 to t = 1 on the line and on the curve")
    g.add_argument("--bn", choices=BN_CHOICES, default="recompute",
                   help="BatchNorm statistics at each point: re-estimated from training batches, or interpolated")
    g.add_argument("--bn_batches", type=positive_int, default=None,
                   help="--bn recompute: the first N training batches (default: all of them)")
    g.add_argument("--batch_size", type=positive_int, default=256, help="evaluation batch size")
    g.add_argument("--precision", default="fp32", choices=PRECISIONS, help="of the evaluation")
    g.add_argument("--test", action="store_true", help="also evaluate the test set (test_loss, test_acc)")
    g.add_argument("--plane", action="store_true", help="the loss over the plane of the ends and the first bend")
    g.add_argument("--plane_points", type=positive_int, default=21, help="grid points along each axis of --plane")
    g.add_argument("--loss_name", default="crossentropy", choices=LOSS_NAMES)
    g.add_argument("--loss", default=None, metavar="MODULE:FUNCTION",
                   help="your loss(outputs, targets) -> the batch's mean loss (replaces --loss_name)")
    g.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    g.add_argument("--threads", type=non_negative_int, default=0, help="CPU threads (0: all cores)")
    g.add_argument("--progress_secs", type=non_negative_finite, default=10.0,
                   help="seconds between progress lines of --plane")
    return p


def run_curve(args, world, control):
    if world.size > 1:
        raise ChoiceError("python -m landscape.connect curve runs in one process (its fit is serial): launch it "
                          "without mpirun or srun")
    torch.set_num_threads(args.threads or cpu_threads_per_rank())
    loss = args.loss_name if args.loss is None else import_callable(args.loss, LossError, "--loss")
    stem = os.path.splitext(args.out)[0]
    check_apart(_inputs(args), [("--out", args.out), *((f"--out ({fmt})", f"{stem}_along_t.{fmt}") for fmt in FIGURES),
                                *(results_outputs("--plane's results", f"{stem}_plane.h5") if args.plane else [])])
    data = DataFlags(args.dataset, args.datapath, json_flag(args.dataset_kwargs, "--dataset_kwargs", DataError),
                     args.raw_data, args.download, tuple(args.synthetic_size), args.synthetic_seed,
                     args.num_classes, (args.data_split, args.split_idx), args.random_labels, args.seed)
    train, test = load_data(data, world)
    if args.test and test is None:
        raise DataError(f"--test asks for the test set but --dataset {args.dataset} has none")
    model = ModelFlags(args.model, json_flag(args.model_kwargs, "--model_kwargs", ModelError), args.model_file)
    model_a, model_b = model.build(train.num_classes), model.build(train.num_classes, args.model_file2)
    defer_stops()  # from here a stop ends the fit after its current batch, the file holding the last whole epoch
    curve = fit_curve(model_a, model_b, (train.x, train.y), kind=args.kind, bends=args.bends, epochs=args.epochs,
                      lr=args.lr, batch_size=args.fit_batch_size, seed=args.fit_seed, path=args.out, loss=loss,
                      device=args.device, momentum=args.momentum, weight_decay=args.weight_decay,
                      schedule=args.schedule, overwrite=args.overwrite, stop=control.stop, progress=True)
    control.written.append(args.out)
    print(f"[curve] {args.out}: {curve.epoch} of {args.epochs} epochs fitted", flush=True)
    if not curve.complete or control.stop.is_set():
        print(f"[curve] stopped with {curve.epoch} of {args.epochs} epochs in {args.out}; rerun the same command to "
              f"resume (exit {EXIT_STOPPED})", flush=True)
        return EXIT_STOPPED
    evaluation = dict(n=args.n, loss=loss, bn=args.bn, bn_batches=args.bn_batches, batch_size=args.batch_size,
                      test_data=(test.x, test.y) if args.test else None, device=args.device, precision=args.precision)
    line = interpolate(model_a, model_b, (train.x, train.y), **evaluation)
    along = evaluate_curve(curve, (train.x, train.y), **evaluation)
    print(comparison(line, along, curve.kind), flush=True)
    name = f"{curve.kind} curve, {args.bends} bend{'s' if args.bends > 1 else ''}"
    for path in save_figure(plot_paths([("line", line), (name, along)]), f"{stem}_along_t", FIGURES):
        print(f"[curve] plot: {path}", flush=True)
    return _plane(args, curve, train, loss, stem, control) if args.plane else EXIT_OK


def _plane(args, curve, train, loss, stem, control):
    if control.stop.is_set():
        print(f"[curve] stopped before the plane; rerun the same command to draw it (exit {EXIT_STOPPED})", flush=True)
        return EXIT_STOPPED
    plane = curve_plane(curve, (train.x, train.y), points=args.plane_points, bn=args.bn, bn_batches=args.bn_batches,
                        batch_size=args.batch_size, device=args.device, precision=args.precision,
                        loss=loss, path=f"{stem}_plane.h5", overwrite=args.overwrite, progress_secs=args.progress_secs,
                        job=JobOptions(stop=control.stop, on_results=control.results.append))
    if not plane.surface.complete:
        print(f"[curve] stopped with the plane unfinished in {stem}_plane.h5; rerun the same command to resume "
              f"(exit {EXIT_STOPPED})", flush=True)
        return EXIT_STOPPED
    for path in save_figure(plane.plot(title=f"{curve.kind} curve over its plane"), f"{stem}_plane", FIGURES):
        print(f"[curve] plot: {path}", flush=True)
    return EXIT_OK


def _inputs(args):
    specs = (("--model", args.model), ("--dataset", args.dataset), ("--loss", args.loss))
    return [("--model_file", args.model_file), ("--model_file2", args.model_file2),
            *(("--dataset", path) for path in data_files(args.dataset, args.datapath)), *spec_files(specs)]


def comparison(line, along, kind):
    """The barriers of the line and of the curve, quantity by quantity (a rise of loss, a drop of accuracy)."""
    names = [name for name in ("train_loss", "train_acc", "test_loss", "test_acc") if getattr(line, name) is not None]
    lines = [f"[curve] {'barrier':<22} {'line':>12} {kind + ' curve':>16}"]
    for name in names:
        for how in ("linear", "mean"):
            lines.append(f"[curve] {name + ' (' + how + ')':<22} {line.barrier(name, how):12.6g} "
                         f"{along.barrier(name, how):16.6g}")
    lines.append(f"[curve] max train_loss along: line {line.train_loss.max():.6g}, curve {along.train_loss.max():.6g}")
    return "\n".join(lines)
