"""--precision bf16 (issue 25): the surface runs under bf16 autocast and nowhere else, fp32 stays the default,
the Hessian stays strict fp32, and fp32 runs on bf16 hardware get one note.

Truths: a hand loop under torch.autocast(bfloat16) on weights that bf16 holds exactly (same operations,
so agreement to fp32 rounding); the float64 loss, against an error bound built from bf16's 8-bit
significand (unit roundoff u = 2^-8); the same Hessian computed outside any autocast.
"""
import json

import h5py
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from tiny import make_data, make_linear, make_model

import landscape
from landscape.api import loss_surface
from landscape.cli import surface as surface_cli
from landscape.cli.context import ModelFlags
from landscape.job import mpi

U_BF16 = 2.0 ** -8  # bf16 keeps 8 significant bits: round-to-nearest is off by at most 2^-8 relative
U_FP32 = 2.0 ** -24
FEATURES, CLASSES, BATCH = 5, 3, 16
GRID = dict(x=(-1, 1, 3), y=(-1, 1, 3))


def exact_linear():
    """A bias-free linear model whose weights, and every grid point's theta0 + a*dx + b*dy, are multiples
    of 1/16 below 8 in size: fp32 sums them exactly and bf16 holds them exactly, so only the data, the
    sums and the logits are rounded in bf16."""
    g = torch.Generator().manual_seed(3)
    model = make_linear(CLASSES, FEATURES)
    w0, dx, dy = (torch.randint(-16, 17, (CLASSES, FEATURES), generator=g) / 16.0 for _ in range(3))
    with torch.no_grad():
        model[1].weight.copy_(w0)
    return model, landscape.Directions([dx], [dy], {"dir_type": "weights"})


def linear_data(n=48):
    g = torch.Generator().manual_seed(4)
    return torch.randn(n, FEATURES, generator=g), torch.randint(0, CLASSES, (n,), generator=g)


def weights_at(model, dirs, a, b):
    return model[1].weight.detach() + a * dirs.x[0] + b * dirs.y[0]


def hand_autocast_loss(weight, x, y):
    """The mean cross-entropy of logits x @ weight.T taken under bf16 autocast, batch by batch."""
    total = 0.0
    for start in range(0, len(x), BATCH):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            logits = F.linear(x[start:start + BATCH], weight)
        total += F.cross_entropy(logits.float(), y[start:start + BATCH], reduction="sum").double().item()
    return total / len(x)


def bf16_loss_bound(weight, x):
    """|loss_bf16 - loss_exact| at most: per logit z_i = sum_j W_ij x_j, rounding each x_j costs u|W_ij x_j|,
    the d - 1 additions at most u each of the running sum (even if accumulated in bf16; fp32 accumulation
    costs far less) and the bf16 logit u|z_i|: u (d S_i + |z_i|) with S_i = sum_j |W_ij x_j|. The loss's
    gradient in the logits, softmax - onehot, has 1-norm <= 2, so a sample's loss moves <= 2 max_i of
    that; 10 % covers the second-order terms (u^2 d) and fp32's own rounding of the loss."""
    w, x = weight.double(), x.double()
    spread = x.abs() @ w.abs().T
    logit_error = U_BF16 * (FEATURES * spread + (x @ w.T).abs())
    return 1.1 * (2 * logit_error.max(dim=1).values).mean().item()


def exact_loss(weight, x, y):
    return F.cross_entropy(x.double() @ weight.double().T, y).item()


def test_a_bf16_surface_is_the_autocast_loop_and_within_bf16s_rounding_of_the_exact_loss():
    model, dirs = exact_linear()
    x, y = linear_data()
    got = landscape.surface(model, (x, y), directions=dirs, batch_size=BATCH, precision="bf16", **GRID)
    for iy, b in enumerate(got.y):
        for ix, a in enumerate(got.x):
            weight = weights_at(model, dirs, a, b)
            loss = got.train_loss[iy, ix]
            # the same operations on the same bf16 numbers: only the fp32/float64 sums of the losses differ
            assert loss == pytest.approx(hand_autocast_loss(weight, x, y), rel=16 * U_FP32)
            exact = exact_loss(weight, x, y)
            assert 0 < abs(loss - exact) <= bf16_loss_bound(weight, x), (a, b)


