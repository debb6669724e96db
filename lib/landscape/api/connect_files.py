"""Mode-connectivity results files read back for python -m landscape.render: which kind a file is (its
settings say: interpolate and evaluate_curve record `line`, curve_plane `plane`, barrier_matrix `line`
and `models`), its points as a LossPath or a BarrierMatrix, and their figures: loss and accuracy along t
with the barriers marked (a line's aligned partner <stem>_aligned.h5 beside it drawn too), the barrier
matrix's heatmaps. A plane's file holds no points of its curve, so it is drawn as a plain surface."""
import json
import os

import numpy as np

from ..files.results import done_name, read_results
from .loss_path import PathQuantities
from .matrix_result import BarrierMatrix, figure_rows

PATH_KINDS = ("line", "curve", "plane", "matrix")


def connectivity_kind(results):
    """'line', 'curve', 'plane' or 'matrix' for a file written by interpolate, evaluate_curve, curve_plane or
    barrier_matrix (read_results' dict); None for any other results file."""
    settings = json.loads(results["attrs"].get("surface_settings", "{}"))
    if "models" in settings and "lines" in settings:
        return "matrix"
    if "plane" in settings:
        return "plane"
    if "line" in settings and not results["grid"].is_2d:
        return "line" if settings["line"] == "linear" else "curve"
    return None


def path_of_results(results, file=None):
    """The LossPath of a line's or a curve's results file (read_results' dict), NaN where not done; its
    barrier() is interpolate's."""
    settings = json.loads(results["attrs"]["surface_settings"])
    record = _quantities(results, settings)
    done = results[done_name("surface")].astype(bool)
    columns = {name: np.where(done, results[name], np.nan) for name in record.quantities}  # a gap where not done
    return record.path(results["grid"].x, columns, done, file)


def matrix_of_results(results, file=None):
    """The BarrierMatrix of a barrier_matrix results file (read_results' dict), its barriers linear."""
    settings = json.loads(results["attrs"]["surface_settings"])
    record = _quantities(results, settings)
    lines = tuple((int(i), int(j), bool(aligned)) for i, j, aligned in settings["lines"])
    done = results[done_name("surface")].astype(bool)
    values = {name: np.where(done, results[name], np.nan) for name in record.quantities}
    return BarrierMatrix(tuple(settings["models"]), lines, np.asarray(results["grid"].x), values, done, record.bn,
                         record.bn_batches, path=file)


def _quantities(results, settings):
    return PathQuantities(settings.get("bn", "keep"), int(settings.get("bn_batches_used") or 0),
                          "train_acc" in results, "test_loss" in results)


def aligned_partner(path):
    """<stem>_aligned.h5 beside a line's file (what `connect line --align` writes), if it is there."""
    stem, extension = os.path.splitext(os.fspath(path))
    partner = f"{stem}_aligned{extension or '.h5'}"
    return partner if not stem.endswith("_aligned") and os.path.exists(partner) else None


def labelled_paths(path, results, kind):
    """[(label, LossPath)] to draw: the file's path, and for a line its aligned partner where there is one."""
    if kind == "curve":
        settings = json.loads(results["attrs"]["surface_settings"])
        return [(f"{settings['line']} curve", path_of_results(results, path))]
    paths = [("line", path_of_results(results, path))]
    partner = aligned_partner(path)
    if partner is not None:
        partner_results = read_results(partner)
        if connectivity_kind(partner_results) == "line":
            paths.append(("aligned line", path_of_results(partner_results, partner)))
    return paths


def along_t_figure(paths, kind):
    """plot_paths' figure of [(label, LossPath)], its title naming what they are and any unfinished points."""
    from ..plot.connect import plot_paths  # matplotlib only once something is drawn
    title = ("Line between the models" if kind == "line" else "Curve between the models") + \
        (", before and after alignment" if len(paths) > 1 else "")
    missing = [f"{label}: {int(np.sum(~p.done))} of {len(p.t)} points not done" for label, p in paths if not p.complete]
    return plot_paths(paths, title="\n".join([title, *missing]))


def barrier_lines(paths):
    """One sentence per path and quantity: its barrier (linear), for the page's caption."""
    out = []
    for label, p in paths:
        for name in ("train_loss", "test_loss", "train_acc", "test_acc"):
            if getattr(p, name) is not None:
                value = f"{p.barrier(name):.4g}" if p.complete else "unfinished"
                out.append(f"{label}: {name} barrier {value}{' %' if name.endswith('acc') and p.complete else ''}")
    return out


def matrix_figure(matrix):
    from ..plot.barriers import plot_barrier_matrices
    rows, labels = figure_rows(matrix)
    return plot_barrier_matrices(list(matrix.names), rows, labels)


def matrix_lines(matrix):
    """The spanning tree of each matrix in a sentence, for the page's caption."""
    out = []
    for name in ("train_loss", "test_loss"):
        for aligned in (False, True)[:1 + matrix.aligned] if name in matrix.values else ():
            when = (", after alignment" if aligned else ", before alignment") if matrix.aligned else ""
            out.append(f"{name} barrier tree{when}: {matrix.tree(name, aligned=aligned).describe()}")
    return out


def connectivity_figures(path, results=None):
    """(kind, [(stem suffix, Figure, caption lines)]) for a connectivity file; (kind, []) for a plane (drawn
    as a surface) and (None, []) for any other file."""
    results = read_results(path) if results is None else results
    kind = connectivity_kind(results)
    if kind in ("line", "curve"):
        paths = labelled_paths(path, results, kind)
        return kind, [("along_t", along_t_figure(paths, kind), barrier_lines(paths))]
    if kind == "matrix":
        matrix = matrix_of_results(results, path)
        return kind, [("barriers", matrix_figure(matrix), matrix_lines(matrix))]
    return kind, []
