"""Run one grid job (surface or Hessian) over all ranks: ask for points, evaluate, commit, resume-safe.

Each rank evaluates the points it is handed and keeps their values in memory until the next
commit, when they are written and flushed (parallel HDF5: every rank writes its own; serial
h5py: rank 0 gathers and writes). A kill therefore loses at most one flush interval of work.
"""
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass

import h5py

from .mpi import WorkChannel
from .progress import Progress
from .schedule import Dispatcher
from .pending import drop_pending, save_pending
from .surfile import open_for_writing, read_done_and_values, write_points

EXIT_OK = 0
EXIT_CRASH = 1        # an uncaught exception on some rank (the job is aborted)
EXIT_BAD_INPUT = 2    # bad flags or files; nothing was written
EXIT_PLOT_FAILED = 3  # the grid is complete but --plot could not draw it (reason printed); the results are kept
EXIT_STOPPED = 75     # stopped by SIGTERM/SIGUSR1 with the grid unfinished: rerun the same command to resume


@dataclass
class JobSpec:
    path: str
    kind: str
    quantities: tuple
    shape: tuple
    flush_points: int = 256
    flush_secs: float = 60.0
    progress_secs: float = 10.0
    serial_io: bool = False
    max_chunk: int = 8          # most points per hand-out (1 for slow points such as Hessians)
    stop_margin: float = None   # seconds between a stop signal and the kill; see schedule.py's slow points
    request_secs: float = 0.5   # chunks hold about this much work once points are timed (not when max_chunk is 1)
    spacing: bool = True        # commits no closer than 50 commit times / 20 point times (schedule.py)


_ON_STOP = []  # called from the signal handler (signals are per process): run_grid saves its uncommitted points


def install_stop_signals():
    """SIGTERM (Slurm's time limit, scancel, mpirun) and SIGUSR1 (sbatch --signal) ask for a clean stop.

    On receipt each rank first saves its finished but uncommitted points to its own side file
    (pending.save_pending, milliseconds), because a launcher may kill it before the next commit:
    mpirun sends SIGKILL one second after forwarding SIGTERM. The next run merges those points."""
    stop = threading.Event()

    def handler(signum, frame):
        stop.set()
        for hook in list(_ON_STOP):
            hook()
    for sig in (signal.SIGTERM, signal.SIGUSR1):
        signal.signal(sig, handler)
    return stop


class Uncommitted:
    """A rank's finished points since its last commit; saved to its side file when a stop arrives."""

    def __init__(self, spec, rank):
        self.spec, self.rank, self.results, self.saved = spec, rank, [], False

    def save(self):
        if not self.results:
            return
        try:
            save_pending(self.spec.path, self.rank, self.spec.quantities, list(self.results))
            self.saved = True
        except OSError as e:  # in a signal handler: the commit that follows may still save them
            print(f"[rank {self.rank}] could not save uncommitted points on stop ({e.strerror or e})",
                  file=sys.stderr, flush=True)

    def committed(self):
        self.results = []
        if self.saved:  # those points are in the results file now
            drop_pending(self.spec.path, self.rank)
            self.saved = False


def uses_parallel_io(world, spec):
    return world.size > 1 and h5py.get_config().mpi and not spec.serial_io


def _commit(world, f, spec, results, parallel):
    world.barrier()
    if parallel:
        write_points(f, spec.kind, spec.quantities, spec.shape, results)
        f.flush()  # collective; MPI_File_sync underneath
        return
    gathered = world.gather(results)
    if world.rank == 0:
        for part in gathered:
            write_points(f, spec.kind, spec.quantities, spec.shape, part)
        f.flush()
        os.fsync(f.id.get_vfd_handle())


def _plan(f, spec, planner):
    """Rank 0: the next round of points, decided from every value committed so far."""
    return planner.next_points(*read_done_and_values(f, spec.kind, planner.quantity))


def run_grid(world, spec, todo, evaluate_point, stop, total, planner=None):
    """Evaluate every flat index in `todo` (rank 0's list; others pass anything) across all ranks.

    With a planner (refine.Refinement), rank 0 ignores `todo` and works in rounds: it asks the planner for
    points, hands them out, commits when they are done, and asks again until the planner has none.
    """
    parallel = uses_parallel_io(world, spec)
    f = open_for_writing(spec.path, world.comm if parallel else None) if parallel or world.rank == 0 else None
    dispatcher = progress = None
    if world.rank == 0:
        if planner is not None:
            todo = _plan(f, spec, planner)
        dispatcher = Dispatcher(todo, world.size, spec.flush_points, spec.flush_secs, spec.max_chunk,
                                rounds=planner is not None and len(todo) > 0, slow_secs=spec.stop_margin,
                                request_secs=spec.request_secs if spec.max_chunk > 1 else None, spacing=spec.spacing)
        done_before = total - len(todo)
        if planner is not None:
            done_before = int(read_done_and_values(f, spec.kind, planner.quantity)[0].sum())
        progress = Progress(spec.kind, total, done_before, every=spec.progress_secs)
    started, evaluating = time.monotonic(), 0.0
    channel = WorkChannel(world, dispatcher, on_reply=lambda d: progress.update(d.completed))
    pending, completed = Uncommitted(spec, world.rank), 0
    _ON_STOP.append(pending.save)
    while True:
        reply = channel.request(completed, stop.is_set())
        completed = 0
        if reply.kind == "wait":
            time.sleep(0.02)
            continue
        if reply.kind == "work":
            for index in reply.points:
                if stop.is_set():
                    break  # the rest of the chunk stays unfinished in the done mask
                t0 = time.monotonic()
                point = (index, evaluate_point(index))
                pending.results.append(point)
                if stop.is_set():  # the stop came during this point: its side file must hold it too
                    pending.save()
                evaluating += time.monotonic() - t0
                completed += 1
            continue
        t0 = time.monotonic()
        _commit(world, f, spec, pending.results, parallel)
        pending.committed()
        if dispatcher is not None:
            dispatcher.commit_took(time.monotonic() - t0)
        if reply.kind == "round" and dispatcher is not None:
            dispatcher.next_round(_plan(f, spec, planner))
        if reply.kind == "done":
            break
    _ON_STOP.remove(pending.save)
    channel.close()
    if f is not None:
        f.close()
    world.barrier()
    times = world.gather((evaluating, time.monotonic() - started))
    if progress is not None:
        progress.update(dispatcher.completed, force=True)
        report_overhead(spec.kind, times)


def report_overhead(kind, times):
    """Share of the ranks' wall time spent outside evaluation: coordination, I/O, MPI, waiting."""
    busy, wall = (sum(column) for column in zip(*times))
    if wall > 0:
        print(f"[{kind}] {100.0 * (1 - busy / wall):.2f}% of {len(times)} rank(s)' time was spent outside "
              f"evaluation (coordination, I/O, MPI, waiting)", flush=True)
