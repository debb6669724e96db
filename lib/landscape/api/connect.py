"""landscape.interpolate: loss and accuracy along the straight line between two networks' weights, and the
barrier on it (linear mode connectivity, Frankle et al. 2020).

    line = landscape.interpolate(model_a, model_b, (x, y), n=25, test_data=(x_test, y_test))
    line.t, line.train_loss, line.test_acc     # numpy arrays over t = 0 (model_a) ... 1 (model_b)
    line.barrier("train_loss")                  # max over t of L(t) - ((1 - t) L(0) + t L(1))

The points are evaluated as landscape.surface evaluates its grid (the same losses, accuracy, batches
and checks of the data). In memory it runs on one rank (no collective: under mpirun each rank computes
the whole line); with path= the points are a 1D grid job over t, split across the ranks and resumable.
Both models come back exactly as they were (weights, buffers, modes, device).
"""
import contextlib
import itertools
from dataclasses import dataclass

import numpy as np
import torch

from ..errors import ChoiceError, DataError, GridSpecError, ModelError
from ..files.results import Layout
from ..inputs.first_batch import FiniteBatches, check_data, check_model, model_errors
from ..inputs.user import (
    check_identifiable,
    check_precision,
    check_reiterable,
    data_digest,
    is_pair,
    loss_label,
    on_device_pair,
    probe,
    state_digest,
    summed_loss,
)
from ..job.mpi import World, abort_on_uncaught, init_world
from ..job.run import GridJob, JobOptions
from ..space.evaluate import evaluate_batches, tensor_batches
from ..space.grid import make_grid
from ..space.model_io import qualified_name
from ..space.paths import (
    architecture_mismatch,
    barrier,
    model_tensors,
    running_stat_layers,
    write_interpolated,
    write_state,
)
from ..space.paths import reestimate_running_stats as reestimate
from .session import evaluation_mode, provenance, run_to_result, settings_function

BN_CHOICES = ("recompute", "keep")
HIGHER_IS_BETTER = {"train_loss": False, "test_loss": False, "train_acc": True, "test_acc": True}


@dataclass(frozen=True, eq=False)
class LossPath:
    """Loss and accuracy at n points t of a path from model_a (t = 0) to model_b (t = 1), as read-only numpy
    arrays. Accuracies are in percent, None where accuracy does not apply (a user's loss on other outputs);
    the test arrays are None without test_data. bn: how BatchNorm statistics were set at each point;
    bn_batches: how many training batches re-estimated them at each point (0 with bn='keep', or when the
    model has no layer with running statistics). done: which points are computed (all of them, unless a
    run into a results file was stopped: its other points are NaN); path: that results file, or None."""
    t: np.ndarray
    train_loss: np.ndarray
    train_acc: np.ndarray = None
    test_loss: np.ndarray = None
    test_acc: np.ndarray = None
    bn: str = "keep"
    bn_batches: int = 0
    done: np.ndarray = None
    path: str = None

    @property
    def complete(self):
        return self.done is None or bool(np.all(self.done))

    def barrier(self, name="train_loss", kind="linear"):
        """The barrier of one quantity along the path (space/paths.barrier), in its units:

            losses, linear:      max over t of L(t) - ((1 - t) L(0) + t L(1))
            losses, mean:        max over t of L(t) - (L(0) + L(1)) / 2
            accuracies, linear:  max over t of ((1 - t) A(0) + t A(1)) - A(t)   (the dip below the chord)
            accuracies, mean:    (A(0) + A(1)) / 2 - min over t of A(t)

        so a barrier is a rise in loss or a drop in accuracy, >= 0 either way, and NaN if a point is NaN."""
        if name not in HIGHER_IS_BETTER:
            raise ChoiceError(f"barrier of {name!r}: choose one of {', '.join(HIGHER_IS_BETTER)}")
        values = getattr(self, name)
        if values is None:
            why = "no test_data was given" if name.startswith("test") else "accuracy does not apply to this loss"
            raise ChoiceError(f"barrier of {name!r}: this path has no {name} ({why})")
        if not self.complete:
            raise GridSpecError(f"barrier of {name!r}: only {int(np.sum(self.done))} of the path's {len(self.t)} "
                                f"points are done; run the same call again to finish {self.path or 'it'}")
        return barrier(self.t, values, kind, HIGHER_IS_BETTER[name])


