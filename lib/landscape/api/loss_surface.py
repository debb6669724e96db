"""landscape.surface: loss and accuracy of a model over a 1D or 2D grid of directions (Li et al. 2018).

    import landscape
    dirs = landscape.random_directions(model, n=2)
    res = landscape.surface(model, (x, y), directions=dirs, x=(-1, 1, 25), y=(-1, 1, 25))
    res.train_loss            # numpy (len(y), len(x))

Launched with `mpirun -n N python script.py` (or srun) the same call splits the points across the
ranks; every rank returns the complete result. `path=` writes and resumes a results file in the
layout plot_surface.py writes (plot_surface.py is this function behind flags). The model's
parameters are exactly as they were when a call returns.
"""
from dataclasses import dataclass

from ..errors import GridSpecError
from ..files.results import QUANTITIES, Layout
from ..inputs.first_batch import check_data
from ..inputs.user import check_batch_size, check_identifiable, check_precision, data_digest, probe, summed_loss
from ..job.devices import bf16_note
from ..job.mpi import native_bf16_of
from ..job.run import GridJob, JobOptions
from ..space.evaluate import evaluate_batches
from ..space.refine import Refinement
from .session import eval_batches, identity, model_in_call, provenance, run_to_result, settings_function


@dataclass(frozen=True)
class Refine:
    """Adaptive refinement (README "Adaptive refinement"): x/y give the finest grid; cells whose estimated
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
    (N, classes) scores and targets N class indices. x, y: (min, max, num) or 'min:max:num'; or x a Grid
    (landscape.make_grid) for both. refine: a tolerance or a Refine. settings: what identifies the inputs
    when `path` is resumed (a dict or a function giving one; default: hashes of the model, directions,
    data and loss). job: JobOptions. Returns a Result.
    """
    check_batch_size(batch_size, "batch_size")
    for name, given in (("data", data), ("test_data", test_data)):
        check_identifiable(given, path, settings)
        if given is not None:
            check_data(given, name)
    resumed = None if overwrite else path
    with model_in_call(model, directions, x, y, device) as call:
        check_precision(precision, call.device)
        note_native_bf16(call.world, call.device, precision)  # fp32 on bf16 hardware: say what bf16 would give
        loss_total = summed_loss(loss)
        hits = probe(model, data, loss, loss_total, call.device)  # before a batch-size probe runs the model
        if test_data is not None:
            probe(model, test_data, loss, loss_total, call.device)
        sets = [eval_batches(call, model, data, batch_size, precision, resumed)]
        if test_data is not None:  # the train set's batch size, so both sum alike (and resume alike)
            sets.append(eval_batches(call, model, test_data, sets[0][1] or batch_size, precision, resumed))
        quantities = _surface_quantities(hits is not None, test_data is not None)

        def evaluate_point(index):
            call.setter.set(*call.grid.coords(index))
            values = []
            for batches, _ in sets:
                mean, acc = evaluate_batches(model, batches, loss_total, precision, hits, call.device)
                values += [mean] + ([acc] if hits else [])
            return tuple(values)

        def identity_of():
            return dict(identity(call, model, data, loss), test_data_sha256=data_digest(test_data))
        settings_of = settings_function(settings, identity_of, eval_batch=sets[0][1], precision=precision)
        grid_job = GridJob(None, Layout(call.grid, "surface", quantities), evaluate_point, settings_of,
                           provenance(call, sets[0][1]), call.dir_file, overwrite,
                           planner=_planner(refine, call.grid, quantities), progress_secs=progress_secs)
        return run_to_result(call, path, grid_job, job or JobOptions())


_NOTED = set()  # the device types whose bf16 note this process has printed


def note_native_bf16(world, device, precision):
    """Rank 0 prints bf16_note once per process and device type (a loop of API calls gets it once)."""
    if world.rank != 0 or precision != "fp32" or device.type in _NOTED:
        return
    _NOTED.add(device.type)
    note = bf16_note(precision, device.type, native_bf16_of(device))
    if note:
        print(f"[surface] {note}", flush=True)


def _surface_quantities(accuracy, test):
    wanted = [f"{s}_{q}" for s in ("train", "test")[:1 + test] for q in ("loss", "acc")[:1 + accuracy]]
    return tuple(name for name in QUANTITIES["surface"] if name in wanted)


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
