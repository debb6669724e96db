"""python -m landscape.render on mode-connectivity files: a line's loss and accuracy along t with its
barriers (the API's), a barrier matrix's heatmaps, and their pages embedding those figures."""
import h5py
import numpy as np
import torch

import landscape
from landscape.api.connect_files import connectivity_figures, connectivity_kind, matrix_of_results
from landscape.api.loss_path import PathQuantities
from landscape.cli import render
from landscape.files.results import read_results
from landscape.plot.connect import plot_paths


def tiny(seed):
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(3, 5), torch.nn.Tanh(), torch.nn.Linear(5, 2)).eval()


def data(seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(32, 3, generator=g)
    return x, (x[:, 0] > 0).long()


def line_file(tmp_path):
    path = str(tmp_path / "line.h5")
    line = landscape.interpolate(tiny(0), tiny(1), data(0), n=5, test_data=data(1), path=path, progress_secs=1e9)
    return path, line


def test_a_line_file_renders_along_t_with_the_api_barrier_and_no_generic_curve(tmp_path, capsys):
    path, line = line_file(tmp_path)
    assert connectivity_kind(read_results(path)) == "line"
    assert render.main([path]) == 0
    written = capsys.readouterr().out.split()
    assert path[:-3] + "_along_t.png" in written and not any("1d_loss_acc" in w for w in written)
    _, [(suffix, fig, caption)] = connectivity_figures(path)
    assert suffix == "along_t" and fig.axes[-1].get_xlabel().startswith("t ")
    legend = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert f"line, train (barrier {line.barrier('train_loss'):.3g})" in legend
    assert f"line: test_acc barrier {line.barrier('test_acc'):.4g} %" in caption


def test_a_line_page_embeds_the_figure_and_states_the_barriers(tmp_path):
    path, line = line_file(tmp_path)
    assert render.main([path, "--html", str(tmp_path / "p.html")]) == 0
    page = (tmp_path / "p.html").read_text()
    assert page.count("<figure><img") == 1 and "src=\"data:image/png;base64," in page
    assert f"line: train_loss barrier {line.barrier('train_loss'):.4g}" in page
    assert '"xlabel":"t (0: model_a, 1: model_b)"' in page and '"top":null' in page  # the peak is never clipped
    assert not (tmp_path / "line_along_t.png").exists()  # --html alone writes no PNG


def test_the_aligned_partner_beside_a_line_is_drawn_too(tmp_path):
    path, line = line_file(tmp_path)
    partner = landscape.interpolate(tiny(0), tiny(2), data(0), n=5, path=str(tmp_path / "line_aligned.h5"),
                                    progress_secs=1e9)
    _, [(_, fig, caption)] = connectivity_figures(path)
    legend = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert f"aligned line, train (barrier {partner.barrier():.3g})" in legend
    assert f"aligned line: train_loss barrier {partner.barrier():.4g}" in caption


def test_a_matrix_file_renders_its_heatmaps_with_the_api_barriers(tmp_path, capsys):
    path = str(tmp_path / "m.h5")
    matrix = landscape.barrier_matrix([("a", tiny(0)), ("b", tiny(1)), ("c", tiny(2))], data(0), n=3, path=path,
                                      progress_secs=1e9)
    read = matrix_of_results(read_results(path), path)
    np.testing.assert_array_equal(read.matrix(), matrix.matrix())
    assert render.main([path, "--png", "--html", str(tmp_path / "m.html")]) == 0
    assert path[:-3] + "_barriers.png" in capsys.readouterr().out.split()
    _, [(_, fig, caption)] = connectivity_figures(path)
    ax = fig.axes[0]
    assert len(ax.get_images()) == 1
    cells = {t.get_text() for t in ax.texts}
    assert f"{matrix.matrix()[0, 1]:.3g}" in cells and f"{matrix.matrix()[1, 2]:.3g}" in cells
    page = (tmp_path / "m.html").read_text()
    assert page.count("<figure><img") == 1 and "#plots, #controls label { display: none; }" in page
    assert matrix.tree().describe() in page


def test_a_test_loss_far_above_the_train_loss_gets_a_log_axis_and_legends_sit_beside_the_panels():
    t = np.linspace(0, 1, 11)
    bump = np.sin(np.pi * t) ** 2
    wide = PathQuantities("keep", 0, True, True).path(t, dict(train_loss=0.02 + 0.3 * bump, train_acc=100 - 20 * bump,
                                                               test_loss=2.5 + bump, test_acc=70 - 20 * bump))
    fig = plot_paths([("line", wide)])
    assert fig.axes[0].get_yscale() == "log" and fig.axes[1].get_yscale() == "linear"
    for ax in fig.axes:
        assert ax.get_legend().get_bbox_to_anchor().x0 > ax.get_window_extent().x1 - 1  # right of the panel
    near = PathQuantities("keep", 0, False, False).path(t, dict(train_loss=1.0 + bump))
    assert plot_paths([("line", near)]).axes[0].get_yscale() == "linear"


def test_a_curve_file_is_drawn_along_t_and_a_plane_file_as_maps_with_a_note(tmp_path, capsys):
    curve = landscape.fit_curve(tiny(0), tiny(1), data(0), epochs=1, batch_size=16)
    path = str(tmp_path / "curve.h5")
    along = landscape.evaluate_curve(curve, data(0), n=5, path=path, progress_secs=1e9)
    kind, [(_, fig, caption)] = connectivity_figures(path)
    assert kind == "curve" and f"bezier curve: train_loss barrier {along.barrier():.4g}" in caption
    plane = str(tmp_path / "plane.h5")
    landscape.curve_plane(curve, data(0), points=3, path=plane, progress_secs=1e9)
    assert connectivity_figures(plane) == ("plane", [])
    capsys.readouterr()
    assert render.main([plane, "--html", str(tmp_path / "plane.html")]) == 0  # the maps' page, no PNGs: quicker
    out, err = capsys.readouterr()
    assert "curve's plane" in err and "holds no points of the curve" in err and "plane.html" in out


def test_a_stopped_line_is_drawn_with_its_gap_and_its_barrier_said_unfinished(tmp_path):
    path, line = line_file(tmp_path)
    with h5py.File(path, "r+") as f:  # as if the run had stopped before its middle point
        done = f["surface_done"][()]
        done[2] = 0
        f["surface_done"][...] = done
    _, [(_, fig, caption)] = connectivity_figures(path)
    legend = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert "line, train (barrier unfinished)" in legend and "line: train_loss barrier unfinished" in caption
    assert "1 of 5 points not done" in fig.axes[0].get_title()
