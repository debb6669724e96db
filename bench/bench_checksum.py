"""Cost of the per-point checksums (issue 14): commits with and without them, and a resume's check.

  python bench/bench_checksum.py [--points 40401]

Writes the same values into two results files made by files/resume.prepare: once through
write_points (values, checksum, done bit) and once through the same element writes without the
checksum (the baseline), interleaved in rounds; then times prepare's verification of the
finished file (read everything, recompute every digest). Results: docs/BENCHMARKS.md.
"""
import argparse
import os
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from landscape.files.results import QUANTITIES as KIND_QUANTITIES  # noqa: E402
from landscape.files.results import Layout, done_name, open_for_writing, write_points  # noqa: E402
from landscape.files.resume import prepare  # noqa: E402
from landscape.space.grid import make_grid  # noqa: E402

QUANTITIES = KIND_QUANTITIES["surface"]  # train and test loss and accuracy
SETTINGS = dict(model="m")


def without_checksum(f, shape, results):
    datasets = [f[name] for name in QUANTITIES]
    for index, values in results:
        pos = np.unravel_index(index, shape)
        for d, value in zip(datasets, values):
            d[pos] = value
        f[done_name("surface")][pos] = 1


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--points", type=int, default=201 * 201)
    n = int(round(np.sqrt(p.parse_args().points)))
    grid = make_grid(f"-1:1:{n}", f"-1:1:{n}")
    tmp = tempfile.mkdtemp()
    paths = {kind: os.path.join(tmp, f"{kind}.h5") for kind in ("checksum", "baseline")}
    layout = Layout(grid, "surface", QUANTITIES)
    for path in paths.values():
        prepare(path, layout, SETTINGS, {"started": "t"}, "d.h5")
    rng = np.random.default_rng(0)
    results = [(i, tuple(rng.random(len(QUANTITIES)))) for i in range(grid.size)]
    spent = {kind: 0.0 for kind in paths}
    for chunk in np.array_split(np.arange(grid.size), 20):  # 20 commits, alternating the two ways
        for kind, path in paths.items():
            part = [results[i] for i in chunk]
            with open_for_writing(path) as f:
                t0 = time.perf_counter()
                if kind == "checksum":
                    write_points(f, layout, part)
                else:
                    without_checksum(f, grid.shape, part)
                f.flush()
                spent[kind] += time.perf_counter() - t0
    t0 = time.perf_counter()
    todo = prepare(paths["checksum"], layout, SETTINGS, {"started": "t2"}, "d.h5")
    verify = time.perf_counter() - t0
    assert len(todo) == 0
    per_point = {kind: 1e6 * s / grid.size for kind, s in spent.items()}
    print(f"{grid.size} points, {len(QUANTITIES)} values each")
    print(f"commit per point: {per_point['checksum']:.1f} us with checksum, {per_point['baseline']:.1f} us "
          f"without (x{per_point['checksum'] / per_point['baseline']:.3f})")
    print(f"resume check of the finished file: {verify:.2f} s ({1e6 * verify / grid.size:.1f} us per point)")


if __name__ == "__main__":
    main()
