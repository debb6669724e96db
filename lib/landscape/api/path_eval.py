"""The evaluation that every path between networks shares: the loss (and accuracy) of a module moved to
points of a grid, its BatchNorm statistics re-estimated at each point (bn='recompute') or left as the
move set them ('keep'), evaluated as landscape.surface evaluates its grid (the same losses, accuracy,
batches and checks of the data).

    evaluate_grid      one module over a whole grid, in memory or as a resumable grid job: the line
                       (landscape.interpolate), a curve (evaluate_curve) and a curve's plane (curve_plane)
    point_evaluator    a PointEvaluator, whose .at(model, move_to, point, during) evaluates one point;
                       evaluate_grid's points and barrier_matrix's (many lines, many models) are its
    path_identity, path_settings, run_points_job
                       a results file's settings and the grid job into it, for both

A point is wherever move_to(point) puts the module: positions(device), a context manager the caller
gives, yields move_to and puts the module back when it ends (connect.line_positions, Curve.positions).
"""
import contextlib
import itertools
from dataclasses import dataclass

import numpy as np
import torch

from ..errors import ChoiceError, DataError, GridSpecError
from ..files.results import Layout
from ..inputs.first_batch import FiniteBatches, check_data, model_errors
from ..inputs.user import (
    check_identifiable,
    check_precision,
    check_reiterable,
    data_digest,
    is_pair,
    loss_label,
    on_device_pair,
    probe,
    summed_loss,
)
from ..job.mpi import World, abort_on_uncaught, init_world
from ..job.run import GridJob, JobOptions
from ..space.evaluate import evaluate_batches, tensor_batches
from ..space.paths import reestimate_running_stats, running_stat_layers
from .loss_path import PathQuantities
from .session import ItemsCall, evaluation_mode, provenance, run_to_result, settings_function

BN_CHOICES = ("recompute", "keep")
LINE_DIR_FILE = "(line between two models)"  # what a path's results file records in place of a direction file


@dataclass(frozen=True)
class PathOptions:
    """How the points of a path (or a plane) are evaluated: landscape.interpolate's arguments of these names."""
    data: object
    test_data: object
    loss: object
    bn: str
    bn_batches: int
    batch_size: int
    device: object
    precision: str
    path: str
    overwrite: bool
    settings: object
    job: object
    progress_secs: float

    @property
    def eval_batch(self):
        """The evaluation batch size a results file records: None for the user's batches (a DataLoader's
        batches are its own)."""
        return int(self.batch_size) if is_pair(self.data) else None


def check_path_options(n, bn, bn_batches, batch_size):
    """n points on a path (both ends included), the BatchNorm choice and the batch counts, each refused in a line."""
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 2:
        raise GridSpecError(f"n={n!r}: a line needs a whole number of points >= 2 (its two ends included)")
    if bn not in BN_CHOICES:
        raise ChoiceError(f"bn={bn!r} is not one of {', '.join(BN_CHOICES)}")
    for name, value, none_ok in (("bn_batches", bn_batches, True), ("batch_size", batch_size, False)):
        if not (value is None and none_ok) and (isinstance(value, bool) or not isinstance(value, (int, np.integer))
                                                or value < 1):
            also = ", or None for every batch" if none_ok else ""
            raise DataError(f"{name}={value!r}: give a positive whole number{also}")


def check_path_inputs(options):
    """The options' choices, data and loss checked before anything runs; returns the loss as the engine
    sums it (summed_loss)."""
    check_path_options(2, options.bn, options.bn_batches, options.batch_size)
    for name, given in (("data", options.data), ("test_data", options.test_data)):
        check_identifiable(given, options.path, options.settings)
        if given is not None:
            check_data(given, name)
    return summed_loss(options.loss)


@dataclass(frozen=True)
class PointEvaluator:
    """How every point is evaluated, decided once: the batches on the device (train, then test), the
    BatchNorm batches (None: nothing to re-estimate), what counts right answers (None: no accuracy).
    record: the PathQuantities of the points (their quantities, how BatchNorm was set)."""
    record: PathQuantities
    sets: tuple
    stats: list
    hits: object
    loss_total: object
    device: torch.device
    precision: str

    def at(self, model, move_to, point, during):
        """(train loss[, train acc][, test loss[, test acc]]) of `model` once move_to(point) has set its
        state there; `during` names the point in an error ("at t = 0.5 of the line")."""
        with model_errors(model, during=during):
            move_to(point)
            if self.stats is not None:
                reestimate_running_stats(model, self.stats, self.device, self.precision)
            values = []
            for batches in self.sets:
                mean, acc = evaluate_batches(model, batches, self.loss_total, self.precision, self.hits, self.device)
                values += [mean] + ([acc] if self.hits else [])
            return tuple(values)


