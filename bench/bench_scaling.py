"""Share of time outside evaluation (coordination, I/O, MPI, waiting) with 1, 2 and 3 ranks.

Runs plot_surface.py under mpirun on resnet20 over synthetic data and reads the overhead line that
rank 0 prints at the end of every job. Goal: under 2 %.
Usage: python bench/bench_scaling.py [--ranks 1 2 3] [--points 7] [--images 500]
"""
import argparse
import os
import re
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_job(ranks, points, images, workdir):
    env = dict(os.environ, PYTHONPATH=os.path.join(ROOT, "lib"), OMPI_ALLOW_RUN_AS_ROOT="1",
               OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
    surf = os.path.join(workdir, f"surf_{ranks}.h5")
    cmd = ["mpirun", "-n", str(ranks), "--oversubscribe", sys.executable, os.path.join(ROOT, "plot_surface.py"),
           "--model", "resnet20", "--dataset", "synthetic", "--synthetic_size", str(images), "10",
           f"--x=-1:1:{points}", f"--y=-1:1:{points}", "--dir_file", os.path.join(workdir, "dirs.h5"),
           "--surf_file", surf]
    t0 = time.monotonic()
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True).stdout
    wall = time.monotonic() - t0
    share = float(re.search(r"([\d.]+)% of \d+ rank", out).group(1))
    return share, wall


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--ranks", type=int, nargs="+", default=[1, 2, 3])
    p.add_argument("--points", type=int, default=9)
    p.add_argument("--images", type=int, default=500)
    args = p.parse_args()
    print(f"resnet20, {args.images} synthetic images per point, {args.points}x{args.points} grid, "
          f"{os.cpu_count()} cores")
    print("| ranks | time outside evaluation | job wall time (s), startup included |\n|---|---|---|")
    with tempfile.TemporaryDirectory() as workdir:
        for ranks in args.ranks:
            share, wall = run_job(ranks, args.points, args.images, workdir)
            print(f"| {ranks} | {share:.2f} % | {wall:.1f} |", flush=True)


if __name__ == "__main__":
    main()
