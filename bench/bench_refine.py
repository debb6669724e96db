"""--refine against a uniform grid over the same finest grid, on real surfaces of briefly trained models.

For each model: train on the built-in synthetic set (python -m landscape.train), compute the uniform 65x65
surface with plot_surface.py, then the same surface with --refine TOL. Reported: share of points computed,
max and 99th-percentile |log10 loss error| of train_loss_interp against the uniform grid, share of pixels
whose contour band (the reference's levels 0.1:10:0.5 on the loss) differs, and wall times.
Also replays the refinement on the uniform values for several tolerances (the decisions depend only on the
values of computed points, so a replay picks exactly the points a run would; the run checks that).
Every step's output is kept in --workdir, so an interrupted bench continues where it stopped.
Usage: python bench/bench_refine.py [--models resnet20 resnet20_noshort vgg9] [--tol 0.02] [--n 65]
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


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--models", nargs="+", default=["resnet20", "resnet20_noshort", "resnet20@0"],
                   help="zoo names trained 6 epochs; NAME@0: the same run's initialisation")
    p.add_argument("--images", type=int, default=100, help="training images per point (of 400)")
    p.add_argument("--tol", type=float, default=0.02, help="tolerance of the real --refine runs")
    p.add_argument("--replay_tols", type=float, nargs="+", default=[0.05, 0.02, 0.01, 0.005])
    p.add_argument("--n", type=int, default=65)
    p.add_argument("--ranks", type=int, default=2, help="mpirun -n for every surface (one thread each)")
    p.add_argument("--workdir", default=os.path.join(ROOT, "bench", "out", "refine"))
    args = p.parse_args()
    os.makedirs(args.workdir, exist_ok=True)
    split = 400 // args.images
    print(f"# bench_refine {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {os.cpu_count()} cores, "
          f"load average {os.getloadavg()[0]:.1f}; {args.ranks} ranks, {400 // split} synthetic images per point, "
          f"{args.n}x{args.n} in [-1, 1]^2")
    print("| model | tolerance | points computed | max error (log10 loss) | p99 error | contour bands differ | "
          "wall time (uniform / refine) |\n|---|---|---|---|---|---|---|")
    for label in args.models:
        model, ckpt = train(label, args.workdir)
        upath, uwall = surface(model, ckpt, args.workdir, args.n, f"{label}_uniform", args.ranks, split)
        with h5py.File(upath, "r") as f:
            truth = f["train_loss"][()]
        for tol in args.replay_tols:
            done, interp = replay(truth, tol)
            m = compare(done, interp, truth)
            print(f"| {label} | {tol} (replay) | {100 * m['share']:.1f} % | {m['max']:.3f} | {m['p99']:.4f} | "
                  f"{100 * m['contour']:.2f} % | |", flush=True)
        rpath, rwall = surface(model, ckpt, args.workdir, args.n, f"{label}_refine{args.tol}", args.ranks, split,
                               "--refine", str(args.tol))
        with h5py.File(rpath, "r") as f:
            done, interp = f["surface_done"][()].astype(bool), f["train_loss_interp"][()]
        same = bool(np.array_equal(done, replay(truth, args.tol)[0]))
        m = compare(done, interp, truth)
        print(f"| {label} | {args.tol} (run; same points as replay: {same}) | {100 * m['share']:.1f} % | "
              f"{m['max']:.3f} | {m['p99']:.4f} | {100 * m['contour']:.2f} % | {uwall:.0f} s / {rwall:.0f} s |",
              flush=True)
        print(json.dumps(dict(model=label, loss_range=[float(truth.min()), float(truth.max())])))


if __name__ == "__main__":
    main()
