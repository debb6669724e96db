"""landscape.fit_curve: a low-loss curve between two networks (Garipov et al. 2018, "Loss surfaces, mode
connectivity, and fast ensembling of DNNs"), and landscape.evaluate_curve: the loss along it.

    curve = landscape.fit_curve(model_a, model_b, (x, y), kind="bezier", bends=1, epochs=20, path="curve.h5")
    along = landscape.evaluate_curve(curve, (x, y), n=61)        # a LossPath, as landscape.interpolate's
    along.barrier("train_loss"), curve.model_at(0.5)

The ends stay fixed; the bends start on the straight line (so the untrained curve is the line) and are
trained by SGD on the loss at phi(t), t ~ U(0, 1) drawn for each minibatch (training/curve.py). With
path= the fit is checkpointed after every epoch and the same call resumes it. It runs in one process.
"""
import copy
import json
import math
import os

from ..errors import CheckpointError, ChoiceError, DataError
from ..files.curve import write_curve_file
from ..inputs.first_batch import check_data
from ..inputs.user import (
    check_identifiable,
    check_reiterable,
    data_digest,
    is_pair,
    loss_label,
    on_device_pair,
    probe,
    state_digest,
    summed_loss,
)
from ..job.mpi import World
from ..space.curves import check_kind, curve_tensors, line_bends
from ..space.grid import make_grid
from ..space.model_io import qualified_name
from ..training.curve import SCHEDULES, FitOptions, FitState, fit
from .connect import check_same_architecture
from .curve import Curve, curve_record, read_fit
from .path_eval import PathOptions, check_path_options, evaluate_grid, path_identity
from .session import evaluation_mode


def fit_curve(model_a, model_b, data, kind="bezier", bends=1, epochs=20, lr=0.05, batch_size=128, seed=0, path=None,
              loss=None, device=None, momentum=0.9, weight_decay=0.0, schedule="garipov", overwrite=False,
              settings=None, stop=None, progress=False):
    """Train the bends of a curve from model_a (t = 0) to model_b (t = 1); returns a Curve.

    kind: 'bezier' (phi(t) = (1 - t)^2 w_a + 2 t (1 - t) theta + t^2 w_b with one bend; the Bernstein form
    of degree bends + 1 with more) or 'polychain' (straight segments through the bends at t = i /
    (bends + 1)). Every parameter has bends (those model_a does not train, requires_grad False, keep
    theirs on the line); float buffers (BatchNorm statistics) move on the line between the ends.

    Training (Garipov et al.'s recipe): `epochs` passes over `data` (an (inputs, targets) pair, shuffled
    each epoch and cut into batches of batch_size, the last partial batch left out; or re-iterable batches
    used as they come), one t ~ U(0, 1) per batch, SGD with `momentum` on the mean loss at phi(t) plus
    0.5 * weight_decay * |phi(t)|^2, the model in train mode (BatchNorm on batch statistics). lr:
    schedule 'garipov' keeps it for the first half of the epochs, then lowers it linearly to 1 % at 90 %;
    'constant' keeps it. Training runs in the model's own dtype (no autocast). The defaults (lr 0.05,
    momentum 0.9, 20 epochs, batch 128) suit small nets on small data; Garipov et al. trained CIFAR curves
    200-600 epochs at lr 0.015-0.03 with weight_decay 3e-4 to 5e-4. seed: the order of the samples, the t
    of each batch, dropout. loss: None (cross-entropy), 'mse', 'causal_lm' or loss(outputs, targets) ->
    batch mean. device: None (where model_a is), 'auto', 'cpu', 'cuda' or a torch.device.

    path: a curve file written after every epoch (ends, bends, momentum, random states, settings); the
    same call resumes it from its last finished epoch and ends with the bends an uninterrupted run gives
    (bit for bit on the CPU). Other settings (any argument above but device, or other models or data)
    are refused unless overwrite=True; settings= describes the models and data in place of their hashes
    (as for landscape.surface). stop: a threading.Event; when set, the fit ends between batches and the
    Curve of the last finished epoch comes back (curve.complete False). progress: a line per epoch.
    Both models come back as they were.
    """
    options = _fit_options(kind, bends, epochs, lr, batch_size, seed, momentum, weight_decay, schedule)
    check_same_architecture(model_a, model_b)
    check_data(data, "data")
    check_identifiable(data, path, settings)
    loss_total = summed_loss(loss)
    recorded = dict(_identity(model_a, model_b, data, loss) if settings is None else settings,
                    **dict(vars(options), batch_size=batch_size if is_pair(data) else None))
    end_a = {name: t.to("cpu", copy=True) for name, t in curve_tensors(model_a).items()}
    end_b = {name: t.to("cpu", dtype=end_a[name].dtype, copy=True) for name, t in curve_tensors(model_b).items()}
    names = [name for name, _ in model_a.named_parameters()]
    start = _start(path, recorded, overwrite, end_a, end_b, names, options)
    curve = Curve(kind, copy.deepcopy(model_a), end_a, end_b, start, recorded, path)
    if start.epoch >= options.epochs:
        return curve
    trainable = {name for name, p in model_a.named_parameters() if p.requires_grad}
    save = None if path is None else lambda state: write_curve_file(path, curve_record(curve.replaced(state)))
    report = _reporter(options.epochs) if progress else None
    work = copy.deepcopy(model_a)
    with evaluation_mode(work, device, World(None)) as target:
        probe(work, data, loss, loss_total, target)
        batches = on_device_pair(data, target) if is_pair(data) else check_reiterable(data)
        ends = tuple({name: end[name].to(target) for name in names} for end in (end_a, end_b))
        state = fit(work, ends, trainable, start, batches, loss_total, options, target, save, stop, report)
    return curve.replaced(state)


