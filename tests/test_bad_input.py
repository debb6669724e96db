"""Bad input fails clearly: one line `error: ...`, exit 2, nothing written; bad data is refused before work.

Most checks call the surface driver in this process (quick); those that need a process of their own
(mpirun, a file size limit) are marked slow.
"""
import hashlib
import math
import os
import shutil
import sys

import h5py
import numpy as np
import pytest
import torch
import torch.nn as nn

from landscape.cli.surface import main
from landscape.errors import DataError
from landscape.inputs.data import load_dataset
from landscape.space.evaluate import evaluate
from landscape.space.losses import crossentropy_sum

from conftest import ROOT, mpirun_cmd, run
from tiny import make_model

TINY = ["--model", "tiny:make_model", "--dataset", "tiny:make_data", "--batch_size", "64", "--progress_secs", "5"]
GRID_2D = ["--x=-1:1:3", "--y=-1:1:3"]


def make_nan_model():
    """A model whose every output is NaN: every point's loss is NaN."""
    return nn.Sequential(make_model(), NanOut())


class NanOut(nn.Module):
    def forward(self, x):
        return x * math.nan


def sha(path):
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


def listing(folder):
    return {p: sha(os.path.join(folder, p)) for p in sorted(os.listdir(folder)) if os.path.isfile(os.path.join(folder, p))}


def drive(capsys, *flags):
    """Run plot_surface.py's main here; (exit code, stdout, stderr)."""
    try:
        code = main([*TINY, *flags])
    except SystemExit as e:  # argparse refusals
        code = e.code
    out, err = capsys.readouterr()
    return code, out, err


def refused(capsys, folder, *flags):
    """Run, expect exit 2 with one `error:` line and no file in `folder` changed; returns the line."""
    before = listing(folder)
    code, out, err = drive(capsys, *flags)
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2, out + err
    assert len(lines) == 1 and "error:" in lines[0] and "Traceback" not in err, err
    assert listing(folder) == before
    return lines[0]


def paths(folder, surf="surf.h5"):
    return ["--dir_file", str(folder / "dirs.h5"), "--surf_file", str(folder / surf)]


@pytest.mark.parametrize("flags,named", [
    (["--model_file2", "{other}"], "--model_file2"),
    (["--model_file3", "{other}"], "--model_file3"),
    (["--seed", "1"], "--seed 1 (the file has 0)"),
    (["--same_dir"], "--same_dir True (the file has False)"),
])
def test_direction_flag_that_the_direction_file_was_not_made_with_is_refused(made, capsys, flags, named):
    flags = [f.format(other=made / "other.t7") for f in flags]
    line = refused(capsys, made, *GRID_2D, *paths(made), *flags)
    assert named in line and "dirs.h5 exists and was made with other settings" in line


def test_direction_flags_that_match_the_file_are_accepted(made, capsys):
    code, out, err = drive(capsys, *GRID_2D, *paths(made), "--seed", "0", "--xnorm", "filter")
    assert code == 0 and "9/9 points already done" in out, err


@pytest.mark.parametrize("case", ["direction file", "corrupt settings", "done mask missing"])
def test_a_file_that_is_not_a_sound_results_file_is_refused_untouched(made, tmp_path, capsys, case):
    shutil.copy(made / "dirs.h5", tmp_path / "dirs.h5")
    shutil.copy(made / "dirs.h5", tmp_path / "other_dirs.h5")  # a direction file that this run does not read
    shutil.copy(made / "surf.h5", tmp_path / "surf.h5")
    with h5py.File(tmp_path / "surf.h5", "r+") as f:
        if case == "corrupt settings":
            f.attrs["surface_settings"] = '{"model": "tiny:make_model", '  # cut short
        elif case == "done mask missing":
            del f["surface_done"]
    surf = "other_dirs.h5" if case == "direction file" else "surf.h5"
    line = refused(capsys, tmp_path, *GRID_2D, *paths(tmp_path, surf))
    assert {"direction file": "not a results file", "corrupt settings": "metadata is damaged",
            "done mask missing": "metadata is damaged"}[case] in line


