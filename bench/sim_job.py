"""Sleep-cost simulation of a grid job: the real dispatcher, channel, commits and file, no torch.

Each point sleeps --sleep seconds and returns a closed-form "loss" (a bowl with a narrow ridge, so
--refine has something to find). Run it under mpirun to measure the coordinator and the file:
  mpirun -n 16 --oversubscribe python bench/sim_job.py --shape 201 201 --sleep 0.05 --stats out.json
Rank 0 writes --stats: per-rank time waiting for work, committing and sleeping, peak memory, and
the dispatcher's hand-out counts. Exits 0 when complete, 75 when stopped by SIGTERM (resume by rerunning).
"""
import argparse
import json
import os
import resource
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "lib"))

from landscape import job  # noqa: E402
from landscape.grid import Grid  # noqa: E402
from landscape.mpi import WorkChannel, init_world  # noqa: E402
from landscape.refine import Refinement  # noqa: E402
from landscape.surfile import FileLock, done_name, drop_interp, open_checked, prepare, write_interp  # noqa: E402

QUANTITIES = ("train_loss", "train_acc")


def closed_form(x, y):
    """A positive bowl with a narrow curved ridge: smooth slopes plus one place where detail sits."""
    ridge = np.exp(-((y - 0.4 * np.sin(3 * x)) ** 2) / 0.01)
    loss = 0.05 + 2.0 * (x ** 2 + y ** 2) + 1.5 * ridge
    return float(loss), float(np.exp(-loss))


class Timers:
    """Wraps the channel's request and job's commit to time them (measurement only, in this bench)."""

    def __init__(self):
        self.wait = self.commit = 0.0
        self.requests = self.commits = 0

    def install(self):
        request, commit = WorkChannel.request, job._commit

        def timed_request(channel, *a):
            t0 = time.monotonic()
            reply = request(channel, *a)
            self.wait += time.monotonic() - t0
            self.requests += 1
            return reply

        def timed_commit(*a):
            t0 = time.monotonic()
            commit(*a)
            self.commit += time.monotonic() - t0
            self.commits += 1
        WorkChannel.request, job._commit = timed_request, timed_commit


def parse(argv):
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--shape", type=int, nargs=2, default=(33, 33), metavar=("NY", "NX"))
    p.add_argument("--sleep", type=float, default=0.01, help="seconds per point")
    p.add_argument("--surf_file", default="sim.h5")
    p.add_argument("--refine", type=float, default=None)
    p.add_argument("--refine_budget", type=int, default=None)
    p.add_argument("--flush_points", type=int, default=256)
    p.add_argument("--flush_secs", type=float, default=60.0)
    p.add_argument("--max_chunk", type=int, default=8)
    p.add_argument("--request_secs", type=float, default=0.5, help="0: fixed chunks of --max_chunk (the old rule)")
    p.add_argument("--fixed_epochs", action="store_true", help="commit every --flush_points without spacing")
    p.add_argument("--serial_io", action="store_true")
    p.add_argument("--stats", help="JSON file for rank 0's measurements")
    return p.parse_args(argv)


def main(argv=None):
    args = parse(argv)
    world = init_world()
    stop = job.install_stop_signals()
    timers = Timers()
    timers.install()
    ny, nx = args.shape
    grid = Grid(np.linspace(-1, 1, nx), np.linspace(-1, 1, ny))
    planner = Refinement(grid.shape, args.refine, budget=args.refine_budget) if args.refine else None
    with FileLock(args.surf_file) if world.rank == 0 else open(os.devnull) as _:
        todo = None
        if world.rank == 0:
            todo = prepare(args.surf_file, grid, "surface", QUANTITIES, {"sim": True}, {"started": time.time()}, "-")
            drop_interp(args.surf_file, QUANTITIES)
        world.barrier()
        spec = job.JobSpec(args.surf_file, "surface", QUANTITIES, grid.shape, args.flush_points, args.flush_secs,
                           1e9, args.serial_io, args.max_chunk, request_secs=args.request_secs or None,
                           spacing=not args.fixed_epochs)

        def evaluate_point(index):
            time.sleep(args.sleep)
            return closed_form(*grid.coords(index))
        t0 = time.monotonic()
        job.run_grid(world, spec, todo, evaluate_point, stop, grid.size, planner)
        wall = time.monotonic() - t0
        complete = finish(world, args, planner)
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    per_rank = world.gather(dict(wait=timers.wait, commit=timers.commit, requests=timers.requests,
                                 commits=timers.commits, maxrss_mb=rss_mb))
    if world.rank == 0 and args.stats:
        with open(args.stats, "w") as f:
            json.dump(dict(ranks=world.size, wall=wall, shape=list(grid.shape), sleep=args.sleep,
                           parallel_io=job.uses_parallel_io(world, spec), file_bytes=os.path.getsize(args.surf_file),
                           per_rank=per_rank, complete=complete, torch_imported="torch" in sys.modules), f)
    return 0 if complete else job.EXIT_STOPPED


def finish(world, args, planner):
    """Rank 0: whether the job is complete, and the interpolation written when a refinement is."""
    complete = None
    if world.rank == 0:
        with open_checked(args.surf_file) as f:
            done = f[done_name("surface")][()].astype(bool)
            values = {name: f[name][()] for name in QUANTITIES}
        if planner is None:
            complete = bool(done.all())
        else:
            complete = len(planner.next_points(done, values["train_loss"])) == 0
            if complete:
                arrays = {n: planner.interpolate(done, v, "log10" if n.endswith("loss") else "linear")
                          for n, v in values.items()}
                write_interp(args.surf_file, "surface", arrays, dict(tol=planner.tol, computed=int(done.sum())))
    return world.bcast(complete)


if __name__ == "__main__":
    sys.exit(main())
