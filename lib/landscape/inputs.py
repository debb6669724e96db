"""What the API's calls make of a user's objects: the grid, the device, the point setter, batches,
the loss, and the digests that identify them in a results file. No flags, files or MPI collectives
here except where named (choose_eval_batch asks rank 0).
"""
import contextlib
import hashlib

import numpy as np
import torch

from .checkpoint import update_with_tensors
from .dirfile import check_fits
from .directions import DIR_TYPES, named_entries
from .devices import check_precision_applies
from .errors import DataError, DirectionError, LandscapeError, LossError
from .evaluate import LOSS_NAMES, PRECISIONS, auto_batch_size, checked_mean_loss, device_layout, gives_accuracy, \
    loss_function, mean_loss_total, qualified_name, tensor_batches
from .flatparams import PointSetter
from .mpi import pick_device, ranks_per_gpu, share_device
from .runner import rank0_first
from .surfile import stored_settings

IN_MEMORY = "(in memory)"  # the dir_file a results file records for directions never saved


def axis_list(axis):
    return None if axis is None else [float(axis[0]), float(axis[-1]), len(axis)]


def dir_type_of(dirs, model):
    """The directions' own dir_type; a reference-code file records none: the entries its x direction fits."""
    if "dir_type" in dirs.attrs:
        return dirs.attrs["dir_type"]
    fits = [kind for kind in DIR_TYPES if len(named_entries(model, kind)) == len(dirs.x)]
    return fits[0] if fits else "weights"  # none fits: check_fits says how the file differs from the weights


@contextlib.contextmanager
def evaluation_mode(model, device, world):
    """Eval mode on the chosen device for the call; the model's mode and device are restored after.
    device: None (where the model is), 'auto'/'cpu'/'cuda' (picked per rank, as the drivers do) or a torch.device."""
    params = list(model.parameters())
    home = params[0].device if params else torch.device("cpu")
    if isinstance(device, str):
        target = pick_device(world, device)
    else:
        target = torch.device(device or home)
        share_device(world, target)  # every rank calls this: the batch probes leave room for GPU neighbours
    was_training = model.training
    model.to(target).eval()
    try:
        yield target
    finally:
        model.to(home).train(was_training)


def point_setter(model, dirs, grid):
    """Binds the model's entries to one flat buffer that moves along the directions (restore() undoes it)."""
    names, entries = zip(*named_entries(model, dir_type_of(dirs, model)))
    check_fits(dirs, names, [t.shape for t in entries], dirs.path or "the directions given")
    if grid.is_2d and not dirs.is_2d:
        where = f"{dirs.path} holds" if dirs.path else "these hold"
        raise DirectionError(f"a 2D grid (y given) needs two directions; {where} only x")
    return PointSetter(model, list(names), list(entries), dirs.x, dirs.y if grid.is_2d else None)


def is_pair(data):
    return isinstance(data, (tuple, list)) and len(data) == 2 and all(torch.is_tensor(t) for t in data)


def on_device_pair(data, device):
    """An (inputs, targets) pair on the device, checked; images in the faster channels_last layout."""
    inputs, targets = data
    if len(inputs) != len(targets) or len(inputs) == 0:
        raise DataError(f"data: {len(inputs)} inputs and {len(targets)} targets; need the same number, > 0")
    return device_layout(inputs.to(device)), targets.to(device)


def check_reiterable(data):
    if not hasattr(data, "__iter__") or iter(data) is data:
        raise DataError(f"data must be an (inputs, targets) pair of tensors or a re-iterable of batches "
                        f"(a DataLoader, a list); got a {type(data).__name__}")
    return data


def _positive_whole(value):
    return not isinstance(value, bool) and isinstance(value, (int, np.integer)) and value >= 1


def check_batch_size(value, name):
    if value != "auto" and not _positive_whole(value):
        raise DataError(f"{name}={value!r}: give a positive whole number or 'auto'")


def check_precision(precision, device):
    if precision not in PRECISIONS:
        raise LandscapeError(f"precision={precision!r} is not one of {', '.join(PRECISIONS)}")
    check_precision_applies(precision, device.type)


