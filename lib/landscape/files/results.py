"""The results file: one HDF5 file per grid, in the reference's layout plus an explicit done mask.

Datasets: xcoordinates, ycoordinates (2D), and per job kind its values shaped like the grid
((len(y), len(x)) for 2D) plus '<kind>_done' (uint8, 1 = finished) and '<kind>_checksum' (uint64,
one digest per point, see integrity.py). Values of unfinished points are NaN (False for the boolean
FLAGS, e.g. eig_converged), but only the mask says what is finished: 0, negative and NaN are results.
Attributes: layout, '<kind>_settings' (compared on resume), '<kind>_provenance' (the first run),
'<kind>_run_<n>' (the provenance of every run that computed points), '<kind>_runs' (their start times).

This module reads and writes values; resume.py creates a file and checks one before a run adds to it.
Only raw values are written here, into datasets allocated at creation: a commit never needs new
space and cannot leave half-written metadata. HDF5's own file locks are not used (locking=False):
writers are kept apart by our lock file (lock.py), and readers may hold the file open at any time
without blocking a resume.
"""
import json
import os
from dataclasses import dataclass, field

import h5py
import numpy as np

from ..errors import SurfaceFileError
from ..space.grid import Grid
from .integrity import point_digest

# Every quantity a kind of job may store, in the order its values are stored and checksummed; the
# first is the kind's main map (the one a finished refinement interpolates first)
QUANTITIES = {
    "surface": ("train_loss", "train_acc", "test_loss", "test_acc"),
    "hessian": ("max_eig", "min_eig", "eig_iters", "eig_res_max", "eig_res_min", "eig_converged",
                "esd_nodes", "esd_weights", "neg_mass", "neg_share", "hvps_density",
                "trace", "trace_err", "hvps_trace",
                "layer_max_eig", "layer_min_eig", "layer_trace", "layer_trace_err", "hvps_layers"),
    # landscape.sharpness_table: one number per (checkpoint, column) item, on a grid of column x checkpoint indices
    "table": ("table_value",),
}
INTERP_SUFFIX = "_interp"  # '<name>_interp': the full grid of a finished refinement
NOT_VALUES = ("xcoordinates", "ycoordinates", "dir_file", "attrs", "dataset_attrs", "grid")  # in read_results' dict
PER_LAYER = ("layer_max_eig", "layer_min_eig", "layer_trace", "layer_trace_err")
# Quantities stored as booleans (flags, not numbers: False at unfinished points, where the done mask rules);
# every other quantity is float64, NaN until finished
FLAGS = ("eig_converged",)


def dtype_of(name):
    return np.bool_ if name in FLAGS else np.float64


def unfinished_value(name):
    """What a quantity's dataset holds before its point is finished."""
    return False if name in FLAGS else np.nan


@dataclass(frozen=True)
class Layout:
    """What one kind of values occupies in a results file: the grid, the kind ('surface', 'hessian'),
    its quantities in storage order, the trailing shape of those that are arrays at each point
    (shape grid.shape + trailing), and attributes of their datasets (e.g. the layer names along a
    per-layer axis). A resume must match it: what it makes is fixed by the run's settings."""
    grid: Grid
    kind: str
    quantities: tuple
    trailing: dict = field(default_factory=dict)
    dataset_attrs: dict = field(default_factory=dict)

    def shape_of(self, name):
        return tuple(self.grid.shape) + tuple(self.trailing.get(name, ()))

    def values_per_point(self):
        """Numbers stored per grid point: one per quantity, times its trailing shape (densities, layers)."""
        return sum(int(np.prod(self.trailing.get(name, ()))) for name in self.quantities)


def hessian_layout(grid, shapes, layers=()):
    """The Layout of the Hessian quantities {name: trailing shape}, in that order.

    Spectral densities are (grid..., k) with k = probes * steps; per-layer values are (grid..., L)
    with the layer names, in order along the last axis, in the dataset's 'layers' attribute.
    """
    trailing = {name: tuple(shape) for name, shape in shapes.items() if shape}
    attrs = {name: dict(layers=list(layers)) for name in PER_LAYER if name in shapes}
    return Layout(grid, "hessian", in_storage_order("hessian", shapes), trailing, attrs)


def kind_of(name):
    """The job kind whose done mask covers a dataset; None for a dataset of no known kind."""
    return next((kind for kind, names in QUANTITIES.items() if name in names), None)


def in_storage_order(kind, names):
    """`names` of one kind in the order their values are stored and checksummed."""
    return tuple(sorted(names, key=QUANTITIES[kind].index))


def done_name(kind):
    return f"{kind}_done"


def checksum_name(kind):
    return f"{kind}_checksum"


def interp_name(name):
    return f"{name}{INTERP_SUFFIX}"


def value_names(results):
    """The value datasets in read_results' dict: quantities and their interpolations, not the grid,
    the done masks, the checksums or the attributes."""
    return [name for name in results if name not in NOT_VALUES and not name.endswith(("_done", "_checksum"))]


def done_masks(results):
    """{kind: done mask (bool)} of read_results' dict."""
    return {name[:-len("_done")]: np.asarray(results[name]).astype(bool) for name in results if name.endswith("_done")}


