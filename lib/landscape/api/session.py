"""What every API call shares: its Call (world, grid, directions, device, the model's point setter),
what it records about its inputs in the results file, and running its GridJob to a Result.

surface() and hessian_map() differ only in what they compute at a point; this is the rest.
"""
import contextlib
import os
import platform
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, replace

import numpy as np
import torch

from ..errors import DirectionError, GridSpecError
from ..files.directions import Directions, check_fits, directions_digest
from ..files.resume import stored_settings
from ..inputs.first_batch import FiniteBatches, check_model, model_errors
from ..inputs.user import check_reiterable, data_digest, is_pair, loss_label, on_device_pair, state_digest
from ..job.batch import auto_batch_size
from ..job.mpi import abort_on_uncaught, init_world, pick_device, rank0_first, ranks_per_gpu, share_device
from ..job.run import run_job
from ..space.directions import DIR_TYPES, named_entries
from ..space.evaluate import tensor_batches
from ..space.flatparams import PointSetter
from ..space.grid import make_grid
from ..space.model_io import qualified_name
from ..version import __version__
from .directions import load_directions, random_directions
from .result import Result

IN_MEMORY = "(in memory)"  # the dir_file a results file records for directions never saved


@dataclass(frozen=True)
class Call:
    """One API call: the MPI world (every rank makes the same call), the grid, the directions, the
    device the model was moved to, and the setter that moves it to a grid point."""
    world: object
    grid: object
    directions: Directions
    device: torch.device
    setter: PointSetter

    @property
    def dir_file(self):
        """What the results file records as its direction file."""
        return self.directions.path or IN_MEMORY


@dataclass(frozen=True)
class ItemsCall:
    """A call whose grid holds work items rather than points of a plane (a table's checkpoints x measures):
    the world, the device, and what the results file records in place of a direction file."""
    world: object
    device: torch.device
    dir_file: str


@contextlib.contextmanager
def model_in_call(model, directions, x, y, device):
    """The Call: the model in eval mode on the device, its entries bound to the point setter; its
    tensors, device and mode come back as they were when the call ends."""
    check_model(model)  # before anything runs it or moves its parameters
    world = init_world()
    abort_on_uncaught(world)
    grid = make_grid(x, y)
    dirs = as_directions(directions) or random_directions(model, 2 if grid.is_2d else 1)
    with evaluation_mode(model, device, world) as device:
        setter = point_setter(model, dirs, grid)
        try:
            yield Call(world, grid, dirs, device, setter)
        finally:
            setter.restore()


def as_directions(directions):
    """None, Directions, or a direction file's path (read here); anything else is refused by name."""
    if directions is None or isinstance(directions, Directions):
        return directions
    if isinstance(directions, (str, os.PathLike)):
        return load_directions(directions)
    raise DirectionError(f"directions must be landscape Directions (random_directions, target_directions, "
                         f"load_directions) or a direction file's path; got a {type(directions).__name__}")


@contextlib.contextmanager
def evaluation_mode(model, device, world):
    """Eval mode on the chosen device for the call; the model's mode and device are restored after.
    device: None (where the model is), 'auto'/'cpu'/'cuda' (picked per rank, as the drivers do) or a torch.device."""
    if isinstance(device, str):
        target = pick_device(world, device)
    else:
        target = torch.device(device or _home(model))
        share_device(world, target)  # every rank calls this: the batch probes leave room for GPU neighbours
    with evaluated_on(model, target):
        yield target


def _home(model):
    params = list(model.parameters())
    return params[0].device if params else torch.device("cpu")


@contextlib.contextmanager
def evaluated_on(model, target):
    """The model in eval mode on `target` for the block, its mode and device restored after; no collective,
    so one rank may use it for a model of its own."""
    home = _home(model)
    modes = [(module, module.training) for module in model.modules()]  # each its own: a HF model inside a
    model.to(target).eval()                                             # wrapper may be in eval mode alone
    try:
        yield target
    finally:
        model.to(home)
        for module, training in modes:
            module.training = training


def dir_type_of(dirs, model):
    """The directions' own dir_type; a reference-code file records none: the entries its x direction fits."""
    if "dir_type" in dirs.attrs:
        return dirs.attrs["dir_type"]
    fits = [kind for kind in DIR_TYPES if len(named_entries(model, kind)) == len(dirs.x)]
    return fits[0] if fits else "weights"  # none fits: check_fits says how the file differs from the weights


def point_setter(model, dirs, grid):
    """Binds the model's entries to one flat buffer that moves along the directions (restore() undoes it)."""
    names, entries = zip(*named_entries(model, dir_type_of(dirs, model)))
    check_fits(dirs, names, [t.shape for t in entries], dirs.path or "the directions given")
    if grid.is_2d and not dirs.is_2d:
        where = f"{dirs.path} holds" if dirs.path else "these hold"
        raise DirectionError(f"a 2D grid (y given) needs two directions; {where} only x")
    setter = PointSetter(model, list(names), list(entries), dirs.x, dirs.y if grid.is_2d else None)
    corner = setter.overflowing_corner(grid.x, grid.y)
    if corner is not None:
        setter.restore()
        raise GridSpecError(f"the grid reaches (a, b) = ({corner[0]:g}, {corner[1]:g}), where theta0 + a*dx + b*dy "
                            f"overflows the model's {str(setter.flat.dtype).replace('torch.', '')} parameters; "
                            f"use a smaller range of x and y (--x/--y)")
    return setter


