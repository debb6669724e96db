"""The results file: one HDF5 file per grid, in the reference's layout plus an explicit done mask.

Datasets: xcoordinates, ycoordinates (2D), and per job kind its values shaped like the grid
((len(y), len(x)) for 2D) plus '<kind>_done' (uint8, 1 = finished) and '<kind>_checksum' (uint64,
one digest per point, see integrity.py). Values of unfinished points are NaN, but only the mask
says what is finished: 0, negative and NaN are results.
Attributes: layout, '<kind>_settings' (compared on resume), '<kind>_provenance' (the first run),
'<kind>_run_<n>' (the provenance of every run that computed points), '<kind>_runs' (their start times).

Rank 0 creates and checks the file serially. A new file, and every change to an existing file's
metadata (a new kind, a run's provenance), is written to a copy that then replaces the file, so a
full disk or a kill leaves the old bytes. Afterwards only raw values are written, into datasets
allocated at creation: a commit never needs new space and cannot leave half-written metadata.
HDF5's own file locks are not used (locking=False): writers are kept apart by our lock file
(filelock.py), and readers may hold the file open at any time without blocking a resume.
"""
import io
import json
import os

import h5py
import numpy as np

from .dirfile import atomic_write
from .errors import SurfaceFileError
from .filelock import FileLock  # noqa: F401 (the drivers take it from here)
from .grid import Grid, coarse_to_fine
from .integrity import DIGEST, check_points, disk_refusal, point_digest
from .pending import drop_pending, read_pending

KINDS = {
    "surface": ("train_loss", "train_acc"),
    "hessian": ("max_eig", "min_eig", "eig_iters", "eig_res_max", "eig_res_min"),
}
TEST_QUANTITIES = ("test_loss", "test_acc")
# What makes two kinds of values in one file describe the same landscape (e.g. Hessians added to a surface)
SHARED_SETTINGS = ("model", "model_kwargs", "checkpoint_sha256", "directions_sha256", "dir_type")
# The grid specs as typed ('-1:1:5' or '-1.0:1.0:5'); the coordinates themselves are compared instead
SPELLED_GRID = ("x", "y")
SHOWN_POINTS = 8
JSON_ATTRIBUTES = ("_settings", "_provenance", "_runs")
# The HDF5 1.8 file format checksums its metadata (superblock v2, object headers v2, B-trees, heaps):
# damaged metadata is then an error when read, not a crash or a wrong object. Not 1.10's: its
# superblock marks a file open for writing, and default h5py readers then refuse it during a job
# (and after a killed one).
METADATA_CHECKSUMS = ("v108", "latest")


PER_LAYER = ("layer_max_eig", "layer_min_eig", "layer_trace", "layer_trace_err")


def hessian_layout(shapes, layers=()):
    """prepare()'s trailing/dataset_attrs for the Hessian quantities {name: trailing shape}.

    Spectral densities are (grid..., k) with k = probes * steps; per-layer values are (grid..., L)
    with the layer names, in order along the last axis, in the dataset's 'layers' attribute.
    """
    trailing = {name: tuple(shape) for name, shape in shapes.items() if shape}
    attrs = {name: dict(layers=list(layers)) for name in PER_LAYER if name in shapes}
    return dict(trailing=trailing, dataset_attrs=attrs)


def done_name(kind):
    return f"{kind}_done"


def checksum_name(kind):
    return f"{kind}_checksum"


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
            f"{path} is not a readable HDF5 results file (corrupt, truncated or not HDF5): {_first_line(e)}. "
            f"It was left untouched; move it aside or choose another --surf_file") from None


def _first_line(e):
    return str(e).splitlines()[0] if str(e) else type(e).__name__


def settings_diff(stored, wanted, ignore=()):
    keys = sorted((set(stored) | set(wanted)) - set(ignore))
    return [f"{k}: file has {stored.get(k)!r}, this run has {wanted.get(k)!r}"
            for k in keys if stored.get(k) != wanted.get(k)]


def stored_settings(path, kind):
    """The settings a file holds for `kind`, or None (no file, no such values, unreadable: prepare will say)."""
    try:
        with h5open(path) as f:
            return json.loads(f.attrs[f"{kind}_settings"])
    except (OSError, KeyError, ValueError, TypeError):
        return None


def _jsonable(d):
    return json.loads(json.dumps(d))


def _check_is_results_file(f, path):
    if "xcoordinates" not in f:
        looks = " (it looks like a direction file: give it as --dir_file)" if "xdirection" in f else ""
        raise SurfaceFileError(f"refusing to use {path}: it is an HDF5 file but not a results file{looks}; "
                               f"choose another --surf_file")


