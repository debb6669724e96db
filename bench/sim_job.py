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
from dataclasses import dataclass

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "lib"))

from landscape.cli.exits import EXIT_OK, EXIT_STOPPED  # noqa: E402
from landscape.files.results import Layout  # noqa: E402
from landscape.job import loop, stops  # noqa: E402
from landscape.job.mpi import WorkChannel, init_world  # noqa: E402
from landscape.job.run import GridJob, JobOptions, run_job  # noqa: E402
from landscape.space.grid import Grid  # noqa: E402
from landscape.space.refine import Refinement  # noqa: E402

QUANTITIES = ("train_loss", "train_acc")


def closed_form(x, y):
    """A positive bowl with a narrow curved ridge: smooth slopes plus one place where detail sits."""
    ridge = np.exp(-((y - 0.4 * np.sin(3 * x)) ** 2) / 0.01)
    loss = 0.05 + 2.0 * (x ** 2 + y ** 2) + 1.5 * ridge
    return float(loss), float(np.exp(-loss))


@dataclass
class SimOptions(JobOptions):
    """The simulation's commit rule: --flush_points/--flush_secs as given and spaced (schedule.py) unless
    --fixed_epochs, so the coordinator bench can compare the two rules at any interval (a user's
    JobOptions spaces only its default intervals)."""
    spacing: bool = True

    @property
    def spaced(self):
        return self.spacing


class Timers:
    """Wraps the channel's request and job's commit to time them (measurement only, in this bench)."""

    def __init__(self):
        self.wait = self.commit = 0.0
        self.requests = self.commits = 0

    def install(self):
        request, commit = WorkChannel.request, loop._commit

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
        WorkChannel.request, loop._commit = timed_request, timed_commit


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
    timers = Timers()
    timers.install()
    loop.REQUEST_SECS = args.request_secs or None  # 0: the old rule, fixed chunks of --max_chunk
    ny, nx = args.shape
    grid = Grid(np.linspace(-1, 1, nx), np.linspace(-1, 1, ny))
    planner = Refinement(grid.shape, args.refine, budget=args.refine_budget) if args.refine else None
    options = SimOptions(args.flush_points, args.flush_secs, args.serial_io, 1e9, stops.install_stop_signals(),
                         spacing=not args.fixed_epochs)

    def evaluate_point(index):
        time.sleep(args.sleep)
        return closed_form(*grid.coords(index))
    job = GridJob(args.surf_file, Layout(grid, "surface", QUANTITIES), evaluate_point, lambda: {"sim": True},
                  {"started": time.time(), "device": "none (sleeps)"}, "-", planner=planner, max_chunk=args.max_chunk,
                  progress_secs=1e9)
    t0 = time.monotonic()
    complete = run_job(world, job, options).complete
    wall = time.monotonic() - t0
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    per_rank = world.gather(dict(wait=timers.wait, commit=timers.commit, requests=timers.requests,
                                 commits=timers.commits, maxrss_mb=rss_mb))
    if world.rank == 0 and args.stats:
        with open(args.stats, "w") as f:
            json.dump(dict(ranks=world.size, wall=wall, shape=list(grid.shape), sleep=args.sleep,
                           parallel_io=loop.uses_parallel_io(world, options),
                           file_bytes=os.path.getsize(args.surf_file), per_rank=per_rank, complete=complete,
                           torch_imported="torch" in sys.modules), f)
    return EXIT_OK if complete else EXIT_STOPPED


if __name__ == "__main__":
    sys.exit(main())
