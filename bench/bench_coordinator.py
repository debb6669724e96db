"""How far rank 0's coordinator and the commits carry: sleep-cost simulation with 8-64 ranks (oversubscribed).

Each point sleeps instead of evaluating (bench/sim_job.py: the real dispatcher, channel and HDF5 file, no
torch). Measures per rank count: points handed out per second by rank 0, the share of time ranks wait for
work, the commit time with parallel HDF5 and with the serial fallback, peak memory per rank; and the file size
of a 1001x1001 grid. Fits an overhead model and projects the efficiency for 256 and 1,024 ranks.
Usage: python bench/bench_coordinator.py [--ranks 8 16 32 64] [--sleep 0.05] [--points_per_rank 60]
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "lib"))


def sim(ranks, workdir, name, *flags):
    stats = os.path.join(workdir, name + ".json")
    surf = os.path.join(workdir, name + ".h5")
    env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1", OMP_NUM_THREADS="1")
    cmd = ["mpirun", "-n", str(ranks), "--oversubscribe", sys.executable, os.path.join(ROOT, "bench", "sim_job.py"),
           "--surf_file", surf, "--stats", stats, *flags]
    subprocess.run(cmd, env=env, check=True, capture_output=True, text=True, timeout=900)
    with open(stats) as f:
        out = json.load(f)
    os.remove(surf)
    return out


def summarize(s):
    per = s["per_rank"]
    points = int(np.prod(s["shape"]))
    busy = points * s["sleep"]
    return dict(ranks=s["ranks"], points=points, wall=s["wall"], rate=points / s["wall"],
                efficiency=busy / (s["ranks"] * s["wall"]), wait=np.mean([r["wait"] for r in per]) / s["wall"],
                commit=np.mean([r["commit"] / max(r["commits"], 1) for r in per]),
                commits=per[0]["commits"], requests=sum(r["requests"] for r in per),
                rss=max(r["maxrss_mb"] for r in per))


def square(points):
    n = int(np.ceil(np.sqrt(points)))
    return [str(n), str(n)]


def file_sizes():
    """Bytes of a 1001x1001 results file: surface only, with test quantities, with the interpolations."""
    import h5py

    from landscape.files.results import Layout
    from landscape.files.resume import prepare
    from landscape.space.grid import Grid
    grid = Grid(np.linspace(-1, 1, 1001), np.linspace(-1, 1, 1001))
    out = {}
    with tempfile.TemporaryDirectory() as d:
        for label, q in (("train_loss, train_acc", ("train_loss", "train_acc")),
                         ("+ test_loss, test_acc", ("train_loss", "train_acc", "test_loss", "test_acc"))):
            path = os.path.join(d, "big.h5")
            prepare(path, Layout(grid, "surface", q), {}, {}, "-", overwrite=True)
            out[label] = os.path.getsize(path)
            with h5py.File(path, "r+") as f:
                for name in q:
                    f.create_dataset(name + "_interp", data=np.zeros(grid.shape))
            out[label + " + _interp"] = os.path.getsize(path)
    return out


def fit(rows):
    """Overhead per rank = a + b*ranks seconds per commit epoch; rank 0 serves one request in c seconds."""
    n = np.array([r["ranks"] for r in rows], float)
    commit = np.array([r["commit"] for r in rows])
    a, b = np.linalg.lstsq(np.stack([np.ones_like(n), n], 1), commit, rcond=None)[0]
    return a, b


def project(a, b, c, ranks, t, points, flush_points=256, flush_secs=60.0, spread=0.1):
    """Projected efficiency of one rank: work / (work + commit stalls + the last point), or rank 0's limit.

    Commit epochs come every max(flush interval, 50 commits) (the spacing rule); each stalls all ranks for the
    commit, C = a + b*ranks, plus the straggler wait: `spread` (assumed 10 %) of a chunk's time.
    Chunks hold max(0.5 s, 4 * 5 ms * ranks) / t points (at least 1), at most left/(4 ranks);
    rank 0 answers one request per c seconds.
    """
    work = points * t / ranks
    chunk = max(1, min(int(max(0.5, 4 * 0.005 * ranks) / t), points // (4 * ranks)))
    commit = a + b * ranks
    interval = max(min(flush_points * t / ranks, flush_secs), 50 * commit, chunk * t)
    stalls = (work / interval + 1) * (commit + spread * chunk * t)
    return work / max(work + stalls + t, points / chunk * c)


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--ranks", type=int, nargs="+", default=[8, 16, 32, 64])
    p.add_argument("--sleep", type=float, default=0.05)
    p.add_argument("--points_per_rank", type=int, default=60)
    p.add_argument("--flush_points", type=int, default=256)
    p.add_argument("--compare_only", action="store_true", help="only the old/new chunk and commit rules")
    args = p.parse_args()
    load0 = os.getloadavg()
    print(f"# bench_coordinator, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {os.cpu_count()} cores, "
          f"load average {load0[0]:.1f}")
    rows, serial, zero = [], [], []
    with tempfile.TemporaryDirectory() as workdir:
        for n in args.ranks if not args.compare_only else []:
            shape = square(n * args.points_per_rank)
            common = ["--shape", *shape, "--flush_points", str(args.flush_points)]
            rows.append(summarize(sim(n, workdir, f"par{n}", *common, "--sleep", str(args.sleep))))
            serial.append(summarize(sim(n, workdir, f"ser{n}", *common, "--sleep", str(args.sleep), "--serial_io")))
            zero.append(summarize(sim(n, workdir, f"zero{n}", *common, "--sleep", "0")))
            print(json.dumps(dict(parallel=rows[-1], serial=serial[-1], zero_cost=zero[-1])), flush=True)
        n, fast = max(args.ranks), args.sleep / 10
        shape = square(n * args.points_per_rank * 4)
        rules = (("old: chunks of 8, a commit every 256 points", ["--request_secs", "0", "--fixed_epochs"]),
                 ("chunks of 8, spaced commits", ["--request_secs", "0"]),
                 ("new: chunks of ~0.5 s, spaced commits", []))
        chunks = {label: summarize(sim(n, workdir, f"rule{i}", "--shape", *shape, "--sleep", str(fast), *flags))
                  for i, (label, flags) in enumerate(rules)}
        print(json.dumps(chunks), flush=True)
    print(f"load average at the end {os.getloadavg()[0]:.1f}")
    print(f"\n{n} ranks, {fast} s/point, {next(iter(chunks.values()))['points']} points:")
    print("| rule | efficiency | requests | commits | wall (s) |\n|---|---|---|---|---|")
    for label, c in chunks.items():
        print(f"| {label} | {100 * c['efficiency']:.1f} % | {c['requests']} | {c['commits']} | {c['wall']:.1f} |")
    if args.compare_only:
        return
    print(f"\n| ranks | points | efficiency at {args.sleep} s/point | points/s handed out | time waiting for work |"
          " commit, parallel HDF5 (s) | commit, serial (s) | rank 0 requests/s at 0 s/point | peak RSS/rank (MiB) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r, s, z in zip(rows, serial, zero):
        print(f"| {r['ranks']} | {r['points']} | {100 * r['efficiency']:.1f} % | {r['rate']:.0f} | "
              f"{100 * r['wait']:.1f} % | {r['commit']:.3f} | {s['commit']:.3f} | {z['requests'] / z['wall']:.0f} | "
              f"{r['rss']:.0f} |")
    a, b = fit(rows)
    c = min(z["wall"] / z["requests"] for z in zero)
    print(f"\nfit: commit epoch = {a:.4f} + {b:.5f} * ranks s; rank 0 serves a request in <= {c * 1e3:.2f} ms")
    print("\n| grid | ranks | 0.1 s/point | 1 s/point | 60 s/point |\n|---|---|---|---|---|")
    for side in (51, 1001):
        for n in (64, 256, 1024):
            cells = " | ".join(f"{100 * project(a, b, c, n, t, side * side):.1f} %" for t in (0.1, 1.0, 60.0))
            print(f"| {side}x{side} | {n} | {cells} |")
    print("\n1001x1001 file sizes (bytes):", json.dumps(file_sizes()))


if __name__ == "__main__":
    main()