def test_fp32_is_the_default_and_stays_fp32_inside_a_callers_autocast():
    model, dirs = exact_linear()
    x, y = linear_data()
    default = landscape.surface(model, (x, y), directions=dirs, batch_size=BATCH, **GRID)
    assert json.loads(default.attrs["surface_settings"])["precision"] == "fp32"
    assert surface_cli.parser().parse_args([]).precision == "fp32"
    with torch.autocast("cpu", dtype=torch.bfloat16):  # a user's own autocast must not lower an fp32 run
        inside = landscape.surface(model, (x, y), directions=dirs, batch_size=BATCH, precision="fp32", **GRID)
    assert np.array_equal(inside.train_loss, default.train_loss)
    for iy, b in enumerate(default.y):
        for ix, a in enumerate(default.x):
            exact = exact_loss(weights_at(model, dirs, a, b), x, y)
            assert default.train_loss[iy, ix] == pytest.approx(exact, rel=64 * U_FP32)


# ---- the Hessian stays strict fp32 ------------------------------------------------------------------

def seeded_model():
    torch.manual_seed(0)
    return make_model()


def test_the_hessian_stays_fp32_inside_a_callers_bf16_autocast():
    data = make_data()[0]
    plain = landscape.eigen_directions(seeded_model(), data, k=1, samples=16, tol=1e-6)
    curve = landscape.hessian_map(seeded_model(), data, directions=plain, x=(-0.5, 0.5, 2), samples=16, tol=1e-6)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        lowered = landscape.eigen_directions(seeded_model(), data, k=1, samples=16, tol=1e-6)
        curve_lowered = landscape.hessian_map(seeded_model(), data, directions=plain, x=(-0.5, 0.5, 2), samples=16,
                                              tol=1e-6)
    # bf16 products would move λ by ~1e-3 relative (u = 2^-8 per rounding); strict fp32 by ~1e-6
    assert lowered.values == pytest.approx(plain.values, rel=1e-5)
    np.testing.assert_allclose(curve_lowered.max_eig, curve.max_eig, rtol=1e-5)
    np.testing.assert_allclose(curve_lowered.min_eig, curve.min_eig, rtol=1e-5, atol=1e-6 * abs(curve.max_eig).max())


def test_a_bf16_surface_runs_takes_its_eigen_directions_in_fp32(tmp_path, capsys):
    files = ["--dir_file", str(tmp_path / "eig.h5"), "--surf_file", str(tmp_path / "surf.h5")]
    code = surface_cli.main(["--model", "tiny:make_model", "--dataset", "tiny:make_data", "--progress_secs", "1e9",
                             "--x=-1:1:3", "--eig_directions", "--eig_samples", "16", "--precision", "bf16", *files])
    assert code == 0, capsys.readouterr().err
    made = landscape.load_directions(tmp_path / "eig.h5")
    want = landscape.eigen_directions(ModelFlags("tiny:make_model", {}).build(10), make_data()[0], k=1, samples=16)
    assert made.values == pytest.approx(want.values, rel=1e-5)
    with h5py.File(tmp_path / "surf.h5") as f:
        assert json.loads(f.attrs["surface_settings"])["precision"] == "bf16"
        assert np.isfinite(f["train_loss"][()]).all()


# ---- the note for fp32 runs on bf16 hardware ----------------------------------------------------------

@pytest.fixture
def bf16_cpu(monkeypatch):
    """This CPU as one with AMX, and no note printed yet in this process."""
    monkeypatch.setattr(mpi, "cpu_flags", lambda: frozenset({"avx512f", "amx_bf16"}))
    monkeypatch.setattr(loss_surface, "_NOTED", set())


def test_an_fp32_surface_on_a_bf16_cpu_prints_one_note(bf16_cpu, capsys):
    model, dirs = exact_linear()
    data = linear_data()
    landscape.surface(model, data, directions=dirs, batch_size=BATCH, precision="bf16", **GRID)
    assert "native bf16" not in capsys.readouterr().out  # asked for bf16: nothing to suggest
    for _ in range(2):
        landscape.surface(model, data, directions=dirs, batch_size=BATCH, **GRID)
    notes = [line for line in capsys.readouterr().out.splitlines() if "native bf16" in line]
    assert len(notes) == 1 and "(amx_bf16)" in notes[0] and "fp32 stays the default" in notes[0]


def test_no_note_without_bf16_hardware(monkeypatch, capsys):
    monkeypatch.setattr(mpi, "cpu_flags", lambda: frozenset({"avx2", "avx512f"}))
    monkeypatch.setattr(loss_surface, "_NOTED", set())
    model, dirs = exact_linear()
    landscape.surface(model, linear_data(), directions=dirs, batch_size=BATCH, **GRID)
    assert "bf16" not in capsys.readouterr().out
