"""Eigenvector directions (issue 22, item 2): landscape.eigen_directions and plot_surface.py --eig_directions.

Truths: a dense symmetric matrix's eigh (the pure Lanczos part); the dense Hessian of the mean loss from
torch.autograd.functional.hessian on a float64 net (the API); the second difference of the loss along
the top direction, which is λmax up to its Taylor remainder and rounding (the issue's "Done when").
"""
import h5py
import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from tiny import make_data

import landscape
from landscape.cli import surface as surface_cli
from landscape.cli.context import ModelFlags
from landscape.curvature.top_eigen import lanczos_top
from landscape.errors import ChoiceError, CurvatureError, DirectionError
from landscape.space.directions import named_entries

F32 = 2.0 ** -24  # float32's unit roundoff: a direction file holds float32
F64 = 2.0 ** -53
TOL = 1e-10  # Lanczos residual tolerance of the dense comparisons: far below the float32 rounding


def mlp():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 5), nn.Tanh(), nn.Linear(5, 3)).double()


LOSS = F.cross_entropy  # a user's loss runs in the model's float64 ('crossentropy' takes logits to float32)


def mlp_data(n=24):
    g = torch.Generator().manual_seed(1)
    return torch.randn(n, 4, generator=g, dtype=torch.float64), torch.randint(0, 3, (n,), generator=g)


def dense_hessian(model, data, names):
    """The mean cross-entropy's Hessian over the parameters `names` (the others held), dense."""
    x, y = data
    params = dict(model.named_parameters())
    held = {n: p.detach() for n, p in params.items() if n not in names}

    def loss(*chosen):
        return F.cross_entropy(torch.func.functional_call(model, {**held, **dict(zip(names, chosen))}, (x,)), y)
    blocks = torch.autograd.functional.hessian(loss, tuple(params[n].detach() for n in names))
    sizes = [params[n].numel() for n in names]
    return torch.cat([torch.cat([blocks[i][j].reshape(sizes[i], sizes[j]) for j in range(len(names))], 1)
                      for i in range(len(names))], 0)


def flat(direction, model, names):
    """The entries of `names` of a direction, concatenated (float64)."""
    entries = dict(zip([n for n, _ in named_entries(model, "weights")], direction))
    return torch.cat([torch.as_tensor(entries[n]).double().reshape(-1) for n in names])


# ---- the pure part: top-k Ritz pairs of a dense matrix -------------------------------------------------

def spectrum_matrix(values, seed=0):
    q, _ = torch.linalg.qr(torch.randn(len(values), len(values), generator=torch.Generator().manual_seed(seed),
                                       dtype=torch.float64))
    return q @ torch.diag(torch.as_tensor(values, dtype=torch.float64)) @ q.T


def test_lanczos_top_gives_the_top_eigenpairs_of_a_dense_matrix_to_its_residual():
    values = [5.0, 3.0, *np.linspace(-1.0, 1.0, 58)]  # two outliers over a bulk, as at a trained minimum
    a = spectrum_matrix(values)
    tol = 1e-8
    top = lanczos_top(lambda v: a @ v, 60, 2, tol=tol)
    assert top.converged and top.steps < 60  # stopped by the residual test, not by exhausting the space
    assert torch.allclose(top.values, torch.tensor([5.0, 3.0], dtype=torch.float64), rtol=0, atol=tol * 5.0)
    true = torch.linalg.eigh(a).eigenvectors[:, [-1, -2]]
    for j in range(2):
        y, theta = top.vectors[:, j], top.values[j]
        actual = (a @ y - theta * y).norm()
        assert abs(actual - top.residuals[j]) <= 1e-12 * 5.0  # the reported residual is the real one
        assert actual <= tol * 5.0
        # sin(angle) <= residual / gap (Davis-Kahan), gap 2 to the nearest other eigenvalue
        assert min((y - true[:, j]).norm(), (y + true[:, j]).norm()) <= 2 * tol * 5.0 / 2.0 + 1e-12
        assert y[y.abs().argmax()] > 0  # the sign convention
    assert abs(top.vectors[:, 0] @ top.vectors[:, 1]) <= 1e-12


def test_lanczos_top_reports_an_unmet_tolerance_and_refuses_a_zero_operator():
    a = spectrum_matrix(np.linspace(0.0, 1.0, 40))  # no gap: many steps to converge
    top = lanczos_top(lambda v: a @ v, 40, 1, tol=1e-12, max_iter=4)
    assert not top.converged and top.steps == 4 and top.residuals[0] > 1e-12
    with pytest.raises(CurvatureError, match="fewer than the 2 eigenvectors"):
        lanczos_top(lambda v: 0 * v, 10, 2)


# ---- the API against the dense Hessian -----------------------------------------------------------------

@pytest.mark.parametrize("params, names", [("all", ["0.weight", "0.bias", "2.weight", "2.bias"]),
                                           (["2.*"], ["2.weight", "2.bias"])])
