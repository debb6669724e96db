"""A results folder moved, or the file renamed, while a run writes to it (issue 20, kind 10): the run
finishes into the moved file, removes its own lock file wherever it now lives, and says where its
results are; a folder removed outright is one line and exit 3, since points were written."""
import os
import shutil
import subprocess
import time

import h5py
import pytest

from conftest import env, python_cmd

pytestmark = pytest.mark.slow  # starts a driver process

POINTS = 24
ARGS = ["--model", "tiny:make_slow_model", "--model_kwargs", '{"delay": 0.04}', "--dataset", "tiny:make_data",
        f"--x=-1:1:{POINTS}", "--flush_points", "1", "--batch_size", "64", "--threads", "1", "--progress_secs", "30"]


def start(folder):
    cmd = python_cmd("plot_surface.py", *ARGS, "--dir_file", str(folder / "d.h5"), "--surf_file", str(folder / "s.h5"))
    return subprocess.Popen(cmd, env=env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def committed(path):
    try:
        with h5py.File(path, "r", locking=False) as f:
            return int(f["surface_done"][()].sum())
    except (OSError, KeyError):
        return 0


def wait_for_a_committed_point(proc, path, timeout=120):
    """Until the file holds a finished point, and the run still has points to go."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        done = committed(path)
        if done:
            assert done < POINTS, "the run ended before the folder could be moved; make it slower"
            return
        time.sleep(0.02)  # polling the file: the wait ends on the observed commit
    raise AssertionError(f"no point was committed: {proc.communicate()}")


@pytest.mark.parametrize("how", ["folder moved", "file moved to another folder"])  # a rename is the same inode case
def test_a_run_whose_results_are_moved_finishes_into_the_moved_file(tmp_path, how):
    folder = tmp_path / "run"
    folder.mkdir()
    proc = start(folder)
    wait_for_a_committed_point(proc, folder / "s.h5")
    if how == "folder moved":
        moved_folder, name = tmp_path / "moved", "s.h5"
        os.rename(folder, moved_folder)
    else:
        moved_folder, name = tmp_path / "elsewhere", "s.h5"
        moved_folder.mkdir()
        os.rename(folder / "s.h5", moved_folder / name)
    out, err = proc.communicate(timeout=240)
    assert proc.returncode == 0, out + err
    moved = moved_folder / name
    assert committed(moved) == POINTS  # every point, the ones after the move included, is in the moved file
    assert f"its results are in {moved}" in out and f"complete: {moved}" in out
    assert not [n for n in os.listdir(moved_folder) if n.endswith(".lock")]  # its own lock file removed
    assert how != "folder moved" or not folder.exists()  # nothing recreated at the old place
    assert sorted(os.listdir(moved_folder)) == sorted(["d.h5", name] if how != "file moved to another folder"
                                                      else [name])
    assert how != "file moved to another folder" or sorted(os.listdir(folder)) == ["d.h5"]


def test_a_run_whose_results_folder_is_removed_exits_3_in_one_line(tmp_path):
    folder = tmp_path / "run"
    folder.mkdir()
    proc = start(folder)
    wait_for_a_committed_point(proc, folder / "s.h5")
    shutil.rmtree(folder)
    out, err = proc.communicate(timeout=240)
    lines = [line for line in err.splitlines() if line.strip()]
    assert proc.returncode == 3, out + err
    assert len(lines) == 1 and lines[0].startswith("error: ") and "removed during the run" in lines[0], err
    assert "are kept" not in lines[0]  # they are not: the line says what was lost
    assert not folder.exists()


def test_a_results_file_replaced_mid_run_is_said_to_have_lost_the_later_points(tmp_path):
    folder = tmp_path / "run"
    folder.mkdir()
    proc = start(folder)
    wait_for_a_committed_point(proc, folder / "s.h5")
    shutil.copy(folder / "s.h5", folder / "copy.h5")
    os.replace(folder / "copy.h5", folder / "s.h5")  # the run's file is unlinked; a copy takes its name
    out, err = proc.communicate(timeout=240)
    lines = [line for line in err.splitlines() if line.strip()]
    assert proc.returncode == 3, out + err
    assert len(lines) == 1 and "was replaced or removed during the run" in lines[0] and "lost" in lines[0], err
