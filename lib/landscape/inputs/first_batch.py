"""The user's model, data and loss tried together on a first small batch, before anything is written.

Each check names what is wrong in one line: a model that is not an nn.Module or has nothing to move,
data that is not (inputs, targets), a forward pass that raises, outputs the loss cannot take, targets
that do not fit the loss. The drivers and the API run the same checks (cli/context.py, api/session.py).
Pure: no files, flags or MPI.
"""
import contextlib
import dataclasses

import numpy as np
import torch

from ..errors import DataError, LandscapeError, LossError, ModelError
from ..space.evaluate import qualified_name
from ..space.finite import first_nonfinite
from .data import check_finite

FIRST_BATCH = 16  # samples of a tensor pair the checks run on: enough for BatchNorm, cheap for any model
NAMED_LOSS_NEEDS = {  # what the named losses take, for the messages
    "crossentropy": "integer class indices shaped (N,) below the number of outputs, or class probabilities "
                    "shaped like the outputs",
    "mse": "integer class indices shaped (N,) below the number of outputs",
}


def check_model(model):
    """A torch.nn.Module with floating-point parameters, all finite (buffers too): directions move them,
    the Hessian is over them."""
    if not isinstance(model, torch.nn.Module):
        raise ModelError(f"the model must be a torch.nn.Module, got {describe(model)}")
    if not any(p.is_floating_point() for p in model.parameters()):
        raise ModelError(f"model {qualified_name(model)} has no floating-point parameters: there is nothing to "
                         f"move along a direction")
    found = first_nonfinite(model.state_dict().items())
    if found is not None:  # before any direction is made from it: a NaN there would be blamed on the directions
        raise ModelError(f"model {qualified_name(model)}: {found[0]!r} holds {found[1]} NaN or infinite value(s); "
                         f"every point would be NaN")
    return model


def check_data(data, name="data"):
    """Refuse what is neither an (inputs, targets) pair of tensors nor a re-iterable of such batches, where
    the shape of the mistake is plain: one tensor, arrays instead of tensors, a pair of another length."""
    if torch.is_tensor(data) or isinstance(data, np.ndarray) or isinstance(data, dict):
        raise DataError(f"{name} is {describe(data)}; give an (inputs, targets) pair of tensors, or a "
                        f"re-iterable of (inputs, targets) batches (a DataLoader)")
    if isinstance(data, (tuple, list)) and data and all(_is_array(t) for t in data):
        if len(data) != 2:
            raise DataError(f"{name} holds {len(data)} tensors; give two: (inputs, targets)")
        if not all(torch.is_tensor(t) for t in data):
            raise DataError(f"{name} is a pair of {' and '.join(type(t).__name__ for t in data)}; give torch "
                            f"tensors (torch.as_tensor)")
        inputs, targets = data
        if inputs.ndim == 0 or targets.ndim == 0 or len(inputs) != len(targets) or len(inputs) == 0:
            raise DataError(f"{name}: inputs {describe(inputs)} and targets {describe(targets)}; need the same "
                            f"number of samples, more than 0")
        check_finite_pair(inputs, targets, name)


def check_finite_pair(inputs, targets, name="data"):
    """The command line's check (inputs.data.check_finite) on what the API is given: floating inputs and
    floating targets must be finite, or every point's loss would be NaN."""
    for what, tensor in (("inputs", inputs), ("targets", targets)):
        if torch.is_tensor(tensor) and tensor.is_floating_point():
            check_finite(tensor, f"the {what} of {name}")


class FiniteBatches:
    """The user's re-iterable of batches, each batch checked for NaN and inf on the first whole pass (the
    first point): the first-batch checks see one batch of a DataLoader, and a NaN in a later one would
    make every point NaN. A refusal then comes mid-grid, after the results file exists (exit 3)."""

    def __init__(self, batches, name="data"):
        self.batches, self.name, self.checked = batches, name, False

    def __iter__(self):
        for number, (inputs, targets) in enumerate(self.batches):
            if not self.checked:
                check_finite_pair(inputs, targets, f"batch {number} of the {self.name}")
            yield inputs, targets
        self.checked = True


def first_batch(data):
    """(inputs, targets) the checks run on: the first FIRST_BATCH samples of a pair, or the first batch."""
    if isinstance(data, (tuple, list)) and len(data) == 2 and all(torch.is_tensor(t) for t in data):
        return data[0][:FIRST_BATCH], data[1][:FIRST_BATCH]
    for batch in data:
        if not (isinstance(batch, (tuple, list)) and len(batch) == 2):
            raise DataError(f"each batch of the data must be an (inputs, targets) pair; the first is "
                            f"{describe(batch)}")
        if not torch.is_tensor(batch[1]):  # they are moved to the device, hashed, weighed by their count
            raise DataError(f"the targets of each batch must be a tensor; the first batch's are {describe(batch[1])}")
        return batch
    raise DataError("the data hold no batches")