@contextlib.contextmanager
def point_evaluator(model, options, loss_total, world):
    """The PointEvaluator of points of `model`'s architecture, with `model` in eval mode on options.device
    for the block (its mode and device restored after): the model and the loss tried on the first
    batches, the data cut into batches, the BatchNorm batches drawn once so every point sees the same."""
    data, test_data = options.data, options.test_data
    with evaluation_mode(model, options.device, world) as device:
        check_precision(options.precision, device)
        hits = probe(model, data, options.loss, loss_total, device)
        if test_data is not None:
            probe(model, test_data, options.loss, loss_total, device)
        sets = [_batches(data, device, options.batch_size)]
        if test_data is not None:
            sets.append(_batches(test_data, device, options.batch_size))
        stats = _stat_batches(model, data, sets[0], options.bn, options.bn_batches, world.size)
        record = PathQuantities(options.bn, len(stats) if stats else 0, hits is not None, test_data is not None)
        yield PointEvaluator(record, tuple(sets), stats, hits, loss_total, device, options.precision)


def path_identity(grid, options, describe):
    """identity() for a results file of path points, its default settings: describe() (what the path
    joins: the models' or the curve's digests), the grid, and hashes of the data and the loss. Rank 0
    calls it alone, when a run asks, before any point moves a model."""
    def identity():
        return dict(describe(), **grid.record(), data_sha256=data_digest(options.data),
                    test_data_sha256=data_digest(options.test_data), loss=loss_label(options.loss))
    return identity


def path_settings(options, identity, evaluator, **decided):
    """settings_of() for a results file of path points: the inputs' identity (options.settings, or
    identity() hashed when a run asks), what the caller decides, and how the points are evaluated."""
    return settings_function(options.settings, identity, **decided, eval_batch=options.eval_batch,
                             precision=options.precision, bn=options.bn, bn_batches=options.bn_batches,
                             bn_batches_used=evaluator.record.bn_batches)


def run_points_job(world, evaluator, options, layout, evaluate_point, settings_of, dir_file=LINE_DIR_FILE):
    """The points of `layout` as a grid job across the ranks into the results file options.path
    (None: a temporary one), resumed where it stopped; returns the Result."""
    call = ItemsCall(world, evaluator.device, dir_file)
    grid_job = GridJob(None, layout, evaluate_point, settings_of, provenance(call, options.eval_batch), dir_file,
                       options.overwrite, progress_secs=options.progress_secs)
    return run_to_result(call, options.path, grid_job, options.job or JobOptions())


@dataclass(frozen=True)
class Walked:
    """What evaluate_grid computed: the quantities' values over the grid (shaped as it is), which points
    are done, the results file (or None), and how the points were evaluated (record: PathQuantities)."""
    grid: object
    record: PathQuantities
    columns: dict
    done: np.ndarray
    path: str = None

    def loss_path(self):
        """The LossPath of a 1D grid over t."""
        return self.record.path(self.grid.x, self.columns, self.done, self.path)


def evaluate_grid(model, grid, positions, where, identity, options, dir_file=LINE_DIR_FILE):
    """The loss (and accuracy) of `model` at every point of `grid` (a 1D grid over t, or a 2D one).
    positions(device): a context manager yielding move_to(point) (point: t, or (a, b) on a 2D grid);
    where(point) names a point in an error; identity() describes the inputs for a results file (its
    default settings); options: PathOptions. With options.path None the points are computed in memory
    on one rank (no collective: under mpirun each rank computes all of them); with a file name they are
    a grid job split across the ranks, committed as it goes and resumed by the same call. Returns a Walked."""
    loss_total = check_path_inputs(options)
    world = World(None) if options.path is None else init_world()
    abort_on_uncaught(world)
    with point_evaluator(model, options, loss_total, world) as evaluator, positions(evaluator.device) as move_to:
        names = evaluator.record.quantities

        def evaluate_point(index):
            point = grid.coords(index) if grid.is_2d else float(grid.x[index])
            return evaluator.at(model, move_to, point, where(point))
        if options.path is None:
            rows = np.array([evaluate_point(i) for i in range(grid.size)])
            columns = {name: rows[:, k].reshape(grid.shape) for k, name in enumerate(names)}
            return Walked(grid, evaluator.record, columns, np.ones(grid.shape, dtype=bool))
        result = run_points_job(world, evaluator, options, Layout(grid, "surface", names), evaluate_point,
                                path_settings(options, identity, evaluator), dir_file)
    return Walked(grid, evaluator.record, {name: result.values[name] for name in names}, result.done["surface"],
                  result.path)


def _batches(data, device, batch_size):
    """A pair on the device cut into batch_size slices, or the user's batches as they come."""
    if not is_pair(data):
        return FiniteBatches(check_reiterable(data))
    inputs, targets = on_device_pair(data, device)
    return tensor_batches(inputs, targets, int(batch_size))


def _stat_batches(model, data, train_batches, bn, count, ranks):
    """The batches that re-estimate BN statistics at every point, drawn once; None when nothing is re-estimated."""
    if bn == "keep" or not running_stat_layers(model):
        return None
    if ranks > 1 and isinstance(getattr(data, "sampler", None), torch.utils.data.RandomSampler):
        raise DataError("bn='recompute' across several ranks needs the same BatchNorm batches on each: a shuffled "
                        "DataLoader draws others on every rank; give shuffle=False or a tensor pair")
    source = train_batches if is_pair(data) else FiniteBatches(data)
    chosen = list(itertools.islice(source, count))
    if not chosen:
        raise DataError("bn='recompute' re-estimates the BatchNorm statistics from batches of the data, and the "
                        "data hold none")
    return chosen
