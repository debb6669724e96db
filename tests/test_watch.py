"""The live view against a real job: pages appear while it runs, it ends when the job completes or dies.

The jobs wait behind a gate file (tests/gated.py): the watcher is started after the job took its lock
(its first printed line), and the job computes only once the watcher's first page exists."""
import json
import os
import re
import signal
import subprocess
import sys

import h5py
import pytest

from landscape.files.lock import lock_path
from landscape.plot import watch

from conftest import env, mpirun_cmd, python_cmd

pytestmark = pytest.mark.slow  # starts jobs and watcher processes

GRID = ["--x=-1:1:7", "--y=-1:1:5", "--flush_points", "2", "--progress_secs", "0.5", "--batch_size", "64"]


def start(cmd):
    return subprocess.Popen(cmd, env=env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def gated_job(tmp_path, gate, launch):
    surf = str(tmp_path / "surf.h5")
    job = start(launch("plot_surface.py", "--model", "gated:make_gated_model", "--model_kwargs",
                       json.dumps({"gate": str(gate), "results": surf}), "--dataset", "tiny:make_data", *GRID,
                       "--dir_file", str(tmp_path / "dirs.h5"), "--surf_file", surf))
    for line in job.stdout:  # the job holds its lock from here on
        if "points already done" in line:
            return job
    raise AssertionError("the job ended before it started: " + job.stderr.read()[-2000:])


def watcher(tmp_path, every="0.3"):
    return start([sys.executable, "-m", "landscape.render", str(tmp_path / "surf.h5"), "--html",
                  str(tmp_path / "live.html"), "--watch", every])


def first_page(proc):
    for line in proc.stdout:
        if line.startswith("[watch]"):
            return line
    raise AssertionError("the watcher ended without a page: " + proc.stderr.read()[-2000:])


def test_watch_rewrites_the_page_while_a_job_runs_and_stops_when_it_is_complete(tmp_path):
    page = tmp_path / "live.html"
    job = gated_job(tmp_path, page, lambda *a: mpirun_cmd(2, *a))  # computes once the first page exists
    live = watcher(tmp_path)
    job_out, job_err = job.communicate(timeout=240)
    assert job.returncode == 0, job_out[-2000:] + job_err[-2000:]
    out, err = live.communicate(timeout=60)
    assert live.returncode == 0, out + err
    seen = [(int(done), int(total)) for done, total in re.findall(r"(\d+) of (\d+) points", out)]
    assert seen[0][0] < 35 and seen[-1] == (35, 35), seen  # a page while the job ran, and the last one
    assert [done for done, _ in seen] == sorted(done for done, _ in seen)
    final = page.read_text()
    assert "const RELOAD_SECS = null;" in final  # the finished page stops reloading
    with h5py.File(tmp_path / "surf.h5", "r") as f:
        assert f["surface_done"][()].all()


def kill(job):
    job.send_signal(signal.SIGKILL)


def stop(job, gate):
    job.send_signal(signal.SIGTERM)
    gate.write_text("go")


@pytest.mark.parametrize("end, code", [("killed", -signal.SIGKILL), ("stopped", 75)])
def test_a_watcher_whose_job_is_gone_ends_with_exit_3_and_keeps_the_last_page(tmp_path, end, code):
    gate = tmp_path / "gate"
    job = gated_job(tmp_path, gate, python_cmd)
    live = watcher(tmp_path, every="0.2")
    try:
        assert "0 of 35 points" in first_page(live)  # watched while the job held its lock
        {"killed": lambda: kill(job), "stopped": lambda: stop(job, gate)}[end]()
        job.communicate(timeout=120)
        assert job.returncode == code
        out, err = live.communicate(timeout=120)
    finally:
        for proc in (job, live):
            if proc.poll() is None:
                proc.kill()
    assert live.returncode == 3, out + err
    assert err.count("error:") == 1 and err.splitlines()[-1].startswith(f"error: no job is writing {tmp_path}")
    assert "const RELOAD_SECS = null;" in (tmp_path / "live.html").read_text()
    with h5py.File(tmp_path / "surf.h5", "r") as f:
        assert not f["surface_done"][()].all()
    if end == "killed":
        assert os.path.exists(lock_path(str(tmp_path / "surf.h5")))  # a killed job's lock file: no writer holds it


def test_a_watcher_started_before_its_job_ends_at_once(tmp_path):
    live = watcher(tmp_path)
    out, err = live.communicate(timeout=120)
    assert live.returncode == 2 and err.startswith("error: no such file") and err.count("\n") == 1, out + err
    assert not (tmp_path / "live.html").exists()


def test_a_read_that_fails_mid_flush_is_tried_again(monkeypatch):
    calls = []

    def flaky(path):  # read_results never takes HDF5's lock (files/results.h5open), which could block a writer
        calls.append(path)
        if len(calls) < 3:
            raise OSError("bad object header (a flush in progress)")
        return {"ok": True}
    monkeypatch.setattr(watch, "read_results", flaky)
    assert watch.read_retrying("f.h5", sleep=lambda s: None) == {"ok": True}
    assert calls == ["f.h5"] * 3
