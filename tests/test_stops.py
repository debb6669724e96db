"""Stops are idempotent, a stop during start-up writes nothing, and an error exits 2 before work, 3 after it.

The first stop signal (SIGTERM or SIGUSR1) decides the exit code, 75; later ones, during the stop or
the teardown (MPI_Finalize, Python's finalization), change nothing. A stop before the grid starts
(flags, loading, the batch-size probe) ends the run at once with no results file. The process tests
signal the ranks themselves, as Slurm does, and wait on printed lines and committed points.
"""
import glob
import os
import signal
import sys
import threading
import time
from types import SimpleNamespace

import h5py
import numpy as np
import pytest
import torch

import landscape
from landscape.api.result import Result
from landscape.cli.run import Control, report
from landscape.files.results import Layout
from landscape.job import stops
from landscape.job.mpi import World
from landscape.job.stops import Stopped

from conftest import ROOT, mpirun_cmd, python_cmd, run
from stop_helpers import Job
from tiny import make_data, make_model

EXIT_STOPPED, EXIT_BAD_INPUT, EXIT_RESULTS_KEPT = 75, 2, 3
TINY = ["--dataset", "tiny:make_data", "--threads", "1", "--progress_secs", "0.5"]
BATCH = {"plot_surface.py": ["--batch_size", "64"], "plot_hessian_eig.py": ["--hessian_batch", "64"]}
GRID = ["--x=-1:1:9", "--y=-1:1:5"]  # 45 points of 0.06 s or more each: seconds of grid left after 3 points
STOP_LINE = "stopped with the grid unfinished"
START_UP_LINE = "stopped by a signal during start-up"


# ---- the stop state machine, in this process ----

@pytest.fixture
def own_handlers():
    """The test installs the stop handlers in pytest's own process; they are put back afterwards."""
    before = {sig: signal.getsignal(sig) for sig in stops.STOP_SIGNALS}
    yield
    stops.defer_stops()
    for sig, handler in before.items():
        signal.signal(sig, handler)


def send_self(sig):
    os.kill(os.getpid(), sig)
    for _ in range(100):  # the handler runs at the next bytecode boundary of the main thread
        time.sleep(0.001)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGUSR1])
def test_only_the_first_signal_runs_the_stop_hooks(own_handlers, sig):
    stop, calls = stops.claim_stop(), []
    stops.ON_STOP.append(lambda: calls.append(1))
    try:
        send_self(sig)
        assert stop.is_set() and calls == [1]
        send_self(sig)
        send_self(signal.SIGUSR1 if sig == signal.SIGTERM else signal.SIGTERM)
        assert calls == [1]
    finally:
        stops.ON_STOP.clear()


def test_a_stop_during_start_up_raises_once(own_handlers):
    stop = stops.claim_stop()
    stops.act_at_once()
    with pytest.raises(Stopped):
        send_self(signal.SIGTERM)
    send_self(signal.SIGTERM)  # while the first one's exception is handled: nothing more is raised
    send_self(signal.SIGUSR1)
    assert stop.is_set()


def test_a_stop_before_start_up_is_acted_on_when_it_begins(own_handlers):
    """A driver script installs the handlers first thing; a stop while its modules load is kept and
    raised as soon as guarded_main begins the start-up."""
    early = stops.install_stop_signals()
    send_self(signal.SIGUSR1)
    assert stops.claim_stop() is early and early.is_set()
    with pytest.raises(Stopped):
        stops.act_at_once()


def test_once_the_grid_starts_a_stop_only_sets_the_event(own_handlers):
    stop = stops.claim_stop()
    stops.act_at_once()
    stops.defer_stops()
    send_self(signal.SIGTERM)
    assert stop.is_set()


def test_each_run_in_one_process_gets_its_own_event(own_handlers):
    first = stops.claim_stop()
    send_self(signal.SIGUSR1)
    second = stops.claim_stop()
    assert first.is_set() and not second.is_set()


FINALIZATION = """
import os, signal, sys
sys.path.insert(0, {lib!r})
from landscape.job.stops import claim_stop

class SignalsAtTeardown:
    def __del__(self):  # module globals go after Python's finalization has reset its signal handlers
        os.kill(os.getpid(), signal.{sig})
        os.write(1, b"alive after the signal\\n")

claim_stop()
{mpi}
keep = SignalsAtTeardown()
sys.exit(75)
"""


