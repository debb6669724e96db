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
    """--threads 1: one process and each of two ranks sum their float32 products in the same order,
    so the rank count alone changes nothing and the runs compare bit for bit."""
    return ["--model", "tiny:make_model", "--dataset", "tiny:make_data", "--model_file", str(d / "m.t7"),
            "--dir_file", str(d / "dirs.h5"), "--surf_file", str(out), "--tol", "1e-6", "--max_iter", "200",
            "--hessian_batch", "20", "--threads", "1", *GRID, *extra]


def eigs(path):
    with h5py.File(path, "r") as f:
        return {k: f[k][()] for k in ("max_eig", "min_eig", "hessian_done", "eig_iters", "eig_converged")}


def dense_extremes(state_dict):
    """numpy.linalg.eigvalsh of the exact Hessian of the mean loss over the >1-D parameters."""
    w = np.linalg.eigvalsh(dense_hessian(state_dict).numpy())
    return w[0], w[-1]


def dense_hessian(state_dict):
    """The exact Hessian of the mean loss over the >1-D parameters, in model order."""
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
    return torch.autograd.functional.hessian(loss, theta)


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
        np.testing.assert_array_equal(got[k], want[k], err_msg=k)  # the same sums in the same order


def test_two_ranks_record_unconverged_points_and_warn_once(inputs, tmp_path):
    """Each rank's points carry their flag into the file; rank 0 alone prints the count, once."""
    out = tmp_path / "u.h5"
    args = flags(inputs, out)
    args[args.index("--max_iter") + 1] = "2"  # far below the ~400 coordinates' natural stop
    r = run(mpirun_cmd(2, "plot_hessian_eig.py", *args))
    assert r.returncode == 0, r.stderr + r.stdout
    warnings = [line for line in r.stderr.splitlines() if line.startswith("warning: ") and "converge" in line]
    assert len(warnings) == 1 and warnings[0].startswith("warning: 6 of 6 finished points did not converge"), r.stderr
    e = eigs(out)
    assert e["eig_converged"].dtype == np.bool_ and e["eig_converged"].shape == (2, 3)
    assert e["hessian_done"].all() and not e["eig_converged"].any() and (e["eig_iters"] == 2).all()


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


CURVATURE = {"--tol": "1e-3", "--max_iter": "12", "--hessian_batch": "48", "--x=-0.5:0.5:3": "--x=-0.5:0:2"}


def curvature_flags(d, out, *extra):
    """A 2x2 grid holding (0, 0), short Lanczos runs and one HVP batch: every quantity, cheaply. The
    trace estimates stay unbiased with any Krylov space; the extremes' accuracy is test_curvature's."""
    args = flags(d, out, "--trace", "4", "--density", "2/8", "--hessian_groups", "layer", *extra)
    for flag, value in CURVATURE.items():
        i = args.index(flag)
        if flag.startswith("--x="):
            args[i] = value
        else:
            args[i + 1] = value
    return args


def stored(path):
    with h5py.File(path, "r") as f:
        return {k: f[k][()] for k in f if isinstance(f[k], h5py.Dataset) and k != "dir_file"}


@pytest.fixture(scope="module")
def curved(inputs, tmp_path_factory):
    out = tmp_path_factory.mktemp("curv") / "c.h5"
    r = run([sys.executable, os.path.join(ROOT, "plot_hessian_eig.py"), *curvature_flags(inputs, out, "--plot")],
            timeout=600)
    assert r.returncode == 0, r.stderr + r.stdout
    return out, stored(out), r.stdout


