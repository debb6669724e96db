"""Creating a results file, and checking one before a run adds to it (rank 0, under the lock).

A new file, and every change to an existing file's metadata (a new kind, a run's provenance), is
written to a copy that then replaces the file, so a full disk or a kill leaves the old bytes.
Refusals (another grid, other settings, a damaged file, no room) come before anything is written,
and a file with nothing left to do is not written at all. A resume verifies the checksum of every
finished point, and adds the points that the ranks saved to side files at the last stop.
"""
import io
import json
import os

import h5py
import numpy as np

from ..errors import GridSpecError, SurfaceFileError
from ..space.grid import coarse_to_fine, parse_axis
from .atomic import atomic_write
from .integrity import DIGEST, check_points, disk_refusal
from .pending import drop_pending, read_pending
from .results import (
    QUANTITIES,
    Layout,
    check_is_results,
    checksum_name,
    done_name,
    dtype_of,
    first_line,
    h5open,
    in_storage_order,
    jsonable,
    kind_of,
    open_checked,
    unfinished_value,
    write_points,
)
from .upgrade import add_later_quantities, added_later_note, missing_added_later, stored_quantities

# What makes two kinds of values in one file describe the same landscape (e.g. Hessians added to a surface)
SHARED_SETTINGS = ("model", "model_kwargs", "checkpoint_sha256", "directions_sha256", "dir_type")
SHOWN_POINTS = 8
JSON_ATTRIBUTES = ("_settings", "_provenance", "_runs")
# The HDF5 1.8 file format checksums its metadata (superblock v2, object headers v2, B-trees, heaps):
# damaged metadata is then an error when read, not a crash or a wrong object. Not 1.10's: its
# superblock marks a file open for writing, and default h5py readers then refuse it during a job
# (and after a killed one).
METADATA_CHECKSUMS = ("v108", "latest")


def settings_diff(stored, wanted, ignore=()):
    keys = sorted((set(stored) | set(wanted)) - set(ignore))
    return [f"{k}: file has {stored.get(k)!r}, this run has {wanted.get(k)!r}"
            for k in keys if stored.get(k) != wanted.get(k)]


def stored_settings(path, kind, record="settings"):
    """The settings (or with record="provenance", the first run's provenance) a file holds for `kind`, or None
    (no file, no such values, unreadable: prepare will say)."""
    try:
        with h5open(path) as f:
            return json.loads(f.attrs[f"{kind}_{record}"])
    except (OSError, KeyError, ValueError, TypeError):
        return None


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
    for other in QUANTITIES:
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


def _verified_done(f, layout, path):
    """The done mask after checking every finished point against its checksum."""
    grid, kind = layout.grid, layout.kind
    if checksum_name(kind) not in f:
        raise SurfaceFileError(f"refusing to resume {path}: it has no {checksum_name(kind)} (written by an older "
                               f"version, or damaged), so its finished values cannot be verified; use a new "
                               f"--surf_file or --overwrite")
    arrays = [f[name] for name in (done_name(kind), checksum_name(kind), *stored_quantities(f, layout))]
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


def in_current_form(stored, wanted):
    """Stored settings as this version writes them. Files written before the grid became one record
    hold the drivers' --x/--y as typed ('-1:1:51' or '-1.0:1.0:51'): where this run records the grid
    as [min, max, num] and the file holds a string that spells one, the string is read as that record
    (the coordinates themselves are compared by value as well). A Hessian map made before the curvature
    choice records none: it is the Hessian's. Anything else is compared as it is."""
    stored = dict(stored)
    if "curvature" in wanted and "curvature" not in stored:
        stored["curvature"] = "hessian"  # files made before curvature="ggn" / "ef" hold Hessian values
    for axis in ("x", "y"):
        if isinstance(wanted.get(axis), list) and isinstance(stored.get(axis), str):
            try:
                stored[axis] = list(parse_axis(stored[axis], axis))
            except GridSpecError:
                pass  # not a grid spelling: a difference, reported as such
    return stored


def _inspect(path, layout, settings):
    """Check an existing file without writing to it; the done mask of the layout's kind, or None if it has none."""
    kind = layout.kind
    with open_checked(path, "r") as f:
        try:
            check_is_results(f, path)
            _read_everything(f)
            _check_grid(f, layout.grid, path)
            _check_same_landscape(f, kind, settings, path)
            stored = f.attrs.get(f"{kind}_settings")
            if stored is None:
                if any(name in f for name in (*layout.quantities, done_name(kind))):
                    raise SurfaceFileError(f"refusing to add to {path}: it already holds {kind} values without "
                                           f"their settings (a reference-code file, or damaged); write to a new "
                                           f"--surf_file")
                return None
            diff = settings_diff(in_current_form(json.loads(stored), settings), settings)
            if diff:
                raise SurfaceFileError(
                    f"refusing to resume {path}: its {kind} settings differ from this run's:\n  "
                    + "\n  ".join(diff) + "\nrerun with the same settings, a new --surf_file, or --overwrite")
            return _verified_done(f, layout, path)
        except (KeyError, ValueError, TypeError, OSError, RuntimeError) as e:  # a damaged name, attribute or dataset
            raise SurfaceFileError(f"refusing to use {path}: its metadata is damaged ({type(e).__name__}: "
                                   f"{first_line(e)}); it was left untouched, use a new --surf_file or "
                                   f"--overwrite") from None


def _create(f, grid, dir_file):
    f.create_dataset("xcoordinates", data=grid.x)
    if grid.is_2d:
        f.create_dataset("ycoordinates", data=grid.y)
    f["dir_file"] = np.bytes_(str(dir_file).encode())  # fixed length: no global heap, whose damage crashes HDF5
    f.attrs["layout"] = grid.layout