def _read_everything(f):
    """Read every object and attribute once, so damage anywhere is found now, not by a later plot."""
    for name in f:
        if isinstance(f[name], h5py.Dataset):
            f[name][()]
        dict(f[name].attrs)
    for name, value in f.attrs.items():
        if name.endswith(JSON_ATTRIBUTES) or "_run_" in name:
            json.loads(value)


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


def _point_names(indices, grid):
    shown = ", ".join(f"{i} (x={a:g}, y={b:g})" for i, (a, b) in ((i, grid.coords(i)) for i in indices[:SHOWN_POINTS]))
    return shown + (f", ... ({len(indices)} in all)" if len(indices) > SHOWN_POINTS else "")


def _verified_done(f, grid, kind, quantities, path):
    """The done mask after checking every finished point against its checksum."""
    if checksum_name(kind) not in f:
        raise SurfaceFileError(f"refusing to resume {path}: it has no {checksum_name(kind)} (written by an older "
                               f"version, or damaged), so its finished values cannot be verified; use a new "
                               f"--surf_file or --overwrite")
    arrays = [f[name] for name in (done_name(kind), checksum_name(kind), *quantities)]
    if any(a.shape[:len(grid.shape)] != grid.shape for a in arrays) or arrays[0].dtype != np.uint8:
        raise SurfaceFileError(f"refusing to resume {path}: its {kind} datasets are not shaped like its grid "
                               f"{grid.shape} (the file is damaged); use a new --surf_file or --overwrite")
    done, sums = arrays[0][()].reshape(-1), arrays[1][()].reshape(-1)
    damaged, cleared = check_points(done, sums, [a[()] for a in arrays[2:]])
    if damaged:
        raise SurfaceFileError(f"refusing to resume {path}: {len(damaged)} finished point(s) do not match their "
                               f"checksum (the file was damaged): flat index {_point_names(damaged, grid)}; "
                               f"use a new --surf_file or --overwrite")
    if cleared:
        print(f"[{kind}] {path}: point(s) {_point_names(cleared, grid)} hold checksummed values but are not marked "
              f"done (a commit cut short, or a flipped done bit); they are computed again", flush=True)
    return done.astype(bool).reshape(grid.shape)


def _inspect(path, grid, kind, quantities, settings):
    """Check an existing file without writing to it; the done mask of `kind`, or None if it has none."""
    with open_checked(path, "r") as f:
        try:
            _check_is_results_file(f, path)
            _read_everything(f)
            _check_grid(f, grid, path)
            _check_same_landscape(f, kind, settings, path)
            stored = f.attrs.get(f"{kind}_settings")
            if stored is None:
                if any(name in f for name in (*quantities, done_name(kind))):
                    raise SurfaceFileError(f"refusing to add to {path}: it already holds {kind} values without "
                                           f"their settings (a reference-code file, or damaged); write to a new "
                                           f"--surf_file")
                return None
            diff = settings_diff(json.loads(stored), settings, ignore=SPELLED_GRID)
            if diff:
                raise SurfaceFileError(
                    f"refusing to resume {path}: its {kind} settings differ from this run's:\n  "
                    + "\n  ".join(diff) + "\nrerun with the same settings, a new --surf_file, or --overwrite")
            return _verified_done(f, grid, kind, quantities, path)
        except (KeyError, ValueError, TypeError, OSError, RuntimeError) as e:  # a damaged name, attribute or dataset
            raise SurfaceFileError(f"refusing to use {path}: its metadata is damaged ({type(e).__name__}: "
                                   f"{_first_line(e)}); it was left untouched, use a new --surf_file or "
                                   f"--overwrite") from None


def _create(f, grid, dir_file):
    f.create_dataset("xcoordinates", data=grid.x)
    if grid.is_2d:
        f.create_dataset("ycoordinates", data=grid.y)
    f["dir_file"] = np.bytes_(str(dir_file).encode())  # fixed length: no global heap, whose damage crashes HDF5
    f.attrs["layout"] = grid.layout


def _add_kind(f, grid, kind, quantities, settings, provenance, trailing=None, dataset_attrs=None):
    """trailing: {name: shape} for values that are arrays at each point (shape grid.shape + that);
    dataset_attrs: {name: {attribute: value}}, e.g. the layer names along a per-layer axis."""
    trailing, dataset_attrs = trailing or {}, dataset_attrs or {}
    for name in quantities:
        shape = tuple(grid.shape) + tuple(trailing.get(name, ()))
        f.create_dataset(name, data=np.full(shape, np.nan), track_times=False)
        for key, value in dataset_attrs.get(name, {}).items():
            f[name].attrs[key] = value
    f.create_dataset(done_name(kind), data=np.zeros(grid.shape, dtype=np.uint8), track_times=False)
    f.create_dataset(checksum_name(kind), data=np.zeros(grid.shape, dtype=np.uint64), track_times=False)
    f[checksum_name(kind)].attrs["digest"] = DIGEST
    f.attrs[f"{kind}_settings"] = json.dumps(settings, sort_keys=True)
    f.attrs[f"{kind}_provenance"] = json.dumps(provenance, sort_keys=True)


