"""The live view: rewrite a results file's page every few seconds while a job fills it.

The file is opened read-only for a moment per refresh, without HDF5's file lock (writers are
guarded by our own <file>.lock, which a reader never takes), so a watcher can never block a job.
A read that lands in the middle of a flush can fail; it is simply tried again.
"""
import sys
import time

import numpy as np

from ..errors import SurfaceFileError
from ..files.results import done_masks, read_results
from .page import write_page

READ_ATTEMPTS = 10
READ_PAUSE_SECS = 0.3


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


def watch(path, out, every_secs, proj_file=None, sleep=time.sleep, say=print):
    """Rewrite `out` every `every_secs` until every done mask of the file is full; the last page
    stops reloading. Returns the number of pages written."""
    pages = 0
    while True:
        try:
            results = read_retrying(path, sleep=sleep)
        except SurfaceFileError as err:  # not created yet, or busy: look again next time
            say(f"[watch] waiting for {path}: {err}", file=sys.stderr, flush=True)
            sleep(every_secs)
            continue
        done, total = progress(results)
        complete = total > 0 and done == total
        write_page(results, out, path, proj_file=proj_file, reload_secs=None if complete else every_secs)
        pages += 1
        say(f"[watch] {out}: {done} of {total} points", flush=True)
        if complete:
            return pages
        sleep(every_secs)
