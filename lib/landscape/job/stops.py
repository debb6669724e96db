"""Stop signals: SIGTERM (Slurm's time limit, scancel, preemption, mpirun), SIGUSR1 (sbatch --signal),
SIGINT (Ctrl-C) and SIGHUP (a closed terminal): each asks for a clean stop, exit 75.

The first stop signal decides how the run ends; later ones (Slurm and users send them twice) are
absorbed until the process has exited. A run goes through three phases:

- start-up, from act_at_once() (guarded_main) until defer_stops() (run_job, before the results file
  is made): nothing on disk needs keeping, so the first signal raises Stopped in the main thread at
  once. A data load or a batch probe is abandoned mid-way and no results file is ever created.
- the grid, from defer_stops() on: the signal sets the event and runs the ON_STOP hooks (each rank
  saves its uncommitted points, loop.py); the job ends at its next safe point and commits.
- teardown: the handler stays installed. Python's own finalization sets a signal with a Python
  handler back to SIG_DFL before MPI_Finalize runs (mpi4py finalizes after it), so a second signal
  there would kill the process (exit 143 or 138 instead of 75). At exit both signals are therefore
  set to SIG_IGN, which finalization keeps: the exit code stays the one the first stop decided.

Only main threads run Python signal handlers; this module imports the standard library alone, so a
driver script installs the handlers before it loads torch and h5py (a stop while they load is kept
and acted on by act_at_once).
"""
import atexit
import signal
import threading

# Slurm (SIGTERM, sbatch --signal SIGUSR1), a user (Ctrl-C: SIGINT) and a closed terminal or ssh session (SIGHUP)
# all ask for the same clean stop: the points finished so far are kept and exit 75 says "rerun to resume".
STOP_SIGNALS = (signal.SIGTERM, signal.SIGUSR1, signal.SIGINT, signal.SIGHUP)
ON_STOP = []  # called once, on the first stop signal (signals are per process): run_grid saves its points


class Stopped(BaseException):
    """A stop signal during start-up, raised where the main thread is. A BaseException, as KeyboardInterrupt
    is, so that no `except Exception` turning a user's failure into a one-line error can swallow it."""


class _State:
    def __init__(self):
        self.event = threading.Event()
        self.claimed = False   # a driver's guarded_main took this event for its run
        self.at_once = False   # start-up: the first signal raises Stopped


_state = _State()
_installed = []  # True once the handlers and the exit hook are in place in this process


def _handler(signum, frame):
    if _state.event.is_set():
        return  # the first stop decided; this one changes nothing
    _state.event.set()
    for hook in list(ON_STOP):
        hook()
    if _state.at_once:
        _state.at_once = False
        raise Stopped(signal.Signals(signum).name)


def _ignore_at_exit():
    """Python's finalization resets handled signals to SIG_DFL, but keeps SIG_IGN (see the docstring)."""
    for sig in STOP_SIGNALS:
        signal.signal(sig, signal.SIG_IGN)


def install_stop_signals():
    """Install the handlers with a new, unclaimed event (main thread only); returns the event. The
    driver scripts call this first thing, so that a stop while their modules load is not lost."""
    global _state
    _state = _State()
    for sig in STOP_SIGNALS:
        signal.signal(sig, _handler)
    if not _installed:
        atexit.register(_ignore_at_exit)
        _installed.append(True)
    return _state.event


def claim_stop():
    """The event of this run (guarded_main): the one a driver script installed, with any stop it
    recorded while the modules loaded; else (a second run in one process, `python -m`) a new one."""
    if not _installed or _state.claimed or signal.getsignal(signal.SIGTERM) is not _handler:
        install_stop_signals()
    _state.claimed = True
    return _state.event


def act_at_once():
    """Start-up begins (after MPI_Init, which may put in handlers of its own: ours go back in): from now
    until defer_stops() a stop signal raises Stopped at once; one that already arrived raises it now."""
    for sig in STOP_SIGNALS:
        signal.signal(sig, _handler)
    if _state.event.is_set():
        raise Stopped("a stop signal arrived while the program started")
    _state.at_once = True


def defer_stops():
    """From now on a stop signal only sets the event: the job ends at its next safe point (run_job
    calls this before it creates the results file; guarded_main when the run ends)."""
    _state.at_once = False
