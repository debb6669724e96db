"""Direction files in the reference's HDF5 layout, plus our own attributes.

Layout: group 'xdirection' (and 'ydirection' for 2D) with one dataset per entry, named
'0'..'n-1' in model order, each with the entry's own shape. Reference files carry no
attributes and still load. Ours add: names (JSON list), dir_type, norms, ignores, seed, ...
"""
import hashlib
import json
import os
from dataclasses import dataclass, field

import h5py
import numpy as np
import torch

from ..errors import DirectionError
from ..space.finite import first_nonfinite
from .atomic import write_hdf5


@dataclass
class Directions:
    x: list
    y: list = None
    attrs: dict = field(default_factory=dict)
    path: str = None  # the file these were read from or saved to; results files record it

    @property
    def is_2d(self):
        return self.y is not None

    @property
    def values(self):
        """The eigenvalues of eigen directions (eigen_directions: x's first, then y's); None for others."""
        values = self.attrs.get("eig_values")
        return None if values is None else [float(v) for v in values]

    def save(self, path, overwrite=False):
        """Write the reference layout (groups xdirection/ydirection of '0'..'n-1') to `path`, atomically.
        An existing file (a checkpoint, a results file, these directions' own) is replaced only with overwrite."""
        if os.path.lexists(path) and not overwrite:
            raise DirectionError(f"{path} exists; Directions.save replaces a file only with overwrite=True")
        write_directions(path, self)
        self.path = str(path)


def write_directions(path, dirs, extra_datasets=None):
    """Write `dirs` (lists of tensors or arrays) to `path`, whole or not at all; a DirectionError
    naming the file when it cannot be written."""
    write_hdf5(path, lambda f: _fill(f, dirs, extra_datasets), DirectionError, "the direction file ")


def _fill(f, dirs, extra_datasets):
    for group, direction in (("xdirection", dirs.x), ("ydirection", dirs.y)):
        if direction is None:
            continue
        g = f.create_group(group)
        for i, d in enumerate(direction):
            g.create_dataset(str(i), data=np.asarray(d, dtype=np.float32))
    for key, value in (extra_datasets or {}).items():
        f.create_dataset(key, data=value)
    for key, value in dirs.attrs.items():
        f.attrs[key] = json.dumps(value) if isinstance(value, (list, dict)) else value


def read_directions(path):
    try:
        f = h5py.File(path, "r")
    except (OSError, FileNotFoundError) as e:
        raise DirectionError(f"cannot read direction file {path}: {e}") from None
    with f:
        if "xdirection" not in f:
            raise DirectionError(f"{path} is not a direction file: it has no 'xdirection' group")
        x = _read_group(f["xdirection"])
        y = _read_group(f["ydirection"]) if "ydirection" in f else None
        attrs = {k: _decode(v) for k, v in f.attrs.items()}
    return Directions(x, y, attrs, str(path))


def _read_group(g):
    return [g[str(i)][()] for i in range(len(g))]


def _decode(v):
    if isinstance(v, bytes):
        v = v.decode()
    if isinstance(v, str) and v[:1] in "[{":
        try:
            return json.loads(v)
        except ValueError:
            return v
    return v.item() if isinstance(v, np.generic) else v


def check_fits(dirs, names, shapes, path):
    """Raise DirectionError unless each direction has one entry per model entry with its shape, all finite."""
    for axis, direction in (("x", dirs.x), ("y", dirs.y)):
        if direction is None:
            continue
        if len(direction) != len(shapes):
            raise DirectionError(
                f"direction file {path} was made for another model or dir_type: its {axis}direction has "
                f"{len(direction)} entries, the model has {len(shapes)} ({dirs.attrs.get('dir_type', '?')} "
                f"file vs the requested entries)")
        for i, (d, shape) in enumerate(zip(direction, shapes)):
            if tuple(d.shape) != tuple(shape):
                raise DirectionError(
                    f"direction file {path} was made for another model: {axis}direction/{i} has shape "
                    f"{tuple(d.shape)} but model entry {names[i]!r} has shape {tuple(shape)}")
        found = first_nonfinite(((f"{axis}direction/{i} ({names[i]!r})", d) for i, d in enumerate(direction)),
                                torch.float32)  # the precision the points are set in (flatparams)
        if found is not None:
            raise DirectionError(f"direction file {path}: {found[0]} holds {found[1]} NaN or infinite value(s); "
                                 f"a direction must be finite, or every point along it is NaN")


def directions_digest(dirs):
    """Hash of the direction values, stored with results so a resume can tell directions apart."""
    h = hashlib.sha256()
    for direction in (dirs.x, dirs.y or []):
        for d in direction:
            h.update(np.ascontiguousarray(d, dtype=np.float32).tobytes())
    return h.hexdigest()