def check_reach(model, dirs, grid):
    """What point_setter refuses, checked without keeping the setter: a driver checks new directions
    against the grid before it writes them to a file."""
    point_setter(model, dirs, grid).restore()


def eval_batches(call, model, data, batch_size, precision, resumed):
    """(batches, batch size or None): a pair of tensors lives on the device, sliced; an iterable is used
    as given. resumed: the results file a resume reuses the batch size of (None for a new one)."""
    if not is_pair(data):
        return FiniteBatches(check_reiterable(data)), None
    inputs, targets = on_device_pair(data, call.device)
    if batch_size == "auto":
        batch_size, how = _choose_eval_batch(call, model, inputs, precision, resumed)
        if call.world.rank == 0:
            print(f"[surface] evaluation batch size {batch_size} (batch_size auto: {how})", flush=True)
    return tensor_batches(inputs, targets, int(batch_size)), int(batch_size)


def _choose_eval_batch(call, model, inputs, precision, resumed):
    """(batch, how): the one a resume of `resumed` used (it changes the sums' rounding, so it is a
    compared setting), else the fastest measured here; rank 0 chooses, every rank uses its choice."""
    sharing = ranks_per_gpu(call.world, call.device)  # the GPU probe leaves room for the other ranks on it

    def choose():
        stored = None if resumed is None else stored_settings(resumed, "surface")
        if stored and stored.get("eval_batch"):
            return stored["eval_batch"], f"reused from {resumed}"
        print("[surface] batch_size auto: timing batch sizes on this device", flush=True)  # a stop ends it at once
        with model_errors(model, during="in the batch-size probe"):
            return auto_batch_size(model, inputs, precision, ranks_sharing=sharing), "timed"
    return rank0_first(call.world, choose)


def identity(call, model, data, loss):
    """The default description of the inputs: hashes of what the call was given."""
    dirs = call.directions
    return dict(model=qualified_name(model), model_sha256=state_digest(model), dir_type=dir_type_of(dirs, model),
                directions_sha256=directions_digest(dirs), **call.grid.record(), data_sha256=data_digest(data),
                loss=loss_label(loss))


def settings_function(settings, identity_of, **decided):
    """settings_of() for the GridJob (rank 0 calls it, under the lock): the inputs' identity, given or
    hashed, plus what the call decides (batch, precision, Hessian options), which a resume must share."""
    def settings_of():
        given = settings() if callable(settings) else settings
        return dict(identity_of() if given is None else given, **decided)
    return settings_of


def provenance(call, eval_batch):
    """Where and with what a run was made: stored with the results, never compared."""
    import h5py
    versions = dict(landscape=__version__, torch=torch.__version__, numpy=np.__version__,
                    h5py=h5py.__version__, python=platform.python_version())
    try:
        import mpi4py
        versions["mpi4py"] = mpi4py.__version__
    except ImportError:
        pass
    return dict(started=time.strftime("%Y-%m-%dT%H:%M:%S%z"), host=platform.node(), ranks=call.world.size,
                device=str(call.device), eval_batch=eval_batch, argv=sys.argv, versions=versions,
                dir_file=call.dir_file, parallel_hdf5=bool(h5py.get_config().mpi))


@contextlib.contextmanager
def results_path(world, path):
    """(path, temporary): the user's file, or one in a temporary folder that rank 0 alone writes and
    removes (every rank knows its name; only rank 0 opens it)."""
    if path is not None:
        yield str(path), False
        return
    folder = world.bcast(tempfile.mkdtemp(prefix="landscape-") if world.rank == 0 else None)
    try:
        yield f"{folder}/results.h5", True
    finally:
        if world.rank == 0:
            shutil.rmtree(folder, ignore_errors=True)


def run_to_result(call, path, job, options):
    """Run the GridJob into `path` (or a temporary file) with JobOptions; every rank gets the file as a
    Result (rank 0 reads it), whose is_complete(kind) says whether the grid, or the refinement, is done.
    A job stopped before its grid started touched no file: its Result has nothing done."""
    with results_path(call.world, path) as (file_path, temporary):
        options = replace(options, serial_io=True) if temporary else options
        made = []  # the file, once run_job has created or checked it (every rank is told)
        options = replace(options, on_results=_also(options.on_results, made.append))
        end = run_job(call.world, replace(job, path=file_path), options)
        if not made:
            return Result.nothing_done(job.layout, call.dir_file)
        result = rank0_first(call.world, lambda: Result.from_file(end.path))  # moved during the run: found there
        result.path = None if temporary else end.path
        return result


def _also(first, then):
    """on_results for run_job: the caller's own (if any), then ours."""
    def both(path):
        if first is not None:
            first(path)
        then(path)
    return both