def test_curvature_maps_are_stored_rendered_and_match_dense_truth(inputs, curved):
    path, v, stdout = curved
    assert v["hessian_done"].all() and v["esd_nodes"].shape == (2, 2, 16) and v["layer_trace"].shape == (2, 2, 3)
    np.testing.assert_allclose(v["esd_weights"].sum(-1), 1.0, rtol=1e-12)
    np.testing.assert_allclose(v["layer_trace"].sum(-1), v["trace"], rtol=1e-9)
    h = dense_hessian(torch.load(inputs / "m.t7"))
    centre = (0, 1)  # x = -0.5, 0 and y = 0, 0.5: (0, 0) is row 0, column 1
    assert abs(v["trace"][centre] - torch.trace(h).item()) < 4 * v["trace_err"][centre]
    with h5py.File(path, "r") as f:
        layers = list(f["layer_max_eig"].attrs["layers"])
    assert layers == ["0", "3", "7"]
    sizes = [3 * 4 * 9, 4 * 4 * 9, 16 * 10]
    starts = np.cumsum([0] + sizes)
    for i, (a, b) in enumerate(zip(starts[:-1], starts[1:])):
        block = h[a:b, a:b]
        assert abs(v["layer_trace"][centre][i] - torch.trace(block).item()) < 4 * v["layer_trace_err"][centre][i]
        # A Ritz value of the float32 operator H + E, so at most ||E|| above the block's lambda_max (the HVPs
        # put it 1.7e-8 above here, along the top eigenvector ||E v|| = 3e-7 lambda_max). Worst case: the
        # longest float32 sum, conv 0's weight gradient over 48 samples x 16 positions, errs by at most
        # 768 * 2**-24 = 4.6e-5 of its sum of |terms| (1.8 |Hv| here): 1e-3 leaves 10x for the shorter sums
        # before it. The check keeps its power: the whole Hessian's lambda_max is 3.8-27x each block's.
        assert v["layer_max_eig"][centre][i] <= torch.linalg.eigvalsh(block)[-1].item() * (1 + 1e-3)
    assert (v["hvps_trace"] == 4).all() and (v["hvps_layers"] > 0).all() and (v["hvps_density"] >= 8).all()
    for name in ("trace", "negative_mass", "density", "layer_max_eig", "eig_maps", "eig_ratio"):
        assert f"c_{name}.png" in stdout and os.path.getsize(str(path)[:-3] + f"_{name}.png") > 0


def test_curvature_two_ranks_equal_one(inputs, curved, tmp_path):
    out = tmp_path / "c.h5"
    r = run(mpirun_cmd(2, "plot_hessian_eig.py", *curvature_flags(inputs, out)), timeout=600)
    assert r.returncode == 0, r.stderr + r.stdout
    got, want = stored(out), curved[1]
    assert set(got) == set(want)
    for k in want:  # values and their checksums: one thread per process on both sides (flags), so bit for bit
        np.testing.assert_array_equal(got[k], want[k], err_msg=k)


@pytest.mark.parametrize("change, named", [(["--trace", "5"], "trace_samples"), (["--density", "2/9"], "density"),
                                           (["--hessian_groups", "none"], "hessian_groups")])
def test_resume_with_other_curvature_settings_is_refused(inputs, curved, change, named):
    path = curved[0]
    args = curvature_flags(inputs, path)
    flag = args.index(change[0])
    args[flag:flag + 2] = change
    before = open(path, "rb").read()
    r = run([sys.executable, os.path.join(ROOT, "plot_hessian_eig.py"), *args])
    assert r.returncode == 2 and "refusing to resume" in r.stderr and named in r.stderr, r.stderr
    assert open(path, "rb").read() == before


def test_nan_loss_is_stored_as_nan_and_marked_done(inputs, tmp_path):
    out = tmp_path / "n.h5"
    args = flags(inputs, out, "--trace", "3", "--density", "1/4", "--tol", "1e-3", "--max_iter", "30")
    args[args.index("--x=-0.5:0.5:3")] = "--x=0:1e30:2"
    args.remove("--y=0:0.5:2")
    r = run([sys.executable, os.path.join(ROOT, "plot_hessian_eig.py"), *args])
    assert r.returncode == 0, r.stderr + r.stdout
    v = stored(out)
    assert v["hessian_done"].tolist() == [1, 1]
    for name in ("max_eig", "min_eig", "trace", "trace_err", "esd_nodes", "esd_weights", "neg_mass"):
        assert np.isfinite(v[name][0]).all() and np.isnan(v[name][1]).all(), name


@pytest.mark.parametrize("bad, message", [(["--trace", "0"], "trace=0 (--trace 0)"), (["--density", "3"], "PROBES/STEPS"),
                                          (["--hessian_groups", "block"], "--hessian_groups 'block' is not one of")])
def test_bad_curvature_values_are_one_line_errors(inputs, tmp_path, bad, message):
    out = tmp_path / "b.h5"
    r = run([sys.executable, os.path.join(ROOT, "plot_hessian_eig.py"), *flags(inputs, out, *bad)])
    assert r.returncode == 2 and r.stderr.strip().count("\n") == 0, r.stderr
    assert r.stderr.startswith("error: ") and message in r.stderr and not out.exists()
