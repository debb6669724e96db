"""The Python API: loss landscapes of a model in memory, with your own data and loss.

    import landscape
    dirs = landscape.random_directions(model, n=2)
    res = landscape.surface(model, (x, y), directions=dirs, x=(-1, 1, 25), y=(-1, 1, 25))
    res.train_loss            # numpy (len(y), len(x))

Launched with `mpirun -n N python script.py` (or srun) the same call splits the points across the
ranks; every rank returns the complete result. `path=` writes and resumes a results file in the
layout plot_surface.py writes. The model's parameters are exactly as they were when a call returns.
"""
import contextlib
import hashlib
import shutil
import tempfile
import threading

import numpy as np
import torch

from . import __version__
from .checkpoint import update_with_tensors
from .dirfile import Directions, check_fits, directions_digest, read_directions
from .directions import named_entries, normalize_direction, random_direction, target_direction
from .errors import DataError, DirectionError, GridSpecError
from .evaluate import auto_batch_size, device_layout, evaluate_batches, gives_accuracy, mean_loss_total, \
    qualified_name, tensor_batches
from .flatparams import PointSetter
from .grid import Grid, parse_axis
from .job import JobSpec
from .mpi import abort_on_uncaught, init_world, pick_device
from .result import Result
from .runner import provenance_record, rank0_first, run_job

IN_MEMORY = "(in memory)"


def random_directions(model, n=1, norm="filter", ignore="biasbn", dir_type="weights", seed=0):
    """n (1 or 2) seeded Gaussian directions, normalized like the paper (filter-wise by default).
    x uses `seed`, y uses seed + 1, as plot_surface.py's --seed does, so the files agree."""
    if n not in (1, 2):
        raise DirectionError(f"n must be 1 or 2 directions, got {n!r}")
    names, entries = zip(*named_entries(model, dir_type))
    made = [normalize_direction(random_direction(entries, seed + k), entries, norm, ignore) for k in range(n)]
    attrs = dict(names=list(names), dir_type=dir_type, model=qualified_name(model), seed=seed, xnorm=norm, xignore=ignore,
                 ynorm=norm, yignore=ignore, same_dir=False, landscape_version=__version__)
    return Directions(made[0], made[1] if n == 2 else None, attrs)


def target_directions(model, x_model, y_model=None, dir_type="weights"):
    """x = x_model - model (and y = y_model - model): the interpolation of --model_file2/--model_file3."""
    names, entries = zip(*named_entries(model, dir_type))

    def towards(other):
        found = dict(named_entries(other, dir_type))
        missing = [n for n in names if n not in found or found[n].shape != dict(zip(names, entries))[n].shape]
        if missing:
            raise DirectionError(f"the target model does not match the model: {', '.join(missing[:5])} differ")
        return target_direction(entries, [found[n] for n in names])
    attrs = dict(names=list(names), dir_type=dir_type, model=qualified_name(model), kind="target",
                 landscape_version=__version__)
    return Directions(towards(x_model), None if y_model is None else towards(y_model), attrs)


def load_directions(path):
    """A direction file in the reference layout (ours or the reference code's), as lists of tensors."""
    dirs = read_directions(path)
    as_tensors = lambda d: None if d is None else [torch.from_numpy(np.asarray(t)) for t in d]
    return Directions(as_tensors(dirs.x), as_tensors(dirs.y), dirs.attrs)


def load(path):
    """A results file (from plot_surface.py, plot_hessian_eig.py or the API) as a Result."""
    return Result.from_file(path)


def surface(model, data, loss=None, directions=None, x=(-1.0, 1.0, 51), y=None, test_data=None, path=None,
            batch_size="auto", device=None, precision="fp32", overwrite=False, flush_secs=60.0, progress_secs=10.0):
    """Loss (and accuracy, where it applies) of `model` at theta0 + a*dx (+ b*dy) over the grid x (, y).

    data / test_data: an (inputs, targets) pair of tensors, or a re-iterable of (inputs, targets) batches
    (a DataLoader). loss(outputs, targets) returns the batch's mean loss (default cross-entropy); batches
    are weighted by their size. Accuracy is recorded when outputs are (N, classes) scores and targets N
    class indices. x, y: (min, max, num) or 'min:max:num'. Returns a Result.
    """
    world = init_world()
    abort_on_uncaught(world)
    grid = make_grid_of(x, y)
    dirs = directions or random_directions(model, 2 if grid.is_2d else 1)
    with _evaluation_mode(model, device, world) as device:
        setter = _point_setter(model, dirs, grid)
        loss_total = mean_loss_total(loss)
        sets = [_batches(d, model, device, batch_size, precision, world) for d in (data, test_data) if d is not None]
        accuracy = _probe(model, sets[0][0], loss_total, device)
        quantities = _surface_quantities(accuracy, test_data is not None)

        def evaluate_point(index):
            setter.set(*grid.coords(index))
            values = []
            for batches, _ in sets:
                mean, acc = evaluate_batches(model, batches, loss_total, precision, accuracy, device)
                values += [mean] + ([acc] if accuracy else [])
            return tuple(values)

        def settings():
            return dict(model=qualified_name(model), model_sha256=_state_digest(model), dir_type=_dir_type(dirs),
                        directions_sha256=directions_digest(dirs), x=_axis_list(grid.x), y=_axis_list(grid.y),
                        data_sha256=_data_digest(data), test_data_sha256=_data_digest(test_data),
                        loss=qualified_name(loss) if loss is not None else "crossentropy", precision=precision,
                        batch_size=sets[0][1])
        try:
            return _run(world, path, grid, "surface", quantities, evaluate_point, settings, device, sets[0][1],
                        overwrite, flush_secs, progress_secs)
        finally:
            setter.restore()


