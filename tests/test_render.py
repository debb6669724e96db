"""Rendering a results file: every map found, gaps kept, _interp preferred, re-plotting flags honoured."""
import h5py
import numpy as np
import pytest

from landscape.cli import render
from landscape.files.results import read_results
from landscape.plot import render as plot_render
from landscape.plot.options import RenderOptions
from landscape.plot.quantities import find, quantities
from landscape.plot.render import render_surface

from results_files import bowl, surface_file, write_results


@pytest.fixture
def partial(tmp_path):
    """A 9x11 surface with a block of unfinished points, plus Hessian values, a trace and a per-layer set."""
    done = np.ones((11, 9), bool)
    done[7:, 6:] = False
    path = surface_file(str(tmp_path / "s.h5"), n=9, done=done)
    x, y = np.linspace(-1, 1, 9), np.linspace(-1, 1, 11)
    xx, yy = np.meshgrid(x, y)
    write_results(path, x, y, {"max_eig": 10 + 50 * (xx ** 2 + yy ** 2), "min_eig": -0.5 * xx - 0.1}, kind="hessian")
    with h5py.File(path, "r+") as f:
        f["trace"] = 3.0 * xx + yy
        f["layer_trace"] = np.ones((11, 9, 4))  # one value per layer: not a map
    return path, done


def test_every_map_is_found_with_unfinished_points_as_nan_not_zero(partial):
    path, done = partial
    found = {q.name: q for q in quantities(read_results(path))}
    assert list(found)[:7] == ["train_loss", "train_acc", "min_eig", "max_eig", "eig_ratio", "trace", "eig_iters"]
    assert "layer_trace" not in found
    loss = found["train_loss"].values
    assert np.isnan(loss[~done]).all() and np.isfinite(loss[done]).all()
    x, y = np.linspace(-1, 1, 9), np.linspace(-1, 1, 11)
    np.testing.assert_allclose(loss[done], bowl(x, y)[done])
    expected_ratio = np.abs(read_results(path)["min_eig"] / read_results(path)["max_eig"])
    np.testing.assert_allclose(found["eig_ratio"].values, expected_ratio)
    assert f"{(~done).sum()} of 99 points not drawn" in found["train_loss"].note


def test_interpolated_values_are_preferred_and_said_so(partial):
    path, done = partial
    filled = np.where(done, read_results(path)["train_loss"], 7.0)
    with h5py.File(path, "r+") as f:
        f["train_loss_interp"] = filled
    q = find(read_results(path), "train_loss")
    np.testing.assert_array_equal(q.values, filled)
    assert q.interpolated and f"interpolated from {done.sum()} computed points" in q.title()
    assert "train_loss_interp" not in [m.name for m in quantities(read_results(path))]


def test_render_writes_every_plot_and_log_writes_log_files_beside_them(partial, capsys, monkeypatch):
    path, _ = partial
    assert render.main([path]) == 0
    written = capsys.readouterr().out.split()
    stem = path[:-3]
    for kind in ("2dcontour", "2dcontourf", "2dheat", "3dsurface"):
        assert f"{stem}_train_loss_{kind}.png" in written
    assert f"{stem}_eig_ratio.png" in written and f"{stem}_eig_maps.png" in written
    assert f"{stem}.html" in written  # the page beside the file, as --plot writes it
    linear = open(f"{stem}_train_loss_2dheat.png", "rb").read()
    figures, save = {}, plot_render.save_figure

    def keep(fig, file_stem, *args, **kwargs):  # every figure as drawn, by file stem; still written
        figures[str(file_stem)] = fig
        return save(fig, file_stem, *args, **kwargs)
    monkeypatch.setattr(plot_render, "save_figure", keep)
    log = RenderOptions(log=True, vmin=0.1, vmax=5.0)
    assert f"{stem}_train_loss_2dheat_log.png" in render_surface(path, log, page=False)
    assert open(f"{stem}_train_loss_2dheat.png", "rb").read() == linear

    def on_a_log_scale(norm):  # the geometric mean of the ends sits mid-way on a log colour scale only
        return norm(np.sqrt(norm.vmin * norm.vmax)) == pytest.approx(0.5)
    heat = figures[f"{stem}_train_loss_2dheat_log"].axes[0].collections[0]
    assert (heat.norm.vmin, heat.norm.vmax) == (0.1, 5.0) and on_a_log_scale(heat.norm)
    for kind in ("2dcontour", "2dcontourf"):
        levels = [c for c in figures[f"{stem}_train_loss_{kind}_log"].axes[0].collections if hasattr(c, "levels")]
        assert len(levels) == 1 and on_a_log_scale(levels[0].norm), kind
    surface = figures[f"{stem}_train_loss_3dsurface_log"].axes[0].collections[0]
    assert surface.get_clim() == pytest.approx((np.log10(0.1), np.log10(5.0)))  # log10 heights


def test_1d_render_honours_the_reference_flags(tmp_path, capsys, monkeypatch):
    x = np.linspace(-1, 1, 21)
    loss = 0.1 + 800 * x ** 4
    path = write_results(str(tmp_path / "one.h5"), x, None, {"train_loss": loss, "train_acc": 90 - 10 * x ** 2})
    figures, save = {}, plot_render.save_figure

    def keep(fig, file_stem, *args, **kwargs):  # every figure as drawn, by file stem; still written
        figures[str(file_stem)] = fig
        return save(fig, file_stem, *args, **kwargs)
    monkeypatch.setattr(plot_render, "save_figure", keep)
    assert render.main([path, "--loss_max", "3", "--acc_max", "95"]) == 0
    assert capsys.readouterr().out.split()[0] == f"{path[:-3]}_1d_loss_acc.png"
    loss_axes, acc_axes = figures[f"{path[:-3]}_1d_loss_acc"].axes
    assert loss_axes.get_ylim() == (0.0, 3.0) and acc_axes.get_ylim() == (0.0, 95.0)


@pytest.mark.parametrize("flags, message", [
    (["--show"], "--show needs a display"),
    (["--watch", "1"], "--watch SECONDS needs --html"),
    (["--vtk", "out.obj"], "must end in .vts"),
    (["--surf_name", "nope"], "has no map 'nope'"),
    (["--log", "--vmin", "-1"], "log scale"),
])
def test_bad_flags_fail_with_one_clear_line(partial, flags, message, capsys, monkeypatch):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    assert render.main([partial[0], *flags]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and err.count("\n") == 1
