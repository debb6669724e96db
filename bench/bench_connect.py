"""Mode connectivity on this machine (issue 23): barriers of the line, the aligned line and a Bezier curve
between two small ResNets trained from different seeds, alignment's gain by MLP width, and what one point
of each costs against one landscape.surface point. Not a test: it trains models (a few minutes on 2 cores).

    OMP_NUM_THREADS=2 PYTHONPATH=lib nice -n 10 python bench/bench_connect.py [--workdir DIR] [--model resnet20]

Models: `python -m landscape.train --model M --dataset synthetic --synthetic_size TRAIN TEST --seed 0|1`,
checkpoints kept in --workdir (a rerun skips training and reuses the fitted curve file). Paths: n points
from t = 0 to 1 with BatchNorm statistics re-estimated at every t from the training set. Barriers are
linear (the largest rise of the loss above, or dip of the accuracy below, the chord between the ends).
The width sweep calls bench_align's own training and line functions (weight matching only).
"""
import argparse
import os
import subprocess
import sys
import time

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "lib"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import bench_align  # noqa: E402

import landscape  # noqa: E402
from landscape.inputs.checkpoint import load_weights  # noqa: E402
from landscape.inputs.data import load_dataset  # noqa: E402
from landscape.inputs.models import get_model  # noqa: E402

QUANTITIES = ("train_loss", "train_acc", "test_loss", "test_acc")


def train(args, seed):
    """The checkpoint of `args.model` trained from `seed` (trained here unless the workdir has it)."""
    folder = os.path.join(args.workdir, f"{args.model}_s{seed}")
    ckpt = os.path.join(folder, f"model_{args.epochs}.t7")
    if not os.path.exists(ckpt):
        cmd = [sys.executable, "-m", "landscape.train", "--model", args.model, "--dataset", "synthetic",
               "--synthetic_size", str(args.train), str(args.test), "--epochs", str(args.epochs),
               "--lr_milestones", str(args.epochs * 3 // 4), "--batch_size", "64", "--seed", str(seed),
               "--save", folder, "--save_epoch", str(args.epochs), "--noaug"]
        env = dict(os.environ, PYTHONPATH=os.path.join(ROOT, "lib"))
        with open(folder + ".train.log", "w") as log:
            subprocess.run(cmd, env=env, check=True, stdout=log, stderr=subprocess.STDOUT)
    return load_weights(get_model(args.model), ckpt).eval()


def row(name, path):
    cells = [f"{path.train_loss[0]:.3f}, {path.train_loss[-1]:.3f}", f"{path.train_loss[len(path.t) // 2]:.3f}"]
    cells += [f"{path.barrier(q):.3f}" if q.endswith("loss") else f"{path.barrier(q):.1f}" for q in QUANTITIES]
    return f"| {name} | " + " | ".join(cells) + " |"


def barriers(args, a, b, train_data, test_data):
    print(f"\n{args.model}, {args.train} training / {args.test} test images, {args.points} points per path, "
          "bn recompute; accuracy barriers in percentage points\n")
    print("| path | end train losses | midpoint train loss | train loss barrier | train acc barrier | "
          "test loss barrier | test acc barrier |")
    print("|---|---|---|---|---|---|---|")
    line = dict(data=train_data, test_data=test_data, n=args.points)
    print(row("line", landscape.interpolate(a, b, **line)), flush=True)
    start = time.perf_counter()
    found = landscape.align(a, b)
    aligned_s = time.perf_counter() - start
    print(row("aligned line (weights)", landscape.interpolate(a, found.model, **line)), flush=True)
    start = time.perf_counter()
    curve = landscape.fit_curve(a, b, train_data, epochs=args.curve_epochs,
                                path=os.path.join(args.workdir, f"{args.model}_bezier{args.curve_epochs}.h5"))
    curve_s = time.perf_counter() - start
    print(row(f"Bezier curve (1 bend, {args.curve_epochs} epochs)", landscape.evaluate_curve(curve, **line)))
    print(f"\nalign: {aligned_s:.1f} s, {found.rounds} rounds, converged {found.converged}; "
          f"curve fit {curve_s:.0f} s (0 when read back from the workdir)", flush=True)


def width_sweep(widths):
    x, y = bench_align.mixture(4096)
    print("\nMLP 16 -> w -> w -> 10 (bench_align's task and training), seeds 0 and 1, weight matching\n")
    print("| width | barrier before | after | before / after |")
    print("|---|---|---|---|")
    for width in widths:
        one, other = bench_align.train(width, 0, x, y), bench_align.train(width, 1, x, y)
        before = bench_align.barrier(bench_align.line_losses(one, other, x, y))
        after = bench_align.barrier(bench_align.line_losses(one, landscape.align(one, other).model, x, y))
        print(f"| {width} | {before:.3f} | {after:.3f} | {before / after:.1f} |", flush=True)


def costs(a, b, data, rounds, points=3):
    """Wall seconds per point (min over interleaved rounds) against one landscape.surface point."""
    directions = landscape.random_directions(a, n=1)
    jobs = {
        "surface point": lambda: landscape.surface(a, data, directions=directions, x=(-1, 1, points),
                                                  batch_size=256),  # interpolate's batch size, not timed "auto"
        "interpolate point, bn recompute": lambda: landscape.interpolate(a, b, data, n=points),
        "interpolate point, bn keep": lambda: landscape.interpolate(a, b, data, n=points, bn="keep"),
        "curve-fit epoch": lambda: landscape.fit_curve(a, b, data, epochs=1),
        "align call (weights)": lambda: landscape.align(a, b),
    }
    per_call = {"curve-fit epoch": 1, "align call (weights)": 1}
    best = {name: float("inf") for name in jobs}
    for _ in range(rounds):
        for name, job in jobs.items():
            start = time.perf_counter()
            job()
            best[name] = min(best[name], (time.perf_counter() - start) / per_call.get(name, points))
    print(f"\nCost on the same model and {len(data[0])} training images (min of {rounds} interleaved rounds; "
          f"a point = the call over {points} points / {points})\n")
    print("| what | wall s | / surface point |")
    print("|---|---|---|")
    for name, seconds in best.items():
        print(f"| {name} | {seconds:.2f} | {seconds / best['surface point']:.2f} |")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--workdir", default=os.path.join(os.path.dirname(ROOT), "i23bench_work"))
    parser.add_argument("--model", default="resnet20")
    parser.add_argument("--train", type=int, default=1000)
    parser.add_argument("--test", type=int, default=500)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--points", type=int, default=11)
    parser.add_argument("--curve_epochs", type=int, default=10)
    parser.add_argument("--widths", type=int, nargs="+", default=[8, 32, 128, 512])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--skip", nargs="*", default=[], choices=("barriers", "widths", "costs"))
    args = parser.parse_args()
    os.makedirs(args.workdir, exist_ok=True)
    torch.manual_seed(0)
    a, b = train(args, 0), train(args, 1)
    train_set, test_set = load_dataset("synthetic", synthetic_size=(args.train, args.test))
    train_data, test_data = (train_set.x, train_set.y), (test_set.x, test_set.y)
    if "barriers" not in args.skip:
        barriers(args, a, b, train_data, test_data)
    if "widths" not in args.skip:
        width_sweep(args.widths)
    if "costs" not in args.skip:
        costs(a, b, train_data, args.rounds)


if __name__ == "__main__":
    main()