@contextlib.contextmanager
def model_errors(model, name=None, during="on the data"):
    """An exception raised by the user's model (its forward, or a probe running it) as one ModelError that
    names the model and the error; our own errors pass through."""
    try:
        yield
    except LandscapeError:
        raise
    except Exception as e:  # any error of the user's code: its type and first line say what went wrong
        raise ModelError(f"model {name or qualified_name(model)} fails {during}: {error_line(e)}") from None


def outputs_of(model, inputs, name=None):
    """The model's outputs for a first batch; a forward that raises is a ModelError naming the model."""
    with model_errors(model, name, f"on the first {len(inputs)} input(s) ({describe(inputs)})"):
        return model(inputs)


def check_outputs(outputs, count, loss, name):
    """The outputs must be what the loss takes. A named loss (None, 'crossentropy', 'mse') takes a floating
    tensor of logits (N, classes, ...) for N inputs; a user's loss takes whatever the model returns and says
    itself what does not fit (check_loss_fits). The one place that decides which outputs are usable."""
    if callable(loss):
        return
    if (torch.is_tensor(outputs) and outputs.is_floating_point() and outputs.ndim >= 2
            and len(outputs) == count):
        return
    raise ModelError(f"model {name} returns {describe(outputs)} for {count} input(s); the loss "
                     f"{loss or 'crossentropy'} needs a floating tensor of logits shaped ({count}, classes): "
                     f"return one, or pass loss=fn(outputs, targets) that accepts this output")


def check_loss_fits(loss_total, outputs, targets, loss):
    """Call the loss on the first batch; an error there is a LossError naming the targets and the loss.
    Class indices out of the outputs' range are refused before the call (on a GPU they would abort it)."""
    label = "crossentropy" if loss is None else loss if isinstance(loss, str) else qualified_name(loss)
    needs = NAMED_LOSS_NEEDS.get(label) if not callable(loss) else None
    if needs and torch.is_tensor(targets) and not targets.is_floating_point() and targets.numel():
        low, high = int(targets.min()), int(targets.max())
        if low < 0 or high >= outputs.shape[1]:
            raise DataError(f"target {low if low < 0 else high} is outside [0, {outputs.shape[1]}): the model "
                            f"has {outputs.shape[1]} outputs per sample")
    try:
        loss_total(outputs, targets)
    except LandscapeError:
        raise
    except Exception as e:  # any error of torch's loss or the user's: the targets do not fit it
        hint = f"; {label} takes {needs}; or give a loss that takes these targets" if needs else ""
        raise LossError(f"the targets ({describe(targets)}) do not fit the loss {label} on the model's outputs "
                        f"({describe(outputs)}): {error_line(e)}{hint}") from None


def check_first_batch(model, data, loss, loss_total, device, name=None):
    """The model, its outputs and the loss on the data's first batch; returns (outputs, targets)."""
    inputs, targets = first_batch(data)
    check_finite_pair(inputs, targets, "the first batch of the data")
    name = name or qualified_name(model)
    outputs = outputs_of(model, inputs.to(device) if torch.is_tensor(inputs) else inputs, name)
    targets = targets.to(device) if torch.is_tensor(targets) else targets
    check_outputs(outputs, len(inputs), loss, name)
    check_loss_fits(loss_total, outputs, targets, loss)
    return outputs, targets


def describe(value):
    """What a value is, in a few words: 'a float32 tensor of shape (2, 10)', 'a dict with keys logits, aux'."""
    if torch.is_tensor(value) or isinstance(value, np.ndarray):
        kind, dtype = "tensor" if torch.is_tensor(value) else "numpy array", str(value.dtype).replace("torch.", "")
        return f"{'an' if dtype[0] in 'aeiou' else 'a'} {dtype} {kind} of shape {tuple(value.shape)}"
    if value is None:
        return "None"
    if dataclasses.is_dataclass(value):
        return f"a dataclass {type(value).__name__} with fields {', '.join(f.name for f in dataclasses.fields(value))}"
    if isinstance(value, dict):
        return f"a {type(value).__name__} with keys {', '.join(map(str, list(value)[:8])) or '(none)'}"
    if isinstance(value, (tuple, list)):
        return f"a {type(value).__name__} of {len(value)}"
    if hasattr(value, "__dict__") and not callable(value):
        return f"a {type(value).__name__} with attributes {', '.join(list(vars(value))[:8]) or '(none)'}"
    return f"a {type(value).__name__}"


def error_line(e):
    """'RuntimeError: mat1 and mat2 shapes cannot be multiplied (...)': its first line, one line in all."""
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0]}" if text else type(e).__name__


def _is_array(value):
    return torch.is_tensor(value) or isinstance(value, np.ndarray)
