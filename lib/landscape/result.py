"""A landscape held in memory: coordinates, values shaped (len(y), len(x)) (or (len(x),) in 1D), done masks.

What `landscape.surface`, `landscape.hessian_map` and `landscape.load` return. Unfinished points are NaN
and only the done masks say what is finished. `.save(path)` writes the results-file layout of surfile.py.
"""
import json

import h5py
import numpy as np

from .grid import Grid
from .surfile import KINDS, TEST_QUANTITIES, done_name, interp_name, read_results

SURFACE_NAMES = KINDS["surface"] + TEST_QUANTITIES


class Result:
    def __init__(self, x, y, values, done, attrs=None):
        self.x, self.y = np.asarray(x), None if y is None else np.asarray(y)
        self.values, self.done, self.attrs = dict(values), dict(done), dict(attrs or {})

    @classmethod
    def from_file(cls, path):
        r = read_results(path)
        done = {name[:-len("_done")]: r[name].astype(bool) for name in r if name.endswith("_done")}
        coords = {"xcoordinates", "ycoordinates", "dir_file", "attrs", "grid"}
        values = {n: v for n, v in r.items() if n not in coords and not n.endswith(("_done", "_checksum"))}
        return cls(r["xcoordinates"], r.get("ycoordinates"), values, done, r["attrs"])

    @property
    def grid(self):
        return Grid(self.x, self.y)

    def __getattr__(self, name):  # train_loss, test_acc, max_eig, ...: None when the file has no such values
        if name.startswith("_") or name in ("values", "done", "attrs", "x", "y"):
            raise AttributeError(name)
        if name in self.values or name in SURFACE_NAMES or name in KINDS["hessian"]:
            return self.values.get(name)
        raise AttributeError(f"{type(self).__name__} has no attribute {name!r}")

    @property
    def complete(self):
        return all(self.is_complete(kind) for kind in self.done)

    def is_complete(self, kind):
        """Every point of `kind` ('surface', 'hessian') is done, or an adaptive run finished its
        refinement (its '<name>_interp' full grid exists only then)."""
        return bool(self.done[kind].all()) or interp_name(KINDS[kind][0]) in self.values

    def __repr__(self):
        shape = "x".join(str(n) for n in self.grid.shape)
        done = ", ".join(f"{kind} {int(m.sum())}/{m.size} done" for kind, m in self.done.items())
        return f"Result({shape} grid; {', '.join(sorted(self.values))}; {done})"

    def save(self, path):
        """Write a results file (same layout as plot_surface.py's) holding exactly these values."""
        with h5py.File(path, "w-") as f:
            f["xcoordinates"] = self.x
            if self.y is not None:
                f["ycoordinates"] = self.y
            f["dir_file"] = str(self.attrs.get("dir_file", ""))
            f.attrs["layout"] = self.grid.layout
            for name, value in self.values.items():
                f[name] = value
            for kind, mask in self.done.items():
                f[done_name(kind)] = mask.astype(np.uint8)
            for key, value in self.attrs.items():
                f.attrs[key] = value if isinstance(value, (str, int, float)) else json.dumps(value)

    def plot(self, name="train_loss", **options):
        """Matplotlib figures of one quantity: {'1d'} for a 1D grid, else {'contour', 'contourf',
        'heatmap', 'surface3d'}; options (vmin, vmax, vlevel, log) go to the plotting functions."""
        from . import plotting
        z = self.values.get(name)
        if z is None:
            raise KeyError(f"no {name!r} in this result; it has {', '.join(sorted(self.values))}")
        if self.y is None:
            test = name.replace("train", "test") if name.startswith("train") else None
            return {"1d": plotting.plot_1d(self.x, z, test_loss=self.values.get(test), log=options.get("log", False))}
        levels = {k: options.get(k) for k in ("vmin", "vmax", "vlevel")}
        log = options.get("log", False)
        return {"contour": plotting.plot_contour(self.x, self.y, z, log=log, **levels),
                "contourf": plotting.plot_contour(self.x, self.y, z, filled=True, log=log, **levels),
                "heatmap": plotting.plot_heatmap(self.x, self.y, z, levels["vmin"], levels["vmax"], log, label=name),
                "surface3d": plotting.plot_surface3d(self.x, self.y, z, levels["vmin"], levels["vmax"], log)}
