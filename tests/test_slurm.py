"""slurm/landscape.sbatch's logic, run here through stand-ins for sbatch, srun and scontrol.

tests/fake_slurm/ goes first on PATH: its sbatch runs the job script synchronously (again after
each `scontrol requeue`, with SLURM_RESTART_COUNT one higher), its srun runs the step with mpirun
and can signal the tasks mid-run as `#SBATCH --signal` does, and every call is logged.
"""
import os
import re
import sys

import h5py
import numpy as np
import pytest

from conftest import ROOT, TESTS, run

FAKE = os.path.join(TESTS, "fake_slurm")
sys.path.insert(0, FAKE)
from fakelib import read_calls  # noqa: E402

pytestmark = pytest.mark.slow  # starts processes (mpirun or python drivers)

SCRIPT = os.path.join(ROOT, "slurm", "landscape.sbatch")
STUB_PYTHON = os.path.join(FAKE, "stub_python")
GRID = ["--dataset", "tiny:make_data", "--x=-1:1:7", "--y=-1:1:5", "--batch_size", "64", "--progress_secs", "0.5",
        "--threads", "1"]  # the same arithmetic in the plain run and under srun (SLURM_CPUS_PER_TASK=1)
SLOW = ["--model", "tiny:make_slow_model", "--model_kwargs", '{"delay": 0.1}', "--flush_points", "3"]
ALREADY_DONE = re.compile(r"\[surface\] .*: (\d+)/35 points already done")


def sbatch(state, flags, ntasks=2, cwd=ROOT, timeout=240, **extra_env):
    """Submit the job script with `flags` (kind first); returns (CompletedProcess, logged calls)."""
    r = run(["sbatch", "--nodes=1", f"--ntasks-per-node={ntasks}", "--cpus-per-task=1", SCRIPT, *flags],
            cwd=cwd, timeout=timeout, PATH=FAKE + os.pathsep + os.environ["PATH"], FAKE_SLURM_DIR=str(state),
            LANDSCAPE_PYTHON=extra_env.pop("LANDSCAPE_PYTHON", sys.executable), **extra_env)
    return r, read_calls(state) if (state / "calls.jsonl").exists() else []


def calls_of(calls, tool, event):
    return [c for c in calls if c["tool"] == tool and c["event"] == event]


def renders(calls):
    return [c for c in calls_of(calls, "srun", "start") if "landscape.render" in c["argv"]]


def read(path):
    with h5py.File(path, "r") as f:
        return {name: f[name][()] for name in ("train_loss", "train_acc", "surface_done")}


@pytest.fixture(scope="module")
def requeued_job(tmp_path_factory):
    """One job whose first run gets SIGUSR1 mid-grid, and the same grid computed without a stop."""
    tmp = tmp_path_factory.mktemp("slurm")
    full = [*GRID, "--model", "tiny:make_slow_model", "--model_kwargs", '{"delay": 0}',
            "--dir_file", str(tmp / "dirs.h5"), "--surf_file", str(tmp / "full.h5")]
    r = run([sys.executable, os.path.join(ROOT, "plot_surface.py"), *full])
    assert r.returncode == 0, r.stderr + r.stdout
    surf = tmp / "job.h5"
    # --overwrite starts over once: the requeued run must resume, not delete the first run's points
    r, calls = sbatch(tmp / "state", ["surface", *GRID, *SLOW, "--dir_file", str(tmp / "dirs.h5"),
                                      "--surf_file", str(surf), "--overwrite"],
                      FAKE_SLURM_SIGNAL_AFTER="1.0", FAKE_SLURM_SIGNAL_AFTER_LINE="points already done")
    return r, calls, read(surf), read(tmp / "full.h5")


def test_overwrite_is_dropped_on_requeue(requeued_job):
    _, calls, _, _ = requeued_job
    steps = [c for c in calls_of(calls, "srun", "start") if "landscape.render" not in c["argv"]]
    assert "--overwrite" in steps[0]["argv"] and "--overwrite" not in steps[-1]["argv"]


def test_signal_stops_the_first_run_and_requeues_it(requeued_job):
    r, calls, _, _ = requeued_job
    first = [c for c in calls if c["restart"] == 0 and c["tool"] != "sbatch"]
    assert [(c["tool"], c["event"]) for c in first] == [
        ("srun", "start"), ("srun", "signal"), ("srun", "end"), ("scontrol", "call")], r.stdout
    assert first[1]["signal"] == "USR1" and first[1]["ranks"] == 2
    assert first[2]["rc"] == 75
    assert first[3]["argv"] == ["requeue", first[3]["job"]]
    ends = calls_of(calls, "sbatch", "end")
    assert (ends[0]["rc"], ends[0]["requeued"]) == (75, True)


