"""landscape.barrier_matrix: the barrier between every two of many minima, before and after aligning their
units, and the minimum spanning tree of those barriers (Draxler et al. 2018).

    m = landscape.barrier_matrix([("a", model_a), ("b", model_b), ("c", model_c)], (x, y), n=11,
                                 align=landscape.align, path="matrix.h5")
    m.matrix()                       # (3, 3) train-loss barriers (linear), before alignment
    m.matrix(aligned=True)           # along the lines from model i to align(model i, model j)
    m.tree().edges, m.tree().max_edge

Design: the lines are the rows of one 2D grid job (job/run.py), x = t from 0 to 1 (n points), y = the
line's index: every pair i < j from model i to model j, then, with align, every pair from model i to
align(model i, model j). The quantities are interpolate's, in surface's results layout, so the (line, t)
points are split across the ranks, committed with their checksums and resumed by the same call. Each
point is interpolate's (path_eval.PointEvaluator, model i's module moved to w(t) by
connect.line_positions, BatchNorm statistics re-estimated), bit for bit. A rank keeps its last line's
two models (built, aligned, on the device) for the next point of the same line.
"""
import contextlib
import json

import numpy as np
import torch

from ..errors import ChoiceError, LandscapeError, ModelError
from ..files.results import Layout
from ..inputs.first_batch import error_line, model_errors
from ..inputs.user import state_digest
from ..job.mpi import abort_on_uncaught, init_world, rank0_first
from ..space.grid import make_grid
from ..space.model_io import qualified_name
from ..space.paths import architecture_mismatch, check_barrier_kind
from .align import METHODS as ALIGN_METHODS
from .align import align as align_models
from .connect import check_named_model, line_positions
from .matrix_result import BarrierMatrix, write_outputs
from .path_eval import (
    PathOptions,
    check_path_inputs,
    check_path_options,
    path_identity,
    path_settings,
    point_evaluator,
    run_points_job,
)
from .session import evaluated_on

MATRIX_DIR_FILE = "(barrier matrix: lines between models)"


def barrier_matrix(models, data, n=11, test_data=None, loss=None, bn="recompute", bn_batches=None, align=None,
                   kind="linear", batch_size=256, device=None, precision="fp32", path=None, csv=None, figure=None,
                   overwrite=False, settings=None, job=None, progress_secs=10.0):
    """The points of the line between every two models (i < j), and, with align, of the line from model i
    to align(model i, model j); returns a BarrierMatrix (.matrix(), .tree(), .path_of(a, b)).

    models: a list of nn.Modules (named model0, model1, ...) or of (name, model or factory) pairs, a
    factory being a callable of no arguments that builds the model (e.g. loads a checkpoint): a rank
    builds a model only for the lines it computes. All must share one architecture. data, test_data,
    loss, n, bn, bn_batches, batch_size, device, precision: as for landscape.interpolate, which each
    line equals. align: None; a function align(model_a, model_b) returning a copy of model_b aligned to
    model_a (a module, or landscape.align's result with its .model), called anew by each rank that
    computes a point of the line, so it must be deterministic; or 'weights' / 'activations' for
    landscape.align with that method (activations matched on `data`). kind: the barrier kind ('linear'
    or 'mean') of the figure, the printed trees and BarrierMatrix's defaults.

    path: the HDF5 results file (None: a temporary one); a rerun with the same path and settings
    computes only the points not yet done. Its settings record the model names, their state digests,
    the lines and the align function. csv: the barriers, one row per line (default <path stem>_barriers.csv
    when path is given); figure: a PNG's stem (default <path stem>_barriers). overwrite, settings, job
    (JobOptions: stop, commit intervals) and progress_secs as for landscape.surface.
    """
    names, entries = named_models(models)
    check_path_options(n, bn, bn_batches, batch_size)
    check_barrier_kind(kind)
    aligner, align_label = aligner_of(align, data)
    options = PathOptions(data, test_data, loss, bn, bn_batches, batch_size, device, precision, path, overwrite,
                          settings, job, progress_secs)
    loss_total = check_path_inputs(options)
    lines = lines_of(len(names), aligner is not None)
    grid = make_grid((0.0, 1.0, n), (0.0, float(len(lines) - 1), len(lines)))
    world = init_world()
    abort_on_uncaught(world)
    first, digests = check_models(names, entries, digest=world.rank == 0 and settings is None)
    with point_evaluator(first, options, loss_total, world) as evaluator:
        quantities = evaluator.record.quantities
        described = dict(models=json.dumps(names), lines=json.dumps(lines), align=str(align_label))
        layout = Layout(grid, "surface", quantities, dataset_attrs={name: described for name in quantities})
        identity = path_identity(grid, options, lambda: dict(line="linear", model_sha256=digests))
        settings_of = path_settings(options, identity, evaluator, models=names, lines=lines, align=align_label)
        with LineCache(names, entries, lines, aligner, grid.x, evaluator) as cache:
            result = run_points_job(world, evaluator, options, layout, cache.evaluate, settings_of, MATRIX_DIR_FILE)
    matrix = BarrierMatrix(tuple(names), tuple(lines), np.asarray(result.x),
                           {name: np.asarray(result.values[name]) for name in quantities},
                           np.asarray(result.done["surface"]).astype(bool), bn, evaluator.record.bn_batches, kind,
                           result.path)
    if matrix.path is not None or csv or figure:
        matrix = rank0_first(world, lambda: write_outputs(matrix, csv, figure))
    return matrix


