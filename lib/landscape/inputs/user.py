"""The user's own objects, checked and described: data given as a tensor pair or as batches, the loss
(named or a function), batch sizes, and the digests that identify model and data in a results file.

Pure: no files, flags or MPI. What needs the ranks or the results file (the device, the batch a
resume reuses) is decided in api/.
"""
import hashlib

import numpy as np
import torch

from ..curvature.gauss_newton import check_logits
from ..errors import DataError, LandscapeError
from ..space.evaluate import device_layout
from ..space.losses import gives_accuracy, hits_function, weighted_loss
from ..space.model_io import count_of, input_tensors, is_input_dict, qualified_name, to_device
from ..space.precision import PRECISIONS, check_precision_applies
from .checkpoint import update_with_tensors
from .first_batch import check_first_batch


def is_pair(data):
    """An (inputs, targets) pair held whole: targets a tensor, inputs a tensor or a dict of tensors."""
    return (isinstance(data, (tuple, list)) and len(data) == 2 and torch.is_tensor(data[1])
            and (torch.is_tensor(data[0]) or is_input_dict(data[0]) and bool(data[0])
                 and all(torch.is_tensor(t) for t in data[0].values())))


def on_device_pair(data, device):
    """An (inputs, targets) pair on the device, checked; images in the faster channels_last layout."""
    inputs, targets = data
    if count_of(inputs) != len(targets) or len(targets) == 0:
        raise DataError(f"data: {count_of(inputs)} inputs and {len(targets)} targets; need the same number, > 0")
    inputs = to_device(inputs, device)
    return (inputs if is_input_dict(inputs) else device_layout(inputs)), targets.to(device)


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


def summed_loss(loss):
    """The engine's loss (outputs, targets, inputs) -> (sum, weight): None/'crossentropy', 'mse' (the
    reference's), 'causal_lm' (next-token prediction), or a user's loss(outputs, targets) -> batch mean."""
    return weighted_loss(loss)


def loss_label(loss):
    return loss if isinstance(loss, str) else "crossentropy" if loss is None else qualified_name(loss)


@torch.inference_mode()
def probe(model, data, loss, loss_total, device, curvature="hessian"):
    """The model, its outputs and the loss tried on the data's first batch before any work (also before a
    batch-size probe runs the model); for the GGN and the EF, also the logits they are taken through.
    Returns what counts the right answers, or None where accuracy does not apply."""
    if not is_pair(data):
        check_reiterable(data)
    outputs, targets = check_first_batch(model, data, loss, loss_total, device)
    if curvature != "hessian":
        check_logits(outputs, len(targets), curvature, model)
    return hits_function(loss) if gives_accuracy(outputs, targets, loss) else None


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
        inputs, *rest = batch
        if is_input_dict(inputs):  # the keyword names are part of the data: input_ids is not attention_mask
            h.update(repr(sorted(inputs)).encode())
        update_with_tensors(h, [*input_tensors(inputs), *rest])
    return h.hexdigest()
