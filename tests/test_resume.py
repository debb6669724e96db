"""Stop, kill and resume: the result equals an uninterrupted run; refusals leave the file's bytes alone."""
import fcntl
import glob
import hashlib
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time

import h5py
import numpy as np
import pytest
import torch.nn as nn

from conftest import ROOT, env, mpirun_cmd, python_cmd, run
from tiny import make_model, nap

pytestmark = pytest.mark.slow  # starts processes (mpirun or python drivers)

ARGS = ["--model", "tiny:make_slow_model", "--model_kwargs", '{"delay": 0.06}', "--dataset", "tiny:make_data",
        "--x=-1:1:7", "--y=-1:1:5", "--flush_points", "3", "--progress_secs", "0.5", "--batch_size", "64",
        "--threads", "1"]  # one thread whatever the rank count: every point is the same arithmetic in every run
EXIT_STOPPED = 75


def args_for(tmp, name="surf.h5"):
    return [*ARGS, "--dir_file", str(tmp / "dirs.h5"), "--surf_file", str(tmp / name)]


def read(path):
    with h5py.File(path, "r") as f:
        return f["train_loss"][()], f["train_acc"][()], f["surface_done"][()]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("full")
    r = run(mpirun_cmd(2, "plot_surface.py", *args_for(tmp)))
    assert r.returncode == 0, r.stderr + r.stdout
    return tmp, read(tmp / "surf.h5")


def start(cmd):
    return subprocess.Popen(cmd, env=env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)


def ranks_of(proc):
    out = subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