def named_models(models):
    """(names, entries): each entry a module or a factory; refused in one line unless a list of at least
    two modules or (name, model or factory) pairs with unique names."""
    if isinstance(models, torch.nn.Module) or not isinstance(models, (list, tuple)):
        raise ChoiceError(f"models must be a list of models or of (name, model or factory) pairs; got a "
                          f"{type(models).__name__}")
    names, entries = [], []
    for k, entry in enumerate(models):
        if isinstance(entry, torch.nn.Module):
            entry = (f"model{k}", entry)
        if not (isinstance(entry, (tuple, list)) and len(entry) == 2 and isinstance(entry[0], str)
                and callable(entry[1])):
            raise ChoiceError(f"models[{k}] is a {type(entry).__name__}: give an nn.Module or a (name, model or "
                              f"factory) pair")
        names.append(entry[0])
        entries.append(entry[1])
    if len(names) < 2:
        raise ChoiceError(f"a barrier matrix needs at least two models; got {len(names)}")
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        raise ChoiceError(f"model names must be unique; {', '.join(map(repr, twice))} is given more than once")
    return names, entries


def lines_of(count, aligned):
    """[(i, j, aligned)]: every pair i < j, then (with alignment) every pair again, aligned."""
    pairs = [(i, j) for i in range(count) for j in range(i + 1, count)]
    return [(i, j, False) for i, j in pairs] + ([(i, j, True) for i, j in pairs] if aligned else [])


def aligner_of(align, data):
    """(align(model_a, model_b) -> aligned copy of model_b, its label for the settings), or (None, None)."""
    if align is None:
        return None, None
    if isinstance(align, str) and align in ALIGN_METHODS:
        used = data if align == "activations" else None
        return (lambda a, b: align_models(a, b, method=align, data=used)), f"landscape.align:{align}"
    if callable(align) and not isinstance(align, str):
        return align, qualified_name(align)
    raise ChoiceError(f"align={align!r}: give None, one of {', '.join(ALIGN_METHODS)}, or a function "
                      f"align(model_a, model_b) returning an aligned copy of model_b")


def model_of(name, entry):
    """The module of one entry: itself, or what its factory builds (a failing factory named in one line)."""
    if isinstance(entry, torch.nn.Module):
        return entry
    with model_errors(None, f"{name!r}", "to build (its factory raised)"):
        model = entry()
    if not isinstance(model, torch.nn.Module):
        raise ModelError(f"model {name!r}: its factory returned a {type(model).__name__}, not an nn.Module")
    return model


def check_models(names, entries, digest):
    """Every model is a finite nn.Module of the first one's architecture (each rank builds each once):
    (the first, [each one's state digest] where `digest` asks (rank 0, for the results file), else None)."""
    first, digests = None, []
    for name, entry in zip(names, entries):
        model = model_of(name, entry)
        check_named_model(model, f"model {name!r}")
        found = None if first is None else architecture_mismatch(first, model)
        if found is not None:
            raise ModelError(f"models {names[0]!r} (model_a) and {name!r} (model_b) differ, so no line joins "
                             f"their weights: {found}")
        first = model if first is None else first
        if digest:
            digests.append(state_digest(model))
    return first, digests if digest else None


class LineCache:
    """A rank's current line: model i in eval mode on the device, moved along towards model j (or
    align(model i, model j)); the next point of the same line reuses it, a point of another line first
    puts model i back (its state, mode and device) and builds that line. Closed when the block ends."""

    def __init__(self, names, entries, lines, aligner, t, evaluator):
        self.names, self.entries, self.lines, self.aligner, self.t, self.evaluator = \
            names, entries, lines, aligner, t, evaluator
        self.row, self.model, self.move_to, self.held = None, None, None, contextlib.ExitStack()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        self.row = self.model = self.move_to = None
        self.held.close()

    def evaluate(self, index):
        """The quantities at flat index `index`: line index // n, t index % n."""
        row, k = divmod(int(index), len(self.t))
        if row != self.row:
            self.close()
            self._open(row)
        try:
            t = float(self.t[k])
            return self.evaluator.at(self.model, self.move_to, t, f"at t = {t:g} of the line")
        except ModelError as e:
            raise ModelError(f"{e} (the line {self._label(row)})") from None

    def _open(self, row):
        i, j, aligned = self.lines[row]
        held = contextlib.ExitStack()
        with contextlib.ExitStack() as on_error:
            on_error.callback(held.close)
            model_a = model_of(self.names[i], self.entries[i])
            device = self.evaluator.device
            held.enter_context(evaluated_on(model_a, device))
            model_b = model_of(self.names[j], self.entries[j])
            if aligned:
                with evaluated_on(model_b, device):
                    model_b = self._aligned(model_a, model_b, i, j)
            self.move_to = held.enter_context(line_positions(model_a, model_b, device))
            on_error.pop_all()
        self.held, self.row, self.model = held, row, model_a

    def _aligned(self, model_a, model_b, i, j):
        call = f"align({self.names[i]!r}, {self.names[j]!r})"
        try:
            out = self.aligner(model_a, model_b)
        except LandscapeError:
            raise
        except Exception as e:  # the user's function: its type and first line say what went wrong
            raise ModelError(f"{call} fails: {error_line(e)}") from None
        out = getattr(out, "model", out)  # landscape.align's Alignment holds the copy in .model
        if not isinstance(out, torch.nn.Module):
            raise ModelError(f"{call} returned a {type(out).__name__}, not an nn.Module (a copy of model_b)")
        found = architecture_mismatch(model_a, out)
        if found is not None:
            raise ModelError(f"{call} returned a model no line joins to {self.names[i]!r}: {found}")
        return out

    def _label(self, row):
        i, j, aligned = self.lines[row]
        return f"{self.names[i]} → {'align(' if aligned else ''}{self.names[j]}{')' if aligned else ''}"
