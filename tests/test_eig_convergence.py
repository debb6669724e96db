"""eig_converged: every Hessian point records whether its λmin/λmax Lanczos run met its stopping rule
(tol) or ended at max_iter; one warning line counts the unconverged points, and the plots mark them.

The truth for "converged" is where the same run stops when max_iter is out of reach (its natural
stop, checked against dense eigenvalues): a run cut at m steps has converged iff it stops by step m.
"""
import contextlib
import io
import json
import os
import re

import h5py
import numpy as np
import pytest
import torch

import landscape
from landscape.cli import hessian
from landscape.curvature.lanczos import lanczos_extremes
from landscape.curvature.point import CurvaturePlan, point_curvature
from landscape.files.integrity import point_digest
from landscape.files.results import QUANTITIES, read_results
from landscape.plot.hessian import UNCONVERGED_LABEL, plot_eig_maps, plot_eig_ratio
from landscape.plot.page import page_data
from landscape.plot.quantities import find
from landscape.plot.render import render_hessian

from test_api_hessian import dense_hessian, features, mlp, point

XS, YS, TOL = (-1.0, 1.0, 3), (0.0, 1.0, 2), 1e-3
WARNING = re.compile(r"^warning: (\d+) of (\d+) finished points did not converge within max_iter=(\d+)", re.M)


def known_spectrum(dim=60, seed=0):
    g = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(dim, dim, generator=g, dtype=torch.float64))
    eig = torch.cat([torch.tensor([-0.5]), torch.linspace(0.01, 1.0, dim - 2), torch.tensor([7.0])]).double()
    return q @ torch.diag(eig) @ q.T, eig


def test_the_flag_is_the_solvers_own_stop_rule_for_every_step_limit():
    a, eig = known_spectrum()
    natural = lanczos_extremes(lambda v: a @ v, len(eig), tol=TOL, max_iter=1000)
    assert natural.converged and natural.iters < len(eig)
    assert abs(natural.lam_min - eig[0]) <= TOL * 7 and abs(natural.lam_max - eig[-1]) <= TOL * 7
    for m in (1, 2, natural.iters - 1, natural.iters, natural.iters + 1):
        plan = CurvaturePlan(TOL, m, 0)
        v = point_curvature(lambda x: a @ x, len(eig), plan)
        assert v["eig_iters"] == min(m, natural.iters)
        assert v["eig_converged"] is (m >= natural.iters), m  # cut short: unconverged; stopped on tol: converged


def test_a_whole_spectrum_within_max_iter_is_exact_and_converged():
    a, eig = known_spectrum(dim=8)
    v = point_curvature(lambda x: a @ x, 8, CurvaturePlan(1e-12, 8, 0))
    assert v["eig_converged"] is True
    assert v["min_eig"] == pytest.approx(eig[0].item(), abs=1e-9) and v["max_eig"] == pytest.approx(7.0, abs=1e-9)


def run_map(path=None, max_iter=100, x=XS, y=YS, **kwargs):
    model, data = mlp(), features()
    dirs = landscape.random_directions(model, n=2 if y is not None else 1, seed=3)
    res = landscape.hessian_map(model, data, directions=dirs, x=x, y=y, params="all", samples=None, tol=TOL,
                                max_iter=max_iter, path=None if path is None else str(path), progress_secs=1e9,
                                **kwargs)
    return res, model, dirs, data


@pytest.fixture(scope="module")
def natural():
    """The map with max_iter out of reach: every point converges, at the step where it stops by itself."""
    res, model, dirs, data = run_map(max_iter=1000)
    return res


def test_generous_max_iter_converges_everywhere_and_matches_dense_eigenvalues(natural, capsys):
    model, data = mlp(), features()
    dirs = landscape.random_directions(model, n=2, seed=3)
    model, data = model.double(), (data[0].double(), data[1])  # the truth in float64
    assert natural.eig_converged.all() and not natural.unconverged.any()
    assert natural.eig_converged.dtype == bool and natural.eig_converged.shape == (2, 3)
    for j, b in enumerate(np.linspace(*YS)):
        for i, a in enumerate(np.linspace(*XS)):
            eig = torch.linalg.eigvalsh(dense_hessian(model, point(model, dirs, a, b), data))
            scale = eig.abs().max().item()
            assert abs(natural.max_eig[j, i] - eig[-1].item()) <= 2 * TOL * scale
            assert abs(natural.min_eig[j, i] - eig[0].item()) <= 2 * TOL * scale
    run_map(max_iter=1000)
    assert "warning" not in capsys.readouterr().err


