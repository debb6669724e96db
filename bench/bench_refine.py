"""--refine against a uniform grid over the same finest grid, on real surfaces of briefly trained models.

For each model: train on the built-in synthetic set (python -m landscape.train), compute the uniform
surfaces with plot_surface.py at each --sizes (33x33 is every other point of the 65x65 surface, whose
coordinates it shares), and replay the refinement on their values for several tolerances: the decisions
depend only on the values of computed points, so a replay picks exactly the points a run would. One real
`plot_surface.py --refine` run (--run_model at --run_n, tolerance --tol) checks that.
Reported: share of points computed, max and 99th-percentile |log10 loss error| of train_loss_interp against
the uniform grid, and the share of pixels whose contour band (the reference's levels 0.1:10:0.5 on the
loss) differs; wall times for the real run. Every step's output is kept in --workdir, so an interrupted
bench continues where it stopped.
Usage: python bench/bench_refine.py [--models resnet20 resnet20_noshort resnet20@0] [--sizes 33 41 51 65]
       [--tol 0.02] [--run_model resnet20] [--run_n 41] [--images 20] [--workdir DIR]
"""
import argparse
import json
import os
import subprocess
import sys
import time

import h5py
import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "lib"))

from landscape.space.refine import Refinement  # noqa: E402

LEVELS = np.arange(0.1, 10, 0.5)  # the reference's default contour levels (vmin 0.1, vmax 10, vlevel 0.5)
DATA = ["--dataset", "synthetic", "--synthetic_size", "400", "100"]  # the training set: 400 images


def sh(cmd, log):
    env = dict(os.environ, PYTHONPATH=os.path.join(ROOT, "lib"), OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "2"),
               OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
    t0 = time.monotonic()
    with open(log, "w") as out:
        subprocess.run(cmd, env=env, check=True, stdout=out, stderr=subprocess.STDOUT)
    return time.monotonic() - t0


def train(spec, work):
    """'resnet20' trains 6 epochs; 'resnet20@0' is the same run's checkpoint before training (its init)."""
    model, _, epoch = spec.partition("@")
    ckpt = os.path.join(work, model, f"model_{epoch or 6}.t7")
    if not os.path.exists(ckpt):
        sh([sys.executable, "-m", "landscape.train", "--model", model, *DATA, "--epochs", "6", "--lr_milestones", "4",
            "--save", os.path.join(work, model), "--save_epoch", "6", "--noaug"],
           os.path.join(work, model + ".train.log"))
    return model, ckpt


def surface(model, ckpt, work, n, name, ranks, split, *flags):
    """Run plot_surface.py once (skipped when its file is complete); returns (path, wall seconds or None)."""
    path = os.path.join(work, f"{name}_{n}.h5")
    stamp = path + ".wall"
    if os.path.exists(stamp):
        return path, float(open(stamp).read())
    cmd = ["mpirun", "-n", str(ranks), "--oversubscribe", sys.executable, os.path.join(ROOT, "plot_surface.py"),
           "--model", model, "--model_file", ckpt, *DATA, "--data_split", str(split), "--threads", "1",
           f"--x=-1:1:{n}", f"--y=-1:1:{n}", "--dir_file", os.path.join(work, f"{name.rsplit('_', 1)[0]}_dirs.h5"),
           "--surf_file", path, "--batch_size", "100", "--progress_secs", "30", *flags]
    wall = sh(cmd, path + ".log")
    open(stamp, "w").write(f"{wall:.1f}")
    return path, wall


def compare(done, interp, truth):
    err = np.abs(np.log10(interp) - np.log10(truth))
    bands = np.digitize(interp, LEVELS) != np.digitize(truth, LEVELS)
    return dict(share=float(done.mean()), max=float(err.max()), p99=float(np.percentile(err, 99)),
                contour=float(bands.mean()))


def replay(truth, tol):
    r = Refinement(truth.shape, tol)
    done, values = np.zeros(truth.shape, bool), np.full(truth.shape, np.nan)
    while len(todo := r.next_points(done, values)):
        done.flat[todo] = True
        values.flat[todo] = truth.flat[todo]
    return done, r.interpolate(done, values, "log10")


def uniform_values(label, n, args, split):
    """The uniform surface's train loss at n x n (33 from 65's every other point) and its wall time."""
    model, ckpt = train(label, args.workdir)
    if n == 33 and 65 in args.sizes:
        return uniform_values(label, 65, args, split)[0][::2, ::2], None
    path, wall = surface(model, ckpt, args.workdir, n, f"{label}_uniform", args.ranks, split)
    with h5py.File(path, "r") as f:
        return f["train_loss"][()], wall


def row(label, n, what, m, wall=""):
    print(f"| {label} | {n}x{n} | {what} | {100 * m['share']:.1f} % | {m['max']:.3f} | {m['p99']:.4f} | "
          f"{100 * m['contour']:.2f} % | {wall} |", flush=True)


def real_run(label, n, truth, uwall, args, split):
    model, ckpt = train(label, args.workdir)
    rpath, rwall = surface(model, ckpt, args.workdir, n, f"{label}_refine{args.tol}", args.ranks, split,
                           "--refine", str(args.tol))
    with h5py.File(rpath, "r") as f:
        done, interp = f["surface_done"][()].astype(bool), f["train_loss_interp"][()]
    same = bool(np.array_equal(done, replay(truth, args.tol)[0]))
    uniform = f"{uwall:.0f} s" if uwall is not None else "(derived)"
    row(label, n, f"**{args.tol}**, run (same points as its replay: {same})", compare(done, interp, truth),
        f"{uniform} / {rwall:.0f} s")


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--models", nargs="+", default=["resnet20", "resnet20_noshort", "resnet20@0"],
                   help="zoo names trained 6 epochs; NAME@0: the same run's initialisation")
    p.add_argument("--sizes", type=int, nargs="+", default=[33, 41, 51, 65], help="points per axis")
    p.add_argument("--images", type=int, default=20, help="training images per point (of 400)")
    p.add_argument("--tol", type=float, default=0.02, help="tolerance of the real --refine run")
    p.add_argument("--replay_tols", type=float, nargs="+", default=[0.05, 0.02, 0.01])
    p.add_argument("--run_model", default="resnet20", help="the model of the real --refine run")
    p.add_argument("--run_n", type=int, default=41, help="the grid of the real --refine run (points per axis)")
    p.add_argument("--ranks", type=int, default=2, help="mpirun -n for every surface (one thread each)")
    p.add_argument("--workdir", default=os.path.join(ROOT, "bench", "out", "refine"))
    args = p.parse_args()
    os.makedirs(args.workdir, exist_ok=True)
    split = 400 // args.images
    print(f"# bench_refine {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {os.cpu_count()} cores, "
          f"load average {os.getloadavg()[0]:.1f}; {args.ranks} ranks, {400 // split} synthetic images per point, "
          f"grids over [-1, 1]^2")
    print("| model | grid | `--refine` | points computed | max error (log10 loss) | p99 error | contour bands differ | "
          "wall time (uniform / refine) |\n|---|---|---|---|---|---|---|---|")
    for label in args.models:
        for n in args.sizes:
            truth, uwall = uniform_values(label, n, args, split)
            for tol in args.replay_tols:
                row(label, n, f"{tol} (replay)", compare(*replay(truth, tol), truth))
            if (label, n) == (args.run_model, args.run_n):
                real_run(label, n, truth, uwall, args, split)
            print(json.dumps(dict(model=label, n=n, loss_range=[float(truth.min()), float(truth.max())])))


if __name__ == "__main__":
    main()