@pytest.mark.parametrize("flag", ["--model_file", "--dir_file", "--surf_file"])
def test_a_directory_where_a_file_is_expected_is_refused(made, tmp_path, capsys, flag):
    (tmp_path / "folder").mkdir()
    flags = dict(zip(["--dir_file", "--surf_file"], paths(made)[1::2]))
    flags[flag] = str(tmp_path / "folder")
    line = refused(capsys, made, *GRID_2D, *[x for kv in flags.items() for x in kv])
    assert "is a directory" in line


def test_unwritable_output_folders_are_one_line_errors(made, tmp_path, capsys):
    (tmp_path / "plain").write_text("a file, not a folder")
    blocked = tmp_path / "plain" / "out"
    line = refused(capsys, tmp_path, *GRID_2D, "--dir_file", str(made / "dirs.h5"), "--surf_file", str(blocked / "s.h5"))
    assert "cannot create the folder" in line
    line = refused(capsys, tmp_path, *GRID_2D, "--dir_file", str(blocked / "d.h5"), "--surf_file", str(tmp_path / "s.h5"))
    assert "cannot write the direction file" in line


def test_a_missing_output_folder_is_made(made, tmp_path, capsys):
    code, out, err = drive(capsys, "--x=-1:1:3", "--dir_file", str(tmp_path / "new" / "d.h5"),
                           "--surf_file", str(tmp_path / "new2" / "deeper" / "s.h5"))
    assert code == 0, err
    assert sorted(os.listdir(tmp_path / "new2" / "deeper")) == ["s.h5"]  # no lock file left behind


def test_a_model_with_too_few_outputs_is_refused_before_work(tmp_path, capsys):
    line = refused(capsys, tmp_path, "--x=-1:1:3", "--model_kwargs", '{"num_classes": 3}', *paths(tmp_path))
    assert "outputs shape (1, 3)" in line and "10 classes" in line


def test_num_classes_reaches_the_data(tmp_path, capsys):
    line = refused(capsys, tmp_path, "--x=-1:1:3", "--num_classes", "12", *paths(tmp_path))
    assert "labels have 12 classes" in line
    code, _, err = drive(capsys, "--x=-1:1:3", "--num_classes", "10", *paths(tmp_path))
    assert code == 0, err
    with h5py.File(tmp_path / "surf.h5", "r") as f:
        assert '"num_classes": 10' in f.attrs["surface_settings"]


def test_an_hdf5_file_given_as_checkpoint_names_no_python_option(made, tmp_path, capsys):
    line = refused(capsys, tmp_path, "--x=-1:1:3", "--model_file", str(made / "dirs.h5"), *paths(tmp_path))
    assert "is an HDF5 file" in line and "trusted" not in line


def test_a_grid_too_large_to_hold_is_refused_before_any_file(tmp_path, capsys):
    line = refused(capsys, tmp_path, "--x=-1:1:100000", "--y=-1:1:100000", *paths(tmp_path))
    assert "10,000,000,000 points" in line
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("value", ["nan", "inf", "-1"])
def test_flush_secs_must_be_finite_and_not_negative(tmp_path, capsys, value):
    code, out, err = drive(capsys, "--x=-1:1:3", f"--flush_secs={value}", *paths(tmp_path))
    assert code == 2 and "error: argument --flush_secs: must be a finite number" in err.splitlines()[-1], err
    assert os.listdir(tmp_path) == []


def test_non_finite_inputs_are_refused_at_load_naming_count_and_first_index(tmp_path, capsys):
    x = torch.randn(20, 3, 8, 8)
    x[7, 1, 2, 3], x[9, 0, 0, 0] = math.nan, math.inf
    torch.save({"x": x, "y": torch.randint(0, 10, (20,))}, tmp_path / "bad.pt")
    with pytest.raises(DataError, match=r"2 non-finite value\(s\).*sample 7, element \(1, 2, 3\)"):
        load_dataset(str(tmp_path / "bad.pt"))
    flags = ["--model", "tiny:make_model", "--dataset", str(tmp_path / "bad.pt"), "--x=-1:1:3", *paths(tmp_path)]
    before = listing(tmp_path)
    code = main(flags)
    assert code == 2 and "sample 7" in capsys.readouterr().err and listing(tmp_path) == before