@pytest.mark.slow
@pytest.mark.parametrize("sig,mpi", [("SIGTERM", False), ("SIGUSR1", False), ("SIGTERM", True)])
def test_a_signal_during_the_interpreters_finalization_is_absorbed(tmp_path, sig, mpi):
    """Python sets a handled signal back to SIG_DFL in its finalization, before mpi4py's MPI_Finalize:
    without SIG_IGN at exit this signal would end the process with 143 or 138."""
    script = tmp_path / "teardown.py"
    script.write_text(FINALIZATION.format(lib=os.path.join(ROOT, "lib"), sig=sig,
                                          mpi="from mpi4py import MPI" if mpi else ""))
    r = run([sys.executable, str(script)], timeout=60)
    assert r.returncode == EXIT_STOPPED and "alive after the signal" in r.stdout, (r.returncode, r.stderr)


# ---- the API: a stop set before the grid starts touches no file ----

@pytest.fixture(scope="module")
def tiny_model():
    torch.manual_seed(0)
    return make_model().eval(), make_data()[0]


@pytest.mark.parametrize("call", ["surface", "hessian_map"])
def test_an_api_call_stopped_before_its_grid_creates_no_file(tiny_model, tmp_path, call):
    model, data = tiny_model
    stop, path = threading.Event(), tmp_path / "s.h5"
    stop.set()
    kwargs = dict(x=(-1, 1, 3), y=(-1, 1, 2), path=str(path), job=landscape.JobOptions(stop=stop), progress_secs=0)
    if call == "hessian_map":
        kwargs.update(max_iter=5, hvp_batch=64)
    result = getattr(landscape, call)(model, data, **kwargs)
    kind = "surface" if call == "surface" else "hessian"
    assert not os.path.exists(path) and not glob.glob(f"{path}*")
    assert result.done[kind].shape == (2, 3) and not result.done[kind].any() and not result.complete
    name = "train_loss" if call == "surface" else "max_eig"
    assert getattr(result, name).shape == (2, 3) and np.isnan(getattr(result, name)).all()


def test_an_api_call_stopped_before_its_grid_leaves_an_existing_file_as_it_was(tiny_model, tmp_path):
    model, data = tiny_model
    path = tmp_path / "s.h5"
    kwargs = dict(x=(-1, 1, 3), path=str(path), progress_secs=0)
    stop = threading.Event()
    landscape.surface(model, data, **kwargs)
    before = path.read_bytes()
    stop.set()
    again = landscape.surface(model, data, overwrite=True, job=landscape.JobOptions(stop=stop), **kwargs)
    assert path.read_bytes() == before  # not replaced, although --overwrite was asked for
    assert not again.done["surface"].any()
    assert landscape.surface(model, data, **kwargs).complete  # and a run without the stop finds it complete


def test_a_driver_stopped_before_its_grid_says_nothing_was_written(tmp_path, capsys):
    """The report of a run whose stop came after its start-up but before run_job made the file."""
    result = Result.nothing_done(Layout(landscape.make_grid("-1:1:3"), "surface", ("train_loss",)))
    path = str(tmp_path / "s.h5")
    code = report(result, SimpleNamespace(plot=True), World(None), "surface", path, control=Control(threading.Event()))
    assert code == EXIT_STOPPED
    assert capsys.readouterr().out.strip() == (f"[surface] stopped before the grid started: nothing was written to "
                                               f"{path}; rerun the same command to start it (exit 75)")


# ---- drivers: two signals, the second during the stop or the teardown ----

def driver_cmd(ranks, script, *flags):
    return mpirun_cmd(ranks, script, *flags) if ranks > 1 else python_cmd(script, *flags)


def done_points(path, kind="surface"):
    with h5py.File(path, "r") as f:
        return f[f"{kind}_done"][()]


def wait_for_points(path, minimum, kind="surface", timeout=120):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            if done_points(path, kind).sum() >= minimum:
                return
        except (OSError, KeyError):
            pass
        time.sleep(0.05)
    raise AssertionError("the job committed no points")


def assert_stopped_with_points_kept(code, out, err, path, kept, kind="surface"):
    assert code == EXIT_STOPPED, (code, out[-2000:], err[-3000:])
    assert "Traceback" not in err, err
    assert out.count(STOP_LINE) == 1, out
    done = done_points(path, kind)
    assert kept <= done.sum() < done.size  # every point committed before the first signal is still there
    assert not glob.glob(f"{path}.pending-*"), "the clean stop committed every finished point"


