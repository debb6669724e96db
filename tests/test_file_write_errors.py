"""Direction, PCA and projection files that cannot be written: one DirectionError line naming the file,
no partial file, an existing file kept; on the command line exit 2. They are made in memory and then
written whole (files/atomic.write_hdf5), so a full disk is a plain write error, never an HDF5 file left
half-closed (which crashed the interpreter at exit). A full disk is simulated by a write that fails
with ENOSPC, a read-only filesystem by EROFS, an unwritable folder by a path under a regular file."""
import errno
import os

import numpy as np
import pytest

import landscape
from landscape.cli.trajectory import main as trajectory_main
from landscape.errors import DirectionError
from landscape.files import atomic
from landscape.files.projection import write_projection

from test_trajectory import TINY as TRAJECTORY, tiny_series
from tiny import make_model


class FailingFile:
    """A file whose writes fail with `code` (the disk filled or the filesystem went read-only)."""

    def __init__(self, path, mode, code):
        self.handle, self.code = open(path, mode), code

    def write(self, data):
        raise OSError(self.code, os.strerror(self.code))

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.handle.close()


def writers(folder):
    dirs = landscape.random_directions(make_model(), n=2)
    return {"direction file": lambda path: dirs.save(path, overwrite=True),
            "projection file": lambda path: write_projection(path, np.zeros(3), np.ones(3),
                                                             [(f"m{k}.t7", "0" * 64) for k in range(3)], {})}


@pytest.mark.parametrize("what", ["direction file", "projection file"])
@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EROFS, errno.EDQUOT])
def test_a_failed_write_is_one_line_and_keeps_the_old_file(tmp_path, monkeypatch, what, code):
    path = str(tmp_path / "f.h5")
    writers(tmp_path)[what](path)
    before = open(path, "rb").read()
    monkeypatch.setattr(atomic, "open", lambda p, mode: FailingFile(p, mode, code), raising=False)
    with pytest.raises(DirectionError) as raised:
        writers(tmp_path)[what](path)
    assert str(raised.value) == f"cannot write the {what} {path}: {os.strerror(code)}"
    assert open(path, "rb").read() == before and os.listdir(tmp_path) == ["f.h5"]


@pytest.mark.parametrize("what", ["direction file", "projection file"])
def test_a_file_where_the_folder_should_be_is_named(tmp_path, what):
    (tmp_path / "plain").write_text("a file, not a folder")
    path = str(tmp_path / "plain" / "f.h5")
    with pytest.raises(DirectionError, match=f"cannot write the {what} {path}: .*plain is a file, not a folder"):
        writers(tmp_path)[what](path)


@pytest.mark.slow  # the trajectory driver's PCA stage
def test_the_trajectory_driver_says_in_one_line_that_it_cannot_write_its_direction_file(tmp_path, capsys):
    series = tiny_series(tmp_path / "run")
    (tmp_path / "plain").write_text("a file, not a folder")
    code = trajectory_main([*TRAJECTORY[:-2], "--model_folder", str(series), "--dir_file",
                            str(tmp_path / "plain" / "pca.h5")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "cannot write the direction file" in err, err


def test_directions_are_saved_over_an_existing_file_only_when_asked(tmp_path):
    dirs = landscape.random_directions(make_model(), n=1)
    (tmp_path / "m.t7").write_bytes(b"a checkpoint")
    with pytest.raises(DirectionError, match="exists; Directions.save replaces a file only with overwrite=True"):
        dirs.save(str(tmp_path / "m.t7"))
    assert (tmp_path / "m.t7").read_bytes() == b"a checkpoint"
    dirs.save(str(tmp_path / "m.t7"), overwrite=True)
    assert landscape.load_directions(str(tmp_path / "m.t7")).x[0].shape == dirs.x[0].shape
