"""A watcher knows when its job is gone, in this process (tests/test_watch.py runs real jobs).

Ends: a missing path at once (exit 2), a complete file (exit 0), an unfinished file no job holds the
lock of after GONE_AFTER_POLLS polls (exit 3, the last page kept); a job seen within the grace restarts it.
"""
import os

import h5py
import numpy as np
import pytest

from landscape.cli import render
from landscape.errors import SurfaceFileError, WatchedJobGone
from landscape.files.lock import FileLock, held_by_writer, lock_path
from landscape.plot import watch

from results_files import surface_file


@pytest.fixture
def surf(tmp_path):
    return surface_file(str(tmp_path / "s.h5"), n=5)


def never_sleeps(secs):
    raise AssertionError("the watcher waited where it should have ended")


def page_reloads(out):
    return "const RELOAD_SECS = null;" not in open(out, encoding="utf-8").read()


@pytest.mark.parametrize("where", ["nope.h5", "no_folder/s.h5", "a_file/s.h5", "s.h5x"])
def test_a_missing_path_ends_the_watcher_at_once(surf, tmp_path, capsys, where):
    (tmp_path / "a_file").write_text("x")
    path, out = str(tmp_path / where), str(tmp_path / "live.html")
    with pytest.raises(SurfaceFileError, match="no such file"):
        watch.watch(path, out, 1.0, sleep=never_sleeps, say=lambda *a, **k: None)
    assert render.main([path, "--html", out, "--watch", "5"]) == 2  # at once: no 5 s poll
    err = capsys.readouterr().err
    assert err.startswith(f"error: no such file {path}, and no job holds its lock") and err.count("\n") == 1
    assert not os.path.exists(out) and not os.path.exists(lock_path(path))


def test_a_complete_file_ends_the_watcher_with_one_final_page(surf, tmp_path, capsys):
    out = str(tmp_path / "live.html")
    assert watch.watch(surf, out, 1.0, sleep=never_sleeps, say=lambda *a, **k: None) == 1
    assert not page_reloads(out)
    assert render.main([surf, "--html", out, "--watch", "5"]) == 0


def test_a_finished_refinement_is_complete_though_points_are_unfinished(tmp_path):
    done = np.zeros((7, 5), bool)
    done[::2, ::2] = True
    path = surface_file(str(tmp_path / "r.h5"), n=5, done=done)
    out = str(tmp_path / "live.html")
    with pytest.raises(WatchedJobGone):  # unfinished, no writer, no refinement result: gone
        watch.watch(path, out, 1.0, sleep=lambda s: None, say=lambda *a, **k: None)
    with h5py.File(path, "r+") as f:
        f["train_loss_interp"] = np.ones((7, 5))
    assert watch.watch(path, out, 1.0, sleep=never_sleeps, say=lambda *a, **k: None) == 1


@pytest.mark.parametrize("done_points", [0, 1, 17])
def test_an_unfinished_file_no_job_writes_ends_after_the_grace_polls_with_exit_3(tmp_path, capsys, done_points):
    done = np.zeros(35, bool)
    done[:done_points] = True
    path = surface_file(str(tmp_path / "s.h5"), n=5, done=done.reshape(7, 5))
    out, slept = str(tmp_path / "live.html"), []
    with pytest.raises(WatchedJobGone, match=f"only {done_points} of 35 points are done"):
        watch.watch(path, out, 0.5, sleep=slept.append, say=lambda *a, **k: None)
    assert slept == [0.5] * (watch.GONE_AFTER_POLLS - 1) and not page_reloads(out)
    os.remove(out)
    assert render.main([path, "--html", out, "--watch", "0.01"]) == 3
    err = capsys.readouterr().err
    assert err.startswith(f"error: no job is writing {path}") and err.count("\n") == 1
    assert not page_reloads(out)  # the last page is kept, and stops reloading


def test_a_writer_seen_within_the_grace_restarts_it(tmp_path):
    path = surface_file(str(tmp_path / "s.h5"), n=5, done=np.zeros((7, 5), bool))
    looks = iter([False, False, True, False, False, False])
    pages = []
    with pytest.raises(WatchedJobGone):
        watch.watch(path, str(tmp_path / "live.html"), 0.1, sleep=lambda s: None, writer=lambda p: next(looks),
                    say=lambda line, **k: pages.append(line))
    assert len(pages) == 6  # 2 without, 1 with, then GONE_AFTER_POLLS without


def test_a_job_holding_the_lock_before_its_file_exists_is_waited_for(tmp_path):
    path, out = str(tmp_path / "s.h5"), str(tmp_path / "live.html")
    looks = []

    def job_creates_it(secs):  # the job, which took its lock first, writes the file during the first wait
        looks.append(secs)
        surface_file(path, n=5)
    with FileLock(path):
        assert watch.held_by_writer(path)
        assert watch.watch(path, out, 0.2, sleep=job_creates_it, say=lambda *a, **k: None) == 1
    assert looks == [0.2]


def test_a_file_that_is_no_results_file_ends_the_watcher_when_no_job_writes_it(tmp_path, capsys):
    path = tmp_path / "dirs.txt"
    path.write_text("not HDF5")
    with pytest.raises(SurfaceFileError, match="could not read"):
        watch.watch(str(path), str(tmp_path / "live.html"), 1.0, sleep=lambda s: None, say=lambda *a, **k: None)


def test_the_lock_probe_neither_creates_nor_removes_the_lock_file(tmp_path):
    path = str(tmp_path / "s.h5")
    assert not held_by_writer(path) and not os.path.exists(lock_path(path))
    with FileLock(path):
        assert held_by_writer(path) and held_by_writer(path)  # the probe releases what it took
    assert not os.path.exists(lock_path(path))
    open(lock_path(path), "w").write("pid 1 on a killed job's host")  # what a killed job leaves
    assert not held_by_writer(path) and os.path.exists(lock_path(path))
    with FileLock(path):  # the probe did not keep it: a job still takes it
        pass


def test_a_job_that_meets_a_readers_look_at_its_lock_waits_it_out(tmp_path, monkeypatch):
    """A reader's look holds the lock for microseconds; a job whose first tries meet it must not be
    refused as if another job held the file (the first 3 tries are made to meet a look)."""
    import fcntl

    import landscape.files.lock as lock
    real, tries = fcntl.flock, []

    def looked_at(fd, op):
        if op & fcntl.LOCK_EX:
            tries.append(op)
            if len(tries) <= 3:
                raise BlockingIOError(11, "Resource temporarily unavailable")
        return real(fd, op)
    monkeypatch.setattr(lock.fcntl, "flock", looked_at)
    with FileLock(str(tmp_path / "s.h5")):
        assert len(tries) == 4 and held_by_writer(str(tmp_path / "s.h5"))
    monkeypatch.setattr(lock, "READER_GRACE_SECS", 0.0)  # without the grace the first meeting refuses the job
    tries.clear()
    with pytest.raises(SurfaceFileError, match="another job is writing"):
        with FileLock(str(tmp_path / "s.h5")):
            pass