def surface_flags(tmp_path, delay=0.06):
    return [*TINY, *BATCH["plot_surface.py"], *GRID, "--model", "tiny:make_slow_model",
            "--model_kwargs", f'{{"delay": {delay}}}',
            "--flush_points", "3", "--dir_file", str(tmp_path / "dirs.h5"), "--surf_file", str(tmp_path / "surf.h5")]


@pytest.mark.slow
@pytest.mark.parametrize("ranks,sig,second", [  # each signal, each phase, one and two ranks (CI time: not all pairs)
    (1, signal.SIGUSR1, "teardown"),
    (2, signal.SIGTERM, "teardown"),
    (2, signal.SIGUSR1, "at once"),
    (1, signal.SIGINT, "teardown"),   # Ctrl-C
    (1, signal.SIGHUP, "at once"),    # the terminal or ssh session closed
])
def test_a_second_stop_signal_changes_nothing(tmp_path, ranks, sig, second):
    """The first signal stops the grid (exit 75, the points kept); the same signal again, at once (during
    the stop's commit) or from the moment the stop line is printed until the process is gone, is absorbed."""
    job = Job(driver_cmd(ranks, "plot_surface.py", *surface_flags(tmp_path)), tmp_path)
    wait_for_points(tmp_path / "surf.h5", 3)
    job.signal(sig, ranks)
    if second == "at once":
        job.signal(sig, ranks)
    job.wait_for(STOP_LINE)
    job.signal_until_exit(sig, ranks)
    assert_stopped_with_points_kept(*job.finish(), tmp_path / "surf.h5", kept=3)


@pytest.mark.slow
def test_a_second_stop_signal_changes_nothing_in_a_hessian_map(tmp_path):
    flags = ["--model", "tiny:make_slow_model", "--model_kwargs", '{"delay": 0.01}', *TINY, *GRID,
             "--max_iter", "10", *BATCH["plot_hessian_eig.py"], "--flush_points", "1",
             "--dir_file", str(tmp_path / "dirs.h5"), "--surf_file", str(tmp_path / "hess.h5")]
    job = Job(python_cmd("plot_hessian_eig.py", *flags), tmp_path)
    wait_for_points(tmp_path / "hess.h5", 2, kind="hessian")
    job.signal(signal.SIGTERM, 1)
    job.wait_for(STOP_LINE)
    job.signal_until_exit(signal.SIGTERM, 1)
    assert_stopped_with_points_kept(*job.finish(), tmp_path / "hess.h5", kept=2, kind="hessian")


# ---- drivers: a stop during start-up ends the run before any results file ----

def assert_stopped_in_start_up(code, out, err, tmp_path):
    assert code == EXIT_STOPPED, (code, out[-2000:], err[-3000:])
    assert "Traceback" not in err, err
    assert out.count(START_UP_LINE) == 1, out
    assert not glob.glob(str(tmp_path / "surf.h5*")), "no results file, lock or side file"


@pytest.mark.slow
@pytest.mark.parametrize("ranks,sig", [(1, signal.SIGUSR1), (2, signal.SIGTERM)])
def test_a_stop_during_the_batch_probe_ends_the_run_before_any_results_file(tmp_path, ranks, sig):
    """The probe sleeps a minute per batch: it ends only if the stop ends it (no probe result is printed)."""
    flags = [*TINY, *GRID, "--model", "stop_helpers:make_probe_sleeper",
             "--dir_file", str(tmp_path / "dirs.h5"), "--surf_file", str(tmp_path / "surf.h5")]  # --batch_size auto
    job = Job(driver_cmd(ranks, "plot_surface.py", *flags), tmp_path)
    job.wait_for(r"batch_size auto: timing batch sizes")
    job.signal(sig, ranks)
    code, out, err = job.finish()
    assert_stopped_in_start_up(code, out, err, tmp_path)
    assert "evaluation batch size" not in out, "the probe must not have finished"


@pytest.mark.slow
@pytest.mark.parametrize("script,ranks,sig", [("plot_surface.py", 1, signal.SIGTERM),
                                              ("plot_hessian_eig.py", 1, signal.SIGUSR1),
                                              ("plot_surface.py", 2, signal.SIGUSR1)])
