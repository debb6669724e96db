"""The Python API: loss landscapes of a model in memory, with your own data and loss.

    import landscape
    dirs = landscape.random_directions(model, n=2)
    res = landscape.surface(model, (x, y), directions=dirs, x=(-1, 1, 25), y=(-1, 1, 25))
    res.train_loss            # numpy (len(y), len(x))

Launched with `mpirun -n N python script.py` (or srun) the same call splits the points across the
ranks; every rank returns the complete result. `path=` writes and resumes a results file in the
layout plot_surface.py writes. The model's parameters are exactly as they were when a call returns.
plot_surface.py and plot_hessian_eig.py are these functions behind flags.
"""
import contextlib
from dataclasses import dataclass

import numpy as np
import torch

from . import __version__
from . import inputs as use
from .curvature_job import DEFAULT_SAMPLES, check_choices, hessian_dim, hvp_batch, make_plan, plan_settings, \
    point_evaluator, quantity_layout, sample_subset
from .dirfile import Directions, directions_digest, read_directions
from .directions import named_entries, normalize_direction, random_direction, target_direction
from .errors import DirectionError, GridSpecError
from .evaluate import evaluate_batches, qualified_name, tensor_batches
from .grid import make_grid
from .hessian import hessian_param_names
from .mpi import abort_on_uncaught, init_world
from .refine import Refinement
from .result import Result
from .runner import JobOptions, provenance_record, run_to_result
from .surfile import hessian_layout


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
    return Directions(as_tensors(dirs.x), as_tensors(dirs.y), dirs.attrs, dirs.path)


def load(path):
    """A results file (from plot_surface.py, plot_hessian_eig.py or the API) as a Result."""
    return Result.from_file(path)


@dataclass(frozen=True)
class Refine:
    """Adaptive refinement (README "Adaptive grids"): x/y give the finest grid; cells whose estimated
    interpolation error of `on` (log10 for losses) exceeds tol are split; stop at `budget` points."""
    tol: float
    on: str = None  # default: the first quantity, train_loss
    budget: int = None


def surface(model, data, loss=None, directions=None, x=(-1.0, 1.0, 51), y=None, test_data=None, path=None,
            batch_size="auto", device=None, precision="fp32", overwrite=False, refine=None, settings=None,
            progress_secs=10.0, job=None):
    """Loss (and accuracy, where it applies) of `model` at theta0 + a*dx (+ b*dy) over the grid x (, y).

    data / test_data: an (inputs, targets) pair of tensors, or a re-iterable of (inputs, targets) batches
    (a DataLoader). loss(outputs, targets) returns the batch's mean loss (default cross-entropy; 'mse' is
    the reference's); batches are weighted by their size. Accuracy is recorded when outputs are
    (N, classes) scores and targets N class indices. x, y: (min, max, num) or 'min:max:num'.
    refine: a tolerance or a Refine. settings: what identifies the inputs when `path` is resumed (a dict
    or a function giving one; default: hashes of the model, directions, data and loss). job: JobOptions.
    Returns a Result.
    """
    use.check_batch_size(batch_size, "batch_size")
    for given in (data, test_data):
        use.check_identifiable(given, path, settings)
    with _moving(model, directions, x, y, device) as (world, grid, dirs, device, setter):
        use.check_precision(precision, device)
        loss_total = use.summed_loss(loss)
        sets = [use.eval_batches(data, model, device, batch_size, precision, world, path, overwrite)]
        if test_data is not None:  # the train set's batch size, so both sum alike (and resume alike)
            sets.append(use.eval_batches(test_data, model, device, sets[0][1] or batch_size, precision, world,
                                         path, overwrite))
        accuracy = use.probe(model, sets[0][0], loss_total, device)
        quantities = _surface_quantities(accuracy, test_data is not None)

        def evaluate_point(index):
            setter.set(*grid.coords(index))
            values = []
            for batches, _ in sets:
                mean, acc = evaluate_batches(model, batches, loss_total, precision, accuracy, device)
                values += [mean] + ([acc] if accuracy else [])
            return tuple(values)

        def identity():
            return dict(_identity(model, dirs, grid, data, loss), test_data_sha256=use.data_digest(test_data))
        settings_of = _with_settings(settings, identity, eval_batch=sets[0][1], precision=precision)
        return run_to_result(world, path, grid, "surface", quantities, evaluate_point, settings_of,
                             _provenance(world, device, sets[0][1], dirs), _dir_file(dirs),
                             job or JobOptions(), overwrite, progress_secs,
                             planner=_planner(refine, grid, quantities))


