"""landscape.hessian_map: against dense Hessians of a tiny net, the driver, and under mpirun."""
import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import landscape
from landscape.errors import CurvatureError, LossError

from bruteforce import reference_direction_file
from conftest import python_cmd, run, script_results
from tiny import make_data, make_model

XS, YS = (-1.0, 1.0, 3), (0.0, 1.0, 2)


def mlp():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 6), nn.Tanh(), nn.Linear(6, 3))


def features(n=40):
    g = torch.Generator().manual_seed(1)
    return torch.randn(n, 4, generator=g), torch.randint(0, 3, (n,), generator=g)


def dense_hessian(model, theta, data, loss=F.cross_entropy):
    """The Hessian of the mean loss over all of `data` with respect to every parameter, flattened."""
    shapes = [p.shape for p in model.parameters()]
    names = [n for n, _ in model.named_parameters()]

    def mean_loss(flat):
        parts, start = {}, 0
        for name, shape in zip(names, shapes):
            parts[name] = flat[start:start + shape.numel()].reshape(shape)
            start += shape.numel()
        return loss(torch.func.functional_call(model, parts, (data[0],)), data[1])
    return torch.autograd.functional.hessian(mean_loss, theta.double()).to(torch.float64)


def point(model, dirs, a, b):
    flat = lambda ts: torch.cat([torch.as_tensor(t).reshape(-1) for t in ts]).double()
    return flat(model.parameters()) + a * flat(dirs.x) + b * flat(dirs.y)


def test_extremes_trace_and_layers_equal_dense_hessians_at_every_point():
    model, data = mlp(), features()
    model.double()
    data = (data[0].double(), data[1])
    dirs = landscape.random_directions(model, n=2, seed=3)
    res = landscape.hessian_map(model, data, directions=dirs, x=XS, y=YS, params="all", samples=None, tol=1e-6,
                                trace=20, layers=True, progress_secs=1e9)
    assert res.max_eig.shape == (2, 3) and res.complete
    for j, b in enumerate(np.linspace(*YS)):
        for i, a in enumerate(np.linspace(*XS)):
            h = dense_hessian(model, point(model, dirs, a, b), data)
            eig = torch.linalg.eigvalsh(h)
            scale = eig.abs().max().item()
            assert abs(res.max_eig[j, i] - eig[-1].item()) <= 1e-5 * scale
            assert abs(res.min_eig[j, i] - eig[0].item()) <= 1e-5 * scale
            assert abs(res.trace[j, i] - torch.trace(h).item()) <= 4 * res.trace_err[j, i] + 1e-9
            blocks = [(0, 30), (30, 51)]  # layer "0": 4*6 + 6, layer "2": 6*3 + 3
            for k, (lo, hi) in enumerate(blocks):
                block = torch.linalg.eigvalsh(h[lo:hi, lo:hi])
                assert abs(res.layer_max_eig[j, i, k] - block[-1].item()) <= 1e-5 * scale
                assert abs(res.layer_min_eig[j, i, k] - block[0].item()) <= 1e-5 * scale


def test_model_is_left_as_it_was_and_choices_are_checked():
    model, data = mlp(), features()
    model.train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    landscape.hessian_map(model, data, x=(-0.5, 0.5, 2), max_iter=10, progress_secs=1e9)
    assert model.training and all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    with pytest.raises(CurvatureError, match="params='some'"):
        landscape.hessian_map(model, data, x=XS, params="some", progress_secs=1e9)
    with pytest.raises(CurvatureError, match="trace=1"):
        landscape.hessian_map(model, data, x=XS, trace=1, progress_secs=1e9)
    with pytest.raises(LossError, match="one number"):
        landscape.hessian_map(model, data, x=XS, loss=lambda o, t: F.cross_entropy(o, t, reduction="none"),
                              progress_secs=1e9)


def test_a_batch_iterable_and_a_custom_loss_equal_the_tensor_pair():
    """A regression loss on a DataLoader: the whole iterable is the Hessian's data, batches weighted by size."""
    model = mlp()
    x, _ = features()
    targets = torch.randn(40, 3)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, targets), batch_size=16)
    dirs = landscape.random_directions(model, n=1, seed=2)
    common = dict(loss=F.mse_loss, directions=dirs, x=XS, tol=1e-6, progress_secs=1e9)
    by_pair = landscape.hessian_map(model, (x, targets), samples=None, **common)
    by_loader = landscape.hessian_map(model, loader, **common)
    scale = np.abs(by_pair.max_eig).max()
    # the same products in float32, over 40 samples in one batch or in batches of 16 weighted n_b / N: sums in
    # another order differ by at most 40 * 2**-24 = 2.4e-6 of their |terms|, which this small net's Hessian
    # products do not exceed by more than a few times max|λ|: 1e-5 * max|λ| (tol=1e-6 leaves the rest)
    np.testing.assert_allclose(by_loader.max_eig, by_pair.max_eig, atol=1e-5 * scale)
    np.testing.assert_allclose(by_loader.min_eig, by_pair.min_eig, atol=1e-5 * scale)