@pytest.fixture(scope="module")
def mixed(natural, tmp_path_factory):
    """A step limit between the points' natural stops: some converge within it, some do not."""
    m = int(np.median(natural.eig_iters))
    path = tmp_path_factory.mktemp("mixed") / "h.h5"
    expected = natural.eig_iters > m
    assert 0 < expected.sum() < expected.size  # the case is mixed
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        res = run_map(path, max_iter=m)[0]
    return path, m, expected, res, err.getvalue()


def test_unconverged_points_are_flagged_stored_and_warned_once(natural, mixed):
    path, m, expected, res, err = mixed
    assert WARNING.findall(err) == [(str(expected.sum()), str(expected.size), str(m))], err
    np.testing.assert_array_equal(res.eig_converged, ~expected)
    np.testing.assert_array_equal(res.unconverged, expected)
    with h5py.File(path, "r") as f:
        assert f["eig_converged"].dtype == np.bool_ and f["eig_converged"].shape == (2, 3)
        np.testing.assert_array_equal(f["eig_converged"][()], ~expected)
    # points that stopped by themselves within the limit hold the generous run's values
    np.testing.assert_array_equal(res.max_eig[~expected], natural.max_eig[~expected])


@pytest.mark.parametrize("max_iter", [1, 2])
def test_a_tiny_step_limit_flags_every_point_in_1d_and_2d(max_iter, capsys):
    for x, y, shape in ((XS, YS, (2, 3)), ((-1.0, 1.0, 4), None, (4,))):
        res = run_map(max_iter=max_iter, x=x, y=y)[0]
        assert res.eig_converged.shape == shape and not res.eig_converged.any()
        assert WARNING.findall(capsys.readouterr().err) == [(str(np.prod(shape)), str(np.prod(shape)), str(max_iter))]


def marks(fig):
    """(x, y) of the '×' marks of every axes of a figure, by their legend label."""
    found = [line.get_data() for ax in fig.axes for line in ax.get_lines()
             if str(line.get_label()).startswith(UNCONVERGED_LABEL)]
    return [np.column_stack([np.asarray(a, float), np.asarray(b, float)]) for a, b in found]


def test_the_plots_and_the_page_mark_the_unconverged_points(mixed):
    path, m, expected = mixed[:3]
    r = read_results(str(path))
    g, low, high = r["grid"], find(r, "min_eig"), find(r, "max_eig")
    want = np.array([(g.x[i], g.y[j]) for j, i in np.argwhere(expected)])
    maps = marks(plot_eig_maps(g.x, g.y, low.values, high.values, unconverged=low.unconverged))
    assert len(maps) == 2 and all(np.array_equal(got, want) for got in maps)  # λmin and λmax panels
    ratio = marks(plot_eig_ratio(g.x, g.y, low.values, high.values, unconverged=low.unconverged))
    assert len(ratio) == 1 and np.array_equal(ratio[0], want)
    count = f"{expected.sum()} of {expected.size} points did not converge"
    assert count in low.note and count in find(r, "eig_ratio").note and find(r, "trace") is None
    data = json.loads(page_data(r, "t"))
    shown = {q["name"]: q for q in data["quantities"]}
    assert sorted(map(tuple, shown["min_eig"]["unconverged"])) == sorted(map(tuple, np.argwhere(expected).tolist()))
    assert count in shown["max_eig"]["note"] and "eig_converged" not in shown  # a flag, not a map
    saved = render_hessian(str(path))
    assert [p[len(str(path)) - 3:] for p in saved] == ["_eig_maps.png", "_eig_maps.pdf", "_eig_ratio.png",
                                                       "_eig_ratio.pdf", ".html"]
    assert all(os.path.getsize(p) > 0 for p in saved)


