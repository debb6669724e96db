"""landscape.interpolate: loss and accuracy along the straight line between two networks' weights, and the
barrier on it (linear mode connectivity, Frankle et al. 2020).

    line = landscape.interpolate(model_a, model_b, (x, y), n=25, test_data=(x_test, y_test))
    line.t, line.train_loss, line.test_acc     # numpy arrays over t = 0 (model_a) ... 1 (model_b)
    line.barrier("train_loss")                  # max over t of L(t) - ((1 - t) L(0) + t L(1))

The points are evaluated as landscape.surface evaluates its grid (the same losses, accuracy, batches
and checks of the data). It runs on one rank: no collective, so under mpirun each rank computes the
whole line. Both models come back exactly as they were (weights, buffers, modes, device).
"""
import contextlib
import itertools
from dataclasses import dataclass

import numpy as np

from ..errors import ChoiceError, DataError, GridSpecError, ModelError
from ..inputs.first_batch import FiniteBatches, check_data, check_model, model_errors
from ..inputs.user import check_precision, check_reiterable, is_pair, on_device_pair, probe, summed_loss
from ..job.mpi import World
from ..space.evaluate import evaluate_batches, tensor_batches
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
from .session import evaluation_mode

BN_CHOICES = ("recompute", "keep")
HIGHER_IS_BETTER = {"train_loss": False, "test_loss": False, "train_acc": True, "test_acc": True}


@dataclass(frozen=True, eq=False)
class LossPath:
    """Loss and accuracy at n points t of a path from model_a (t = 0) to model_b (t = 1), as read-only numpy
    arrays. Accuracies are in percent, None where accuracy does not apply (a user's loss on other outputs);
    the test arrays are None without test_data. bn: how BatchNorm statistics were set at each point;
    bn_batches: how many training batches re-estimated them at each point (0 with bn='keep', or when the
    model has no layer with running statistics)."""
    t: np.ndarray
    train_loss: np.ndarray
    train_acc: np.ndarray = None
    test_loss: np.ndarray = None
    test_acc: np.ndarray = None
    bn: str = "keep"
    bn_batches: int = 0

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
        return barrier(self.t, values, kind, HIGHER_IS_BETTER[name])


def interpolate(model_a, model_b, data, n=25, test_data=None, loss=None, bn="recompute", bn_batches=None,
                batch_size=256, device=None, precision="fp32"):
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
    None (where model_a is), 'auto', 'cpu', 'cuda' or a torch.device. Returns a LossPath.
    """
    _check_options(n, bn, bn_batches, batch_size)
    for name, given in (("data", data), ("test_data", test_data)):
        if given is not None:
            check_data(given, name)
    check_same_architecture(model_a, model_b)
    loss_total = summed_loss(loss)
    ts = np.linspace(0.0, 1.0, n)
    with evaluation_mode(model_a, device, World(None)) as target:  # no collective: one rank computes the line
        check_precision(precision, target)
        hits = probe(model_a, data, loss, loss_total, target)
        if test_data is not None:
            probe(model_a, test_data, loss, loss_total, target)
        sets = [_batches(data, target, batch_size)]
        if test_data is not None:
            sets.append(_batches(test_data, target, batch_size))
        stats = _stat_batches(model_a, data, sets[0], bn, bn_batches)
        with _line(model_a, model_b, target) as move_to:
            rows = [_point(model_a, move_to, t, sets, loss_total, hits, stats, target, precision) for t in ts]
    return _path(ts, np.array(rows, dtype=np.float64), hits is not None, test_data is not None, bn,
                 len(stats) if stats else 0)


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


def _check_options(n, bn, bn_batches, batch_size):
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


def _stat_batches(model, data, train_batches, bn, count):
    """The batches that re-estimate BN statistics at every t, drawn once; None when nothing is re-estimated."""
    if bn == "keep" or not running_stat_layers(model):
        return None
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


def _point(model, move_to, t, sets, loss_total, hits, stats, device, precision):
    """(train loss[, train acc][, test loss[, test acc]]) at w(t)."""
    with model_errors(model, during=f"at t = {t:g} of the line"):
        move_to(t)
        if stats is not None:
            reestimate(model, stats, device, precision)
        values = []
        for batches in sets:
            mean, acc = evaluate_batches(model, batches, loss_total, precision, hits, device)
            values += [mean] + ([acc] if hits else [])
        return values


def _path(ts, rows, accuracy, test, bn, bn_batches):
    names = [f"{s}_{q}" for s in ("train", "test")[:1 + test] for q in ("loss", "acc")[:1 + accuracy]]
    columns = {}
    for name, column in zip(names, rows.T):
        columns[name] = np.ascontiguousarray(column)
        columns[name].setflags(write=False)
    ts = ts.copy()
    ts.setflags(write=False)
    return LossPath(t=ts, bn=bn, bn_batches=bn_batches, **columns)
