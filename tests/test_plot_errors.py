"""Write errors while plotting, and the one check of --surf_name, for every output the plot package makes.

Every file goes through plot/output.write_output: whole or not at all, an existing file kept, an
OSError as one PlotWriteError line. A full disk is simulated by a write that fails with ENOSPC half-way
(and, in a process of its own, by RLIMIT_FSIZE); an unwritable folder by a path under a regular file
or under /proc, which stop root too (chmod does not), and a read-only filesystem by EROFS.
"""
import errno
import os
import sys

import numpy as np
import pytest

from landscape.cli import render
from landscape.errors import PlotOptionError, PlotWriteError
from landscape.files.results import read_results
from landscape.files import atomic
from landscape.plot.base import save_figure
from landscape.plot.maps import plot_heatmap
from landscape.plot.options import RenderOptions
from landscape.plot.render import render_hessian, render_page, render_surface
from landscape.plot.vtk import export_vtk

from conftest import ROOT, python_cmd, run
from results_files import surface_file, write_results


def with_hessian(path):
    r = read_results(path)
    xx, yy = np.meshgrid(r["xcoordinates"], r["ycoordinates"])
    return write_results(path, r["xcoordinates"], r["ycoordinates"],
                         {"max_eig": 10 + 50 * (xx ** 2 + yy ** 2), "min_eig": -0.5 * xx - 0.1}, kind="hessian")


@pytest.fixture
def surf(tmp_path):
    return with_hessian(surface_file(str(tmp_path / "s.h5"), n=5))


@pytest.fixture
def line(tmp_path):
    x = np.linspace(-1, 1, 9)
    return write_results(str(tmp_path / "one.h5"), x, None, {"train_loss": 1 + x ** 2, "train_acc": 50 - x})


def outputs(surf, line, folder):
    """Each kind of file the plot package writes, as a call that writes it: {name: call}."""
    return {
        "surface PNG/PDF": lambda: render_surface(surf, page=False),
        "1D curves": lambda: render_surface(line, page=False),
        "Hessian plots": lambda: render_hessian(surf, page=False),
        "page": lambda: render_page(surf, out=str(folder / "page.html")),
        "VTK .vts": lambda: [export_vtk(read_results(surf), str(folder / "s.vts"))],
        "VTK .vtp": lambda: [export_vtk(read_results(surf), str(folder / "s.vtp"))],
    }


def listing(folder):
    return {name: os.path.getsize(folder / name) for name in os.listdir(folder)}


def test_every_file_the_plots_write_goes_through_the_one_writer(surf, line, tmp_path, monkeypatch):
    through, write = [], atomic.atomic_write

    def recorded(path, how):
        through.append(os.path.basename(path))
        return write(path, how)
    monkeypatch.setattr(atomic, "atomic_write", recorded)
    before = set(os.listdir(tmp_path))
    for call in outputs(surf, line, tmp_path).values():
        assert call()
    made = set(os.listdir(tmp_path)) - before
    assert len(made) > 10 and made == set(through)  # nothing written beside the writer, nothing left over


def failing_write(error, after_bytes):
    """An atomic_write whose write stops with `error` once it has written (at least) after_bytes."""
    write = atomic.atomic_write

    def fail(path, how):
        def partial(tmp):
            how(tmp)
            if after_bytes:
                with open(tmp, "r+b") as f:
                    f.truncate(after_bytes)
            raise OSError(error, os.strerror(error))
        return write(path, partial)
    return fail


@pytest.mark.parametrize("error, after_bytes", [(errno.ENOSPC, 100), (errno.ENOSPC, 0), (errno.EROFS, 0),
                                                (errno.EDQUOT, 10)])
@pytest.mark.parametrize("kind", ["surface PNG/PDF", "1D curves", "Hessian plots", "page", "VTK .vts", "VTK .vtp"])
def test_a_write_error_is_one_line_leaves_no_partial_file_and_keeps_the_old_one(
        surf, line, tmp_path, monkeypatch, kind, error, after_bytes):
    call = outputs(surf, line, tmp_path)[kind]
    written = call()  # a good render first: a failed one must not replace it
    before = {name: open(tmp_path / name, "rb").read() for name in os.listdir(tmp_path)}
    monkeypatch.setattr(atomic, "atomic_write", failing_write(error, after_bytes))
    with pytest.raises(PlotWriteError) as caught:
        call()
    assert str(caught.value) == f"cannot write {written[0]}: {os.strerror(error)}"
    assert {name: open(tmp_path / name, "rb").read() for name in os.listdir(tmp_path)} == before


