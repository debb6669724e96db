"""What every grid driver does around its API call: the MPI world, signals, one-line errors, the exit code, plots.

Exit codes (exits.py): an error is exit 2 while the run has no results file, 3 once it has one (the
line says where the results are kept); the first stop signal decides exit 75, whenever it comes.
"""
import contextlib
import os
import sys
import threading
import time
from dataclasses import dataclass, field

import numpy as np

from ..errors import LandscapeError, ResultsMovedError
from ..files.results import QUANTITIES, open_checked
from ..job.mpi import abort_on_uncaught, check_launch, init_world
from ..job.stops import Stopped, act_at_once, claim_stop, defer_stops
from .exits import EXIT_BAD_INPUT, EXIT_OK, EXIT_PLOT_FAILED, EXIT_RESULTS_KEPT, EXIT_STOPPED, one_line

OTHER_RANKS_WAIT = 5.0  # seconds a rank > 0 waits before printing its own error (see guarded_main)


@dataclass(frozen=True)
class Control:
    """What guarded_main hands a driver's run(): `stop`, set by the first stop signal; `results`, the
    results files this run has on disk (run_job adds one once it exists, on every rank); `written`,
    other outputs of its work (the trajectory's projection). Once either holds a file an error exits 3
    and says where the results are kept."""
    stop: threading.Event
    results: list = field(default_factory=list)
    written: list = field(default_factory=list)

    @property
    def kept(self):
        return self.results + self.written


def unplottable_values(path, kind):
    """Why the plots of a finished file cannot be drawn (every value of its main map NaN), or None."""
    name = QUANTITIES[kind][0]
    with open_checked(path) as f:
        if np.isnan(f[name][()]).all():
            return f"every {name} value is NaN, there is nothing to draw"
    return None


def report(result, args, world, kind, path, render=None, refined=False, *, control):
    """The exit code of a finished call: stopped (rerun to resume), or complete and plotted with --plot
    (a stop that came before the plots leaves them to the rerun)."""
    path = result.path or path  # where the run left the file: moved with its folder, it is plotted there
    if not result.is_complete(kind):
        if world.rank == 0:
            print(stopped_line(kind, "refinement" if refined else "grid", path, started=bool(control.results)),
                  flush=True)
        return EXIT_STOPPED
    code = EXIT_OK
    if world.rank == 0:
        print(f"[{kind}] complete: {path}", flush=True)
        if args.plot and render is not None:
            code = plot_unless_stopped(lambda: plot(path, args, kind, render), kind, path)
    return world.bcast(code)  # every rank ends with rank 0's code: a driver that goes on must not wait alone


def stopped_line(kind, what, path, started):
    """started: the job made or resumed its results file (a stop before that leaves `path` as it was)."""
    if started:
        return f"[{kind}] stopped with the {what} unfinished; rerun the same command to resume (exit {EXIT_STOPPED})"
    return (f"[{kind}] stopped before the {what} started: nothing was written to {path}; rerun the same command "
            f"to start it (exit {EXIT_STOPPED})")


def plots_left(kind, path):
    """Rank 0, when a stop came after the grid was complete but before its plots were drawn."""
    print(f"[{kind}] stopped before the plots were drawn; the results in {path} are complete: rerun the same "
          f"command to draw them (exit {EXIT_STOPPED})", flush=True)
    return EXIT_STOPPED


@contextlib.contextmanager
def stoppable():
    """A stop signal meanwhile (or one that came before) raises Stopped at once: for the plots of a
    complete grid, whose files are each whole or absent, so the rerun draws them."""
    act_at_once()
    try:
        yield
    finally:
        defer_stops()


def plot_unless_stopped(draw, kind, path):
    """Rank 0: draw() (its exit code), or the plots left to the rerun when a stop comes first (75)."""
    try:
        with stoppable():
            return draw()
    except Stopped:
        return plots_left(kind, path)


def plot(path, args, kind, render):
    """Draw the plots of a complete file; a failure here keeps its own exit code, as the results exist."""
    try:
        reason = unplottable_values(path, kind)
        if reason is None:
            for out in render(path, args):
                print(f"[{kind}] plot: {out}", flush=True)
            return EXIT_OK
    except (LandscapeError, ValueError) as e:
        reason = one_line(e)
    print(f"error: no plots: {reason}; the results in {path} are complete "
          f"(exit {EXIT_PLOT_FAILED})", file=sys.stderr, flush=True)
    return EXIT_PLOT_FAILED


def guarded_main(run, argv_args):
    """Shared entry: MPI world, crash handling, signals, and clear one-line errors for bad input.

    run(argv_args, world, control) gets a Control. A stop signal before the job's grid starts ends
    the run at once (job/stops.py): exit 75, one line, no results file. Under MPI an error is printed
    once: rank 0 prints, and the launcher ends the other ranks when it exits. An error rank 0
    broadcast (rank0_first) is never printed by another rank; an error of another rank alone is
    printed after OTHER_RANKS_WAIT seconds, unless the launcher ended it first.
    """
    control = Control(claim_stop())  # a driver script installed the handlers first thing; else now
    world = init_world()
    abort_on_uncaught(world)
    try:
        try:
            act_at_once()  # start-up: a stop (one while MPI started included) ends the run now
            check_launch(world)  # before any work: a launcher/MPI mismatch would race on the files
            return run(argv_args, world, control)
        except LandscapeError as e:
            return failed(e, world, control.kept)
    except Stopped:  # also one that came while an error of the start-up was being handled
        return stopped_in_start_up(world, control.kept)
    finally:
        defer_stops()  # teardown: later stop signals change nothing


def stopped_in_start_up(world, kept):
    """kept: files of the run's earlier stages (the trajectory's projection), which stay as they are."""
    if world.rank == 0:
        earlier = f" ({', '.join(kept)} kept)" if kept else ""
        print(f"stopped by a signal during start-up, before the results file was created or changed{earlier}; "
              f"rerun the same command to start (exit {EXIT_STOPPED})", flush=True)
    if world.size > 1:
        _exit_now(EXIT_STOPPED)  # skip MPI_Finalize: another rank may be in a collective this one left
    return EXIT_STOPPED


def failed(error, world, results):
    """One line for a LandscapeError: exit 2 while the run has no results file, 3 once it has one."""
    defer_stops()  # a stop now must not interrupt the error's own exit
    code = EXIT_RESULTS_KEPT if results else EXIT_BAD_INPUT
    if world.rank != 0:
        time.sleep(OTHER_RANKS_WAIT)  # rank 0 prints first and the launcher ends this rank
        if getattr(error, "from_rank0", False):
            _exit_now(code)
    said = isinstance(error, ResultsMovedError)  # it says itself where the results are, or what was lost
    kept = f"; the results in {results[-1]} are kept (exit {code})" if results and not said else ""
    print(f"error: {one_line(error)}{kept}", file=sys.stderr, flush=True)
    if world.size > 1:
        _exit_now(code)  # skip MPI_Finalize: a rank alone in its error must not wait for the others
    return code


def _exit_now(code):
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