def interpolate(model_a, model_b, data, n=25, test_data=None, loss=None, bn="recompute", bn_batches=None,
                batch_size=256, device=None, precision="fp32", path=None, overwrite=False, settings=None, job=None,
                progress_secs=10.0):
    """Loss (and accuracy, where it applies) of the weights w(t) = (1 - t) w_a + t w_b at n evenly spaced t
    from 0 to 1, evaluated in eval mode with model_a's module. Every floating entry of the state moves
    (parameters and float buffers); integer buffers (num_batches_tracked) are model_a's.

    data / test_data: an (inputs, targets) pair of tensors (inputs may be a dict: keyword arguments), cut
    into batches of batch_size, or a re-iterable of (inputs, targets) batches (a DataLoader) used as it
    is. loss: None (cross-entropy), 'mse', 'causal_lm' or loss(outputs, targets) -> batch mean, as for
    landscape.surface. bn: 'recompute' resets the running statistics of every BatchNorm layer (and
    InstanceNorm tracking them) at each t, ends included, and estimates them again from the first
    bn_batches batches of `data` (all of them when None), drawn once so every t sees the same ones (a
    DataLoader's are held in memory meanwhile); 'keep' interpolates them like any other buffer. device:
    None (where model_a is), 'auto', 'cpu', 'cuda' or a torch.device.

    path: None computes the line in memory, on one rank (under mpirun each rank computes all of it).
    A file name runs the n points as a 1D grid job over t (landscape.surface's results layout, its
    xcoordinates t), split across the ranks of an mpirun, committed as it goes and resumed by the same
    call; overwrite, settings (what identifies the inputs; default: hashes of both models, the data and
    the loss), job (JobOptions) and progress_secs as for surface. Returns a LossPath.
    """
    check_path_options(n, bn, bn_batches, batch_size)
    check_same_architecture(model_a, model_b)
    grid = make_grid((0.0, 1.0, n))
    options = PathOptions(data, test_data, loss, bn, bn_batches, batch_size, device, precision, path, overwrite,
                          settings, job, progress_secs)
    walked = evaluate_grid(model_a, grid, lambda target: _line(model_a, model_b, target),
                           lambda t: f"at t = {t:g} of the line",
                           _identity(model_a, model_b, grid, data, test_data, loss), options)
    return walked.loss_path()


@dataclass(frozen=True)
class PathOptions:
    """How the points of a path (or a plane) are evaluated: interpolate's arguments of that name."""
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


@dataclass(frozen=True)
class Walked:
    """What evaluate_grid computed: the quantities' values over the grid (shaped as it is), which points
    are done, the results file (or None), and how the points were evaluated."""
    grid: object
    line: object  # LineSettings
    columns: dict
    done: np.ndarray
    path: str = None

    def loss_path(self):
        """The LossPath of a 1D grid over t."""
        return self.line.path(self.grid.x, self.columns, self.done, self.path)


def evaluate_grid(model, grid, positions, where, identity, options, dir_file="(line between two models)"):
    """The loss (and accuracy) of `model` at every point of `grid` (a 1D grid over t, or a 2D one), with
    BatchNorm statistics re-estimated at each (bn='recompute') or as the positions set them ('keep'):
    what interpolate, evaluate_curve and curve_plane share. positions(device) is a context manager that
    yields move_to(point) (point: t, or (a, b) on a 2D grid), which sets the model's state there, and puts
    the model back as it was when it ends; where(point) names a point in an error. identity() describes
    the inputs for a results file (default settings); options: PathOptions. Returns a Walked."""
    (data, test_data, loss, bn, bn_batches, batch_size, device, precision, path, overwrite, settings, job,
     progress_secs) = vars(options).values()
    check_path_options(2, bn, bn_batches, batch_size)
    for name, given in (("data", data), ("test_data", test_data)):
        check_identifiable(given, path, settings)
        if given is not None:
            check_data(given, name)
    loss_total = summed_loss(loss)
    world = World(None) if path is None else init_world()  # in memory: no collective, one rank computes all
    abort_on_uncaught(world)
    with evaluation_mode(model, device, world) as target:
        check_precision(precision, target)
        hits = probe(model, data, loss, loss_total, target)
        if test_data is not None:
            probe(model, test_data, loss, loss_total, target)
        sets = [_batches(data, target, batch_size)]
        if test_data is not None:
            sets.append(_batches(test_data, target, batch_size))
        stats = _stat_batches(model, data, sets[0], bn, bn_batches, world.size)
        line = LineSettings(bn, len(stats) if stats else 0, hits is not None, test_data is not None)
        with positions(target) as move_to:
            def evaluate_point(index):
                point = grid.coords(index) if grid.is_2d else float(grid.x[index])
                return tuple(_point(model, move_to, point, where(point), sets, loss_total, hits, stats, target,
                                    precision))
            if path is None:
                rows = np.array([evaluate_point(i) for i in range(grid.size)])
                columns = {name: rows[:, k].reshape(grid.shape) for k, name in enumerate(line.quantities)}
                return Walked(grid, line, columns, np.ones(grid.shape, dtype=bool))
            eval_batch = int(batch_size) if is_pair(data) else None  # a DataLoader's batches are its own
            settings_of = settings_function(settings, identity, eval_batch=eval_batch, precision=precision,
                                            bn=bn, bn_batches=bn_batches, bn_batches_used=line.bn_batches)
            result = run_line_job(world, target, path, Layout(grid, "surface", line.quantities), evaluate_point,
                                  settings_of, eval_batch, overwrite, job, progress_secs, dir_file)
    return Walked(grid, line, {name: result.values[name] for name in line.quantities}, result.done["surface"],
                  result.path)


