"""The live view against a running mpirun -n 2 job: pages appear as points do, and the job is never blocked."""
import re
import subprocess
import sys

import h5py
import pytest

from landscape.plot import watch

from conftest import env, mpirun_cmd

pytestmark = pytest.mark.slow  # starts mpirun and a watcher process

JOB = ["--model", "tiny:make_slow_model", "--model_kwargs", '{"delay": 0.05}', "--dataset", "tiny:make_data",
       "--x=-1:1:7", "--y=-1:1:5", "--flush_points", "2", "--progress_secs", "0.5", "--batch_size", "64"]


def start(cmd):
    return subprocess.Popen(cmd, env=env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_watch_rewrites_the_page_while_a_job_runs_and_stops_when_it_is_complete(tmp_path):
    surf, page = tmp_path / "surf.h5", tmp_path / "live.html"
    watcher = start([sys.executable, "-m", "landscape.render", str(surf), "--html", str(page), "--watch", "0.3"])
    job = start(mpirun_cmd(2, "plot_surface.py", *JOB, "--dir_file", str(tmp_path / "dirs.h5"),
                           "--surf_file", str(surf)))
    job_out, job_err = job.communicate(timeout=240)
    assert job.returncode == 0, job_out[-2000:] + job_err[-2000:]
    out, err = watcher.communicate(timeout=60)
    assert watcher.returncode == 0, out + err
    seen = [(int(done), int(total)) for done, total in re.findall(r"(\d+) of (\d+) points", out)]
    assert seen[-1] == (35, 35)
    assert any(0 < done < 35 for done, _ in seen), f"no page while the job ran: {seen}"
    assert [done for done, _ in seen] == sorted(done for done, _ in seen)
    final = page.read_text()
    assert "const RELOAD_SECS = null;" in final  # the finished page stops reloading
    with h5py.File(surf, "r") as f:
        assert f["surface_done"][()].all()


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