@pytest.mark.parametrize("kind", ["page", "page in a file", "page under /proc", "VTK .vts", "VTK .vtp under /proc",
                                  "figure"])
def test_an_unwritable_folder_is_one_line_naming_the_file(surf, tmp_path, kind):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    target = blocker / "sub"
    results = read_results(surf)
    calls = {"page": lambda: render_page(surf, out=str(target / "p.html")),
             "page in a file": lambda: render_page(surf, out=str(blocker / "p.html")),
             "page under /proc": lambda: render_page(surf, out="/proc/landscape_test/p.html"),
             "VTK .vts": lambda: export_vtk(results, str(target / "p.vts")),
             "VTK .vtp under /proc": lambda: export_vtk(results, "/proc/landscape_test.vtp"),
             "figure": lambda: save_figure(plot_heatmap([0, 1], [0, 1], np.eye(2)), target / "heat")}
    with pytest.raises(PlotWriteError, match=r"^cannot write /\S+\.(html|vts|vtp|png): [^\n]+$"):
        calls[kind]()
    assert blocker.read_text() == "not a folder"


def test_the_render_command_exits_2_with_one_line_on_a_write_error(surf, tmp_path, capsys, monkeypatch):
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    for flags in (["--html", str(blocker / "p.html")], ["--vtk", str(blocker / "p.vts")],
                  ["--html", "/proc/landscape_test.html"]):
        assert render.main([surf, *flags]) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: cannot write ") and err.count("\n") == 1, err
    monkeypatch.setattr(atomic, "atomic_write", failing_write(errno.ENOSPC, 10))
    assert render.main([surf]) == 2
    err = capsys.readouterr().err
    assert err == f"error: cannot write {surf[:-3]}_train_loss_2dcontour.png: No space left on device\n"


def limited(size, code):
    """Python code run with RLIMIT_FSIZE = size bytes per file, a full disk for whatever writes past it
    (EFBIG: Python ignores SIGXFSZ). The limit is set after MPI starts, which needs room of its own."""
    return [sys.executable, "-c", "import resource, mpi4py.MPI; "
            f"resource.setrlimit(resource.RLIMIT_FSIZE, ({size}, {size})); " + code]