def _record_run(f, kind, provenance):
    runs = json.loads(f.attrs.get(f"{kind}_runs", "[]")) + [provenance.get("started")]
    f.attrs[f"{kind}_runs"] = json.dumps(runs)
    f.attrs[f"{kind}_run_{len(runs)}"] = json.dumps(provenance, sort_keys=True)


def run_provenances(f, kind):
    """The provenance of every run that computed `kind` points, oldest first."""
    count = len(json.loads(f.attrs.get(f"{kind}_runs", "[]")))
    return [json.loads(f.attrs[f"{kind}_run_{n}"]) for n in range(1, count + 1) if f"{kind}_run_{n}" in f.attrs]


def _replace(path, edit, copy_first):
    """Write a new version of `path` through edit(h5 file) on a copy, then swap it in. HDF5 works on
    an image in memory, so a full disk or an unwritable folder is a plain OSError when the image is
    written out, which leaves the old file and no partial one."""
    image = io.BytesIO()
    if copy_first:
        with open(path, "rb") as old:
            image.write(old.read())
    with h5py.File(image, "r+") if copy_first else h5py.File(image, "w", libver=METADATA_CHECKSUMS) as f:
        edit(f)

    def write(tmp):
        with open(tmp, "wb") as out:
            out.write(image.getbuffer())
            out.flush()
            os.fsync(out.fileno())
    try:
        atomic_write(path, write)
    except OSError as e:
        raise SurfaceFileError(f"cannot write {path}: {e.strerror or e}; "
                               f"{'the file was left as it was' if copy_first else 'no file was made'}") from None


def prepare(path, grid, kind, quantities, settings, provenance, dir_file, overwrite=False, trailing=None,
            dataset_attrs=None):
    """Create or check the results file for one job kind; return the flat indices still to do.

    trailing and dataset_attrs shape and label array-valued quantities (see _add_kind); what they
    make is fixed by `settings`, which a resume must match.

    Refusals (other grid, other settings, damaged file, no room) raise before anything is written,
    and a file with nothing left to do is not written at all.
    """
    settings, order = _jsonable(settings), coarse_to_fine(grid.shape)
    if os.path.isdir(path):
        open_checked(path)  # raises, naming the problem
    if overwrite or not os.path.exists(path):
        refusal = disk_refusal(path, grid.size, len(quantities) + len(TEST_QUANTITIES))
        if refusal:
            raise SurfaceFileError(f"not enough room: {refusal}")
        _replace(path, lambda f: (_create(f, grid, dir_file), _add_kind(f, grid, kind, quantities, settings, provenance, trailing, dataset_attrs),
                                  _record_run(f, kind, provenance)), copy_first=False)
        drop_pending(path)  # points of a file that is no more
        return order
    done = _inspect(path, grid, kind, quantities, settings)
    if done is None:
        _replace(path, lambda f: (_add_kind(f, grid, kind, quantities, settings, provenance, trailing, dataset_attrs),
                                  _record_run(f, kind, provenance)), copy_first=True)
        return order
    pending = [(i, v) for i, v in read_pending(path, quantities) if 0 <= i < grid.size and not done.flat[i]]
    done.flat[[i for i, _ in pending]] = True
    todo = order[~done.reshape(-1)[order]]
    if len(todo) or pending:
        def edit(f):
            write_points(f, kind, quantities, grid.shape, pending)
            if len(todo):
                _record_run(f, kind, provenance)
        _replace(path, edit, copy_first=True)
    if pending:
        print(f"[{kind}] {path}: {len(pending)} point(s) saved by the ranks at the last stop were added", flush=True)
    drop_pending(path)
    return todo


def write_points(f, kind, quantities, shape, results):
    """results: [(flat_index, values)] with values in the order of `quantities`; each point's
    checksum is written after its values and its done bit last."""
    datasets = [f[name] for name in quantities]
    checksum, done = f[checksum_name(kind)], f[done_name(kind)]
    for index, values in results:
        pos = np.unravel_index(index, shape)
        stored = [np.asarray(value, dtype=d.dtype) for d, value in zip(datasets, values)]
        for d, value in zip(datasets, stored):
            d[pos] = value
        checksum[pos] = point_digest(index, stored)
        done[pos] = 1


def read_results(path):
    """Everything needed for plots: coordinates, every value dataset, masks and attributes.

    Read without HDF5's file lock (h5open), so a running job's writers are never blocked (they are
    guarded by our own <path>.lock instead); a reader may then see a commit half done.
    """
    with open_checked(path, "r") as f:
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


def interp_name(name):
    return f"{name}_interp"


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
        f.attrs[f"{kind}_refine"] = json.dumps(_jsonable(refinement), sort_keys=True)