def wait_for_progress(path, minimum=1, timeout=60):
    """Until the file holds at least `minimum` finished points (it is committed every 3 points)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with h5py.File(path, "r") as f:
                if f["surface_done"][()].sum() >= minimum:
                    return
        except (OSError, KeyError):
            pass
        time.sleep(0.05)
    raise AssertionError("the job made no progress")


def same_as(full, path):
    loss, acc, done = read(path)
    assert done.all()
    np.testing.assert_array_equal(loss, full[0])
    np.testing.assert_array_equal(acc, full[1])
    np.testing.assert_array_equal(done, full[2])


def copy_dirs(src, dst):
    shutil.copy(src / "dirs.h5", dst / "dirs.h5")


@pytest.mark.parametrize("trial", range(1))  # more trials cost 9 s each in CI; run them with a larger range locally
def test_kill_a_random_rank_then_rerun(uninterrupted, tmp_path, trial):
    """Kill one of three ranks once a random number of points (up to 12) is committed. Commits come every
    3 handed-out points (about 4 with the chunking), and the ranks run at most one commit interval ahead,
    so 35 - 12 - 8 = 15 or more points are left when the kill is decided: the slow model's 0.06 s sleep
    per forward keeps every rank busy for 5 * 0.06 = 0.3 s or more, whatever the CPU."""
    full_tmp, full = uninterrupted
    copy_dirs(full_tmp, tmp_path)
    rng = random.Random(trial)
    proc = start(mpirun_cmd(3, "plot_surface.py", *args_for(tmp_path)))
    wait_for_progress(tmp_path / "surf.h5", minimum=rng.choice([1, 3, 6, 9, 12]))
    victims = ranks_of(proc)
    assert len(victims) == 3
    os.kill(rng.choice(victims), signal.SIGKILL)
    proc.communicate(timeout=30)  # the whole job must end promptly: no rank hangs
    assert proc.returncode != 0
    _, _, done = read(tmp_path / "surf.h5")
    assert 0 < done.sum() < done.size
    r = run(mpirun_cmd(3, "plot_surface.py", *args_for(tmp_path)))
    assert r.returncode == 0, r.stderr + r.stdout
    same_as(full, tmp_path / "surf.h5")


def stop_then_resume(uninterrupted, tmp_path, launch, sig, resume_ranks):
    """Start `launch`, send `sig` once 3 points are committed: exit 75 with some points done; then a
    resume with `resume_ranks` ranks completes the grid exactly as an uninterrupted run."""
    full_tmp, full = uninterrupted
    copy_dirs(full_tmp, tmp_path)
    proc = start(launch)
    wait_for_progress(tmp_path / "surf.h5", minimum=3)
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == EXIT_STOPPED, err + out
    assert "rerun the same command to resume" in out
    _, _, done = read(tmp_path / "surf.h5")
    assert 0 < done.sum() < done.size
    r = run(mpirun_cmd(resume_ranks, "plot_surface.py", *args_for(tmp_path)))
    assert r.returncode == 0, r.stderr + r.stdout
    same_as(full, tmp_path / "surf.h5")


def test_sigterm_stops_cleanly_then_one_rank_start_resumes_with_three(uninterrupted, tmp_path):
    launch = [sys.executable, os.path.join(ROOT, "plot_surface.py"), *args_for(tmp_path), "--serial_io"]
    stop_then_resume(uninterrupted, tmp_path, launch, signal.SIGTERM, 3)


def test_sigterm_to_every_rank_of_mpirun(uninterrupted, tmp_path):
    full_tmp, full = uninterrupted
    copy_dirs(full_tmp, tmp_path)
    proc = start(mpirun_cmd(2, "plot_surface.py", *args_for(tmp_path)))
    wait_for_progress(tmp_path / "surf.h5", minimum=3)
    for pid in ranks_of(proc):  # what Slurm does at the time limit
        os.kill(pid, signal.SIGTERM)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == EXIT_STOPPED, err + out
    r = run(mpirun_cmd(2, "plot_surface.py", *args_for(tmp_path)))
    assert r.returncode == 0, r.stderr + r.stdout
    same_as(full, tmp_path / "surf.h5")


def sha(path):
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


@pytest.fixture
def finished_copy(uninterrupted, tmp_path):
    full_tmp, _ = uninterrupted
    copy_dirs(full_tmp, tmp_path)
    shutil.copy(full_tmp / "surf.h5", tmp_path / "surf.h5")
    return tmp_path


@pytest.mark.parametrize("flags,named", [
    (["--loss_name", "mse"], "refusing to resume"),
    (["--precision", "bf16"], "refusing to resume"),
    (["--seed", "1"], "--seed 1 (the file has 0)"),  # the direction file was made with seed 0
])
def test_resume_with_other_settings_is_refused(finished_copy, flags, named):
    before = sha(finished_copy / "surf.h5")
    r = run(python_cmd("plot_surface.py", *args_for(finished_copy), *flags))
    assert r.returncode == 2 and named in r.stderr and flags[0][2:] in r.stderr, r.stderr
    assert sha(finished_copy / "surf.h5") == before


def test_other_grid_is_refused(finished_copy):
    before = sha(finished_copy / "surf.h5")
    r = run(python_cmd("plot_surface.py", *args_for(finished_copy), "--x=-1:1:9"))
    assert r.returncode == 2 and "another grid" in r.stderr
    assert sha(finished_copy / "surf.h5") == before


def test_concurrent_writer_is_refused(finished_copy):
    path = finished_copy / "surf.h5"
    before = sha(path)
    with open(str(path) + ".lock", "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        r = run(mpirun_cmd(2, "plot_surface.py", *args_for(finished_copy)))
    assert r.returncode == 2 and "another job is writing" in r.stderr
    assert sha(path) == before


def test_corrupt_file_is_refused(finished_copy):
    path = finished_copy / "surf.h5"
    data = open(path, "rb").read()
    with open(path, "wb") as f:
        f.write(data[: len(data) // 3])  # truncated
    before = sha(path)
    r = run(python_cmd("plot_surface.py", *args_for(finished_copy)))
    assert r.returncode == 2 and "corrupt" in r.stderr
    assert sha(path) == before


def test_finished_grid_is_not_recomputed_and_overwrite_starts_over(finished_copy):
    path = finished_copy / "surf.h5"
    before = sha(path)
    r = run(python_cmd("plot_surface.py", *args_for(finished_copy)))
    assert r.returncode == 0 and "35/35 points already done" in r.stdout
    r = run(python_cmd("plot_surface.py", *args_for(finished_copy), "--overwrite", "--x=-1:1:3", "--y=0:0:1"))
    assert r.returncode == 0, r.stderr
    assert sha(path) != before


def test_explicit_direction_flag_that_contradicts_the_direction_file_is_refused(finished_copy):
    before = sha(finished_copy / "dirs.h5"), sha(finished_copy / "surf.h5")
    r = run(python_cmd("plot_surface.py", *args_for(finished_copy), "--xnorm", "layer"))
    assert r.returncode == 2 and "--xnorm layer (the file has filter)" in r.stderr, r.stderr
    assert (sha(finished_copy / "dirs.h5"), sha(finished_copy / "surf.h5")) == before


def test_sigusr1_to_mpirun_is_the_clean_stop(uninterrupted, tmp_path):
    """mpirun forwards SIGUSR1 to every rank (SIGTERM it does not: it kills them, see the next test)."""
    stop_then_resume(uninterrupted, tmp_path, mpirun_cmd(2, "plot_surface.py", *args_for(tmp_path)), signal.SIGUSR1, 2)


def read_lines_until(proc, pattern, timeout=90):
    deadline = time.time() + timeout
    while time.time() < deadline:
        line = proc.stdout.readline()
        if re.search(pattern, line):
            return line
    raise AssertionError(f"no line matching {pattern!r}")


class Sleepy(nn.Module):
    """Sleeps SLEEPY_DELAY seconds per evaluation batch (not for one-sample probes): the delay is
    not a model setting, so a run and its resume may differ in it."""

    def __init__(self):
        super().__init__()
        self.inner = make_model()

    def forward(self, x):
        if len(x) > 1:
            nap(float(os.environ.get("SLEEPY_DELAY", "0")))  # a stop's handler runs within 50 ms
        return self.inner(x)


def make_sleepy_model():
    return Sleepy()


def test_sigterm_to_mpirun_keeps_points_finished_since_the_last_commit(tmp_path):
    """mpirun answers SIGTERM by forwarding it, then SIGKILL one second later (odls_base_sigkill_timeout),
    and exits 1 whatever the ranks return. Each point here takes 2 s and nothing is committed before the
    signal, so only the side files that each rank writes on receipt can keep the finished points."""
    flags = ["--model", "test_resume:make_sleepy_model", "--dataset", "tiny:make_data", "--x=-1:1:5",
             "--batch_size", "64", "--dir_file", str(tmp_path / "dirs.h5"), "--flush_points", "100",
             "--flush_secs", "600", "--progress_secs", "0", "--threads", "1"]
    r = run(python_cmd("plot_surface.py", *flags, "--surf_file", str(tmp_path / "ref.h5")))
    assert r.returncode == 0, r.stderr
    flags += ["--surf_file", str(tmp_path / "surf.h5")]
    proc = subprocess.Popen(["mpirun", "-x", "SLEEPY_DELAY", *mpirun_cmd(2, "plot_surface.py", *flags)[1:]],
                            env=env(SLEEPY_DELAY="2"), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    read_lines_until(proc, r"\[surface\] [2-5]/5 points")  # each rank has one point done, one begun
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=30)
    assert proc.returncode != 0  # mpirun's own code; the supported clean stop is SIGUSR1 (above)
    assert read(tmp_path / "surf.h5")[2].sum() == 0  # killed before any commit
    assert len(glob.glob(str(tmp_path / "surf.h5.pending-*"))) == 2, "each rank saves its finished point"
    r = run(mpirun_cmd(2, "plot_surface.py", *flags))
    assert r.returncode == 0, r.stderr + r.stdout
    saved = re.search(r"(\d+) point\(s\) saved by the ranks at the last stop were added", r.stdout)
    assert saved and int(saved[1]) >= 2, r.stdout  # each rank's first point; a loaded machine may let one more end
    assert f"{saved[1]}/5 points already done" in r.stdout
    assert not glob.glob(str(tmp_path / "surf.h5.pending-*"))
    with h5py.File(tmp_path / "ref.h5", "r") as ref, h5py.File(tmp_path / "surf.h5", "r") as f:
        assert f["surface_done"][()].all()
        np.testing.assert_array_equal(f["train_loss"][()], ref["train_loss"][()])
        np.testing.assert_array_equal(f["train_acc"][()], ref["train_acc"][()])
