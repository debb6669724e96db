"""End to end under real mpirun: rank invariance, parallel vs serial HDF5, reference files, bad input."""
import hashlib
import os
import shutil
import sys

import h5py
import numpy as np
import pytest
import torch

from bruteforce import brute_force_surface, reference_direction_file
from conftest import ROOT, mpirun_cmd, run
from tiny import make_model

pytestmark = pytest.mark.slow  # starts processes (mpirun or python drivers)

GRID = ["--x=-1:1:5", "--y=-0.5:1:3"]  # non-square: 3 rows (y) by 5 columns (x)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    d = tmp_path_factory.mktemp("inputs")
    torch.manual_seed(1)
    model = make_model()
    sd = model.state_dict()
    del sd["1.num_batches_tracked"]  # as PyTorch 0.4 saved them
    torch.save({"state_dict": sd, "acc": 10.0, "epoch": 3}, d / "model_3.t7")
    reference_direction_file(d / "dirs.h5", model, seed=0)
    return d


def job(inputs, out, *extra):
    return ["--model", "tiny:make_model", "--dataset", "tiny:make_data", "--model_file",
            str(inputs / "model_3.t7"), "--dir_file", str(inputs / "dirs.h5"), "--surf_file", str(out),
            "--progress_secs", "0.2", "--flush_points", "4", "--threads", "1", *GRID, *extra]


def values(path):
    with h5py.File(path, "r") as f:
        return {k: f[k][()] for k in ("train_loss", "train_acc", "surface_done")}


@pytest.fixture(scope="module")
def single(inputs, tmp_path_factory):
    out = tmp_path_factory.mktemp("single") / "surf.h5"
    r = run(mpirun_cmd(1, "plot_surface.py", *job(inputs, out)))
    assert r.returncode == 0, r.stderr + r.stdout
    return dict(values(out), path=out)


def test_single_process_matches_brute_force(inputs, single):
    sd = torch.load(inputs / "model_3.t7")["state_dict"]
    model = make_model()
    sd["1.num_batches_tracked"] = model.state_dict()["1.num_batches_tracked"]
    loss, acc = brute_force_surface(sd, inputs / "dirs.h5", np.linspace(-1, 1, 5), np.linspace(-0.5, 1, 3))
    assert single["train_loss"].shape == (3, 5)
    # as in test_api's brute-force test: float32 sums over 48 samples in other batches (<= 2.9e-6) and one
    # ulp of the weights; the accuracies' argmaxes flip only at a tie within that rounding
    np.testing.assert_allclose(single["train_loss"], loss, rtol=1e-5)
    np.testing.assert_allclose(single["train_acc"], acc, atol=1e-9)
    assert single["surface_done"].all()


@pytest.mark.parametrize("io", ["parallel", "serial"])
def test_three_ranks_write_the_same_values(inputs, single, tmp_path, io):
    out = tmp_path / "surf.h5"
    extra = ["--serial_io"] if io == "serial" else []
    r = run(mpirun_cmd(3, "plot_surface.py", *job(inputs, out, *extra)))
    assert r.returncode == 0, r.stderr + r.stdout
    got = values(out)
    for k in got:  # one thread per rank on both sides: each point is the same float32 arithmetic
        np.testing.assert_array_equal(got[k], single[k], err_msg=k)
    with h5py.File(out, "r") as f:
        prov = f.attrs["surface_provenance"]
        assert '"ranks": 3' in prov
    assert "[surface] 15/15 points (100.0%)" in r.stdout, r.stdout  # every rank's points counted


def sha(path):
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


BAD = {
    "malformed grid": (["--x=1:-1:5"], "--x"),
    "unknown model": (["--model", "resnet9000"], "unknown model"),
    "unknown norm": (["--xnorm", "unit"], "invalid choice"),
    "unknown dir_type": (["--dir_type", "grads"], "invalid choice"),
    "missing data": (["--dataset", "cifar10", "--datapath", "/nonexistent"], "/nonexistent"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_input_fails_clearly_and_leaves_files_alone(inputs, single, tmp_path, case):
    out = tmp_path / "surf.h5"
    shutil.copy(single["path"], out)
    before = sha(out), sha(inputs / "dirs.h5")
    flags, message = BAD[case]
    # one case through mpirun shows the exit code crosses it; plain processes are quicker for the rest
    if case == "malformed grid":
        cmd = mpirun_cmd(2, "plot_surface.py")
    else:
        cmd = [sys.executable, os.path.join(ROOT, "plot_surface.py")]
    r = run([*cmd, *job(inputs, out), *flags])
    assert r.returncode == 2 and message in r.stderr and "Traceback" not in r.stderr, r.stderr
    assert (sha(out), sha(inputs / "dirs.h5")) == before


def test_checkpoint_of_another_model_names_the_keys(inputs, tmp_path):
    bad = tmp_path / "other.t7"
    torch.save(make_model(width=6).state_dict(), bad)
    args = job(inputs, tmp_path / "s.h5")
    args[args.index("--model_file") + 1] = str(bad)
    r = run([sys.executable, os.path.join(ROOT, "plot_surface.py"), *args])
    assert r.returncode == 2 and "shape" in r.stderr and str(bad) in r.stderr
    assert not os.path.exists(tmp_path / "s.h5")


def test_direction_file_of_another_model_is_refused(inputs, tmp_path):
    reference_direction_file(tmp_path / "other_dirs.h5", make_model(width=6), seed=0)
    args = job(inputs, tmp_path / "s.h5")
    args[args.index("--dir_file") + 1] = str(tmp_path / "other_dirs.h5")
    r = run([sys.executable, os.path.join(ROOT, "plot_surface.py"), *args])
    assert r.returncode == 2 and "another model" in r.stderr
    assert not os.path.exists(tmp_path / "s.h5")


def test_an_exception_on_one_rank_ends_the_whole_job(tmp_path):
    r = run(mpirun_cmd(2, "plot_surface.py", "--model", "tiny:make_failing_model", "--dataset", "tiny:make_data",
                       "--x=-1:1:9", "--surf_file", str(tmp_path / "s.h5"), "--dir_file", str(tmp_path / "d.h5"),
                       "--batch_size", "16"), timeout=120)
    errors = [line for line in r.stderr.splitlines() if line.startswith("error:")]
    assert r.returncode != 0 and "Traceback" not in r.stderr, r.stderr
    assert len(errors) == 1 and "failed at point" in errors[0] and "deliberate failure on one rank" in errors[0]


@pytest.mark.parametrize("flags,message", [
    (["--model_kwargs", "{width: 2}"], "--model_kwargs"),
    (["--device", "cuda"], "no GPU"),
    (["--threads", "-1"], "--threads"),
])
def test_more_bad_flags_give_one_line_errors(inputs, tmp_path, flags, message):
    if "cuda" in flags and torch.cuda.is_available():
        pytest.skip("a GPU is visible here")
    r = run([sys.executable, os.path.join(ROOT, "plot_surface.py"), *job(inputs, tmp_path / "s.h5"), *flags])
    assert r.returncode == 2 and message in r.stderr and "Traceback" not in r.stderr, r.stderr


def test_render_of_a_missing_file_is_a_clear_error(tmp_path):
    r = run([sys.executable, "-m", "landscape.render", str(tmp_path / "none.h5")])
    assert r.returncode == 2 and "no such results file" in r.stderr and "Traceback" not in r.stderr
