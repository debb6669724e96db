"""No run writes over a file it reads: outputs are compared with inputs by real path and inode (symlinks,
hard links, '..') before anything is opened for writing, on the command line and through the API."""
import os
import shutil

import numpy as np
import pytest
import torch

import landscape
from landscape.cli.hessian import main as hessian_main
from landscape.cli.trajectory import main as trajectory_main
from landscape.errors import PathClashError
from landscape.files.paths import check_apart, same_file
from landscape.files.projection import write_projection
from landscape.inputs.checkpoint import save_checkpoint
from landscape.inputs.cifar import write_cifar

from test_bad_input import GRID_2D, TINY, listing, refused
from test_trajectory import TINY as TRAJECTORY
from test_trajectory import tiny_series
from tiny import make_data, make_model


@pytest.fixture
def folder(tmp_path):
    """m.t7 and m2.t7 (checkpoints), data.pt (a tensor data file), dirs.h5 (a 2D direction file)."""
    torch.manual_seed(1)
    save_checkpoint(tmp_path / "m.t7", make_model(), epoch=1, acc=0.0)
    save_checkpoint(tmp_path / "m2.t7", make_model(), epoch=2, acc=0.0)
    torch.save(make_data()[0], tmp_path / "data.pt")
    assert drive_code(*GRID_2D, "--model_file", str(tmp_path / "m.t7"), "--dir_file", str(tmp_path / "dirs.h5"),
                      "--surf_file", str(tmp_path / "first.h5")) == 0
    os.remove(tmp_path / "first.h5")
    return tmp_path


def drive_code(*flags):
    from landscape.cli.surface import main
    return main([*TINY, *flags])


def alias(tmp_path, target, how):
    """Another name for `target`: the same spelling, a symlink, a hard link, or a '..' detour."""
    name = tmp_path / f"alias_{how}.h5"
    if how == "same":
        return str(target)
    if how == "symlink":
        os.symlink(target, name)
    elif how == "hardlink":
        os.link(target, name)
    else:
        (tmp_path / "sub").mkdir(exist_ok=True)
        return str(tmp_path / "sub" / ".." / os.path.basename(target))
    return str(name)


@pytest.mark.parametrize("how", ["same", "symlink", "hardlink", "dotdot"])
@pytest.mark.parametrize("flag", ["--model_file", "--model_file2", "--dir_file", "--dataset"])
def test_the_results_file_is_never_an_input_however_it_is_named(folder, capsys, flag, how):
    inputs = {"--model_file": folder / "m.t7", "--model_file2": folder / "m2.t7", "--dir_file": folder / "dirs.h5",
              "--dataset": folder / "data.pt"}
    flags = {"--model_file": str(folder / "m.t7"), "--dir_file": str(folder / "dirs.h5")}
    if flag == "--model_file2":  # a 1D interpolation towards m2.t7, written to a new direction file
        flags.update({"--model_file2": str(folder / "m2.t7"), "--dir_file": str(folder / "to_m2.h5")})
    grid = ["--x=-1:1:3"] if flag == "--model_file2" else GRID_2D
    data = ["--dataset", str(folder / "data.pt")] if flag == "--dataset" else []
    surf = alias(folder, inputs[flag], how)
    line = refused(capsys, folder, *grid, *[x for kv in flags.items() for x in kv], *data,
                   "--surf_file", surf, "--overwrite")
    assert f"--surf_file {surf} is the file this run reads as {flag}" in line
    assert not os.path.exists(folder / "to_m2.h5")  # refused before the direction file is made


def test_a_new_direction_file_and_the_results_file_must_differ(folder, capsys):
    line = refused(capsys, folder, "--x=-1:1:3", "--model_file", str(folder / "m.t7"),
                   "--dir_file", str(folder / "new.h5"), "--surf_file", str(folder / "new.h5"))
    assert "is the file this run also writes as --dir_file" in line


