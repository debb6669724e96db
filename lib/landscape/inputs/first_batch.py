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
from ..space.finite import first_nonfinite
from ..space.losses import IGNORE_INDEX
from ..space.model_io import (
    call_model,
    count_of,
    input_tensors,
    is_input_dict,
    logits_of,
    qualified_name,
    take,
    to_device,
)
from .data import check_finite

FIRST_BATCH = 16  # samples of a tensor pair the checks run on: enough for BatchNorm, cheap for any model
NAMED_LOSS_NEEDS = {  # what the named losses take, for the messages
    "crossentropy": "integer class indices shaped (N,) below the number of outputs, or class probabilities "
                    "shaped like the outputs",
    "mse": "integer class indices shaped (N,) below the number of outputs",
    "causal_lm": f"integer token ids shaped (N, T) like the logits' first two dimensions, below the vocabulary "
                 f"size, or {IGNORE_INDEX} for tokens not to predict",
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
        raise DataError(f"{name} is {describe(data)}; give an (inputs, targets) pair of tensors (inputs may be a "
                        f"dict of tensors, passed as keyword arguments), or a re-iterable of (inputs, targets) "
                        f"batches (a DataLoader)")
    if isinstance(data, (tuple, list)) and any(map(_is_array, data)) and \
            all(_is_array(t) or is_input_dict(t) for t in data):  # a pair (a list of dicts is batches)
        if len(data) != 2:
            raise DataError(f"{name} holds {len(data)} tensors; give two: (inputs, targets)")
        inputs, targets = data
        if is_input_dict(inputs):
            check_input_dict(inputs, name)
        if not all(torch.is_tensor(t) for t in (*input_tensors(inputs), targets)):
            raise DataError(f"{name} is a pair of {' and '.join(type(t).__name__ for t in data)}; give torch "
                            f"tensors (torch.as_tensor)")
        if any(t.ndim == 0 for t in input_tensors(inputs)) or targets.ndim == 0 or \
                count_of(inputs) != len(targets) or len(targets) == 0:
            raise DataError(f"{name}: inputs {describe(inputs)} and targets {describe(targets)}; need the same "
                            f"number of samples, more than 0")
        check_finite_pair(inputs, targets, name)


def check_input_dict(inputs, name):
    """A dict of inputs: tensors under string keys (the model's keyword arguments), one count of samples."""
    wrong = [key for key, value in inputs.items() if not (isinstance(key, str) and torch.is_tensor(value))]
    if not inputs or wrong:
        raise DataError(f"{name}: the inputs are {describe(inputs)}; a dict of inputs must map keyword names to "
                        f"tensors{f' ({wrong[0]!r} does not)' if wrong else ''}")
    counts = {key: len(value) if value.ndim else 0 for key, value in inputs.items()}
    if len(set(counts.values())) != 1:
        raise DataError(f"{name}: the inputs' tensors hold different numbers of samples: "
                        f"{', '.join(f'{k} {n}' for k, n in counts.items())}")


def check_finite_pair(inputs, targets, name="data"):
    """The command line's check (inputs.data.check_finite) on what the API is given: floating inputs and
    floating targets must be finite, or every point's loss would be NaN."""
    named = [(f"inputs[{key!r}]", value) for key, value in inputs.items()] if is_input_dict(inputs) \
        else [("inputs", inputs)]
    for what, tensor in (*named, ("targets", targets)):
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
    if isinstance(data, (tuple, list)) and len(data) == 2 and torch.is_tensor(data[1]):
        return take(data[0], slice(0, FIRST_BATCH)), data[1][:FIRST_BATCH]
    for batch in data:
        if not (isinstance(batch, (tuple, list)) and len(batch) == 2):
            raise DataError(f"each batch of the data must be an (inputs, targets) pair; the first is "
                            f"{describe(batch)}{_pair_hint(batch)}")
        if is_input_dict(batch[0]):
            check_input_dict(batch[0], "the first batch of the data")
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
    with model_errors(model, name, f"on the first {count_of(inputs)} input(s) ({describe(inputs)})"):
        return call_model(model, inputs)


def check_outputs(outputs, count, loss, name):
    """The outputs must be what the loss takes. A named loss takes floating logits, given as a tensor, as
    .logits or as ["logits"] (HuggingFace): shaped (N, classes, ...) for N inputs, (N, T, vocabulary) for
    causal_lm. A user's loss takes whatever the model returns and says itself what does not fit
    (check_loss_fits). The one place that decides which outputs are usable."""
    if callable(loss):
        return
    logits = logits_of(outputs)
    ndim = 3 if loss == "causal_lm" else 2
    if (logits is not None and logits.is_floating_point() and logits.ndim >= ndim and len(logits) == count
            and (ndim == 2 or logits.ndim == 3)):
        return
    shape = f"({count}, T, vocabulary)" if loss == "causal_lm" else f"({count}, classes)"
    raise ModelError(f"model {name} returns {describe(outputs)} for {count} input(s); the loss "
                     f"{loss or 'crossentropy'} needs floating logits shaped {shape} (a tensor, .logits or "
                     f"['logits']): return them, or pass loss=fn(outputs, targets) that accepts this output")


def check_targets_fit(logits, targets, loss):
    """Class indices (token ids) of a named loss within the logits' range, refused before the loss runs
    (on a GPU an index out of range aborts the process); causal_lm's targets shaped like the tokens."""
    if loss == "causal_lm" and tuple(targets.shape) != tuple(logits.shape[:2]):
        raise DataError(f"causal_lm takes the token ids as targets, shaped like the logits' (N, T) = "
                        f"{tuple(logits.shape[:2])}; got {describe(targets)}")
    if targets.is_floating_point() or not targets.numel():
        return
    classes = logits.shape[-1] if loss == "causal_lm" else logits.shape[1]
    known = targets[targets != IGNORE_INDEX] if loss == "causal_lm" else targets
    low, high = (int(known.min()), int(known.max())) if known.numel() else (0, 0)
    if low < 0 or high >= classes:
        raise DataError(f"target {low if low < 0 else high} is outside [0, {classes}): the model has {classes} "
                        f"outputs per {'token' if loss == 'causal_lm' else 'sample'}")


def check_loss_fits(loss_total, outputs, targets, inputs, loss):
    """Call the loss on the first batch; an error there is a LossError naming the targets and the loss."""
    label = "crossentropy" if loss is None else loss if isinstance(loss, str) else qualified_name(loss)
    needs = NAMED_LOSS_NEEDS.get(label) if not callable(loss) else None
    if needs and torch.is_tensor(targets):
        check_targets_fit(logits_of(outputs), targets, label)
    try:
        loss_total(outputs, targets, inputs)
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
    inputs = to_device(inputs, device) if torch.is_tensor(inputs) or is_input_dict(inputs) else inputs
    outputs = outputs_of(model, inputs, name)
    targets = targets.to(device) if torch.is_tensor(targets) else targets
    check_outputs(outputs, count_of(inputs), loss, name)
    check_loss_fits(loss_total, outputs, targets, inputs, loss)
    return outputs, targets


def _pair_hint(batch):
    """For a batch that is one dict (as HuggingFace collators give): how to make it a pair."""
    if is_input_dict(batch) and "labels" in batch:
        return "; split it into (inputs, targets): the model's keyword arguments and the labels"
    return ""


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