def test_directions_are_the_dense_hessians_top_eigenvectors(params, names):
    model, data = mlp(), mlp_data()
    dirs = landscape.eigen_directions(model, data, LOSS, k=2, params=params, tol=TOL)
    lam, vecs = torch.linalg.eigh(dense_hessian(model, data, names))
    scale = lam.abs().max().item()
    assert np.allclose(dirs.values, [lam[-1].item(), lam[-2].item()], rtol=0, atol=TOL * scale + 1e-13)
    gaps = [(lam[-1] - lam[-2]).item(), min(lam[-2] - lam[-3], lam[-1] - lam[-2]).item()]
    for j, (direction, gap) in enumerate(zip((dirs.x, dirs.y), gaps)):
        v, true = flat(direction, model, names), vecs[:, -1 - j]
        # float32 rounding of a unit vector, and sin(angle) <= residual / gap
        assert min((v - true).norm(), (v + true).norm()) <= F32 + TOL * scale / gap + 1e-12
    assert abs(flat(dirs.x, model, names) @ flat(dirs.y, model, names)) <= 4 * F32  # x ⟂ y, to rounding
    for name, dx, dy in zip(dirs.attrs["names"], dirs.x, dirs.y):
        if name not in names:  # outside the Hessian's parameters: not moved
            assert not dx.any() and not dy.any(), name
    assert dirs.attrs["params"] == params and dirs.attrs["directions"] == "eig"
    assert dirs.attrs["dir_type"] == "weights" and dirs.attrs["curvature"] == "hessian"


def test_the_second_difference_along_x_is_lambda_max():
    """f(a) = L(θ0 + a x): f''(0) = xᵀHx = λmax. The central difference D(h) = (f(h) - 2f(0) + f(-h)) / h²
    is f''(0) + h²/12 f''''(ξ) ± 4 ε64 |f| / h²; f'''' is bounded by a five-point difference at a coarse step."""
    model, data = mlp(), mlp_data()
    dirs = landscape.eigen_directions(model, data, LOSS, k=1, params="all", tol=TOL)
    lam_max = torch.linalg.eigvalsh(dense_hessian(model, data, ["0.weight", "0.bias", "2.weight", "2.bias"]))[-1]

    def losses(reach, num):
        grid = (-reach, reach, num)
        return landscape.surface(model, data, LOSS, directions=dirs, x=grid, progress_secs=1e9).train_loss
    coarse = 0.05
    f = losses(2 * coarse, 5)
    fourth = abs(f[0] - 4 * f[1] + 6 * f[2] - 4 * f[3] + f[4]) / coarse ** 4
    h = 3e-4  # the Taylor remainder (~h²) and the rounding (~1/h²) both well below the float32 direction's part
    f = losses(h, 3)
    second = (f[0] - 2 * f[1] + f[2]) / h ** 2
    truncation = 2 * h ** 2 / 12 * fourth  # twice the estimate: f'''' varies over [-2 coarse, 2 coarse]
    rounding = 4 * F64 * abs(f[1]) / h ** 2 * 10  # each loss a sum of 24 float64 terms: a few ulps each
    direction = 3 * F32 * lam_max.abs().item() + TOL * lam_max.abs().item()  # float32 x, Lanczos residual
    assert abs(second - lam_max.item()) <= truncation + rounding + direction, (second, lam_max.item())
    assert abs(second - dirs.values[0]) <= truncation + rounding + direction


def test_save_and_load_keep_the_directions_values_and_attributes(tmp_path):
    model, data = mlp(), mlp_data()
    dirs = landscape.eigen_directions(model, data, k=2, params=["0.*"], samples=16, seed=3, tol=1e-6)
    dirs.save(tmp_path / "eig.h5")
    back = landscape.load_directions(tmp_path / "eig.h5")
    assert back.values == dirs.values and back.attrs == dirs.attrs
    assert back.attrs["samples"] == 16 and back.attrs["seed"] == 3 and back.attrs["params"] == ["0.*"]
    for a, b in zip(dirs.x + dirs.y, back.x + back.y):
        assert torch.equal(a, b)
    assert landscape.random_directions(model).values is None


def test_the_model_comes_back_as_it_was_and_bad_choices_are_refused():
    model, data = mlp(), mlp_data()
    model.train()
    before = {n: p.clone() for n, p in model.state_dict().items()}
    landscape.eigen_directions(model, data, k=1, tol=1e-4)
    assert model.training and all(torch.equal(before[n], p) for n, p in model.state_dict().items())
    for kwargs, error, words in [(dict(k=3), DirectionError, "give k=1 or k=2"),
                                 (dict(curvature="fisher"), ChoiceError, "is not one of hessian, ggn, ef"),
                                 (dict(params=["9.*"]), ChoiceError, "matches none"),
                                 (dict(max_iter=1), CurvatureError, "max_iter >= k")]:
        with pytest.raises(error, match=words):
            landscape.eigen_directions(model, data, **kwargs)