def unconverged_points(results):
    """Finished Hessian points whose λmin/λmax Lanczos run stopped at max_iter before its stopping rule
    was met, from read_results' dict (or any {name: array} with 'hessian_done'): a bool grid, or None
    for a file that does not record eig_converged. Points with a non-finite loss (NaN values) are not
    counted: they have no eigenvalues to converge."""
    if "eig_converged" not in results or done_name("hessian") not in results:
        return None
    done = np.asarray(results[done_name("hessian")]).astype(bool)
    return done & ~np.asarray(results["eig_converged"]).astype(bool) & np.isfinite(results["max_eig"])


def h5open(path, mode="r", **kwargs):
    """Every open of a results file: HDF5's flock is off, see the module docstring."""
    return h5py.File(path, mode, locking=False, **kwargs)


def open_checked(path, mode="r"):
    if os.path.isdir(path):
        raise SurfaceFileError(f"--surf_file {path} is a directory; give the results file's name, e.g. {path}/surf.h5")
    if not os.path.exists(path):
        raise SurfaceFileError(f"{path}: no such results file")
    try:
        return h5open(path, mode)
    except OSError as e:
        raise SurfaceFileError(
            f"{path} is not a readable HDF5 results file (corrupt, truncated or not HDF5): {first_line(e)}. "
            f"It was left untouched; move it aside or choose another --surf_file") from None


def check_is_results(f, path):
    """Every reader's check of an open HDF5 file: a results file has its grid's coordinates (a direction
    file, or any other HDF5 file, is named for what it is instead of failing on a missing dataset)."""
    if "xcoordinates" in f and isinstance(f["xcoordinates"], h5py.Dataset):
        return
    looks = ("a direction file (it holds directions, not values: give it as --dir_file, or to "
             "landscape.load_directions)" if "xdirection" in f else "an HDF5 file with no xcoordinates")
    raise SurfaceFileError(f"{path} is not a results file: it is {looks}")


def first_line(e):
    return str(e).splitlines()[0] if str(e) else type(e).__name__


def jsonable(d):
    return json.loads(json.dumps(d))


def read_results(path):
    """Everything needed for plots: coordinates, every value dataset, masks and attributes.

    Read without HDF5's file lock (h5open), so a running job's writers are never blocked (they are
    guarded by our own <path>.lock instead); a reader may then see a commit half done.
    """
    with open_checked(path, "r") as f:
        check_is_results(f, path)
        out = {name: f[name][()] for name in f if isinstance(f[name], h5py.Dataset)}
        out["dataset_attrs"] = {name: dict(f[name].attrs) for name in out if len(f[name].attrs)}
        out["attrs"] = dict(f.attrs)
    x = out["xcoordinates"]
    out["grid"] = Grid(x, out.get("ycoordinates"))
    return out


def open_for_writing(path, comm=None):
    """All ranks with `comm` (parallel HDF5, mpio driver) or one process (serial h5py)."""
    if comm is None:
        return h5open(path, "r+")
    return h5open(path, "r+", driver="mpio", comm=comm)


def read_done_and_values(f, kind, name):
    """From an open results file: the done mask (bool) and one quantity's values, for refinement decisions."""
    return f[done_name(kind)][()].astype(bool), f[name][()]


def run_provenances(f, kind):
    """The provenance of every run that computed `kind` points, oldest first."""
    count = len(json.loads(f.attrs.get(f"{kind}_runs", "[]")))
    return [json.loads(f.attrs[f"{kind}_run_{n}"]) for n in range(1, count + 1) if f"{kind}_run_{n}" in f.attrs]


def write_points(f, layout, results):
    """results: [(flat_index, values)] with values in the order of layout.quantities; each point's
    checksum is written after its values and its done bit last."""
    datasets = [f[name] for name in layout.quantities]
    checksum, done = f[checksum_name(layout.kind)], f[done_name(layout.kind)]
    for index, values in results:
        pos = np.unravel_index(index, layout.grid.shape)
        stored = [np.asarray(value, dtype=d.dtype) for d, value in zip(datasets, values)]
        for d, value in zip(datasets, stored):
            d[pos] = value
        checksum[pos] = point_digest(index, stored)
        done[pos] = 1


def drop_interp(path, quantities):
    """Remove full-grid interpolations that the coming run would make stale (the file is not even opened
    for writing when there are none, so a finished file keeps its bytes)."""
    with h5open(path, "r") as f:
        stale = [interp_name(name) for name in quantities if interp_name(name) in f]
    if stale:
        with h5open(path, "r+") as f:
            for name in stale:
                del f[name]


def write_interp(path, kind, arrays, refinement):
    """'<name>_interp': the full grid, computed values kept and the rest interpolated; settings in '<kind>_refine'."""
    with h5open(path, "r+") as f:
        for name, full in arrays.items():
            if interp_name(name) in f:
                del f[interp_name(name)]
            f.create_dataset(interp_name(name), data=full, track_times=False)
        f.attrs[f"{kind}_refine"] = json.dumps(jsonable(refinement), sort_keys=True)