def test_requeued_run_resumes_and_completes_the_grid(requeued_job):
    r, calls, job, full = requeued_job
    assert r.returncode == 0, r.stderr + r.stdout
    assert [e["requeued"] for e in calls_of(calls, "sbatch", "end")] == [True, False]
    done_at_start = [int(n) for n in ALREADY_DONE.findall(r.stdout)]
    assert len(done_at_start) == 2 and done_at_start[0] == 0
    assert 0 < done_at_start[1] < 35, "the first run should have committed part of the grid"
    assert job["surface_done"].all()
    np.testing.assert_array_equal(job["train_loss"], full["train_loss"])
    np.testing.assert_array_equal(job["train_acc"], full["train_acc"])


def test_plots_are_drawn_once_after_completion(requeued_job):
    r, calls, _, _ = requeued_job
    [render] = renders(calls)
    completed = [c for c in calls_of(calls, "srun", "end") if c["rc"] == 0 and "plot_surface.py" in c["argv"]]
    assert len(completed) == 1 and render["restart"] == completed[0]["restart"] == 1
    assert render["time"] > completed[0]["time"] and render["ntasks"] == 1
    pngs = [line for line in r.stdout.splitlines() if line.endswith(".png")]
    assert len(pngs) == 4 and all(os.path.getsize(p) > 0 for p in pngs), r.stdout


def test_bad_input_is_not_requeued(tmp_path):
    r, calls = sbatch(tmp_path / "state", ["surface", *GRID[:2], "--x=1:-1:x", "--surf_file",
                                           str(tmp_path / "s.h5")], ntasks=1)
    assert r.returncode == 2 and "num must be a whole number" in r.stderr, r.stderr + r.stdout
    assert [c["rc"] for c in calls_of(calls, "srun", "end")] == [2]
    assert not calls_of(calls, "scontrol", "call") and not renders(calls)
    assert len(calls_of(calls, "sbatch", "start")) == 1
    assert not (tmp_path / "s.h5").exists()


@pytest.mark.parametrize("flags,message", [
    (["surface", "--x=-1:1:3"], "surface needs --surf_file"),
    (["hessian", "--surf_file"], "hessian needs --surf_file"),
    (["landscape"], "unknown kind 'landscape'"),
    ([], "usage: sbatch slurm/landscape.sbatch"),
])
def test_script_refuses_bad_arguments_before_any_step(tmp_path, flags, message):
    r, calls = sbatch(tmp_path / "state", flags)
    assert r.returncode == 2 and message in r.stderr, r.stderr
    assert not calls_of(calls, "srun", "start") and not calls_of(calls, "scontrol", "call")


def test_restarts_are_bounded(tmp_path):
    r, calls = sbatch(tmp_path / "state", ["surface", "--surf_file", "s.h5"], ntasks=1, cwd=tmp_path,
                      LANDSCAPE_HOME=ROOT, LANDSCAPE_PYTHON=STUB_PYTHON, STUB_EXIT="75", LANDSCAPE_MAX_RESTARTS="1")
    assert r.returncode == 75, r.stderr + r.stdout
    assert [e["restart"] for e in calls_of(calls, "srun", "end")] == [0, 1]
    assert [c["restart"] for c in calls_of(calls, "scontrol", "call")] == [0]
    assert "after 1 restarts (LANDSCAPE_MAX_RESTARTS=1): not requeued" in r.stdout
    assert not renders(calls)


def test_crash_is_not_requeued(tmp_path):
    r, calls = sbatch(tmp_path / "state", ["hessian", "--surf_file", "s.h5"], ntasks=1,
                      LANDSCAPE_PYTHON=STUB_PYTHON, STUB_EXIT="1")
    assert r.returncode == 1 and "the step failed (exit 1): not requeued" in r.stdout, r.stdout
    assert len(calls_of(calls, "srun", "start")) == 1 and not calls_of(calls, "scontrol", "call")


def test_trajectory_runs_its_flags_unchanged_and_plots_itself(tmp_path):
    flags = ["--model_folder", "runs/a b", "--surface", "--x=-1:1:5"]
    r, calls = sbatch(tmp_path / "state", ["trajectory", *flags], ntasks=1,
                      LANDSCAPE_PYTHON=STUB_PYTHON, STUB_EXIT="0")
    assert r.returncode == 0, r.stderr + r.stdout
    [step] = calls_of(calls, "srun", "start")
    assert step["command"] == [STUB_PYTHON, "plot_trajectory.py", *flags]
    assert not renders(calls)


def test_sigterm_to_the_job_is_neither_requeued_nor_plotted(tmp_path):
    r, calls = sbatch(tmp_path / "state", ["surface", "--surf_file", "s.h5"], ntasks=1, timeout=60,
                      LANDSCAPE_PYTHON=STUB_PYTHON, STUB_WAIT="1", FAKE_SLURM_SIGNAL="TERM",
                      FAKE_SLURM_SIGNAL_AFTER="0.2", FAKE_SLURM_SIGNAL_AFTER_LINE="stub ready")
    assert r.returncode == 75, r.stderr + r.stdout
    assert "SIGTERM: Slurm is ending this job" in r.stdout
    assert "step ended with exit 75 while Slurm ends the job: not requeued" in r.stdout
    assert [c["rc"] for c in calls_of(calls, "srun", "end")] == [75]
    assert not calls_of(calls, "scontrol", "call") and not renders(calls)
