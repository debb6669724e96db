"""What every grid driver does around its API call: the MPI world, signals, one-line errors, the exit code, plots."""
import os
import sys
import time

import numpy as np

from ..errors import LandscapeError, ResultsMovedError
from ..files.results import QUANTITIES, open_checked
from ..job.loop import install_stop_signals
from ..job.mpi import abort_on_uncaught, check_launch, init_world
from .exits import EXIT_BAD_INPUT, EXIT_OK, EXIT_PLOT_FAILED, EXIT_RESULTS_MOVED, EXIT_STOPPED

OTHER_RANKS_WAIT = 5.0  # seconds a rank > 0 waits before printing its own error (see guarded_main)


def unplottable_values(path, kind):
    """Why the plots of a finished file cannot be drawn (every value of its main map NaN), or None."""
    name = QUANTITIES[kind][0]
    with open_checked(path) as f:
        if np.isnan(f[name][()]).all():
            return f"every {name} value is NaN, there is nothing to draw"
    return None


def report(result, args, world, kind, path, render=None, refined=False):
    """The exit code of a finished call: stopped (rerun to resume), or complete and plotted with --plot."""
    path = result.path or path  # where the run left the file: moved with its folder, it is plotted there
    if not result.is_complete(kind):
        if world.rank == 0:
            what = "refinement" if refined else "grid"
            print(f"[{kind}] stopped with the {what} unfinished; rerun the same command to resume "
                  f"(exit {EXIT_STOPPED})", flush=True)
        return EXIT_STOPPED
    if world.rank == 0:
        print(f"[{kind}] complete: {path}", flush=True)
        if args.plot and render is not None:
            return plot(path, args, kind, render)
    return EXIT_OK


def plot(path, args, kind, render):
    """Draw the plots of a complete file; a failure here keeps its own exit code, as the results exist."""
    try:
        reason = unplottable_values(path, kind)
        if reason is None:
            for out in render(path, args):
                print(f"[{kind}] plot: {out}", flush=True)
            return EXIT_OK
    except (LandscapeError, ValueError) as e:
        reason = str(e)
    print(f"error: no plots: {reason}; the results in {path} are complete "
          f"(exit {EXIT_PLOT_FAILED})", file=sys.stderr, flush=True)
    return EXIT_PLOT_FAILED


def guarded_main(run, argv_args):
    """Shared entry: MPI world, crash handling, signals, and clear one-line errors for bad input.

    Under MPI an error is printed once: rank 0 prints, and the launcher ends the other ranks when
    it exits. An error rank 0 broadcast (rank0_first) is never printed by another rank; an error of
    another rank alone is printed after OTHER_RANKS_WAIT seconds, unless the launcher ended it first.
    """
    world = init_world()
    abort_on_uncaught(world)
    stop = install_stop_signals()
    try:
        check_launch(world)  # before any work: a launcher/MPI mismatch would race on the files
        return run(argv_args, world, stop)
    except LandscapeError as e:
        if world.rank != 0:
            time.sleep(OTHER_RANKS_WAIT)  # rank 0 prints first and the launcher ends this rank
            if getattr(e, "from_rank0", False):
                os._exit(EXIT_RESULTS_MOVED if isinstance(e, ResultsMovedError) else EXIT_BAD_INPUT)
        print(f"error: {e}", file=sys.stderr, flush=True)
        code = EXIT_RESULTS_MOVED if isinstance(e, ResultsMovedError) else EXIT_BAD_INPUT  # after work: exit 3
        if world.size > 1:
            os._exit(code)  # skip MPI_Finalize: a rank alone in its error must not wait for the others
        return code
