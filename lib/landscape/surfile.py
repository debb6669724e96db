"""The results file: one HDF5 file per grid, in the reference's layout plus an explicit done mask.

Datasets: xcoordinates, ycoordinates (2D), and per job kind its values shaped like the grid
((len(y), len(x)) for 2D) plus '<kind>_done' (uint8, 1 = finished). Values of unfinished
points are NaN, but only the mask says what is finished: 0, negative and NaN are results.
Attributes: layout, '<kind>_settings' (compared on resume), '<kind>_provenance', '<kind>_runs'.

Rank 0 creates and checks the file serially; afterwards only raw values are written, into
datasets allocated at creation, so a killed writer cannot leave half-written metadata.
"""
import fcntl
import json
import os

import h5py
import numpy as np

from .errors import SurfaceFileError
from .grid import Grid, coarse_to_fine

KINDS = {
    "surface": ("train_loss", "train_acc"),
    "hessian": ("max_eig", "min_eig", "eig_iters", "eig_res_max", "eig_res_min"),
}
TEST_QUANTITIES = ("test_loss", "test_acc")
# What makes two kinds of values in one file describe the same landscape (e.g. Hessians added to a surface)
SHARED_SETTINGS = ("model", "model_kwargs", "checkpoint_sha256", "directions_sha256", "dir_type")


def done_name(kind):
    return f"{kind}_done"


class FileLock:
    """Exclusive lock on '<path>.lock' held for a whole run; the OS drops it if the process dies."""

    def __init__(self, path):
        self.path = path + ".lock"
        self.fd = None

    def __enter__(self):
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(self.fd)
            raise SurfaceFileError(
                f"another job is writing to {self.path[:-5]} (it holds {self.path}); wait for it to end, "
                f"or write to another --surf_file") from None
        return self

    def __exit__(self, *exc):
        fcntl.flock(self.fd, fcntl.LOCK_UN)
        os.close(self.fd)


def open_checked(path, mode="r", locking=None):
    if not os.path.exists(path):
        raise SurfaceFileError(f"{path}: no such results file")
    try:
        return h5py.File(path, mode, locking=locking)
    except OSError as e:
        raise SurfaceFileError(
            f"{path} is not a readable HDF5 results file (corrupt, truncated or not HDF5): {e}. "
            f"It was left untouched; move it aside or choose another --surf_file") from None


def settings_diff(stored, wanted):
    keys = sorted(set(stored) | set(wanted))
    return [f"{k}: file has {stored.get(k)!r}, this run has {wanted.get(k)!r}"
            for k in keys if stored.get(k) != wanted.get(k)]


def _jsonable(d):
    return json.loads(json.dumps(d))


def _check_grid(f, grid, path):
    same_x = np.array_equal(f["xcoordinates"][()], grid.x)
    has_y = "ycoordinates" in f
    same_y = has_y == grid.is_2d and (not has_y or np.array_equal(f["ycoordinates"][()], grid.y))
    if not (same_x and same_y):
        raise SurfaceFileError(f"refusing to use {path}: it holds another grid (compare its xcoordinates/"
                               f"ycoordinates with --x/--y); use a new --surf_file or --overwrite")


def _shared(settings):
    return {k: settings.get(k) for k in SHARED_SETTINGS}


def _check_same_landscape(f, kind, settings, path):
    for other in KINDS:
        stored = f.attrs.get(f"{other}_settings")
        if other == kind or stored is None:
            continue
        diff = settings_diff(_shared(json.loads(stored)), _shared(settings))
        if diff:
            raise SurfaceFileError(f"refusing to add {kind} values to {path}: its {other} values are of another "
                                   "landscape:\n  " + "\n  ".join(diff) + "\nuse the same model, checkpoint "
                                   "and directions, or another --surf_file")


def _create(path, grid, dir_file):
    with h5py.File(path, "w-") as f:
        f.create_dataset("xcoordinates", data=grid.x)
        if grid.is_2d:
            f.create_dataset("ycoordinates", data=grid.y)
        f["dir_file"] = str(dir_file)
        f.attrs["layout"] = grid.layout


def _add_kind(f, grid, kind, quantities, settings, provenance):
    for name in quantities:
        f.create_dataset(name, data=np.full(grid.shape, np.nan), track_times=False)
    f.create_dataset(done_name(kind), data=np.zeros(grid.shape, dtype=np.uint8), track_times=False)
    f.attrs[f"{kind}_settings"] = json.dumps(settings, sort_keys=True)
    f.attrs[f"{kind}_provenance"] = json.dumps(provenance, sort_keys=True)


def prepare(path, grid, kind, quantities, settings, provenance, dir_file, overwrite=False):
    """Create or check the results file for one job kind; return the flat indices still to do.

    Refusals (other grid, other settings, damaged file) raise before anything is written.
    """
    settings = _jsonable(settings)
    if overwrite and os.path.exists(path):
        os.remove(path)
    if not os.path.exists(path):
        _create(path, grid, dir_file)
    with open_checked(path, "r") as f:
        _check_grid(f, grid, path)
        _check_same_landscape(f, kind, settings, path)
        stored = f.attrs.get(f"{kind}_settings")
        if stored is not None:
            diff = settings_diff(json.loads(stored), settings)
            if diff:
                raise SurfaceFileError(
                    f"refusing to resume {path}: its {kind} settings differ from this run's:\n  "
                    + "\n  ".join(diff) + "\nrerun with the same settings, a new --surf_file, or --overwrite")
            done = f[done_name(kind)][()].astype(bool)
        elif any(name in f for name in quantities):
            raise SurfaceFileError(f"refusing to add to {path}: it already holds {kind} values without a "
                                   f"done mask (a reference-code file?); write to a new --surf_file")
    with h5py.File(path, "r+") as f:
        if stored is None:
            _add_kind(f, grid, kind, quantities, settings, provenance)
            done = np.zeros(grid.shape, dtype=bool)
        runs = json.loads(f.attrs.get(f"{kind}_runs", "[]")) + [provenance.get("started")]
        f.attrs[f"{kind}_runs"] = json.dumps(runs)
    order = coarse_to_fine(grid.shape)
    return order[~done.reshape(-1)[order]]


def write_points(f, kind, quantities, shape, results):
    """results: [(flat_index, values)] with values in the order of `quantities`; mask written last."""
    for index, values in results:
        pos = np.unravel_index(index, shape)
        for name, value in zip(quantities, values):
            f[name][pos] = value
        f[done_name(kind)][pos] = 1


def read_results(path, locking=None):
    """Everything needed for plots: coordinates, every value dataset, masks and attributes.

    locking=False reads without HDF5's file lock, so a running job's writers are never blocked
    (they are guarded by our own <path>.lock instead); the reader may then see a flush half done.
    """
    with open_checked(path, "r", locking) as f:
        out = {name: f[name][()] for name in f if isinstance(f[name], h5py.Dataset)}
        out["attrs"] = dict(f.attrs)
    x = out["xcoordinates"]
    out["grid"] = Grid(x, out.get("ycoordinates"))
    return out


def open_for_writing(path, comm=None):
    """All ranks with `comm` (parallel HDF5, mpio driver) or one process (serial h5py)."""
    if comm is None:  # our own lock file guards writers, so readers (plots, tests) may look meanwhile
        return h5py.File(path, "r+", locking=False)
    return h5py.File(path, "r+", driver="mpio", comm=comm)
