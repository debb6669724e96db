"""One grid job from start to end, for the Python API and the drivers alike: lock the results file,
create or check it, run the points over all ranks, and tell whether the grid is complete.

No flags here: callers pass explicit values. Rank 0 alone touches the file until run_grid opens it.
"""
import contextlib
import platform
import shutil
import sys
import tempfile
import threading
import time
from dataclasses import dataclass

import numpy as np

from . import __version__
from .errors import LandscapeError
from .job import JobSpec, run_grid
from .refine import scale_of
from .result import Result
from .surfile import FileLock, done_name, drop_interp, open_checked, prepare, write_interp


@dataclass
class JobOptions:
    """How a call commits, reports and stops; the defaults suit a notebook and a cluster alike.

    flush_points / flush_secs: commit at least every N points / T seconds. Without either, 256
    points / 60 s with commits spaced to cost at most 2 % of the time (schedule.py); given, kept to
    the letter. stop: a threading.Event that asks for a clean stop (the drivers set it on SIGTERM
    or SIGUSR1); the call then returns with the grid unfinished and a rerun resumes it.
    stop_margin: seconds between a stop signal and the kill (sbatch --signal=USR1@300).
    serial_io: rank 0 writes everything even where h5py has MPI.
    """
    flush_points: int = None
    flush_secs: float = None
    serial_io: bool = False
    stop_margin: float = 300.0
    stop: threading.Event = None

    def spec(self, path, kind, quantities, shape, progress_secs, max_chunk, serial_io=False):
        given = {name: value for name, value in (("flush_points", self.flush_points), ("flush_secs", self.flush_secs))
                 if value is not None}
        return JobSpec(path, kind, tuple(quantities), shape, progress_secs=progress_secs,
                       serial_io=self.serial_io or serial_io, max_chunk=max_chunk, stop_margin=self.stop_margin,
                       spacing=not given, **given)


def rank0_first(world, fn):
    """Run `fn` on rank 0 only; every rank gets its result, or the same LandscapeError.
    The others wait asleep in a barrier (not spinning in bcast), as rank 0 may work for minutes."""
    result, error = None, None
    if world.rank == 0:
        try:
            result = fn()
        except LandscapeError as e:
            error = e
    world.barrier()
    result, error = world.bcast((result, error))
    if error is not None:
        error.from_rank0 = True  # rank 0 prints it; the others stay silent (cli/run.guarded_main)
        raise error
    return result


def provenance_record(world, device, eval_batch, dir_file):
    """Where and with what a run was made: stored with the results, never compared."""
    import h5py
    import torch
    versions = dict(landscape=__version__, torch=torch.__version__, numpy=np.__version__,
                    h5py=h5py.__version__, python=platform.python_version())
    try:
        import mpi4py
        versions["mpi4py"] = mpi4py.__version__
    except ImportError:
        pass
    return dict(started=time.strftime("%Y-%m-%dT%H:%M:%S%z"), host=platform.node(), ranks=world.size,
                device=str(device), eval_batch=eval_batch, argv=sys.argv, versions=versions,
                dir_file=dir_file, parallel_hdf5=bool(h5py.get_config().mpi))


def is_complete(path, kind):
    with open_checked(path) as f:
        return bool(np.all(f[done_name(kind)][()]))


def run_job(world, spec, grid, evaluate_point, settings_of, provenance, dir_file, stop, overwrite=False, planner=None,
            finish=None, layout=None):
    """Lock spec.path, prepare it (settings_of() runs on rank 0 only, under the lock), evaluate every
    unfinished point across the ranks (or the points a refine.Refinement `planner` asks for); returns
    whether the job is complete: the grid is, or `finish()` (rank 0, e.g. the refinement's end) says so."""
    with contextlib.ExitStack() as held:
        def lock_and_prepare():  # rank 0 holds the lock until the job ends
            held.enter_context(FileLock(spec.path))
            todo = prepare(spec.path, grid, spec.kind, spec.quantities, settings_of(), provenance, dir_file,
                           overwrite, **(layout or {}))  # layout: array-valued quantities (surfile.prepare)
            drop_interp(spec.path, spec.quantities)  # the points this run adds would make an interpolation stale
            return todo
        todo = rank0_first(world, lock_and_prepare)
        if world.rank == 0:
            print(f"[{spec.kind}] {spec.path}: {grid.size - len(todo)}/{grid.size} points already done, "
                  f"{world.size} rank(s), device {provenance.get('device')}", flush=True)
        if len(todo):  # a finished file is not opened for writing at all
            run_grid(world, spec, todo, evaluate_point, stop, grid.size, planner)
        return rank0_first(world, finish or (lambda: is_complete(spec.path, spec.kind)))


def refinement_summary(planner, done):
    return dict(tol=planner.tol, quantity=planner.quantity, scale=planner.scale, budget=planner.budget,
                base_stride=planner.base, spread=planner.spread, computed=int(done.sum()), points=int(done.size),
                method="hierarchical surplus, piecewise bilinear on dyadic cells (lib/landscape/refine.py)")


def finish_refinement(path, kind, quantities, planner):
    """Rank 0 after the run: True and '<name>_interp' written when the planner wants no more points."""
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


@contextlib.contextmanager
def results_path(world, path):
    """(path, serial): the user's file, or a temporary one that rank 0 alone writes and removes."""
    if path is not None:
        yield str(path), False
        return
    folder = tempfile.mkdtemp(prefix="landscape-") if world.rank == 0 else None
    try:
        yield f"{folder}/results.h5", True
    finally:
        if folder:
            shutil.rmtree(folder, ignore_errors=True)


def run_to_result(world, path, grid, kind, quantities, evaluate_point, settings_of, provenance, dir_file, job,
                  overwrite, progress_secs, max_chunk=8, planner=None, layout=None):
    """run_job into `path` (or a temporary file) with JobOptions `job`; every rank gets the file as a
    Result (rank 0 reads it); its is_complete(kind) says whether the grid, or the refinement, is finished."""
    with results_path(world, path) as (file_path, serial):
        spec = job.spec(file_path, kind, quantities, grid.shape, progress_secs, max_chunk, serial)
        finish = None if planner is None else (lambda: finish_refinement(file_path, kind, quantities, planner))
        run_job(world, spec, grid, evaluate_point, settings_of, provenance, dir_file, job.stop or threading.Event(),
                overwrite, planner, finish, layout)
        return rank0_first(world, lambda: Result.from_file(file_path))
