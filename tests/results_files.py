"""Results files with known values in the results-file layout, as a job leaves them (for render tests)."""
import h5py
import numpy as np

from landscape.files.results import QUANTITIES, Layout, done_name
from landscape.files.resume import prepare
from landscape.space.grid import Grid

# what every file of a kind holds: train loss and accuracy; the extremes and their solver's record
BASE = {"surface": QUANTITIES["surface"][:2], "hessian": QUANTITIES["hessian"][:5]}


def bowl(x, y):
    """A loss basin: 0.05 at the centre, exploding towards the corners as a trained net's does."""
    xx, yy = np.meshgrid(x, y)
    r2 = (xx - 0.1) ** 2 + 2.0 * (yy + 0.05) ** 2
    return 0.05 + 3.0 * r2 + np.expm1(6.0 * r2) * 2.0


def write_results(path, x, y=None, values=None, kind="surface", done=None):
    """A results file on grid (x, y) with `values` ({name: array shaped like the grid}) for one kind.

    done: boolean array shaped like the grid (default all True); points not done stay unfinished.
    """
    grid = Grid(np.asarray(x, dtype=float), None if y is None else np.asarray(y, dtype=float))
    names = BASE[kind] + tuple(n for n in values if n not in BASE[kind])
    prepare(path, Layout(grid, kind, names), {"test": True}, {}, "none.h5")
    done = np.ones(grid.shape, dtype=bool) if done is None else done
    with h5py.File(path, "r+") as f:  # whole arrays at once: what write_points leaves, point by point
        for n in names:
            f[n][...] = np.where(done, np.asarray(values.get(n, np.zeros(grid.shape)), dtype=float), np.nan)
        f[done_name(kind)][...] = done
    return path


def surface_file(path, n=25, done=None, test=False):
    x, y = np.linspace(-1, 1, n), np.linspace(-1, 1, n + 2)  # not square, so a transposition shows
    loss = bowl(x, y)
    values = {"train_loss": loss, "train_acc": 100.0 * np.exp(-loss)}
    if test:
        values.update(test_loss=1.2 * loss, test_acc=90.0 * np.exp(-loss))
    return write_results(path, x, y, values, done=done)
