"""The maps a results file holds, ready to draw: every value dataset shaped like the grid.

A quantity's values are NaN wherever its job kind's done mask is 0 (unfinished points are gaps,
never zeros). Where an adaptive run left `<name>_interp` (full grid: computed values kept, the rest
interpolated), that is drawn instead, and its note says so. |λmin/λmax| is derived from
min_eig/max_eig. Datasets with an extra trailing dimension (grid + (k,)) are not maps: skipped, and
so are boolean flags (eig_converged): the quantities of the λmin/λmax run carry its unconverged
points instead, which their note counts and the plots mark.
"""
import json
from dataclasses import dataclass

import numpy as np

from ..errors import PlotOptionError
from ..files.results import INTERP_SUFFIX, QUANTITIES, done_name, kind_of, unconverged_points, value_names
from .hessian import eig_abs_ratio

LABELS = {"train_loss": "train loss", "test_loss": "test loss", "train_acc": "train accuracy (%)",
          "test_acc": "test accuracy (%)", "min_eig": "λmin (Hessian)", "max_eig": "λmax (Hessian)",
          "eig_ratio": "|λmin/λmax|", "eig_iters": "Lanczos iterations", "eig_res_max": "λmax residual",
          "eig_res_min": "λmin residual", "trace": "Hessian trace", "neg_mass": "negative eigenvalue mass"}
OPERATOR_NAMES = {"hessian": "Hessian", "ggn": "GGN", "ef": "empirical Fisher"}  # hessian_map's curvature=
# Values of the λmin/λmax Lanczos run, whose convergence eig_converged records per point
FROM_EIG_RUN = ("min_eig", "max_eig", "eig_ratio", "eig_iters", "eig_res_max", "eig_res_min")
# Listed first in menus, in this order; any other map follows alphabetically.
FIRST = ("train_loss", "test_loss", "train_acc", "test_acc", "min_eig", "max_eig", "eig_ratio", "trace",
         "neg_mass")


@dataclass(frozen=True)
class Quantity:
    name: str           # dataset name, or eig_ratio for the derived |λmin/λmax|
    label: str          # what an axis or colourbar says
    values: np.ndarray  # shaped like the grid, NaN where there is nothing to draw
    computed: int       # points finished for this quantity's kind
    interpolated: bool  # drawn from <name>_interp
    unconverged: np.ndarray = None  # grid-shaped bool: drawn points whose eigenvalue run did not converge

    @property
    def is_loss(self):
        return self.name.endswith("loss")

    @property
    def note(self):
        """One line for a title: where the values come from, what is blank, what is marked."""
        return self.noted(marked=True)

    def noted(self, marked):
        """The note, for a figure that marks unconverged points (2D maps, curves) or not (a 3D surface)."""
        total, blank = self.values.size, int(np.count_nonzero(~np.isfinite(self.values)))
        parts = [f"interpolated from {self.computed} computed points"] if self.interpolated else []
        if blank:
            parts.append(f"{blank} of {total} points not drawn (unfinished or NaN)")
        if self.unconverged_count:
            marks = " (marked ×)" if marked else ""
            parts.append(f"{self.unconverged_count} of {total} points did not converge{marks}")
        return "; ".join(parts)

    @property
    def unconverged_count(self):
        return 0 if self.unconverged is None else int(np.count_nonzero(self.unconverged))

    def title(self):
        return self.label + (f"\n{self.note}" if self.note else "")


def done_mask(results, name):
    """Finished points of a quantity: its kind's mask; one of no known kind is finished where not NaN
    (every value dataset starts as NaN) and where any kind's mask says finished."""
    kind = kind_of(name)
    if kind is not None and done_name(kind) in results:
        return results[done_name(kind)].astype(bool)
    masks = [results[done_name(k)].astype(bool) for k in QUANTITIES if done_name(k) in results]
    return np.logical_or.reduce(masks) if masks else np.isfinite(results[name])


def is_map(results, name):
    value = results[name]
    return (isinstance(value, np.ndarray) and value.shape == results["grid"].shape and value.dtype.kind in "fiu"
            and not name.endswith(INTERP_SUFFIX))


def quantity(results, name):
    """One Quantity from read_results' dict, preferring <name>_interp."""
    done = done_mask(results, name)
    interp = results.get(name + INTERP_SUFFIX)
    if interp is not None and interp.shape == done.shape:
        values = np.asarray(interp, dtype=float)
    else:
        values = np.where(done, results[name].astype(float), np.nan)
    unconverged = unconverged_points(results) if name in FROM_EIG_RUN else None
    label = LABELS.get(name, name.replace("_", " ")).replace("Hessian", operator_name(results))
    return Quantity(name, label, values, int(done.sum()), interp is not None, unconverged)


def hessian_setting(results, key, default):
    """One of the file's hessian_settings; default where the file has none or not ours."""
    settings = results.get("attrs", {}).get("hessian_settings")
    try:
        return json.loads(settings).get(key, default) if settings is not None else default
    except (TypeError, ValueError, AttributeError):  # not our JSON: a foreign file's attribute
        return default


def operator_name(results):
    """Which matrix the curvature values are of, for labels: the file's hessian_settings say (a file made
    before the operators existed, or by the reference code, holds the Hessian's)."""
    return OPERATOR_NAMES.get(hessian_setting(results, "curvature", "hessian"), "Hessian")


def density_steps(results):
    """Lanczos steps per probe of the file's spectral densities: its nodes per point over the probes its
    settings name ('PROBES/STEPS'; fewer steps than asked where the matrix is smaller); None when unknown."""
    probes = str(hessian_setting(results, "density", "")).split("/")[0]
    if not probes.isdigit() or int(probes) < 1 or "esd_nodes" not in results:
        return None
    per_point, count = results["esd_nodes"].shape[-1], int(probes)
    return per_point // count if per_point % count == 0 else None


def eig_ratio_quantity(low, high):
    return Quantity("eig_ratio", LABELS["eig_ratio"], eig_abs_ratio(low.values, high.values),
                    min(low.computed, high.computed), low.interpolated or high.interpolated, low.unconverged)


def sort_key(name):
    return (FIRST.index(name), "") if name in FIRST else (len(FIRST), name)


def quantities(results):
    """Every map of the file, derived |λmin/λmax| included, in menu order (losses first)."""
    found = {name: quantity(results, name) for name in value_names(results) if is_map(results, name)}
    if "min_eig" in found and "max_eig" in found:
        found["eig_ratio"] = eig_ratio_quantity(found["min_eig"], found["max_eig"])
    return [found[name] for name in sorted(found, key=sort_key)]


def find(results, name):
    """The named Quantity, or None when the file has no such map."""
    return next((q for q in quantities(results) if q.name == name), None)


def chosen(results, name, source="the results file"):
    """The quantity a --surf_name (or surf_name=) picks: the one check every output makes (plots,
    page, VTK), so none accepts a name another refuses. None picks the first map in menu order
    (train_loss where the file has one); `source` names the file in the message."""
    found = quantities(results)
    if not found:
        raise PlotOptionError(f"{source} holds no map to draw")
    if name is None:
        return found[0]
    q = next((q for q in found if q.name == name), None)
    if q is None:
        raise PlotOptionError(f"{source} has no map {name!r}; it has {', '.join(m.name for m in found)}")
    return q
