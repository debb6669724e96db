"""Every rank's loop of one grid job: ask rank 0 for points, evaluate them, commit, stop cleanly.

Each rank evaluates the points it is handed and keeps their values in memory until the next
commit, when they are written and flushed (parallel HDF5: every rank writes its own; serial
h5py: rank 0 gathers and writes). A kill therefore loses at most one flush interval of work, and
a stop signal none: each rank first saves its uncommitted points to a side file (files/pending.py).
"""
import os
import sys
import time

import h5py

from ..errors import LandscapeError, PointError
from ..files.pending import drop_pending, save_pending
from ..files.results import first_line, open_for_writing, read_done_and_values, write_points
from .mpi import WorkChannel
from .progress import Progress
from .schedule import Dispatcher
from .stops import ON_STOP

REQUEST_SECS = 0.5  # chunks hold about this much work once points are timed (not for slow, one-at-a-time points)


class Uncommitted:
    """A rank's finished points since its last commit; saved to its side file when a stop arrives.

    On the first stop signal (stops.py) each rank saves them at once, from the handler (milliseconds),
    because a launcher may kill it before the next commit: mpirun sends SIGKILL one second after
    forwarding SIGTERM. The next run merges those points."""

    def __init__(self, path, quantities, rank):
        self.path, self.quantities, self.rank, self.results, self.saved = path, quantities, rank, [], False

    def save(self):
        if not self.results:
            return
        try:
            save_pending(self.path, self.rank, self.quantities, list(self.results))
            self.saved = True
        except OSError as e:  # in a signal handler: the commit that follows may still save them
            print(f"[rank {self.rank}] could not save uncommitted points on stop ({e.strerror or e})",
                  file=sys.stderr, flush=True)

    def committed(self):
        self.results = []
        if self.saved:  # those points are in the results file now
            drop_pending(self.path, self.rank)
            self.saved = False


def evaluated(job, index, pending):
    """The point's values; a failure of the user's model or loss there (past the checks on the first
    batch) is one line naming the point, after this rank's finished points are saved for the rerun."""
    try:
        return job.evaluate_point(index)
    except LandscapeError:
        pending.save()
        raise
    except Exception as e:
        pending.save()
        x, y = job.layout.grid.coords(index)
        at = f"({x:.6g}, {y:.6g})" if job.layout.grid.is_2d else f"x = {x:.6g}"
        raise PointError(f"the model or loss failed at point {index}, {at}: {type(e).__name__}: "
                         f"{first_line(e)}") from e


def uses_parallel_io(world, options):
    return world.size > 1 and h5py.get_config().mpi and not options.serial_io


def _commit(world, f, layout, results, parallel):
    world.barrier()
    if parallel:
        write_points(f, layout, results)
        f.flush()  # collective; MPI_File_sync underneath
        return
    gathered = world.gather(results)
    if world.rank == 0:
        for part in gathered:
            write_points(f, layout, part)
        f.flush()
        os.fsync(f.id.get_vfd_handle())


def _plan(f, job):
    """Rank 0: the next round of points, decided from every value committed so far."""
    return job.planner.next_points(*read_done_and_values(f, job.layout.kind, job.planner.quantity))


def _dispatcher(f, job, options, todo, world):
    """Rank 0's Dispatcher and Progress line for this run's points (a refinement plans its first round now)."""
    total = job.layout.grid.size
    if job.planner is not None:  # one read of the file serves the first round and the progress count
        done, values = read_done_and_values(f, job.layout.kind, job.planner.quantity)
        todo, done_before = job.planner.next_points(done, values), int(done.sum())
    else:
        done_before = total - len(todo)
    points, secs = options.flush_limits()
    dispatcher = Dispatcher(todo, world.size, points, secs, job.max_chunk,
                            rounds=job.planner is not None and len(todo) > 0, slow_secs=options.stop_margin,
                            request_secs=REQUEST_SECS if job.max_chunk > 1 else None, spacing=options.spaced)
    return dispatcher, Progress(job.layout.kind, total, done_before, every=job.progress_secs)


def run_grid(world, job, options, todo):
    """Evaluate every flat index in `todo` (rank 0's list; others pass anything) across all ranks,
    until done or options.stop is set.

    With a planner (space/refine.Refinement), rank 0 ignores `todo` and works in rounds: it asks the
    planner for points, hands them out, commits when they are done, and asks again until it has none.
    """
    parallel, layout, stop = uses_parallel_io(world, options), job.layout, options.stop
    f = open_for_writing(job.path, world.comm if parallel else None) if parallel or world.rank == 0 else None
    dispatcher = progress = None
    if world.rank == 0:
        dispatcher, progress = _dispatcher(f, job, options, todo, world)
    started, evaluating = time.monotonic(), 0.0
    channel = WorkChannel(world, dispatcher, on_reply=lambda d: progress.update(d.completed))
    pending, completed = Uncommitted(job.path, layout.quantities, world.rank), 0
    ON_STOP.append(pending.save)
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
                pending.results.append((index, evaluated(job, index, pending)))
                if stop.is_set():  # the stop came during this point: its side file must hold it too
                    pending.save()
                evaluating += time.monotonic() - t0
                completed += 1
            continue
        t0 = time.monotonic()
        _commit(world, f, layout, pending.results, parallel)
        pending.committed()
        if dispatcher is not None:
            dispatcher.commit_took(time.monotonic() - t0)
        if reply.kind == "round" and dispatcher is not None:
            dispatcher.next_round(_plan(f, job))
        if reply.kind == "done":
            break
    ON_STOP.remove(pending.save)
    channel.close()
    if f is not None:
        f.close()
    world.barrier()
    times = world.gather((evaluating, time.monotonic() - started))
    if progress is not None:
        progress.update(dispatcher.completed, force=True)
        report_overhead(layout.kind, times)


def report_overhead(kind, times):
    """Share of the ranks' wall time spent outside evaluation: coordination, I/O, MPI, waiting."""
    busy, wall = (sum(column) for column in zip(*times))
    if wall > 0:
        print(f"[{kind}] {100.0 * (1 - busy / wall):.2f}% of {len(times)} rank(s)' time was spent outside "
              f"evaluation (coordination, I/O, MPI, waiting)", flush=True)