def _fit_options(kind, bends, epochs, lr, batch_size, seed, momentum, weight_decay, schedule):
    check_kind(kind)
    if schedule not in SCHEDULES:
        raise ChoiceError(f"schedule={schedule!r} is not one of {', '.join(SCHEDULES)}")
    for name, value in (("bends", bends), ("epochs", epochs), ("batch_size", batch_size)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise DataError(f"{name}={value!r}: give a positive whole number")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise DataError(f"seed={seed!r}: give a whole number")
    for name, value, fits, bounds in (("lr", lr, lambda v: v > 0, "> 0"),
                                      ("momentum", momentum, lambda v: v < 1, "in [0, 1)"),
                                      ("weight_decay", weight_decay, lambda v: True, ">= 0")):
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        if not (number and math.isfinite(value) and value >= 0 and fits(value)):
            raise DataError(f"{name}={value!r}: give a finite number {bounds}")
    return FitOptions(kind, bends, epochs, float(lr), float(momentum), float(weight_decay), batch_size, seed, schedule)


def _identity(model_a, model_b, data, loss):
    return dict(model=qualified_name(model_a), model_sha256=state_digest(model_a), model_b_sha256=state_digest(model_b),
                data_sha256=data_digest(data), loss=loss_label(loss))


def _start(path, recorded, overwrite, end_a, end_b, names, options):
    """The FitState to go on from: the curve file's (its settings checked), or the line's bends at epoch 0."""
    if path is not None and os.path.exists(path) and not overwrite:
        record, state = read_fit(path, end_a)
        check_same_settings(path, record["settings"], recorded)
        return state
    params_a, params_b = ({name: end[name] for name in names} for end in (end_a, end_b))
    return FitState(line_bends(params_a, params_b, options.bends), [{} for _ in range(options.bends)])


def check_same_settings(path, stored, given):
    """Refuse to resume a curve file made with other settings, naming the first that differs."""
    given = json.loads(json.dumps(given))  # as the file holds them (tuples as lists)
    for key in list(given) + [k for k in stored if k not in given]:
        if stored.get(key) != given.get(key):
            raise CheckpointError(f"{path} holds a curve fitted with other settings ({key}: the file has "
                                  f"{stored.get(key)!r}, this call {given.get(key)!r}); give the same settings, "
                                  f"another file, or overwrite it (overwrite=True, --overwrite)")


def _reporter(epochs):
    def report(state, lr):
        print(f"[curve] epoch {state.epoch}/{epochs}: mean train loss {state.history[-1]:.6g} at the t drawn "
              f"(lr {lr:.3g})", flush=True)
    return report


def evaluate_curve(curve, data, n=61, test_data=None, loss=None, bn="recompute", bn_batches=None, batch_size=256,
                   device=None, precision="fp32", path=None, overwrite=False, settings=None, job=None,
                   progress_secs=10.0):
    """Loss (and accuracy) at n evenly spaced t of the curve from 0 to 1, as landscape.interpolate
    evaluates the line (the same arguments, batches, BatchNorm re-estimation and results file); returns a
    LossPath. bn: 'recompute' (the default, as Garipov et al. do) re-estimates the BatchNorm statistics at
    every t; 'keep' takes them on the line between the ends'."""
    check_path_options(n, bn, bn_batches, batch_size)
    grid = make_grid((0.0, 1.0, n))
    options = PathOptions(data, test_data, loss, bn, bn_batches, batch_size, device, precision, path, overwrite,
                          settings, job, progress_secs)
    identity = path_identity(grid, options, lambda: curve.described("line"))
    walked = evaluate_grid(curve.module, grid, curve.positions, lambda t: f"at t = {t:g} of the curve", identity,
                           options, dir_file="(curve between two models)")
    return walked.loss_path()