def make_grid_of(x, y=None):
    """A Grid from (min, max, num) tuples or 'min:max:num' strings, validated as the --x/--y flags are."""
    return Grid(np.linspace(*_axis(x, "x")), None if y is None else np.linspace(*_axis(y, "y")))


def _axis(spec, name):
    if isinstance(spec, str):
        return parse_axis(spec, name)
    try:
        lo, hi, num = spec
    except (TypeError, ValueError):
        raise GridSpecError(f"{name}={spec!r}: give (min, max, num) or 'min:max:num'") from None
    if isinstance(num, bool) or not isinstance(num, (int, np.integer)):
        raise GridSpecError(f"{name}={spec!r}: num must be a whole number")
    return parse_axis(f"{float(lo)!r}:{float(hi)!r}:{int(num)}", name)


def _axis_list(axis):
    return None if axis is None else [float(axis[0]), float(axis[-1]), len(axis)]


def _dir_type(dirs):
    return dirs.attrs.get("dir_type", "weights")


@contextlib.contextmanager
def _evaluation_mode(model, device, world):
    """Eval mode on the chosen device for the call; the model's mode and device are restored after."""
    params = list(model.parameters())
    home = params[0].device if params else torch.device("cpu")
    target = pick_device(world, device) if isinstance(device, str) else torch.device(device or home)
    was_training = model.training
    model.to(target).eval()
    try:
        yield target
    finally:
        model.to(home).train(was_training)


def _point_setter(model, dirs, grid):
    names, entries = zip(*named_entries(model, _dir_type(dirs)))
    check_fits(dirs, names, [t.shape for t in entries], "the directions given")
    if grid.is_2d and not dirs.is_2d:
        raise DirectionError("a 2D grid (y given) needs two directions; these hold only x")
    return PointSetter(model, list(names), list(entries), dirs.x, dirs.y if grid.is_2d else None)


def _batches(data, model, device, batch_size, precision, world):
    """(batches, batch size or None): a pair of tensors lives on the device, sliced; an iterable is used as given."""
    if _is_pair(data):
        inputs, targets = data
        if len(inputs) != len(targets) or len(inputs) == 0:
            raise DataError(f"data: {len(inputs)} inputs and {len(targets)} targets; need the same number, > 0")
        inputs, targets = device_layout(inputs.to(device)), targets.to(device)
        if batch_size == "auto":
            batch_size = rank0_first(world, lambda: auto_batch_size(model, inputs, precision))
        return tensor_batches(inputs, targets, int(batch_size)), int(batch_size)
    if not hasattr(data, "__iter__") or iter(data) is data:
        raise DataError(f"data must be an (inputs, targets) pair of tensors or a re-iterable of batches "
                        f"(a DataLoader, a list); got a {type(data).__name__}")
    return data, None


def _is_pair(data):
    return isinstance(data, (tuple, list)) and len(data) == 2 and all(torch.is_tensor(t) for t in data)


@torch.inference_mode()
def _probe(model, batches, loss_total, device):
    """Check the loss on the first batch before any work; returns whether accuracy applies."""
    for inputs, targets in batches:
        outputs = model(inputs.to(device))
        loss_total(outputs, targets.to(device))
        return gives_accuracy(outputs, targets)
    raise DataError("the data hold no batches")


def _surface_quantities(accuracy, test):
    sets = ("train", "test") if test else ("train",)
    return tuple(f"{s}_{q}" for s in sets for q in (("loss", "acc") if accuracy else ("loss",)))


def _state_digest(model):
    h = hashlib.sha256()
    for name, t in model.state_dict().items():
        h.update(name.encode())
        update_with_tensors(h, [t])
    return h.hexdigest()


def _data_digest(data):
    if data is None:
        return None
    h = hashlib.sha256()
    for batch in [data] if _is_pair(data) else data:
        update_with_tensors(h, batch)
    return h.hexdigest()


@contextlib.contextmanager
def _results_path(world, path):
    """(path, serial): the user's file, or a temporary one that rank 0 alone writes and removes."""
    if path is not None:
        yield path, False
        return
    folder = tempfile.mkdtemp(prefix="landscape-") if world.rank == 0 else None
    try:
        yield f"{folder}/results.h5", True
    finally:
        if folder:
            shutil.rmtree(folder, ignore_errors=True)


def _run(world, path, grid, kind, quantities, evaluate_point, settings, device, batch, overwrite, flush_secs,
         progress_secs):
    with _results_path(world, path) as (file_path, serial):
        spec = JobSpec(file_path, kind, quantities, grid.shape, flush_secs=flush_secs, progress_secs=progress_secs,
                       serial_io=serial)
        provenance = provenance_record(world, device, batch, IN_MEMORY)
        run_job(world, spec, grid, evaluate_point, settings, provenance, IN_MEMORY, threading.Event(), overwrite)
        return rank0_first(world, lambda: Result.from_file(file_path))