@pytest.mark.slow
def test_a_full_disk_under_the_render_command_keeps_the_old_plots(surf, tmp_path):
    assert render.main([surf]) == 0
    before = {name: open(tmp_path / name, "rb").read() for name in os.listdir(tmp_path)}
    small = min(size for name, size in listing(tmp_path).items() if name.endswith(".png"))
    code = f"import sys; from landscape.cli.render import main; sys.exit(main([{surf!r}, '--log', '--vmin', '0.1']))"
    r = run(limited(small // 2, code))
    assert r.returncode == 2 and r.stderr.startswith("error: cannot write ") and "File too large" in r.stderr, r.stderr
    assert r.stderr.count("\n") == 1 and "Traceback" not in r.stderr
    after = {name: open(tmp_path / name, "rb").read() for name in os.listdir(tmp_path)}
    assert {n: v for n, v in after.items() if n in before} == before  # the linear plots untouched
    assert all(v for v in after.values()) and not [n for n in after if "partial" in n]  # no empty or partial file


@pytest.mark.slow
def test_a_full_disk_during_plot_exits_3_with_the_results_complete(tmp_path):
    flags = ["--model", "tiny:make_model", "--dataset", "tiny:make_data", "--batch_size", "64", "--x=-1:1:3",
             "--y=-1:1:3", "--dir_file", str(tmp_path / "dirs.h5"), "--surf_file", str(tmp_path / "surf.h5")]
    assert run(python_cmd("plot_surface.py", *flags)).returncode == 0
    largest = max(listing(tmp_path).values())
    os.remove(tmp_path / "surf.h5")
    code = (f"import runpy, sys; sys.argv = {['plot_surface.py', *flags, '--plot']!r}; "
            f"runpy.run_path({os.path.join(ROOT, 'plot_surface.py')!r}, run_name='__main__')")
    r = run(limited(largest + 65536, code))  # room for the results file, none for a 300 dpi PNG
    assert r.returncode == 3, r.stdout + r.stderr
    assert "Traceback" not in r.stderr and r.stderr.count("error:") == 1
    assert "error: no plots: cannot write " in r.stderr and "File too large" in r.stderr
    assert "[surface] complete" in r.stdout
    assert read_results(str(tmp_path / "surf.h5"))["surface_done"].all()
    assert all(size for size in listing(tmp_path).values()) and not [n for n in os.listdir(tmp_path) if "partial" in n]


# --- kind 9: one check of the quantity's name, whatever the output


BAD_NAMES = ["nope", "Train_loss", "train_loss_interp", "surface_done", ""]


@pytest.mark.parametrize("name", BAD_NAMES)
@pytest.mark.parametrize("flags", [[], ["--png", "--html", "P"], ["--html", "P"], ["--vtk", "P.vts"],
                                   ["--vtk", "P.vtp"], ["--html", "P", "--watch", "0.01"]])
def test_every_output_of_the_render_command_refuses_a_map_the_file_lacks(surf, tmp_path, capsys, flags, name):
    flags = [str(tmp_path / f) if f.startswith("P") else f for f in flags]
    before = set(os.listdir(tmp_path))
    assert render.main([surf, *flags, "--surf_name", name]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and f"has no map {name!r}" in err and err.count("\n") == 1, err
    assert set(os.listdir(tmp_path)) == before  # refused before anything is written


@pytest.mark.parametrize("kind", ["surface PNG/PDF", "1D curves", "Hessian plots", "page", "VTK .vts", "VTK .vtp"])
def test_every_output_of_the_library_refuses_a_map_the_file_lacks(surf, line, tmp_path, kind):
    results = read_results(surf)
    bad = RenderOptions(surf_name="nope")
    calls = {"surface PNG/PDF": lambda: render_surface(surf, bad, page=False),
             "1D curves": lambda: render_surface(line, bad, page=False),
             "Hessian plots": lambda: render_hessian(surf, bad, page=False),
             "page": lambda: render_page(surf, bad, out=str(tmp_path / "p.html")),
             "VTK .vts": lambda: export_vtk(results, str(tmp_path / "p.vts"), "nope"),
             "VTK .vtp": lambda: export_vtk(results, str(tmp_path / "p.vtp"), "nope")}
    before = set(os.listdir(tmp_path))
    with pytest.raises(PlotOptionError, match="has no map 'nope'; it has train_loss, train_acc"):
        calls[kind]()
    assert set(os.listdir(tmp_path)) == before


def test_a_name_the_file_has_is_taken_by_every_output_and_the_page_opens_on_it(surf, tmp_path):
    out = str(tmp_path / "p.html")
    assert render.main([surf, "--png", "--html", out, "--surf_name", "max_eig"]) == 0
    assert os.path.exists(f"{surf[:-3]}_max_eig_2dheat.png")
    assert '"initial":"max_eig"' in open(out, encoding="utf-8").read()
    assert render.main([surf, "--vtk", str(tmp_path / "p.vts"), "--surf_name", "eig_ratio"]) == 0
    assert render.main([surf, "--html", out, "--surf_name", "eig_iters"]) == 0  # a diagnostic: shown when asked
    assert '"initial":"eig_iters"' in open(out, encoding="utf-8").read()


def test_without_a_name_a_file_without_train_loss_draws_its_first_map(tmp_path):
    x, y = np.linspace(-1, 1, 4), np.linspace(-1, 1, 5)
    xx, yy = np.meshgrid(x, y)
    path = write_results(str(tmp_path / "h.h5"), x, y, {"max_eig": 1 + xx ** 2, "min_eig": -yy}, kind="hessian")
    assert render.main([path, "--vtk", str(tmp_path / "h.vts"), "--html", str(tmp_path / "h.html")]) == 0
    assert '"initial":"min_eig"' in open(tmp_path / "h.html", encoding="utf-8").read()


def test_a_constant_map_that_is_not_a_loss_draws_every_plot(tmp_path):
    """An accuracy of 100 % everywhere (or eig_iters all at max_iter) is a finished map: it draws, it is not
    refused half-way with bounds the user never gave."""
    x = np.linspace(-1, 1, 4)
    xx, yy = np.meshgrid(x, x)
    path = write_results(str(tmp_path / "flat.h5"), x, x, {"train_loss": 1 + xx ** 2 + yy ** 2,
                                                          "train_acc": np.full((4, 4), 100.0)})
    saved = render_surface(path, RenderOptions(surf_name="train_acc"), page=False)
    assert sorted(os.path.basename(p) for p in saved if p.endswith(".png")) == [
        f"flat_train_acc_{kind}.png" for kind in ("2dcontour", "2dcontourf", "2dheat", "3dsurface")]
