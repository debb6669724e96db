"""The part of a grid driver after setup: lock, prepare/resume the file, run, report, plot."""
import contextlib
import os
import sys
import time

import numpy as np

from ..errors import LandscapeError
from ..job import EXIT_BAD_INPUT, EXIT_OK, EXIT_STOPPED, JobSpec, install_stop_signals, run_grid
from ..mpi import abort_on_uncaught, init_world
from ..surfile import FileLock, done_name, open_checked, prepare
from .context import provenance, rank0_first


def is_complete(path, kind):
    with open_checked(path) as f:
        return bool(np.all(f[done_name(kind)][()]))


def run_job(args, world, ctx, kind, quantities, evaluate_point, settings_of, stop, render=None, layout=None):
    """settings_of() hashes the inputs; only rank 0 calls it, under the lock.
    layout: keyword arguments of surfile.prepare for array-valued quantities (trailing, dataset_attrs)."""
    path = ctx.surf_file
    with contextlib.ExitStack() as held:
        def lock_and_prepare():  # rank 0 holds the lock until the job ends
            held.enter_context(FileLock(path))
            return prepare(path, ctx.grid, kind, quantities, settings_of(), provenance(world, ctx), ctx.dir_file,
                           args.overwrite, **(layout or {}))
        todo = rank0_first(world, lock_and_prepare)
        if world.rank == 0:
            print(f"[{kind}] {path}: {ctx.grid.size - len(todo)}/{ctx.grid.size} points already done, "
                  f"{world.size} rank(s), device {ctx.device}", flush=True)
        spec = JobSpec(path, kind, tuple(quantities), ctx.grid.shape, args.flush_points, args.flush_secs,
                       args.progress_secs, args.serial_io)
        run_grid(world, spec, todo, evaluate_point, stop, ctx.grid.size)
        complete = rank0_first(world, lambda: is_complete(path, kind))
    if not complete:
        if world.rank == 0:
            print(f"[{kind}] stopped with the grid unfinished; rerun the same command to resume "
                  f"(exit {EXIT_STOPPED})", flush=True)
        return EXIT_STOPPED
    if world.rank == 0:
        print(f"[{kind}] complete: {path}", flush=True)
        if args.plot and render is not None:
            for out in render(path, args):
                print(f"[{kind}] plot: {out}", flush=True)
    return EXIT_OK


def guarded_main(run, argv_args):
    """Shared entry: MPI world, crash handling, signals, and clear one-line errors for bad input."""
    world = init_world()
    abort_on_uncaught(world)
    stop = install_stop_signals()
    try:
        return run(argv_args, world, stop)
    except LandscapeError as e:
        if world.rank != 0:
            time.sleep(1.0)  # when rank 0 fails too, it ends the job first and its line is the one shown
        print(f"error: {e}", file=sys.stderr, flush=True)
        if world.size > 1:
            os._exit(EXIT_BAD_INPUT)  # skip MPI_Finalize: a rank alone in its error must not wait for the others
        return EXIT_BAD_INPUT
