"""One grid job from start to end, for the Python API and the drivers alike: lock the results file,
create or check it, run the points over all ranks, and tell whether the grid is complete.

No flags here: callers pass explicit values. Rank 0 alone touches the file until run_grid opens it.
"""
import contextlib
import platform
import sys
import time

import numpy as np

from . import __version__
from .errors import LandscapeError
from .job import run_grid
from .surfile import FileLock, done_name, drop_interp, open_checked, prepare


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
