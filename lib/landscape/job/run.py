"""One grid job from start to end, for the Python API and the drivers alike: run_job is the one entry.

It locks the results file, creates or checks it (rank 0, under the lock), runs the points over all
ranks (loop.run_grid) and tells whether the job is complete. No flags here: callers pass a GridJob
(what to compute, and where) and JobOptions (how to commit, report and stop).

A job whose stop is set before its grid starts touches no file: nothing is created, replaced or
locked, and a rerun starts (or resumes) it. From its start on, a stop signal no longer raises in the
drivers (stops.defer_stops): the job ends at its next safe point, with its points committed.
"""
import contextlib
import os
import threading
from dataclasses import dataclass, replace
from typing import Callable

import numpy as np

from ..files.location import FollowedFile
from ..files.lock import FileLock
from ..files.paths import check_apart, results_outputs
from ..files.results import Layout, done_name, drop_interp, open_checked, write_interp
from ..files.resume import prepare
from ..space.refine import scale_of
from .loop import run_grid
from .mpi import rank0_first
from .stops import defer_stops

FLUSH_POINTS, FLUSH_SECS = 256, 60.0  # the default commit interval, spaced (schedule.py)


@dataclass
class JobOptions:
    """How a call commits and stops; the defaults suit a notebook and a cluster alike.

    flush_points / flush_secs: commit at least every N points / T seconds. Without either, 256
    points / 60 s with commits spaced to cost at most 2 % of the time (schedule.py); given, kept to
    the letter. stop: a threading.Event that asks for a clean stop (the drivers set it on SIGTERM
    or SIGUSR1); the call then returns with the grid unfinished and a rerun resumes it. Set before
    the grid starts, the call touches no file and its Result has nothing done.
    stop_margin: seconds between a stop signal and the kill (sbatch --signal=USR1@300).
    serial_io: rank 0 writes everything even where h5py has MPI.
    on_results: called on every rank with the results file's path once the file exists (created, or
    checked to resume), before any point: from then on the results on disk outlive any error (the
    drivers exit 3, not 2).
    """
    flush_points: int = None
    flush_secs: float = None
    serial_io: bool = False
    stop_margin: float = 300.0
    stop: threading.Event = None
    on_results: Callable = None

    @property
    def spaced(self):
        """Commits are spaced (schedule.py) only when neither interval was given."""
        return self.flush_points is None and self.flush_secs is None

    def flush_limits(self):
        return (FLUSH_POINTS if self.flush_points is None else self.flush_points,
                FLUSH_SECS if self.flush_secs is None else self.flush_secs)


@dataclass(frozen=True)
class GridJob:
    """What one job computes and where: `layout` (grid, kind, quantities) in the file at `path`.

    evaluate_point(flat index) returns the point's values in layout.quantities order. settings_of()
    (rank 0 only, under the lock) gives what a resume must share; provenance and dir_file are recorded.
    planner: a space.refine.Refinement deciding which points to compute, or None for all of them.
    max_chunk: most points per hand-out (1 for slow points such as Hessians).
    """
    path: str
    layout: Layout
    evaluate_point: Callable
    settings_of: Callable
    provenance: dict
    dir_file: str
    overwrite: bool = False
    planner: object = None
    max_chunk: int = 8
    progress_secs: float = 10.0


def run_job(world, job, options):
    """Lock job.path, prepare it, evaluate every unfinished point across the ranks (or the points the
    planner asks for); returns a JobEnd: whether the job is complete (every point is, or the refinement
    ended) and where the results file is now."""
    defer_stops()  # the drivers' start-up ends: a stop now ends the job at a safe point, not at once
    options = options if options.stop is not None else _with_stop(options)
    with contextlib.ExitStack() as held:
        def lock_and_prepare():  # rank 0 holds the lock until the job ends
            if options.stop.is_set():
                return False, ()
            check_apart([("the direction file", job.dir_file if os.path.isfile(job.dir_file) else None)],
                        results_outputs("the results file", job.path, world.size))
            held.enter_context(FileLock(job.path))
            todo = prepare(job.path, job.layout, job.settings_of(), job.provenance, job.dir_file, job.overwrite)
            drop_interp(job.path, job.layout.quantities)  # the points this run adds would make them stale
            followed.append(held.enter_context(FollowedFile(job.path)))  # found again if its folder moves
            return True, todo
        followed = []  # rank 0's FollowedFile
        started, todo = rank0_first(world, lock_and_prepare)
        if not started:
            return JobEnd(False, job.path)
        if options.on_results is not None:
            options.on_results(job.path)
        if world.rank == 0:
            grid = job.layout.grid
            print(f"[{job.layout.kind}] {job.path}: {grid.size - len(todo)}/{grid.size} points already done, "
                  f"{world.size} rank(s), device {job.provenance.get('device')}", flush=True)
        if len(todo):  # a finished file is not opened for writing at all
            run_grid(world, job, options, todo)
        return rank0_first(world, lambda: _finished(job, followed[0]))


def _with_stop(options):
    return replace(options, stop=threading.Event())


@dataclass(frozen=True)
class JobEnd:
    """How run_job ended: whether the job is complete (also its truth value), and where its results file
    is now (job.path, or where the file went if its folder was moved or it was renamed during the run)."""
    complete: bool
    path: str

    def __bool__(self):
        return self.complete


def _finished(job, followed):
    """Rank 0 after the run: the grid is complete, or the refinement wants no more points (then its
    '<name>_interp' full grids are written), in the results file wherever it now is."""
    path = followed.now()
    if path != job.path:
        print(f"[{job.layout.kind}] the results file {job.path} was moved during the run; its results are in "
              f"{path}", flush=True)
    if job.planner is None:
        with open_checked(path) as f:
            return JobEnd(bool(np.all(f[done_name(job.layout.kind)][()])), path)
    return JobEnd(finish_refinement(path, job.layout, job.planner), path)


def refinement_summary(planner, done):
    return dict(tol=planner.tol, quantity=planner.quantity, scale=planner.scale, budget=planner.budget,
                base_stride=planner.base, computed=int(done.sum()), points=int(done.size),
                method="dyadic cells split where their corners' largest second difference / 10 exceeds tol; "
                       "linear interpolation with a limited curvature correction (lib/landscape/space/refine.py)")


def finish_refinement(path, layout, planner):
    """Rank 0 after the run: True and '<name>_interp' written when the planner wants no more points."""
    kind, quantities = layout.kind, layout.quantities
    with open_checked(path) as f:
        done = f[done_name(kind)][()].astype(bool)
        values = {name: f[name][()] for name in quantities}
    if len(planner.next_points(done, values[planner.quantity])):
        return False
    arrays = {name: planner.interpolate(done, v, scale_of(name)) for name, v in values.items()}
    write_interp(path, kind, arrays, refinement_summary(planner, done))
    share = 100.0 * done.mean()
    print(f"[{kind}] refinement to {planner.tol:g} ({planner.scale} {planner.quantity}) done: "
          f"{int(done.sum())}/{done.size} points computed ({share:.1f}%), the rest interpolated into "
          f"{', '.join(n + '_interp' for n in quantities)}", flush=True)
    return True