def hessian_map(model, data, loss=None, directions=None, x=(-1.0, 1.0, 51), y=None, path=None, tol=1e-3,
                max_iter=100, samples=DEFAULT_SAMPLES, params="reference", trace=None, density=None, layers=False,
                hvp_batch="auto", hvp="double_backward", seed=0, device=None, overwrite=False, settings=None,
                progress_secs=10.0, job=None):
    """λmin and λmax of the mean-loss Hessian (and, if asked, its trace, spectral density and per-layer
    values) at every point of the grid, as plot_hessian_eig.py computes them.

    data: an (inputs, targets) pair (a fixed subset of `samples` of them, seeded by `seed`; None: all,
    cut into batches of `hvp_batch`), or a re-iterable of batches, used whole. loss: as for surface().
    tol: accuracy of λmin and λmax relative to max|λ|; params: 'reference' (weights with more than one
    dimension) or 'all'; trace: Hutchinson probes per point; density: (probes, steps) of stochastic
    Lanczos quadrature; layers: per-layer blocks too. seed: the subset and the Lanczos start vectors.
    Returns a Result with max_eig, min_eig, ...
    """
    check_choices(params, hvp)
    use.check_batch_size(hvp_batch, "hvp_batch")
    use.check_samples(samples)
    use.check_identifiable(data, path, settings)
    mean = use.mean_loss(loss)
    names = hessian_param_names(model, params)
    plan = make_plan(model, names, tol, max_iter, seed, trace, density, layers)
    with _moving(model, directions, x, y, device) as (world, grid, dirs, device, setter):
        batches = _hessian_batches(world, model, names, mean, data, samples, hvp_batch, seed, hvp, device)
        use.probe(model, batches, mean, device)  # a bad loss fails before any file
        quantities, shapes, layer_names = quantity_layout(plan, hessian_dim(model, names))
        evaluate_point = point_evaluator(model, names, setter, grid, batches, mean, plan, quantities, world,
                                         device, hvp)
        settings_of = _with_settings(settings, lambda: _identity(model, dirs, grid, data, loss),
                                     hessian_samples=samples if use.is_pair(data) else "all",
                                     hessian_params=params, **plan_settings(plan))
        return run_to_result(world, path, grid, "hessian", quantities, evaluate_point, settings_of,
                             _provenance(world, device, None, dirs), _dir_file(dirs),
                             job or JobOptions(), overwrite, progress_secs, max_chunk=1,  # slow points
                             layout=hessian_layout(shapes, layer_names))


@contextlib.contextmanager
def _moving(model, directions, x, y, device):
    """(world, grid, directions, device, setter) of one call: the model in eval mode on the device, its
    entries bound to the point setter; its tensors, device and mode come back as they were."""
    world = init_world()
    abort_on_uncaught(world)
    grid = make_grid(x, y)
    dirs = directions or random_directions(model, 2 if grid.is_2d else 1)
    with use.evaluation_mode(model, device, world) as device:
        setter = use.point_setter(model, dirs, grid)
        try:
            yield world, grid, dirs, device, setter
        finally:
            setter.restore()


def _dir_file(dirs):
    return dirs.path or use.IN_MEMORY


def _hessian_batches(world, model, names, mean, data, samples, batch, seed, method, device):
    if not use.is_pair(data):
        return use.check_reiterable(data)  # used as given, as by surface(); probe() refuses an empty one
    inputs, targets = use.on_device_pair(data, device)
    size = hvp_batch(world, model, names, mean, inputs, targets, batch, method, device)
    return tensor_batches(*sample_subset(inputs, targets, samples, seed), size)


def _surface_quantities(accuracy, test):
    sets = ("train", "test") if test else ("train",)
    return tuple(f"{s}_{q}" for s in sets for q in (("loss", "acc") if accuracy else ("loss",)))


def _planner(refine, grid, quantities):
    if refine is None:
        return None
    refine = refine if isinstance(refine, Refine) else Refine(refine)
    on = refine.on or quantities[0]
    if on not in quantities:
        raise GridSpecError(f"refine on {on}: this run computes only {', '.join(quantities)}")
    if not (isinstance(refine.tol, (int, float)) and refine.tol > 0):
        raise GridSpecError(f"refine tolerance {refine.tol!r}: give a positive number")
    return Refinement(grid.shape, refine.tol, on, refine.budget)


def _identity(model, dirs, grid, data, loss):
    """The default description of the inputs: hashes of what the call was given."""
    return dict(model=qualified_name(model), model_sha256=use.state_digest(model),
                dir_type=use.dir_type_of(dirs, model),
                directions_sha256=directions_digest(dirs), x=use.axis_list(grid.x), y=use.axis_list(grid.y),
                data_sha256=use.data_digest(data), loss=use.loss_label(loss))


def _with_settings(settings, identity, **decided):
    """settings_of() for run_job (rank 0 calls it, under the lock): the inputs' identity, given or
    hashed, plus what the call decides (batch, precision, Hessian options), which a resume must share."""
    def settings_of():
        given = settings() if callable(settings) else settings
        return dict(identity() if given is None else given, **decided)
    return settings_of


def _provenance(world, device, batch, dirs):
    return provenance_record(world, device, batch, _dir_file(dirs))