def check_samples(samples):
    if samples is not None and not _positive_whole(samples):
        raise DataError(f"samples={samples!r}: give a positive whole number, or None for every sample")


def check_identifiable(data, path, settings):
    """A shuffled DataLoader gives other batches, so another hash, on every pass: a resume of `path`
    could never match it. Without settings= describing the data, it is refused before any work."""
    shuffled = isinstance(getattr(data, "sampler", None), torch.utils.data.RandomSampler)
    if shuffled and path is not None and settings is None and not _tensor_dataset(data):
        raise DataError("a shuffled DataLoader hashes differently on every pass, so its results file could not be "
                        "resumed: give settings={...} that describe the data (the hash is then skipped), or "
                        "shuffle=False")


def _tensor_dataset(data):
    dataset = getattr(data, "dataset", None)
    return dataset.tensors if isinstance(dataset, torch.utils.data.TensorDataset) else None


def choose_eval_batch(world, model, inputs, precision, path, overwrite):
    """(batch, how): the one a resume of `path` used (it changes the sums' rounding, so it is a
    compared setting), else the fastest measured here; rank 0 chooses, every rank uses its choice."""
    sharing = ranks_per_gpu(world, inputs.device)  # the GPU probe leaves room for the other ranks on it

    def choose():
        stored = None if overwrite or path is None else stored_settings(path, "surface")
        if stored and stored.get("eval_batch"):
            return stored["eval_batch"], f"reused from {path}"
        return auto_batch_size(model, inputs, precision, ranks_sharing=sharing), "timed"
    return rank0_first(world, choose)


def eval_batches(data, model, device, batch_size, precision, world, path, overwrite):
    """(batches, batch size or None): a pair of tensors lives on the device, sliced; an iterable is used as given."""
    if not is_pair(data):
        return check_reiterable(data), None
    inputs, targets = on_device_pair(data, device)
    if batch_size == "auto":
        batch_size, how = choose_eval_batch(world, model, inputs, precision, path, overwrite)
        if world.rank == 0:
            print(f"[surface] evaluation batch size {batch_size} (batch_size auto: {how})", flush=True)
    return tensor_batches(inputs, targets, int(batch_size)), int(batch_size)


def summed_loss(loss):
    """The batch's summed loss: None/'crossentropy' or 'mse' (the reference's), or a user's mean loss."""
    if isinstance(loss, str):
        if loss not in LOSS_NAMES:
            raise LossError(f"loss {loss!r} is not one of {', '.join(LOSS_NAMES)}; or give a function "
                            f"loss(outputs, targets) -> mean loss")
        return loss_function(loss)
    return mean_loss_total(loss)


def mean_loss(loss):
    """The batch-mean loss, as the Hessian is taken of it: a user's function as it is (checked for one
    number per batch), a named loss as its sum over the batch size."""
    if loss is None or isinstance(loss, str):
        total = summed_loss(loss)
        return lambda outputs, targets: total(outputs, targets) / len(targets)
    return checked_mean_loss(loss)


def loss_label(loss):
    return loss if isinstance(loss, str) else "crossentropy" if loss is None else qualified_name(loss)


@torch.inference_mode()
def probe(model, batches, loss_total, device):
    """Check the loss on the first batch before any work; returns whether accuracy applies."""
    for inputs, targets in batches:
        outputs = model(inputs.to(device))
        loss_total(outputs, targets.to(device))
        return gives_accuracy(outputs, targets)
    raise DataError("the data hold no batches")


def state_digest(model):
    h = hashlib.sha256()
    for name, t in model.state_dict().items():
        h.update(name.encode())
        update_with_tensors(h, [t])
    return h.hexdigest()


def data_digest(data):
    if data is None:
        return None
    h = hashlib.sha256()
    tensors = _tensor_dataset(data)  # a DataLoader over tensors: them, whatever its batches and order
    for batch in [data] if is_pair(data) else [tensors] if tensors else data:
        update_with_tensors(h, batch)
    return h.hexdigest()
