"""Refinement as a job: mpirun -n 3 equals one rank, a stopped refinement resumes, the driver's flags.
Most runs use bench/sim_job.py, the sleep-cost simulation (real dispatcher, channel and file, no torch)."""
import json
import subprocess
import time

import h5py
import numpy as np
import pytest

from conftest import env, mpirun_cmd, python_cmd, run

pytestmark = pytest.mark.slow  # starts processes (mpirun, drivers)
SIM = ["--shape", "33", "33", "--refine", "0.01", "--flush_points", "16"]


def read(path):
    with h5py.File(path, "r") as f:
        return {k: f[k][()] for k in ("surface_done", "train_loss", "train_loss_interp", "train_acc_interp")}


def same(a, b):
    np.testing.assert_array_equal(a["surface_done"], b["surface_done"])
    for k in ("train_loss", "train_loss_interp", "train_acc_interp"):
        np.testing.assert_array_equal(a[k], b[k])


@pytest.fixture(scope="module")
def one_rank(tmp_path_factory):
    path = tmp_path_factory.mktemp("one") / "sim.h5"
    r = run(python_cmd("bench/sim_job.py", *SIM, "--sleep", "0", "--surf_file", str(path)))
    assert r.returncode == 0, r.stderr + r.stdout
    out = read(path)
    assert 0.05 < out["surface_done"].mean() < 0.9  # a real refinement: neither the base alone nor everything
    return out


def test_three_ranks_refine_exactly_like_one(one_rank, tmp_path):
    stats = tmp_path / "stats.json"
    # sim_job.py as is, its closed_form counted per rank: 'requests' counts flush, round and done replies
    # too (every rank gets one per commit), so it is > 1 even for a rank that never computed a point
    counted = tmp_path / "counted_sim_job.py"
    counted.write_text(
        "import os, sys\n"
        "import landscape\n"
        "root = os.path.dirname(os.path.dirname(os.path.dirname(landscape.__file__)))\n"
        "sys.path.insert(0, os.path.join(root, 'bench'))\n"
        "import sim_job\n"
        "form, count = sim_job.closed_form, [0]\n"
        "def counted(x, y):\n"
        "    count[0] += 1\n"
        "    return form(x, y)\n"
        "sim_job.closed_form = counted\n"
        "code = sim_job.main(sys.argv[1:])\n"
        f"with open(os.path.join({str(tmp_path)!r}, 'points-' + os.environ['OMPI_COMM_WORLD_RANK']), 'w') as f:\n"
        "    f.write(str(count[0]))\n"
        "sys.exit(code)\n")
    r = run(mpirun_cmd(3, str(counted), *SIM, "--sleep", "0.002", "--surf_file", str(tmp_path / "sim.h5"),
                       "--stats", str(stats)))
    assert r.returncode == 0, r.stderr + r.stdout
    same(read(tmp_path / "sim.h5"), one_rank)
    measured = json.loads(stats.read_text())
    assert measured["ranks"] == 3 and len(measured["per_rank"]) == 3
    assert measured["torch_imported"] is False  # 64 simulated ranks must not each load torch
    points = [int((tmp_path / f"points-{rank}").read_text()) for rank in range(3)]
    assert all(n > 0 for n in points), points  # every rank computed points
    assert sum(points) == one_rank["surface_done"].sum(), points  # and none was computed twice


def test_a_stopped_refinement_resumes_to_the_same_result(one_rank, tmp_path):
    path = tmp_path / "sim.h5"
    proc = subprocess.Popen(mpirun_cmd(2, "bench/sim_job.py", *SIM, "--sleep", "0.02", "--surf_file", str(path)),
                            env=env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    deadline = time.time() + 60
    while time.time() < deadline:  # past the coarse lattice (81 points), so the stop lands mid-refinement
        try:
            with h5py.File(path, "r", locking=False) as f:
                if f["surface_done"][()].sum() > 100:
                    break
        except (OSError, KeyError):
            pass
        time.sleep(0.05)
    for pid in subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True, text=True).stdout.split():
        subprocess.run(["kill", "-TERM", pid])
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 75, err + out
    with h5py.File(path, "r") as f:
        assert "train_loss_interp" not in f and 100 < f["surface_done"][()].sum() < one_rank["surface_done"].sum()
    r = run(mpirun_cmd(3, "bench/sim_job.py", *SIM, "--sleep", "0", "--surf_file", str(path)))
    assert r.returncode == 0, r.stderr + r.stdout
    same(read(path), one_rank)


def test_uniform_simulation_under_mpirun_fills_the_grid(tmp_path):
    r = run(mpirun_cmd(4, "bench/sim_job.py", "--shape", "21", "21", "--sleep", "0.001", "--serial_io",
                       "--surf_file", str(tmp_path / "u.h5"), "--stats", str(tmp_path / "s.json")))
    assert r.returncode == 0, r.stderr + r.stdout
    with h5py.File(tmp_path / "u.h5", "r") as f:
        assert f["surface_done"][()].all() and "train_loss_interp" not in f
    assert json.loads((tmp_path / "s.json").read_text())["parallel_io"] is False


def test_driver_refines_then_refines_further_without_recomputing(tmp_path, tiny_args):
    args = [*tiny_args, "--x=-3:3:17", "--y=-3:3:17", "--dir_file", str(tmp_path / "d.h5"),
            "--surf_file", str(tmp_path / "s.h5"), "--batch_size", "64"]
    r = run(python_cmd("plot_surface.py", *args, "--refine", "0.05"))
    assert r.returncode == 0 and "refinement to 0.05" in r.stdout, r.stderr + r.stdout
    with h5py.File(tmp_path / "s.h5", "r") as f:
        first, loss = f["surface_done"][()].astype(bool), f["train_loss"][()]
        assert json.loads(f.attrs["surface_refine"])["tol"] == 0.05
        np.testing.assert_array_equal(f["train_loss_interp"][()][first], loss[first])
    r = run(python_cmd("plot_surface.py", *args, "--refine", "0.002"))  # not a settings mismatch
    assert r.returncode == 0, r.stderr + r.stdout
    with h5py.File(tmp_path / "s.h5", "r") as f:
        second = f["surface_done"][()].astype(bool)
        assert second[first].all() and second.sum() > first.sum()
        np.testing.assert_array_equal(f["train_loss"][()][first], loss[first])  # kept, not recomputed
        assert np.isfinite(f["train_loss_interp"][()]).all()
    r = run(python_cmd("plot_surface.py", *args, "--refine_budget", "5"))
    assert r.returncode == 2 and "error: --refine_budget needs --refine" in r.stderr
