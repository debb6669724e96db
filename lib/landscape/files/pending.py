"""Points finished but not yet committed, saved by each rank when a stop signal arrives.

A launcher may kill the ranks before the next commit (mpirun sends SIGKILL one second after it
forwards SIGTERM), so on receipt each rank writes its uncommitted points to
'<real path of the results file>.pending-<rank>' (an .npz: index and one array per quantity),
whole or not at all. The next run adds them to the results file under its lock (resume.prepare)
and removes the side files; a new or overwritten results file removes them unread.
"""
import glob
import os

import numpy as np

from .atomic import atomic_write


def _pending_files(path, rank="*"):
    return glob.glob(glob.escape(os.path.realpath(path)) + f".pending-{rank}")


def save_pending(path, rank, quantities, results):
    """One rank's finished but uncommitted points, saved on a stop signal next to the results file
    (whole or not at all); the next run adds them (prepare), so a kill before the commit loses nothing."""
    columns = {name: np.stack([np.asarray(values[j]) for _, values in results]) for j, name in enumerate(quantities)}
    target = os.path.realpath(path) + f".pending-{rank}"

    def write(tmp):
        with open(tmp, "wb") as handle:
            np.savez(handle, index=np.array([i for i, _ in results], dtype=np.int64), **columns)
    atomic_write(target, write, make_folder=False)  # a folder moved away mid-run is not made again here


def read_pending(path, quantities):
    """[(flat index, values)] from every rank's side file; unreadable files are skipped with a note."""
    points = []
    for name in sorted(_pending_files(path)):
        try:
            with np.load(name) as saved:
                columns = [saved[q] for q in quantities]
                points += [(int(i), tuple(c[n] for c in columns)) for n, i in enumerate(saved["index"])]
        except (OSError, KeyError, ValueError) as e:
            print(f"note: {name} is unreadable ({str(e).splitlines()[0] if str(e) else type(e).__name__}); its points are computed again", flush=True)
    return points


def drop_pending(path, rank="*"):
    for name in _pending_files(path, rank):
        os.remove(name)
