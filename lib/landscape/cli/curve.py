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

from ..api.connect import interpolate
from ..api.curve_plane import curve_plane
from ..api.curves import evaluate_curve, fit_curve
from ..errors import ChoiceError
from ..files.paths import check_apart, results_outputs
from ..job.run import JobOptions
from ..job.stops import defer_stops
from ..plot.base import save_figure
from ..plot.connect import plot_paths
from ..space.curves import KINDS
from ..training.curve import SCHEDULES
from .args import non_negative_finite, positive_int
from .connect_args import FIGURES, add_pair_args, add_point_args, input_files, pair_files, read_inputs
from .exits import EXIT_OK, EXIT_STOPPED
from .path_tables import comparison


def add_curve_command(commands):
    p = commands.add_parser("curve", help="fit a low-loss curve from --model_file to --model_file2 and compare it "
                                          "with the line", description=__doc__.split("\n")[0])
    add_pair_args(p, "curve")
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
    add_point_args(g, 61, "points from t = 0 to t = 1 on the line and on the curve")
    g.add_argument("--plane", action="store_true", help="the loss over the plane of the ends and the first bend")
    g.add_argument("--plane_points", type=positive_int, default=21, help="grid points along each axis of --plane")
    g.add_argument("--progress_secs", type=non_negative_finite, default=10.0,
                   help="seconds between progress lines of --plane")
    return p


def run_curve(args, world, control):
    if world.size > 1:
        raise ChoiceError("python -m landscape.connect curve runs in one process (its fit is serial): launch it "
                          "without mpirun or srun")
    stem = os.path.splitext(args.out)[0]
    check_apart(input_files(args, pair_files(args)),
                [("--out", args.out), *((f"--out ({fmt})", f"{stem}_along_t.{fmt}") for fmt in FIGURES),
                 *(results_outputs("--plane's results", f"{stem}_plane.h5") if args.plane else [])])
    inputs = read_inputs(args, world)
    model_a, model_b = inputs.build(), inputs.build(args.model_file2)
    defer_stops()  # from here a stop ends the fit after its current batch, the file holding the last whole epoch
    curve = fit_curve(model_a, model_b, inputs.data, kind=args.kind, bends=args.bends, epochs=args.epochs,
                      lr=args.lr, batch_size=args.fit_batch_size, seed=args.fit_seed, path=args.out, loss=inputs.loss,
                      device=args.device, momentum=args.momentum, weight_decay=args.weight_decay,
                      schedule=args.schedule, overwrite=args.overwrite, stop=control.stop, progress=True)
    control.written.append(args.out)
    print(f"[curve] {args.out}: {curve.epoch} of {args.epochs} epochs fitted", flush=True)
    if not curve.complete or control.stop.is_set():
        print(f"[curve] stopped with {curve.epoch} of {args.epochs} epochs in {args.out}; rerun the same command to "
              f"resume (exit {EXIT_STOPPED})", flush=True)
        return EXIT_STOPPED
    evaluation = dict(n=args.n, loss=inputs.loss, bn=args.bn, bn_batches=args.bn_batches,
                      batch_size=args.batch_size, test_data=inputs.test_data, device=args.device,
                      precision=args.precision)
    line = interpolate(model_a, model_b, inputs.data, **evaluation)
    along = evaluate_curve(curve, inputs.data, **evaluation)
    print(comparison("curve", ("line", line), (f"{curve.kind} curve", along)), flush=True)
    name = f"{curve.kind} curve, {args.bends} bend{'s' if args.bends > 1 else ''}"
    for path in save_figure(plot_paths([("line", line), (name, along)]), f"{stem}_along_t", FIGURES):
        print(f"[curve] plot: {path}", flush=True)
    return _plane(args, curve, inputs, stem, control) if args.plane else EXIT_OK


def _plane(args, curve, inputs, stem, control):
    if control.stop.is_set():
        print(f"[curve] stopped before the plane; rerun the same command to draw it (exit {EXIT_STOPPED})", flush=True)
        return EXIT_STOPPED
    plane = curve_plane(curve, inputs.data, points=args.plane_points, bn=args.bn, bn_batches=args.bn_batches,
                        batch_size=args.batch_size, device=args.device, precision=args.precision,
                        loss=inputs.loss, path=f"{stem}_plane.h5", overwrite=args.overwrite,
                        progress_secs=args.progress_secs,
                        job=JobOptions(stop=control.stop, on_results=control.results.append))
    if not plane.surface.complete:
        print(f"[curve] stopped with the plane unfinished in {stem}_plane.h5; rerun the same command to resume "
              f"(exit {EXIT_STOPPED})", flush=True)
        return EXIT_STOPPED
    for path in save_figure(plane.plot(title=f"{curve.kind} curve over its plane"), f"{stem}_plane", FIGURES):
        print(f"[curve] plot: {path}", flush=True)
    return EXIT_OK
