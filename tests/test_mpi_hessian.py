"""plot_hessian_eig.py end to end: 2 ranks equal 1, the centre point equals a dense Hessian, resume keeps λ ≤ 0."""
import os
import sys

import h5py
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch.func import functional_call

from bruteforce import reference_direction_file
from conftest import ROOT, mpirun_cmd, run
from tiny import make_data, make_model

pytestmark = pytest.mark.slow  # starts processes (mpirun or python drivers)

GRID = ["--x=-0.5:0.5:3", "--y=0:0.5:2"]


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    d = tmp_path_factory.mktemp("hess")
    torch.manual_seed(2)
    model = make_model()
    torch.save(model.state_dict(), d / "m.t7")
    reference_direction_file(d / "dirs.h5", model, seed=3, scale=0.2)
    return d


def flags(d, out, *extra):
    return ["--model", "tiny:make_model", "--dataset", "tiny:make_data", "--model_file", str(d / "m.t7"),
            "--dir_file", str(d / "dirs.h5"), "--surf_file", str(out), "--tol", "1e-6", "--max_iter", "200",
            "--hessian_batch", "20", *GRID, *extra]


def eigs(path):
    with h5py.File(path, "r") as f:
        return {k: f[k][()] for k in ("max_eig", "min_eig", "hessian_done", "eig_iters")}


def dense_extremes(state_dict):
    """numpy.linalg.eigvalsh of the exact Hessian of the mean loss over the >1-D parameters."""
    model = make_model()
    model.load_state_dict(state_dict)
    model.eval()
    (x, y), _ = make_data()
    names = [n for n, p in model.named_parameters() if p.ndim > 1]
    shapes = [model.state_dict()[n].shape for n in names]
    sizes = [s.numel() for s in shapes]
    theta = torch.cat([model.state_dict()[n].reshape(-1) for n in names]).double()
    model.double()

    def loss(flat):
        params = {n: t.view(s) for n, t, s in zip(names, flat.split(sizes), shapes)}
        return F.cross_entropy(functional_call(model, params, (x.double(),)), y)
    h = torch.autograd.functional.hessian(loss, theta)
    w = np.linalg.eigvalsh(h.numpy())
    return w[0], w[-1]


@pytest.fixture(scope="module")
def single(inputs, tmp_path_factory):
    out = tmp_path_factory.mktemp("one") / "s.h5"
    r = run([sys.executable, os.path.join(ROOT, "plot_hessian_eig.py"), *flags(inputs, out)])
    assert r.returncode == 0, r.stderr + r.stdout
    return out, eigs(out)


def test_centre_point_matches_dense_hessian(inputs, single):
    _, e = single
    lo, hi = dense_extremes(torch.load(inputs / "m.t7"))
    # grid x = -0.5, 0, 0.5 and y = 0, 0.5: the centre (0, 0) is row 0, column 1
    assert np.isclose(e["max_eig"][0, 1], hi, rtol=1e-3)
    assert np.isclose(e["min_eig"][0, 1], lo, rtol=1e-3, atol=1e-3 * abs(hi))
    assert lo < 0  # an indefinite point: the negative extreme is found and stored as a result


def test_two_ranks_equal_one(inputs, single, tmp_path):
    out = tmp_path / "s.h5"
    r = run(mpirun_cmd(2, "plot_hessian_eig.py", *flags(inputs, out)))
    assert r.returncode == 0, r.stderr + r.stdout
    got, want = eigs(out), single[1]
    for k in want:
        np.testing.assert_allclose(got[k], want[k], rtol=1e-6, atol=1e-9)


def test_negative_eigenvalues_are_results_on_resume(inputs, single):
    path, before = single
    assert (before["min_eig"] < 0).any() and before["hessian_done"].all()
    r = run([sys.executable, os.path.join(ROOT, "plot_hessian_eig.py"), *flags(inputs, path)])
    assert r.returncode == 0 and "6/6 points already done" in r.stdout
    np.testing.assert_array_equal(eigs(path)["min_eig"], before["min_eig"])


def test_hessian_values_of_another_landscape_are_not_added_to_a_surface_file(inputs, tmp_path):
    out = tmp_path / "s.h5"
    surface = ["--model", "tiny:make_model", "--dataset", "tiny:make_data", "--model_file", str(inputs / "m.t7"),
               "--dir_file", str(inputs / "dirs.h5"), "--surf_file", str(out), *GRID]
    assert run([sys.executable, os.path.join(ROOT, "plot_surface.py"), *surface]).returncode == 0
    reference_direction_file(tmp_path / "other.h5", make_model(), seed=9)
    args = flags(inputs, out)
    args[args.index("--dir_file") + 1] = str(tmp_path / "other.h5")
    before = open(out, "rb").read()
    r = run([sys.executable, os.path.join(ROOT, "plot_hessian_eig.py"), *args])
    assert r.returncode == 2 and "another landscape" in r.stderr and "directions_sha256" in r.stderr
    assert open(out, "rb").read() == before