def _identity(model_a, model_b, grid, data, test_data, loss):
    """identity() for a results file: the default description of the inputs, hashed when a run asks (rank 0
    alone, before any point moves model_a)."""
    def identity():
        return dict(line="linear", model=qualified_name(model_a), model_sha256=state_digest(model_a),
                    model_b_sha256=state_digest(model_b), **grid.record(), data_sha256=data_digest(data),
                    test_data_sha256=data_digest(test_data), loss=loss_label(loss))
    return identity


def check_same_architecture(model_a, model_b):
    """Both are finite nn.Modules whose weights can lie on one line: the same modules and state entries."""
    for name, model in (("model_a", model_a), ("model_b", model_b)):
        try:
            check_model(model)
        except ModelError as e:
            raise ModelError(f"{name}: {e}") from None
    found = architecture_mismatch(model_a, model_b)
    if found is not None:
        raise ModelError(f"model_a ({qualified_name(model_a)}) and model_b ({qualified_name(model_b)}) differ, so "
                         f"no line joins their weights: {found}")


def check_path_options(n, bn, bn_batches, batch_size):
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 2:
        raise GridSpecError(f"n={n!r}: a line needs a whole number of points >= 2 (its two ends included)")
    if bn not in BN_CHOICES:
        raise ChoiceError(f"bn={bn!r} is not one of {', '.join(BN_CHOICES)}")
    for name, value, none_ok in (("bn_batches", bn_batches, True), ("batch_size", batch_size, False)):
        if not (value is None and none_ok) and (isinstance(value, bool) or not isinstance(value, (int, np.integer))
                                                or value < 1):
            also = ", or None for every batch" if none_ok else ""
            raise DataError(f"{name}={value!r}: give a positive whole number{also}")


def _batches(data, device, batch_size):
    """A pair on the device cut into batch_size slices, or the user's batches as they come."""
    if not is_pair(data):
        return FiniteBatches(check_reiterable(data))
    inputs, targets = on_device_pair(data, device)
    return tensor_batches(inputs, targets, int(batch_size))


def _stat_batches(model, data, train_batches, bn, count, ranks):
    """The batches that re-estimate BN statistics at every t, drawn once; None when nothing is re-estimated."""
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


@contextlib.contextmanager
def _line(model_a, model_b, device):
    """move_to(t): sets model_a's state to w(t). Both ends are copied first (model_b's onto the device, in
    model_a's dtypes), and model_a's own values are written back when the block ends."""
    live = model_tensors(model_a)  # sharing the model's storage: writing them moves the model
    start = {name: t.clone() for name, t in live.items()}
    end = {name: t.to(device=device, dtype=start[name].dtype, copy=True) for name, t in model_tensors(model_b).items()}
    try:
        yield lambda t: write_interpolated(live, start, end, t)
    finally:
        write_state(live, start)


def _point(model, move_to, point, during, sets, loss_total, hits, stats, device, precision):
    """(train loss[, train acc][, test loss[, test acc]]) at a point of the path (or plane)."""
    with model_errors(model, during=during):
        move_to(point)
        if stats is not None:
            reestimate(model, stats, device, precision)
        values = []
        for batches in sets:
            mean, acc = evaluate_batches(model, batches, loss_total, precision, hits, device)
            values += [mean] + ([acc] if hits else [])
        return values


@dataclass(frozen=True)
class LineSettings:
    """What a LossPath records of how it was made, and which quantities its points hold."""
    bn: str
    bn_batches: int
    accuracy: bool
    test: bool

    @property
    def quantities(self):
        return tuple(f"{s}_{q}" for s in ("train", "test")[:1 + self.test] for q in ("loss", "acc")[:1 + self.accuracy])

    def path(self, t, columns, done=None, path=None):
        """The LossPath of these columns ({quantity: values over t}), its arrays read-only copies."""
        arrays = {name: _frozen(values) for name, values in dict(columns, t=t).items()}
        done = _frozen(np.ones(len(t), dtype=bool) if done is None else done)
        return LossPath(bn=self.bn, bn_batches=self.bn_batches, done=done, path=path, **arrays)


def _frozen(values):
    array = np.array(values)
    array.setflags(write=False)
    return array


@dataclass(frozen=True)
class _LineCall:
    """What running a GridJob to a Result reads of an API call (session.Call): the ranks, the device, and
    the direction file the results file records; a line has none, and says so."""
    world: object
    device: object
    dir_file: str = "(line between two models)"


def run_line_job(world, device, path, layout, evaluate_point, settings_of, eval_batch, overwrite, options,
                 progress_secs, dir_file="(line between two models)"):
    """The points of `layout` as a job across the ranks into the results file `path` (resumed), as a Result."""
    call = _LineCall(world, device, dir_file)
    grid_job = GridJob(None, layout, evaluate_point, settings_of, provenance(call, eval_batch), call.dir_file,
                       overwrite, progress_secs=progress_secs)
    return run_to_result(call, path, grid_job, options or JobOptions())