def test_a_stop_while_the_model_loads_ends_the_run_before_any_file(tmp_path, script, ranks, sig):
    flags = [*TINY, *BATCH[script], *GRID, "--model", "stop_helpers:make_model_slowly",
             "--dir_file", str(tmp_path / "dirs.h5"),
             "--surf_file", str(tmp_path / "surf.h5")]
    job = Job(driver_cmd(ranks, script, *flags), tmp_path)
    job.wait_for("stop_helpers: building the model")
    job.signal(sig, ranks)
    job.signal(sig, ranks)  # a second one while the first ends the run changes nothing
    code, out, err = job.finish()
    assert_stopped_in_start_up(code, out, err, tmp_path)
    assert not os.path.exists(tmp_path / "dirs.h5"), "the direction file comes after the model"


@pytest.mark.slow
def test_a_stop_after_the_grid_but_before_the_plots_leaves_them_to_the_rerun(tmp_path):
    """The loss signals its own process at the last point: the grid completes, the plots are not drawn
    (exit 75); the rerun draws them and exits 0."""
    flags = [*TINY, *BATCH["plot_surface.py"], "--x=-1:1:5", "--model", "tiny:make_model",
             "--loss", "stop_helpers:loss_with_events", "--plot", "--dir_file", str(tmp_path / "dirs.h5"),
             "--surf_file", str(tmp_path / "surf.h5")]
    # the loss's calls 1-2 are the first-batch checks, 3..7 the points
    r = run(python_cmd("plot_surface.py", *flags), LOSS_SIGNAL_AT="7")
    assert r.returncode == EXIT_STOPPED, r.stdout + r.stderr
    assert "stopped before the plots were drawn" in r.stdout and "complete:" in r.stdout
    assert done_points(tmp_path / "surf.h5").all() and not glob.glob(str(tmp_path / "*.png"))
    r = run(python_cmd("plot_surface.py", *flags))
    assert r.returncode == 0 and "5/5 points already done" in r.stdout, r.stdout + r.stderr
    assert glob.glob(str(tmp_path / "*.png"))


@pytest.mark.slow
def test_a_stop_while_the_plots_are_drawn_abandons_them_to_the_rerun(tmp_path):
    """SIGTERM as the first plot file is written: no plot file is left (each is whole or absent), exit 75;
    the rerun computes nothing and draws them."""
    flags = [*TINY, *BATCH["plot_surface.py"], "--x=-1:1:5", "--model", "tiny:make_model", "--plot",
             "--dir_file", str(tmp_path / "dirs.h5"), "--surf_file", str(tmp_path / "surf.h5")]
    r = run(python_cmd("tests/stop_in_plots.py", *flags))
    assert r.returncode == EXIT_STOPPED and "Traceback" not in r.stderr, r.stdout + r.stderr
    assert "stopped before the plots were drawn" in r.stdout and done_points(tmp_path / "surf.h5").all()
    assert sorted(os.listdir(tmp_path)) == ["dirs.h5", "surf.h5"]  # no plot, no partial file, no lock
    r = run(python_cmd("plot_surface.py", *flags))
    assert r.returncode == 0 and "5/5 points already done" in r.stdout, r.stdout + r.stderr
    assert glob.glob(str(tmp_path / "*.png"))


# ---- exit 2 before work, exit 3 after it ----

@pytest.mark.slow
@pytest.mark.parametrize("ranks,fail_at,code", [(1, 5, EXIT_RESULTS_KEPT), (2, 1, EXIT_BAD_INPUT),
                                                (2, 4, EXIT_RESULTS_KEPT)])  # one rank's exit 2: test_error_sweep
def test_an_error_exits_2_before_the_results_file_and_3_after_it(tmp_path, ranks, fail_at, code):
    """The user's loss fails on its call `fail_at`: 1 is the first-batch check, before the results file;
    calls after the two checks are grid points, after it (each rank counts its own calls)."""
    surf = tmp_path / "surf.h5"
    flags = [*TINY, *BATCH["plot_surface.py"], "--x=-1:1:9", "--model", "tiny:make_model",
             "--loss", "stop_helpers:loss_with_events", "--flush_points", "1", "--dir_file", str(tmp_path / "dirs.h5"),
             "--surf_file", str(surf)]
    r = run(driver_cmd(ranks, "plot_surface.py", *flags), LOSS_FAIL_AT=str(fail_at))
    assert r.returncode == code, r.stdout + r.stderr
    errors = [line for line in r.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "must return the batch's mean loss as one number" in errors[0], r.stderr
    if code == EXIT_BAD_INPUT:
        assert not os.path.exists(surf) and "kept" not in errors[0]
    else:
        assert errors[0].endswith(f"the results in {surf} are kept (exit 3)"), errors[0]
        assert 0 < done_points(surf).sum() < 9  # the points committed before the failure are there
