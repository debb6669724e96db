"""The results file's integrity: checksums catch damage, one writer per real file, readers never
block a resume, and small promises (grid spellings, no rewrite when complete, every run's provenance,
the batch size kept)."""
import fcntl
import hashlib
import json
import os
import subprocess
import sys

import h5py
import numpy as np
import pytest

from landscape.cli.surface import main
from landscape.errors import SurfaceFileError
from landscape.files.lock import FileLock
from landscape.files.results import QUANTITIES, Layout, open_for_writing, run_provenances, write_points
from landscape.files.resume import prepare
from landscape.space.grid import make_grid

from conftest import env

TINY = ["--model", "tiny:make_model", "--dataset", "tiny:make_data", "--progress_secs", "5"]
SURFACE = QUANTITIES["surface"][:2]
SETTINGS = dict(model="m", checkpoint_sha256="c", directions_sha256="d", dir_type="weights")


def sha(path):
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


def drive(capsys, *flags):
    code = main([*TINY, *flags])
    out, err = capsys.readouterr()
    return code, out, err


def paths(folder):
    return ["--dir_file", str(folder / "dirs.h5"), "--surf_file", str(folder / "surf.h5")]


def results_file(path, grid, finished):
    """A results file made by prepare/write_points alone, with `finished` points written."""
    todo = prepare(str(path), Layout(grid, "surface", SURFACE), SETTINGS, {"started": "t0"}, "dirs.h5")
    values = [(int(i), (0.5 + i, 100.0 - i)) for i in todo[:finished]]
    with open_for_writing(str(path)) as f:
        write_points(f, Layout(grid, "surface", SURFACE), values)


def test_a_damaged_finished_value_is_named_on_resume(tmp_path):
    grid = make_grid("-1:1:3", "-1:1:3")
    results_file(tmp_path / "s.h5", grid, finished=9)
    with h5py.File(tmp_path / "s.h5", "r+") as f:
        f["train_acc"][1, 2] = 42.0  # flat index 5
    before = sha(tmp_path / "s.h5")
    with pytest.raises(SurfaceFileError, match=r"1 finished point\(s\) do not match their checksum.*index 5 "):
        prepare(str(tmp_path / "s.h5"), Layout(grid, "surface", SURFACE), SETTINGS, {}, "dirs.h5")
    assert sha(tmp_path / "s.h5") == before


def test_a_set_done_bit_of_an_unfinished_point_is_caught(tmp_path):
    grid = make_grid("-1:1:3", "-1:1:3")
    results_file(tmp_path / "s.h5", grid, finished=4)
    with h5py.File(tmp_path / "s.h5", "r+") as f:
        unfinished = int(np.flatnonzero(f["surface_done"][()].reshape(-1) == 0)[0])
        f["surface_done"][np.unravel_index(unfinished, grid.shape)] = 1
    with pytest.raises(SurfaceFileError, match=f"index {unfinished} "):
        prepare(str(tmp_path / "s.h5"), Layout(grid, "surface", SURFACE), SETTINGS, {}, "dirs.h5")


SWEEP = r"""
import json, shutil, sys
import numpy as np
from landscape.errors import LandscapeError
from landscape.files.results import Layout, read_results
from landscape.files.resume import prepare
from landscape.space.grid import make_grid
src, work, settings = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
grid = make_grid("-1:1:3", "-1:1:3")
original = read_results(src)
data = open(src, "rb").read()
rng = np.random.default_rng(0)
outcome = dict(refused=0, harmless=0, silent=[])
for offset in range(0, len(data), max(1, len(data) // 160)):
    damaged = bytearray(data)
    damaged[offset:offset + 64] = rng.integers(0, 256, len(damaged[offset:offset + 64]), dtype=np.uint8).tobytes()
    open(work, "wb").write(bytes(damaged))
    try:
        todo = prepare(work, Layout(grid, "surface", ("train_loss", "train_acc")), settings, {"started": "t1"}, "dirs.h5")
        now = read_results(work)
    except LandscapeError:  # refused, naming the problem
        outcome["refused"] += 1
        continue
    accepted = now["surface_done"].astype(bool)  # what a resume keeps: every point not in todo
    same = all(np.array_equal(now[q][accepted], original[q][accepted], equal_nan=True) for q in ("train_loss", "train_acc"))
    if same and np.array_equal(accepted, original["surface_done"].astype(bool) & accepted):
        outcome["harmless"] += 1
    else:
        outcome["silent"].append(offset)
print(json.dumps(outcome))
"""