def test_nan_loss_is_stored_as_nan():
    model, data = mlp(), features()
    res = landscape.hessian_map(model, data, x=XS, loss=lambda o, t: F.cross_entropy(o, t) * float("nan"),
                                progress_secs=1e9)
    assert np.isnan(res.max_eig).all() and res.complete


@pytest.mark.slow
def test_same_values_as_plot_hessian_eig_on_the_same_checkpoint_and_directions(tmp_path):
    torch.manual_seed(1)
    model = make_model()
    torch.save(model.state_dict(), tmp_path / "model.t7")
    reference_direction_file(tmp_path / "dirs.h5", model, seed=0)
    out = tmp_path / "cli.h5"
    r = run(python_cmd("plot_hessian_eig.py", "--model", "tiny:make_model", "--dataset", "tiny:make_data",
                       "--model_file", str(tmp_path / "model.t7"), "--dir_file", str(tmp_path / "dirs.h5"),
                       "--surf_file", str(out), "--x=-1:1:3", "--y=0:1:2", "--trace", "4", "--max_iter", "30",
                       "--threads", "1"))  # as this process runs (conftest): the same float32 sums
    assert r.returncode == 0, r.stderr
    res = landscape.hessian_map(model, make_data()[0], directions=landscape.load_directions(tmp_path / "dirs.h5"),
                                x=XS, y=YS, trace=4, max_iter=30, path=str(tmp_path / "api.h5"), progress_secs=1e9)
    cli = landscape.load(str(out))
    for name in ("max_eig", "min_eig", "trace", "trace_err", "eig_iters"):
        np.testing.assert_array_equal(getattr(res, name), getattr(cli, name), err_msg=name)
    assert landscape.load(str(tmp_path / "api.h5")).attrs["hessian_settings"]


USER_SCRIPT = """
import sys, torch, numpy as np, landscape
from tiny import make_data, make_model
torch.manual_seed(1)
model = make_model()
res = landscape.hessian_map(model, make_data()[0], directions=landscape.random_directions(model, n=1, seed=5),
                            x=(-1, 1, 4), max_iter=30, progress_secs=1e9)
np.save(sys.argv[1], np.stack([res.max_eig, res.min_eig]))
"""


@pytest.mark.slow
def test_user_script_under_mpirun_equals_one_process(tmp_path):
    one, two = script_results(tmp_path, USER_SCRIPT)  # one thread per rank (conftest): the same sums
    np.testing.assert_array_equal(one, two)
    assert np.isfinite(two).all()


def test_at_a_trained_minimum_the_default_tolerance_finds_the_small_negative_lambda_min():
    """Where users work (the paper's case): near a minimum λmin is a small negative number, which an early
    stop would report as ~0. Here λmin ≈ -1e-3·λmax, so tol 1e-4 (with the default 100 steps) must tell it
    from 0."""
    model, data = mlp(), features()
    model.double()
    data = (data[0].double(), data[1])
    opt = torch.optim.Adam(model.parameters(), lr=0.05)
    for _ in range(300):
        opt.zero_grad()
        F.cross_entropy(model(data[0]), data[1]).backward()
        opt.step()
    res = landscape.hessian_map(model, data, x=(0, 0, 1), params="all", samples=None, tol=1e-4, progress_secs=1e9)
    theta = torch.cat([p.detach().reshape(-1) for p in model.parameters()])
    eig = torch.linalg.eigvalsh(dense_hessian(model, theta, data))
    scale = eig.abs().max().item()
    assert -0.01 * scale < eig[0] < -5e-4 * scale  # a minimum's small negative curvature, well beyond tol·scale
    assert abs(res.min_eig[0] - eig[0].item()) <= 1e-4 * scale and res.min_eig[0] < 0
    assert abs(res.max_eig[0] - eig[-1].item()) <= 1e-4 * scale


def test_a_saved_curvature_map_resumes_as_finished(tmp_path, capsys):
    """Array-valued quantities (density, per-layer values and their layer names) save with their
    checksums in storage order, so the same call on the saved file finds every point done."""
    model, data = mlp(), features()
    kwargs = dict(x=(-0.5, 0.5, 2), max_iter=10, trace=2, density=(1, 4), layers=True, progress_secs=1e9)
    res = landscape.hessian_map(model, data, **kwargs)
    res.save(tmp_path / "h.h5")
    capsys.readouterr()
    again = landscape.hessian_map(model, data, path=str(tmp_path / "h.h5"), **kwargs)
    assert "2/2 points already done" in capsys.readouterr().out
    for name in ("max_eig", "esd_nodes", "layer_trace", "trace_err"):
        np.testing.assert_array_equal(getattr(again, name), getattr(res, name))
    assert list(again.dataset_attrs["layer_max_eig"]["layers"]) == ["0", "2"]