def _add_kind(f, layout, settings, provenance):
    """The layout's datasets, all NaN and not done, and its settings and first provenance."""
    kind, shape = layout.kind, layout.grid.shape
    for name in layout.quantities:
        f.create_dataset(name, data=np.full(layout.shape_of(name), unfinished_value(name), dtype=dtype_of(name)),
                         track_times=False)
        for key, value in layout.dataset_attrs.get(name, {}).items():
            f[name].attrs[key] = value
    f.create_dataset(done_name(kind), data=np.zeros(shape, dtype=np.uint8), track_times=False)
    f.create_dataset(checksum_name(kind), data=np.zeros(shape, dtype=np.uint64), track_times=False)
    f[checksum_name(kind)].attrs["digest"] = DIGEST
    f.attrs[f"{kind}_settings"] = json.dumps(settings, sort_keys=True)
    f.attrs[f"{kind}_provenance"] = json.dumps(provenance, sort_keys=True)


def _record_run(f, kind, provenance):
    runs = json.loads(f.attrs.get(f"{kind}_runs", "[]")) + [provenance.get("started")]
    f.attrs[f"{kind}_runs"] = json.dumps(runs)
    f.attrs[f"{kind}_run_{len(runs)}"] = json.dumps(provenance, sort_keys=True)


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


def prepare(path, layout, settings, provenance, dir_file, overwrite=False):
    """Create or check the results file for one job kind; return the flat indices still to do.

    What the layout makes is fixed by `settings`, which a resume must match. Refusals (other grid,
    other settings, damaged file, no room) raise before anything is written, and a file with
    nothing left to do is not written at all.
    """
    grid, kind = layout.grid, layout.kind
    settings, order = jsonable(settings), coarse_to_fine(grid.shape)
    if os.path.isdir(path):
        open_checked(path)  # raises, naming the problem
    if overwrite or not os.path.exists(path):
        refusal = disk_refusal(path, grid.size, layout.values_per_point())
        if refusal:
            raise SurfaceFileError(f"not enough room: {refusal}")
        _replace(path, lambda f: (_create(f, grid, dir_file), _add_kind(f, layout, settings, provenance),
                                  _record_run(f, kind, provenance)), copy_first=False)
        drop_pending(path)  # points of a file that is no more
        return order
    done = _inspect(path, layout, settings)
    if done is None:
        _replace(path, lambda f: (_add_kind(f, layout, settings, provenance), _record_run(f, kind, provenance)),
                 copy_first=True)
        return order
    verified, missing = done.copy(), missing_added_later(path, layout)
    pending = [(i, v) for i, v in read_pending(path, layout.quantities) if 0 <= i < grid.size and not done.flat[i]]
    done.flat[[i for i, _ in pending]] = True
    todo = order[~done.reshape(-1)[order]]
    if len(todo) or pending:  # a finished file keeps its bytes, older layout included
        def edit(f):
            if missing:
                add_later_quantities(f, layout, settings, verified, missing)
            write_points(f, layout, pending)
            if len(todo):
                _record_run(f, kind, provenance)
        _replace(path, edit, copy_first=True)
    if missing and (len(todo) or pending):
        print(f"[{kind}] {path}: {added_later_note(missing, verified)}", flush=True)
    if pending:
        print(f"[{kind}] {path}: {len(pending)} point(s) saved by the ranks at the last stop were added", flush=True)
    drop_pending(path)
    return todo


def save_result(path, grid, values, done, attrs, dataset_attrs=None, dir_file=""):
    """Write a landscape held in memory (api.Result's parts: {name: array}, {kind: done mask}, the file
    attributes) as a results file that resumes like one a run wrote: each kind's values with its done
    mask and the checksum of every finished point (written as a commit writes them), its settings and
    provenance as recorded; other datasets (interpolations) as they are. Never replaces a file."""
    if os.path.exists(path):
        raise SurfaceFileError(f"{path} exists; save the result under a new name (a results file is never replaced)")
    dataset_attrs = dataset_attrs or {}

    def fill(f):
        _create(f, grid, dir_file)
        written = set()
        for kind, mask in done.items():
            layout = _saved_layout(grid, kind, values, dataset_attrs)
            _add_kind(f, layout, json.loads(attrs.get(f"{kind}_settings", "{}")),
                      json.loads(attrs.get(f"{kind}_provenance", "{}")))
            rows = [np.asarray(values[name]).reshape(grid.size, -1) for name in layout.quantities]
            shapes = [layout.trailing.get(name, ()) for name in layout.quantities]
            write_points(f, layout, [(i, [row[i].reshape(shape) for row, shape in zip(rows, shapes)])
                                     for i in np.flatnonzero(np.asarray(mask).reshape(-1))])
            written.update(layout.quantities)
        for name, value in values.items():
            if name not in written:
                f.create_dataset(name, data=value, track_times=False)
        for key, value in attrs.items():
            f.attrs[key] = value if isinstance(value, (str, int, float)) else json.dumps(value)
    _replace(path, fill, copy_first=False)


def _saved_layout(grid, kind, values, dataset_attrs):
    names = in_storage_order(kind, [name for name in values if kind_of(name) == kind])
    trailing = {name: np.shape(values[name])[len(grid.shape):] for name in names}
    return Layout(grid, kind, names, {n: t for n, t in trailing.items() if t},
                  {n: a for n, a in dataset_attrs.items() if n in names})
