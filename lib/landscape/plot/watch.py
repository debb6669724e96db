"""The live view: rewrite a results file's page every few seconds while a job fills it.

The file is opened read-only for a moment per refresh, without HDF5's file lock (writers are
guarded by our own <file>.lock, which a reader never holds for longer than a look), so a watcher can
never block a job. A read that lands in the middle of a flush can fail; it is simply tried again.

The watcher ends when the grid is complete (exit 0), and also when its job is gone: a path that does
not exist while no job holds its lock ends it at once (a mistyped path, or a job not started yet:
start the job first), and a file whose grid is unfinished ends it after GONE_AFTER_POLLS polls in a
row without a writer (the job died or was stopped). The grace is counted in polls, not seconds, so a
job resumed just after the watcher started has GONE_AFTER_POLLS refreshes to take its lock.
"""
import os
import sys
import time

import numpy as np

from ..errors import SurfaceFileError, WatchedJobGone
from ..files.lock import held_by_writer, lock_path
from ..files.results import QUANTITIES, done_masks, interp_name, read_results
from .page import write_page

READ_ATTEMPTS = 10
READ_PAUSE_SECS = 0.3
GONE_AFTER_POLLS = 3  # polls in a row without a writer, the grid unfinished, before the job counts as gone


def read_retrying(path, attempts=READ_ATTEMPTS, pause=READ_PAUSE_SECS, sleep=time.sleep):
    """read_results without locking, retried when a read meets a half-written flush."""
    for attempt in range(attempts):
        try:
            return read_results(path)
        except (SurfaceFileError, OSError, KeyError, ValueError) as err:
            if attempt == attempts - 1:
                raise SurfaceFileError(f"could not read {path} in {attempts} tries: {err}") from None
            sleep(pause)


def progress(results):
    """(points done, points planned) over every job kind the file holds."""
    masks = list(done_masks(results).values())
    return sum(int(np.count_nonzero(m)) for m in masks), sum(m.size for m in masks)


def is_complete(results):
    """Every job kind of the file is finished: all its points are done, or its refinement ended
    (the '<name>_interp' full grid exists only then)."""
    masks = done_masks(results)
    return bool(masks) and all(m.all() or interp_name(QUANTITIES[kind][0]) in results
                               for kind, m in masks.items())


def missing(path):
    return SurfaceFileError(f"no such file {path}, and no job holds its lock {lock_path(path)}; check the path, "
                            f"or start the job first (the watcher waits while a job holds the lock)")


def gone(path, out, done, total):
    return WatchedJobGone(f"no job is writing {path} (no lock held for {GONE_AFTER_POLLS} polls) and only {done} "
                          f"of {total} points are done; {out} shows them. Rerun the job to resume, then watch again")


def watch(path, out, every_secs, proj_file=None, surf_name=None, sleep=time.sleep, say=print,
          writer=held_by_writer):
    """Rewrite `out` every `every_secs` until the file is complete (is_complete); the last page stops
    reloading. Returns the number of pages written. Raises SurfaceFileError for a missing path or a
    file that cannot be read while no job writes it, WatchedJobGone when the job is gone (module docstring)."""
    pages, without_writer = 0, 0
    while True:
        writing = writer(path)  # looked at before the read: a job that ended before it is seen complete
        if not os.path.exists(path):
            if not (writing or writer(path)):
                raise missing(path)
            say(f"[watch] waiting for {path}: its job holds the lock and has not created it yet",
                file=sys.stderr, flush=True)
            sleep(every_secs)
            continue
        try:
            results = read_retrying(path, sleep=sleep)
        except SurfaceFileError as err:
            if not (writing or writer(path)):  # nobody will ever make it readable
                raise err from None
            say(f"[watch] waiting for {path}: {err}", file=sys.stderr, flush=True)
            sleep(every_secs)
            continue
        done, total = progress(results)
        complete = is_complete(results)
        without_writer = 0 if writing or complete else without_writer + 1
        ended = complete or without_writer >= GONE_AFTER_POLLS
        write_page(results, out, path, proj_file=proj_file, surf_name=surf_name,
                   reload_secs=None if ended else every_secs)
        pages += 1
        say(f"[watch] {out}: {done} of {total} points", flush=True)
        if complete:
            return pages
        if ended:
            raise gone(path, out, done, total)
        sleep(every_secs)
