"""A landscape held in memory: coordinates, values shaped (len(y), len(x)) (or (len(x),) in 1D), done masks.

What `landscape.surface`, `landscape.hessian_map` and `landscape.load` return. Unfinished points are NaN
(False in the boolean eig_converged) and only the done masks say what is finished. `.save(path)` writes a
results file through the files package, checksums and settings included, so a saved Result resumes like
the file a run writes.
"""
import numpy as np

from ..files.results import QUANTITIES, done_masks, interp_name, read_results, unconverged_points, value_names
from ..files.resume import save_result
from ..space.grid import Grid


class Result:
    def __init__(self, x, y, values, done, attrs=None, dataset_attrs=None, dir_file=""):
        self.x, self.y = np.asarray(x), None if y is None else np.asarray(y)
        self.values, self.done, self.attrs = dict(values), dict(done), dict(attrs or {})
        self.dataset_attrs, self.dir_file = dict(dataset_attrs or {}), dir_file
        self.path = None  # the results file read (where a run left it), None for one in memory or deleted

    @classmethod
    def from_file(cls, path):
        r = read_results(path)
        values = {name: r[name] for name in value_names(r)}
        dir_file = r.get("dir_file", b"")  # a file of other tools may have none
        dir_file = dir_file.decode() if isinstance(dir_file, bytes) else str(dir_file)
        result = cls(r["xcoordinates"], r.get("ycoordinates"), values, done_masks(r), r["attrs"], r["dataset_attrs"],
                     dir_file)
        result.path = str(path)
        return result

    @classmethod
    def nothing_done(cls, layout, dir_file=""):
        """The Result of a call stopped before its grid started: every value NaN, every point undone."""
        values = {name: np.full(layout.shape_of(name), np.nan) for name in layout.quantities}
        done = {layout.kind: np.zeros(layout.grid.shape, dtype=bool)}
        return cls(layout.grid.x, layout.grid.y, values, done, dataset_attrs=layout.dataset_attrs, dir_file=dir_file)

    @property
    def grid(self):
        return Grid(self.x, self.y)

    def __getattr__(self, name):  # train_loss, test_acc, max_eig, ...: None when the file has no such values
        if name.startswith("_") or name in ("values", "done", "attrs", "dataset_attrs", "dir_file", "x", "y", "path"):
            raise AttributeError(name)
        if name in self.values or any(name in names for names in QUANTITIES.values()):
            return self.values.get(name)
        raise AttributeError(f"{type(self).__name__} has no attribute {name!r}")

    @property
    def unconverged(self):
        """Finished points whose λmin/λmax Lanczos run ended at max_iter before meeting tol (a bool grid,
        from the per-point flag eig_converged); None without Hessian values or for a file older than the flag."""
        if "hessian" not in self.done:
            return None
        return unconverged_points(dict(self.values, hessian_done=self.done["hessian"]))

    @property
    def complete(self):
        return all(self.is_complete(kind) for kind in self.done)

    def is_complete(self, kind):
        """Every point of `kind` ('surface', 'hessian') is done, or an adaptive run finished its
        refinement (its '<name>_interp' full grid exists only then)."""
        return bool(self.done[kind].all()) or interp_name(QUANTITIES[kind][0]) in self.values

    def __repr__(self):
        shape = "x".join(str(n) for n in self.grid.shape)
        done = ", ".join(f"{kind} {int(m.sum())}/{m.size} done" for kind, m in self.done.items())
        return f"Result({shape} grid; {', '.join(sorted(self.values))}; {done})"

    def save(self, path):
        """Write a results file (plot_surface.py's layout) holding exactly these values, with the checksums
        and settings a resume checks: `landscape.surface(..., path=path)` continues it. Never replaces a file."""
        save_result(str(path), self.grid, self.values, self.done, self.attrs, self.dataset_attrs, self.dir_file)

    def plot(self, name="train_loss", **options):
        """Matplotlib figures of one quantity: {'1d'} for a 1D grid, else {'contour', 'contourf',
        'heatmap', 'surface3d'}; options (vmin, vmax, vlevel, log) go to the plotting functions."""
        from ..plot.curves import plot_1d  # matplotlib only once something is drawn
        from ..plot.maps import plot_contour, plot_heatmap, plot_surface3d
        z = self.values.get(name)
        if z is None:
            raise KeyError(f"no {name!r} in this result; it has {', '.join(sorted(self.values))}")
        if self.y is None:
            test = name.replace("train", "test") if name.startswith("train") else None
            return {"1d": plot_1d(self.x, z, test_loss=self.values.get(test), log=options.get("log", False))}
        levels = {k: options.get(k) for k in ("vmin", "vmax", "vlevel")}
        log = options.get("log", False)
        return {"contour": plot_contour(self.x, self.y, z, log=log, **levels),
                "contourf": plot_contour(self.x, self.y, z, filled=True, log=log, **levels),
                "heatmap": plot_heatmap(self.x, self.y, z, levels["vmin"], levels["vmax"], log, label=name),
                "surface3d": plot_surface3d(self.x, self.y, z, levels["vmin"], levels["vmax"], log)}