def test_the_projection_file_and_the_lock_file_are_checked_too(folder, capsys):
    proj = folder / "proj.h5"
    write_projection(str(proj), np.zeros(2), np.ones(2), [("a.t7", "0" * 64), ("b.t7", "1" * 64)], {})
    line = refused(capsys, folder, *GRID_2D, "--model_file", str(folder / "m.t7"), "--dir_file",
                   str(folder / "dirs.h5"), "--surf_file", str(proj), "--proj_file", str(proj), "--overwrite")
    assert "reads as --proj_file" in line
    os.link(folder / "m2.t7", folder / "s.h5.lock")  # the lock file of s.h5 would truncate the checkpoint
    line = refused(capsys, folder, *GRID_2D, "--model_file", str(folder / "m2.t7"), "--dir_file",
                   str(folder / "dirs.h5"), "--surf_file", str(folder / "s.h5"))
    assert "--surf_file (its lock file)" in line and "give --surf_file another name" in line


def test_cifar_files_under_datapath_are_inputs(folder, capsys):
    train, _ = make_data()
    images = (torch.rand(8, 32, 32, 3) * 255).to(torch.uint8).numpy()
    write_cifar(str(folder / "cifar"), "cifar10", images, train[1][:8].numpy(), images, train[1][:8].numpy())
    batch = folder / "cifar" / "cifar-10-batches-py" / "data_batch_1"
    line = refused(capsys, folder, "--x=-1:1:3", "--dataset", "cifar10", "--datapath", str(folder / "cifar"),
                   "--surf_file", str(batch), "--dir_file", str(folder / "d1.h5"), "--overwrite")
    assert "reads as --dataset" in line


def test_the_hessian_driver_refuses_its_checkpoint_as_results_file(folder, capsys):
    before = listing(folder)
    code = hessian_main(["--model", "tiny:make_model", "--dataset", "tiny:make_data", "--x=-1:1:3",
                         "--model_file", str(folder / "m.t7"), "--surf_file", str(folder / "m.t7"), "--overwrite"])
    err = capsys.readouterr().err
    assert code == 2 and "reads as --model_file" in err and err.count("\n") == 1
    assert listing(folder) == before


@pytest.mark.slow  # the trajectory driver's PCA stage
@pytest.mark.parametrize("flag", ["--dir_file", "--surf_file"])
def test_the_trajectory_driver_writes_over_none_of_its_checkpoints(tmp_path, capsys, flag):
    series = tiny_series(tmp_path / "run")
    before = {name: open(series / name, "rb").read() for name in os.listdir(series)}
    extra = ["--surface", "--grid_points", "3", "--dataset", "tiny:make_data"] if flag == "--surf_file" else []
    code = trajectory_main([*TRAJECTORY[:-2], "--model_folder", str(series), flag, str(series / "model_1.t7"),
                            "--overwrite", *extra])
    err = capsys.readouterr().err
    assert code == 2 and "reads as --model_folder's checkpoint" in err and err.count("\n") == 1, err
    assert {name: open(series / name, "rb").read() for name in os.listdir(series)} == before


@pytest.mark.parametrize("call", ["surface", "hessian_map"])
def test_the_api_refuses_to_write_results_over_its_direction_file(folder, call):
    dirs = landscape.load_directions(str(folder / "dirs.h5"))
    before = open(folder / "dirs.h5", "rb").read()
    model = make_model()
    with pytest.raises(PathClashError, match="is the file this run reads as the direction file"):
        getattr(landscape, call)(model, make_data()[0], directions=dirs, x=(-1, 1, 3), y=(-1, 1, 3),
                                 path=alias(folder, folder / "dirs.h5", "hardlink"), overwrite=True)
    assert open(folder / "dirs.h5", "rb").read() == before


def test_same_file_follows_links_and_dotdot_and_tells_different_files_apart(tmp_path):
    (tmp_path / "a").write_text("a")
    (tmp_path / "b").write_text("a")
    os.symlink(tmp_path / "a", tmp_path / "s")
    os.link(tmp_path / "a", tmp_path / "h")
    assert same_file(tmp_path / "a", tmp_path / "s") and same_file(tmp_path / "h", tmp_path / "a")
    assert same_file(tmp_path / "new", tmp_path / "." / "new")  # neither exists yet: one real path
    assert not same_file(tmp_path / "a", tmp_path / "b")  # equal contents, two files
    check_apart([("in", tmp_path / "a")], [("out", tmp_path / "b"), ("out2", None)])
    with pytest.raises(PathClashError, match="out2 .* also writes as out"):
        check_apart([], [("out", tmp_path / "b"), ("out2", tmp_path / "b")])