def test_a_nan_loss_gives_a_nan_accuracy():
    x, y = torch.randn(6, 3, 8, 8), torch.zeros(6, dtype=torch.int64)  # label 0 = NaN's argmax
    loss, acc = evaluate(make_nan_model().eval(), x, y, crossentropy_sum, batch_size=4)
    assert math.isnan(loss) and math.isnan(acc)


def test_plot_of_a_degenerate_grid_is_refused_before_any_file(tmp_path, capsys):
    line = refused(capsys, tmp_path, "--x=-1:1:3", "--y=0:0:1", "--plot", *paths(tmp_path))
    assert "at least 2 points" in line
    assert os.listdir(tmp_path) == []


def test_plot_of_an_all_nan_grid_says_so_and_keeps_the_results(tmp_path, capsys):
    code, out, err = drive(capsys, "--model", "test_bad_input:make_nan_model", "--x=-1:1:3", "--plot",
                           *paths(tmp_path))
    assert code == 3 and "every train_loss value is NaN" in err and "Traceback" not in err, err
    with h5py.File(tmp_path / "surf.h5", "r") as f:
        assert f["surface_done"][()].all() and np.isnan(f["train_acc"][()]).all()


@pytest.mark.slow
def test_error_is_printed_once_under_mpi(made, tmp_path):
    r = run(mpirun_cmd(2, "plot_surface.py", *TINY, *GRID_2D, *paths(made), "--seed", "3"))
    assert r.returncode == 2 and r.stderr.count("error:") == 1, r.stderr
    r = run(mpirun_cmd(2, "plot_surface.py", *TINY, *GRID_2D, "--dir_file", str(made / "dirs.h5"),
                       "--surf_file", str(made / "dirs.h5")))  # refused by rank 0 alone, under the lock
    assert r.returncode == 2 and r.stderr.count("error:") == 1, r.stderr


def limited_run(size, *flags):
    """The driver with RLIMIT_FSIZE standing in for a full disk: writing past `size` bytes fails with
    EFBIG (Python ignores SIGXFSZ). The limit is set after MPI starts, which needs room of its own."""
    code = ("import resource, runpy, sys, mpi4py.MPI; "
            f"resource.setrlimit(resource.RLIMIT_FSIZE, ({size}, {size})); "
            f"sys.argv = {['plot_surface.py', *flags]!r}; "
            f"runpy.run_path({os.path.join(ROOT, 'plot_surface.py')!r}, run_name='__main__')")
    return run([sys.executable, "-c", code])


@pytest.mark.slow
def test_a_full_disk_at_creation_leaves_nothing_and_commits_need_no_new_space(made, tmp_path):
    shutil.copy(made / "dirs.h5", tmp_path / "dirs.h5")
    flags = [*TINY, *GRID_2D, *paths(tmp_path)]
    r = limited_run(4096, *flags)
    assert r.returncode == 2 and "error: cannot write" in r.stderr and "Traceback" not in r.stderr, r.stderr
    assert sorted(os.listdir(tmp_path)) == ["dirs.h5"]
    shutil.copy(made / "surf.h5", tmp_path / "surf.h5")
    with h5py.File(tmp_path / "surf.h5", "r+") as f:  # unfinish every point: the resume computes them all
        f["surface_done"][...] = 0
        f["surface_checksum"][...] = 0
    size = os.path.getsize(tmp_path / "surf.h5")
    r = limited_run(size + 4096, *flags)  # room for the run's provenance, none for growing values
    assert r.returncode == 0, r.stderr
    with h5py.File(tmp_path / "surf.h5", "r") as f:
        assert f["surface_done"][()].all()


@pytest.mark.parametrize("flags, named", [
    (["--refine_budget", "5"], "--refine_budget needs --refine"),
    (["--refine", "0.1", "--refine_on", "test_loss"], "--refine_on test_loss needs --test"),
    (["--proj_file", "no_such_projection.h5"], "no such file"),
    (["--test", "--dataset", "tiny:make_train_only"], "--test asks for the test set"),
])
def test_the_surface_drivers_own_flags_are_refused_before_the_direction_file(tmp_path, capsys, flags, named):
    """Before: these refusals came after the direction file was written (exit 2, a new file left behind)."""
    line = refused(capsys, tmp_path, *GRID_2D, *paths(tmp_path), *flags)
    assert named in line and not (tmp_path / "dirs.h5").exists()
