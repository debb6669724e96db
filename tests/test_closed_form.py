"""A linear model with an MSE loss has an exactly quadratic surface: check every value of a non-square grid."""
import h5py
import numpy as np
import torch

from landscape.files.results import Layout, done_name
from landscape.job.mpi import World
from landscape.job.run import GridJob, JobOptions, run_job
from landscape.space.directions import named_entries
from landscape.space.evaluate import evaluate
from landscape.space.flatparams import PointSetter
from landscape.space.grid import make_grid

from tiny import make_linear


def closed_form(W0, Dx, Dy, X, T, a, b):
    """(1 / (k N)) * ||R0 + a A + b B||_F^2 expanded into its six terms."""
    R0, A, B = W0 @ X - T, Dx @ X, Dy @ X
    k, n = T.shape
    dot = lambda P, Q: float((P * Q).sum())
    return (dot(R0, R0) + a * a * dot(A, A) + b * b * dot(B, B) + 2 * a * dot(R0, A) + 2 * b * dot(R0, B)
            + 2 * a * b * dot(A, B)) / (k * n)


def raw_mse_sum(out, y_onehot_index):
    t = torch.nn.functional.one_hot(y_onehot_index, out.shape[1]).to(out.dtype)
    return ((out - t) ** 2).mean(dim=1).sum()


def test_quadratic_surface_on_non_square_grid(tmp_path):
    torch.manual_seed(0)
    model = make_linear(num_classes=3, features=5).double()
    x = torch.randn(40, 5, dtype=torch.float64)
    y = torch.randint(0, 3, (40,))
    names, entries = zip(*named_entries(model, "weights"))
    dx = [torch.randn_like(e) for e in entries]
    dy = [torch.randn_like(e) for e in entries]
    W0 = entries[0].clone().numpy()
    setter = PointSetter(model, list(names), list(entries), dx, dy)
    grid = make_grid("-1:0.5:7", "-0.25:2:4")  # 4 rows (y) by 7 columns (x)
    path = str(tmp_path / "surf.h5")

    def evaluate_point(index):
        setter.set(*grid.coords(index))
        return evaluate(model, x, y, raw_mse_sum, batch_size=16)

    job = GridJob(path, Layout(grid, "surface", ("train_loss", "train_acc")), evaluate_point, lambda: {"k": 1}, {},
                  "none")
    assert run_job(World(None), job, JobOptions(flush_points=5))  # the one entry point of a grid job
    T = torch.nn.functional.one_hot(y, 3).double().numpy().T
    with h5py.File(path, "r") as f:
        loss = f["train_loss"][()]
        assert loss.shape == (4, 7)
        assert f[done_name("surface")][()].all()
    for j, b in enumerate(grid.y):
        for i, a in enumerate(grid.x):
            want = closed_form(W0, dx[0].numpy(), dy[0].numpy(), x.numpy().T, T, a, b)
            assert np.isclose(loss[j, i], want, rtol=1e-10), (j, i)
