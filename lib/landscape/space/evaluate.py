"""Mean loss and accuracy of a model over tensors held on its device: pure, one host sync per call."""
import math

import torch
import torch.nn.functional as F

from ..errors import ChoiceError, LossError
from .precision import precision_context

LOSS_NAMES = ("crossentropy", "mse")


def crossentropy_sum(logits, y):
    return F.cross_entropy(logits.float(), y, reduction="sum")


def mse_sum(logits, y):
    """The reference's MSE: softmax probabilities against one-hot targets, mean over classes."""
    probs = torch.softmax(logits.float(), dim=1)
    onehot = F.one_hot(y, probs.shape[1]).to(probs.dtype)
    return ((probs - onehot) ** 2).mean(dim=1).sum()


def loss_function(name):
    """Summed-over-batch loss for a validated --loss_name."""
    losses = {"crossentropy": crossentropy_sum, "mse": mse_sum}
    if name not in losses:
        raise ChoiceError(f"--loss_name={name!r} is not one of {', '.join(LOSS_NAMES)}")
    return losses[name]


def checked_mean_loss(loss):
    """A user's loss(outputs, targets) -> batch mean, refused now if not callable and on use if its
    value is not one number."""
    if not callable(loss):
        raise LossError(f"loss must be a function loss(outputs, targets) -> mean loss, got a {type(loss).__name__}")

    def mean(outputs, targets):
        value = loss(outputs, targets)
        if not torch.is_tensor(value) or value.numel() != 1:
            shape = tuple(value.shape) if torch.is_tensor(value) else type(value).__name__
            raise LossError(f"loss {qualified_name(loss)} must return the batch's mean loss as one number (a scalar "
                            f"tensor), got {shape}")
        return value.reshape(())
    return mean


def mean_loss_total(loss):
    """The batch's summed loss from a user's loss(outputs, targets) -> batch mean."""
    if loss is None:
        return crossentropy_sum
    mean = checked_mean_loss(loss)
    return lambda outputs, targets: mean(outputs, targets).double() * len(targets)  # outputs may be a tuple, a dict


def qualified_name(obj):
    """'module.Name' of a function or class, or of a model's class (what settings and messages show)."""
    kind = obj if isinstance(obj, type) or callable(obj) and not isinstance(obj, torch.nn.Module) else type(obj)
    return f"{getattr(kind, '__module__', '?')}.{getattr(kind, '__qualname__', repr(kind))}"


def tensor_batches(x, y, batch_size):
    """Consecutive (inputs, targets) slices of two device-resident tensors."""
    return [(x[start:start + batch_size], y[start:start + batch_size]) for start in range(0, len(x), batch_size)]


def gives_accuracy(outputs, targets):
    """Accuracy applies to (N, classes) scores against N integer class indices, and to nothing else."""
    if not (torch.is_tensor(outputs) and torch.is_tensor(targets)):  # a user's loss may take other outputs
        return False
    return (outputs.ndim == 2 and targets.ndim == 1 and len(targets) == len(outputs)
            and not targets.is_floating_point() and not targets.is_complex() and targets.dtype != torch.bool)


@torch.inference_mode()
def evaluate_batches(model, batches, loss_total, precision="fp32", accuracy=True, device=None):
    """(mean loss, accuracy in percent or None) over an iterable of (inputs, targets) batches.
    A point whose loss is not finite gets NaN accuracy: its argmax would be a number without meaning.

    loss_total(outputs, targets) is the batch's summed loss, so batches are weighted by their size.
    Batches not on `device` are moved there. Sums stay on the device and are read back once, so
    the GPU never waits on the host mid-pass.
    """
    loss = correct = None
    count = 0
    with precision_context(precision, device or torch.device("cpu")):
        for inputs, targets in batches:
            if device is not None:
                inputs, targets = inputs.to(device, non_blocking=True), targets.to(device, non_blocking=True)
            outputs = model(inputs)
            batch = loss_total(outputs, targets).double()
            loss = batch if loss is None else loss + batch
            if accuracy:
                hits = (outputs.argmax(dim=1) == targets).sum()
                correct = hits if correct is None else correct + hits
            count += len(inputs)
    if count == 0:
        raise ValueError("the data hold no samples")
    sums = torch.stack([loss, correct.double()] if accuracy else [loss]).tolist()
    mean = sums[0] / count
    if not accuracy:
        return mean, None
    return mean, 100.0 * sums[1] / count if math.isfinite(mean) else float("nan")  # no accuracy of a NaN model


def evaluate(model, x, y, loss_sum, batch_size, precision="fp32", accuracy=True):
    """(mean loss, accuracy in percent, or None without accuracy) over all of x, y held on one device."""
    return evaluate_batches(model, tensor_batches(x, y, batch_size), loss_sum, precision, accuracy, x.device)


def device_layout(x):
    """Images stored channels_last once: oneDNN and cuDNN convolutions run faster on it (docs/BENCHMARKS.md)."""
    return x.contiguous(memory_format=torch.channels_last) if x.dim() == 4 else x
