"""The part of a grid driver after setup: lock, prepare/resume the file, run, report, plot."""
import os
import sys
import time

from .. import runner
from ..errors import LandscapeError
from ..job import EXIT_BAD_INPUT, EXIT_OK, EXIT_STOPPED, JobSpec, install_stop_signals
from ..mpi import abort_on_uncaught, check_launch, init_world
from .context import provenance


def run_job(args, world, ctx, kind, quantities, evaluate_point, settings_of, stop, render=None):
    """settings_of() hashes the inputs; only rank 0 calls it, under the lock."""
    spec = JobSpec(ctx.surf_file, kind, tuple(quantities), ctx.grid.shape, args.flush_points, args.flush_secs,
                   args.progress_secs, args.serial_io)
    complete = runner.run_job(world, spec, ctx.grid, evaluate_point, settings_of, provenance(world, ctx),
                              ctx.dir_file, stop, args.overwrite)
    if not complete:
        if world.rank == 0:
            print(f"[{kind}] stopped with the grid unfinished; rerun the same command to resume "
                  f"(exit {EXIT_STOPPED})", flush=True)
        return EXIT_STOPPED
    if world.rank == 0:
        print(f"[{kind}] complete: {ctx.surf_file}", flush=True)
        if args.plot and render is not None:
            for out in render(ctx.surf_file, args):
                print(f"[{kind}] plot: {out}", flush=True)
    return EXIT_OK


def guarded_main(run, argv_args):
    """Shared entry: MPI world, crash handling, signals, and clear one-line errors for bad input."""
    world = init_world()
    abort_on_uncaught(world)
    stop = install_stop_signals()
    try:
        check_launch(world)  # before any work: a launcher/MPI mismatch would race on the files
        return run(argv_args, world, stop)
    except LandscapeError as e:
        if world.rank != 0:
            time.sleep(1.0)  # when rank 0 fails too, it ends the job first and its line is the one shown
        print(f"error: {e}", file=sys.stderr, flush=True)
        if world.size > 1:
            os._exit(EXIT_BAD_INPUT)  # skip MPI_Finalize: a rank alone in its error must not wait for the others
        return EXIT_BAD_INPUT