@pytest.mark.slow
@pytest.mark.parametrize("finished", [9, 5])
def test_bytes_overwritten_anywhere_are_never_silently_accepted(tmp_path, finished):
    """64 random bytes at ~160 offsets spread over the whole file (superblock, object headers, heaps,
    attributes, coordinates, values, done mask, checksums): each resume refuses, or keeps exactly
    the original finished values. In a process of its own: damaged metadata may crash HDF5."""
    grid = make_grid("-1:1:3", "-1:1:3")
    results_file(tmp_path / "s.h5", grid, finished=finished)
    r = subprocess.run([sys.executable, "-c", SWEEP, str(tmp_path / "s.h5"), str(tmp_path / "w.h5"),
                        json.dumps(SETTINGS)], env=env(), capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    outcome = json.loads(r.stdout.splitlines()[-1])
    assert outcome["silent"] == [], outcome
    assert outcome["refused"] > 20 and outcome["refused"] + outcome["harmless"] >= 150, outcome


def test_a_second_writer_through_another_name_is_refused(tmp_path):
    real = tmp_path / "real"
    real.mkdir()
    (tmp_path / "alias").symlink_to(real)
    (real / "s.h5").write_bytes(b"")
    (tmp_path / "link.h5").symlink_to(real / "s.h5")
    names = [tmp_path / "alias" / "s.h5", tmp_path / "real" / ".." / "real" / "s.h5", tmp_path / "link.h5"]
    with FileLock(str(real / "s.h5")):
        for name in names:
            with pytest.raises(SurfaceFileError, match=r"another job is writing .*\(pid \d+ on "):
                with FileLock(str(name)):
                    pass
    assert os.listdir(real) == ["s.h5"]  # the lock file is removed when its job ends
    with FileLock(str(names[0])):  # free again
        assert sorted(os.listdir(real)) == ["s.h5", "s.h5.lock"]


def test_a_job_removes_its_lock_file(tmp_path, capsys):
    code, _, err = drive(capsys, "--x=-1:1:3", *paths(tmp_path))
    assert code == 0, err
    assert sorted(os.listdir(tmp_path)) == ["dirs.h5", "surf.h5"]


def unfinish(path, *flat):
    """Clear done bits and checksums, as if those points were never computed."""
    with h5py.File(path, "r+") as f:
        for name in ("surface_done", "surface_checksum"):
            data = f[name][()]
            data.reshape(-1)[list(flat)] = 0
            f[name][...] = data


def test_a_reader_holding_the_file_does_not_block_a_resume(tmp_path, capsys):
    assert drive(capsys, "--x=-1:1:5", *paths(tmp_path))[0] == 0
    unfinish(tmp_path / "surf.h5", 1, 3)
    with open(tmp_path / "surf.h5", "rb") as reader:
        fcntl.flock(reader, fcntl.LOCK_SH)  # what HDF5's default locking does for a read-only h5py.File
        code, out, err = drive(capsys, "--x=-1:1:5", *paths(tmp_path))
    assert code == 0 and "3/5 points already done" in out, err


def test_grids_are_compared_by_value_not_spelling(tmp_path, capsys):
    assert drive(capsys, "--x=-1:1:5", *paths(tmp_path))[0] == 0
    unfinish(tmp_path / "surf.h5", 2)
    code, out, err = drive(capsys, "--x=-1.0:1.0:5", *paths(tmp_path))
    assert code == 0 and "4/5 points already done" in out, err


def test_rerunning_a_complete_file_does_not_write_it(tmp_path, capsys):
    assert drive(capsys, "--x=-1:1:5", *paths(tmp_path))[0] == 0
    path = tmp_path / "surf.h5"
    before = sha(path), os.stat(path).st_mtime_ns, os.stat(path).st_ino
    code, out, err = drive(capsys, "--x=-1:1:5", *paths(tmp_path))
    assert code == 0 and "5/5 points already done" in out, err
    assert (sha(path), os.stat(path).st_mtime_ns, os.stat(path).st_ino) == before


def test_every_run_that_computes_keeps_its_provenance(tmp_path, capsys, monkeypatch):
    # The provenance records sys.argv (the command line of a driver run); in-process it would be pytest's
    # for both runs, so each run gets the command line it stands for.
    monkeypatch.setattr(sys, "argv", ["landscape-surface", "--x=-1:1:5"])
    assert drive(capsys, "--x=-1:1:5", *paths(tmp_path))[0] == 0
    unfinish(tmp_path / "surf.h5", 0)
    monkeypatch.setattr(sys, "argv", ["landscape-surface", "--x=-1:1:5", "--threads", "1"])
    assert drive(capsys, "--x=-1:1:5", "--threads", "1", *paths(tmp_path))[0] == 0
    with h5py.File(tmp_path / "surf.h5", "r") as f:
        runs = run_provenances(f, "surface")
        first = json.loads(f.attrs["surface_provenance"])
    assert len(runs) == 2 and runs[0] == first
    assert "--threads" not in runs[0]["argv"] and "--threads" in runs[1]["argv"], runs
    assert runs[0]["started"] <= runs[1]["started"]


def test_the_batch_size_is_compared_and_auto_reuses_it(tmp_path, capsys):
    assert drive(capsys, "--x=-1:1:5", "--batch_size", "16", *paths(tmp_path))[0] == 0
    unfinish(tmp_path / "surf.h5", 4)
    code, _, err = drive(capsys, "--x=-1:1:5", "--batch_size", "32", *paths(tmp_path))
    assert code == 2 and "eval_batch: file has 16, this run has 32" in err, err
    code, out, err = drive(capsys, "--x=-1:1:5", *paths(tmp_path))  # --batch_size auto
    assert code == 0 and "evaluation batch size 16 (batch_size auto: reused from" in out, err