# ---- plot_surface.py --eig_directions ------------------------------------------------------------------

TINY = ["--model", "tiny:make_model", "--dataset", "tiny:make_data", "--progress_secs", "1e9"]


def drive(capsys, *flags):
    try:
        code = surface_cli.main([*TINY, *flags])
    except SystemExit as e:  # argparse refusals
        code = e.code
    out, err = capsys.readouterr()
    return code, [line for line in err.splitlines() if line.strip()]


def test_plot_surface_draws_along_eigen_directions_and_refuses_another_files_settings(tmp_path, capsys):
    dir_file, surf_file = tmp_path / "eig.h5", tmp_path / "surf.h5"
    files = ["--dir_file", str(dir_file), "--surf_file", str(surf_file)]
    code, err = drive(capsys, "--x=-1:1:3", "--y=-1:1:3", "--eig_directions", "--eig_samples", "16", *files)
    assert code == 0, err
    made = landscape.load_directions(dir_file)
    assert made.attrs["directions"] == "eig" and made.attrs["samples"] == 16 and made.is_2d
    model = ModelFlags("tiny:make_model", {}).build(10)  # the driver's model, and the API on it
    want = landscape.eigen_directions(model, make_data()[0], k=2, samples=16)
    assert np.allclose(made.values, want.values, rtol=1e-5, atol=0)
    with h5py.File(surf_file) as f:
        assert np.isfinite(f["train_loss"][()]).all()
    before = dir_file.read_bytes()
    for flags, words in [(["--eig_directions", "--eig_samples", "8"], "--eig_samples 8 (the file has 16)"),
                         (["--eig_directions", "--params", "0.*"], "--params 0.* (the file has reference)"),
                         (["--xnorm", "layer"], "--xnorm layer (the file holds eigen directions")]:
        code, err = drive(capsys, "--x=-1:1:3", "--y=-1:1:3", *files, *flags)
        assert code == 2 and len(err) == 1 and words in err[0], err
    assert dir_file.read_bytes() == before


def test_plot_surface_refuses_eigen_flags_that_would_do_nothing(tmp_path, capsys):
    files = ["--dir_file", str(tmp_path / "d.h5"), "--surf_file", str(tmp_path / "s.h5")]
    random_file = ["--dir_file", str(tmp_path / "random.h5"), "--surf_file", str(tmp_path / "r.h5")]
    assert drive(capsys, "--x=-1:1:2", "--batch_size", "64", *random_file)[0] == 0
    for flags, words in [(["--eig_directions", "--same_dir", *files], "take no --same_dir"),
                         (["--eig_samples", "8", *files], "--eig_samples chooses the samples of --eig_directions"),
                         (["--eig_directions", *random_file], "--eig_directions (the file holds other directions)")]:
        code, err = drive(capsys, "--x=-1:1:2", *flags)
        assert code == 2 and len(err) == 1 and words in err[0], err
    assert not (tmp_path / "d.h5").exists()


@pytest.mark.parametrize("flags", [["--eig_directions"], ["--eig_samples", "8"]])
def test_the_trajectory_driver_refuses_eigen_directions(tmp_path, capsys, flags):
    from landscape.cli.trajectory import main as trajectory_main
    with pytest.raises(SystemExit) as ended:
        trajectory_main(["--model_folder", str(tmp_path), "--surface", *flags])
    assert ended.value.code == 2 and "directions are the PCA of the path" in capsys.readouterr().err


@pytest.mark.parametrize("curvature", ["ggn", "ef"])
def test_eigen_directions_of_the_ggn_and_the_fisher_are_those_of_the_dense_matrices(curvature):
    """The same Lanczos run on the other operators: values and vectors against eigh of the dense GGN / EF
    (tests/test_curvature_operators.py builds them from the Jacobian and per-sample gradients)."""
    from test_curvature_operators import dense_truth
    from landscape.space.losses import weighted_loss
    model, data = mlp(), mlp_data()
    names = [n for n, _ in model.named_parameters()]
    made = landscape.eigen_directions(model, data, loss=LOSS, k=2, curvature=curvature, params="all", tol=1e-6,
                                      max_iter=200)
    values, vectors = torch.linalg.eigh(dense_truth(curvature, model, names, [data], weighted_loss(LOSS)))
    scale = values.abs().max().item()
    assert made.values == pytest.approx(values[[-1, -2]].tolist(), abs=1e-5 * scale)
    got = torch.cat([torch.as_tensor(d).reshape(-1).double() for d in made.x])
    assert abs(float(got @ vectors[:, -1])) == pytest.approx(1.0, abs=1e-4)  # the same unit vector up to sign
    assert made.attrs["curvature"] == curvature