@pytest.mark.parametrize("flag", ["--html", "--vtk"])
@pytest.mark.parametrize("how", ["same", "symlink", "hardlink"])
def test_render_writes_no_page_or_export_over_the_results_or_the_projection_file(made, tmp_path, capsys, flag, how):
    from landscape.cli.render import main as render_main
    shutil.copy(made / "surf.h5", tmp_path / "surf.h5")
    target = alias(tmp_path, tmp_path / "surf.h5", how)
    before = listing(tmp_path)
    assert render_main([str(tmp_path / "surf.h5"), flag, target]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{flag} {target} is the file this run reads as the results file" in err, err
    assert {k: v for k, v in listing(tmp_path).items() if k in before} == before


def test_the_page_is_never_written_over_the_file_it_shows(made, tmp_path):
    from landscape.plot.render import render_page
    shutil.copy(made / "surf.h5", tmp_path / "surf.h5")
    with pytest.raises(PathClashError, match="the page .* is the file this run reads as the results file"):
        render_page(str(tmp_path / "surf.h5"), out=str(tmp_path / "surf.h5"))
    assert landscape.load(str(tmp_path / "surf.h5")).is_complete("surface")


@pytest.mark.slow  # the trajectory driver's PCA stage
def test_a_trajectory_whose_plot_cannot_be_written_keeps_its_files_and_exits_3(tmp_path, capsys):
    series = tiny_series(tmp_path / "run")
    dir_file = series / "pca.h5"
    os.makedirs(str(dir_file) + "_proj_cos.h5.png")  # a folder where the plot of the path goes
    code = trajectory_main([*TRAJECTORY[:-2], "--model_folder", str(series), "--dir_file", str(dir_file)])
    err = capsys.readouterr().err
    assert code == 3 and err.count("\n") == 1 and "cannot write" in err, err
    assert err.rstrip().endswith(f"the results in {dir_file}_proj_cos.h5 are kept (exit 3)"), err
    assert os.path.isfile(dir_file) and os.path.isfile(f"{dir_file}_proj_cos.h5")


@pytest.mark.parametrize("flag", ["--model", "--dataset", "--loss"])
def test_the_python_module_of_a_model_data_or_loss_spec_is_an_input(tmp_path, capsys, monkeypatch, flag):
    """--model mod:fn (and --dataset, --loss) read mod.py: --surf_file mod.py would replace the user's code."""
    (tmp_path / "mine.py").write_text("from tiny import make_model, make_data\n"
                                      "import torch.nn.functional as F\n"
                                      "def loss(outputs, targets):\n    return F.cross_entropy(outputs, targets)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    spec = {"--model": "mine:make_model", "--dataset": "mine:make_data", "--loss": "mine:loss"}[flag]
    line = refused(capsys, tmp_path, "--x=-1:1:3", flag, spec, "--dir_file", str(tmp_path / "d.h5"),
                   "--surf_file", str(tmp_path / "mine.py"), "--overwrite")
    assert f"reads as {flag}" in line


@pytest.mark.slow  # the trajectory driver
def test_the_trajectory_driver_writes_over_none_of_its_modules_or_data(tmp_path, capsys, monkeypatch):
    series = tiny_series(tmp_path / "run")
    (tmp_path / "traj_module.py").write_text("from tiny import make_model\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    code = trajectory_main(["--model", "traj_module:make_model", "--max_epoch", "2", "--model_folder", str(series),
                            "--dir_file", str(tmp_path / "traj_module.py"), "--overwrite"])
    err = capsys.readouterr().err
    assert code == 2 and "reads as --model" in err and err.count("\n") == 1, err
    torch.save(make_data()[0], tmp_path / "data.pt")
    code = trajectory_main([*TRAJECTORY[:-2], "--model_folder", str(series), "--dir_file", str(tmp_path / "data.pt"),
                            "--overwrite", "--surface", "--dataset", str(tmp_path / "data.pt")])
    err = capsys.readouterr().err
    assert code == 2 and "reads as --dataset" in err, err
    assert open(tmp_path / "traj_module.py").read() == "from tiny import make_model\n"