def test_1d_curves_carry_the_marks_on_both_eigenvalues(tmp_path):
    res = run_map(max_iter=2, x=(-1.0, 1.0, 4), y=None)[0]
    fig = plot_eig_maps(res.x, None, res.min_eig, res.max_eig, unconverged=res.unconverged)
    (got,) = marks(fig)
    want = np.concatenate([np.column_stack([res.x, res.max_eig]), np.column_stack([res.x, res.min_eig])])
    np.testing.assert_allclose(got, want)
    none = plot_eig_maps(res.x, None, res.min_eig, res.max_eig, unconverged=np.zeros(4, bool))
    assert marks(none) == []


def test_resume_keeps_the_flags_of_finished_points(mixed, capsys):
    path, m, expected = mixed[:3]
    before = read_results(str(path))
    with h5py.File(path, "r+") as f:  # two points never written, as after a stop
        for name in ("hessian_done", "hessian_checksum"):
            d = f[name][()]
            d[1, :2] = 0
            f[name][...] = d
    capsys.readouterr()
    res = run_map(path, max_iter=m)[0]
    assert "4/6 points already done" in capsys.readouterr().out
    np.testing.assert_array_equal(res.eig_converged, before["eig_converged"])
    np.testing.assert_array_equal(res.max_eig, before["max_eig"])
    assert res.complete


def age(path):
    """Rewrite a file as a version before eig_converged wrote it: no such dataset, checksums without it."""
    with h5py.File(path, "r+") as f:
        names = [n for n in QUANTITIES["hessian"] if n in f and n != "eig_converged"]
        del f["eig_converged"]
        sums = f["hessian_checksum"][()]
        for i in np.flatnonzero(f["hessian_done"][()].reshape(-1)):
            pos = np.unravel_index(i, sums.shape)
            sums[pos] = point_digest(int(i), [f[n][pos] for n in names])
        f["hessian_checksum"][...] = sums


def test_an_older_file_resumes_finished_untouched_or_gains_the_flags(mixed, tmp_path, capsys):
    path, m, expected = mixed[:3]
    old = tmp_path / "old.h5"
    res = run_map(old, max_iter=m)[0]
    flags, iters = res.eig_converged.copy(), res.eig_iters.copy()
    age(old)
    finished = old.read_bytes()
    again = run_map(old, max_iter=m)[0]  # nothing to do: read as it is, bytes kept
    assert old.read_bytes() == finished and again.eig_converged is None and again.unconverged is None
    assert render_hessian(str(old))  # plots without marks
    with h5py.File(old, "r+") as f:
        for name in ("hessian_done", "hessian_checksum"):
            d = f[name][()]
            d[0, 0] = 0
            f[name][...] = d
    capsys.readouterr()
    resumed = run_map(old, max_iter=m)[0]
    out = capsys.readouterr().out
    assert "written before eig_converged was recorded; added for its 5 finished point(s)" in out
    # old points: converged iff their run stopped before max_iter (one that met tol on its last step cannot be told)
    want = flags & (iters < m)
    want[0, 0] = flags[0, 0]  # computed again: its own flag
    np.testing.assert_array_equal(resumed.eig_converged, want)
    run_map(old, max_iter=m)  # the added flags are covered by the checksums: a resume verifies them
    assert "6/6 points already done" in capsys.readouterr().out


def test_the_driver_warns_once_and_plots_the_marks(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    args = ["--model", "tiny:make_model", "--dataset", "tiny:make_data", "--x=-1:1:3", "--y=-1:1:2",
            "--max_iter", "1", "--hessian_batch", "48", "--threads", "1", "--surf_file", "s.h5", "--plot"]
    assert hessian.main(args) == 0
    out, err = capsys.readouterr()
    assert WARNING.findall(err) == [("6", "6", "1")] and "--max_iter 1" in err
    assert "[hessian] plot: s_eig_maps.png" in out
    with h5py.File(tmp_path / "s.h5", "r") as f:
        assert f["eig_converged"].dtype == np.bool_ and f["eig_converged"].shape == (2, 3)
        assert not f["eig_converged"][()].any() and (f["eig_iters"][()] == 1).all()
