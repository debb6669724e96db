"""Files written before a quantity was recorded: reading them, and adding it when a resume writes.

An older file lacks the quantities of ADDED_LATER. It is verified against its own checksums (which
cover what it holds), read as it is (a reader finds no such dataset), and left byte for byte as it
is when nothing is left to compute. A resume that computes points gives it the missing datasets
first: values for its finished points derived from what it holds, and checksums that cover them,
so every point of the file then carries every quantity of today's layout.
"""
import numpy as np

from .integrity import point_digest
from .results import checksum_name, dtype_of, h5open, unfinished_value


def _old_points_converged(f, settings):
    """eig_converged: a Lanczos run that took fewer than --max_iter steps met its stopping rule, so it is
    marked converged; one that took all of them is marked not converged (the file cannot tell whether its
    last step met the rule)"""
    iters = f["eig_iters"][()]
    return np.isfinite(iters) & (iters < settings["max_iter"])


# {name: its values over the grid, from an older file's datasets and the run's settings (which the
# resume has checked equal the file's); only those at finished points are kept}. The docstring is
# printed when a resume adds the dataset.
ADDED_LATER = {"eig_converged": _old_points_converged}


def stored_quantities(f, layout):
    """The layout's quantities that the open file holds (an older file lacks some of ADDED_LATER); any
    other missing one is damage, found when it is read."""
    return tuple(name for name in layout.quantities if name in f or name not in ADDED_LATER)


def missing_added_later(path, layout):
    with h5open(path) as f:
        return [name for name in layout.quantities if name not in stored_quantities(f, layout)]


def add_later_quantities(f, layout, settings, done, names):
    """Give an older file the datasets `names`, with ADDED_LATER's values at its finished points (done,
    verified just before under the lock), and checksums of those points that cover them too."""
    size, finished = layout.grid.size, np.flatnonzero(done.reshape(-1))
    for name in names:
        values = np.full(layout.shape_of(name), unfinished_value(name), dtype=dtype_of(name))
        derived = np.asarray(ADDED_LATER[name](f, settings), dtype=dtype_of(name))
        values.reshape(size, -1)[finished] = derived.reshape(size, -1)[finished]
        f.create_dataset(name, data=values, track_times=False)
    columns = [f[name][()].reshape(size, -1) for name in layout.quantities]
    shapes = [layout.trailing.get(name, ()) for name in layout.quantities]
    checksum = f[checksum_name(layout.kind)]
    for i in finished:
        stored = [column[i].reshape(shape) for column, shape in zip(columns, shapes)]
        checksum[np.unravel_index(i, layout.grid.shape)] = point_digest(int(i), stored)


def added_later_note(names, done):
    """One line for the log: what a resume added to an older file, and how."""
    how = "; ".join(" ".join(ADDED_LATER[name].__doc__.split()) for name in names)
    return f"written before {', '.join(names)} was recorded; added for its {int(done.sum())} finished point(s): {how}"
