"""The straight line between two networks' weights and the barrier along it (linear mode connectivity,
Frankle et al. 2020): pure functions over state dicts, modules and arrays.

w(t) = (1 - t) w_a + t w_b over every floating entry of the state (parameters and float buffers, BN
running statistics included); integer entries (num_batches_tracked) stay model_a's. With BatchNorm the
interpolated running statistics describe neither network, so they are usually re-estimated at each t
from training batches (Garipov et al. 2018; Jordan et al. 2023, REPAIR): reestimate_running_stats.
"""
import itertools

import numpy as np
import torch

from ..errors import ChoiceError
from .model_io import call_model, to_device
from .precision import precision_context

BARRIER_KINDS = ("linear", "mean")


def architecture_mismatch(model_a, model_b):
    """The first difference between two models that keeps their weights from lying on one line, in a few
    words, or None: a module of another class (or missing) at some name, a state entry only one of them
    has, or an entry of another shape or kind (floating point against integer)."""
    modules_a, modules_b = dict(model_a.named_modules()), dict(model_b.named_modules())
    for name, module in modules_a.items():
        other = modules_b.get(name)
        if type(other) is not type(module):
            where = f"module {name!r}" if name else "the model"
            found = "none there" if other is None else f"a {type(other).__name__}"
            return f"{where} is a {type(module).__name__} in model_a; model_b has {found}"
    extra = [name for name in modules_b if name not in modules_a]
    if extra:
        return f"module {extra[0]!r} is in model_b only"
    return state_mismatch(model_tensors(model_a), model_tensors(model_b))


def model_tensors(model):
    """{name: tensor} of every parameter and buffer, under each of its names (a tied weight under all of
    them), detached but sharing the model's storage: writing into them moves the model. The tensors
    themselves, not state_dict(), which a module may fill with copies of its own making."""
    named = itertools.chain(model.named_parameters(remove_duplicate=False), model.named_buffers(remove_duplicate=False))
    return {name: t.detach() for name, t in named}


def state_mismatch(state_a, state_b):
    """The first entry of two {name: tensor} states that differs in name, shape or kind, in a few words, or None."""
    for name, a in state_a.items():
        if name not in state_b:
            return f"entry {name!r} is in model_a only"
        b = state_b[name]
        if torch.is_tensor(a) != torch.is_tensor(b):
            return f"entry {name!r} is a tensor in one model only"
        if not torch.is_tensor(a):
            continue
        if a.shape != b.shape:
            return f"entry {name!r} is shaped {tuple(a.shape)} in model_a and {tuple(b.shape)} in model_b"
        if a.is_floating_point() != b.is_floating_point():
            return f"entry {name!r} is {_dtype(a)} in model_a and {_dtype(b)} in model_b"
    extra = [name for name in state_b if name not in state_a]
    return f"entry {extra[0]!r} is in model_b only" if extra else None


def _dtype(t):
    return str(t.dtype).replace("torch.", "")


def is_interpolated(t):
    """Floating entries move along the line; integer ones (counters) are model_a's at every t."""
    return torch.is_tensor(t) and t.is_floating_point()


def interpolated_state(state_a, state_b, t):
    """A new state dict at w(t) = (1 - t) w_a + t w_b: model_a's own values at t = 0, model_b's at t = 1
    (0 * w_a + 1 * w_b is w_b exactly), integer and non-tensor entries model_a's."""
    return {name: _point(a, state_b[name], t) if is_interpolated(a) else a for name, a in state_a.items()}


def _point(a, b, t):
    return a * (1.0 - t) + b.to(a.dtype) * t


@torch.no_grad()
def write_interpolated(targets, state_a, state_b, t):
    """Set the tensors `targets` (model_tensors(): they share the model's storage) to w(t) in place, with
    the arithmetic of interpolated_state. Integer entries get model_a's values too, so a previous
    re-estimation of BN statistics (which counts batches) leaves nothing behind."""
    for name, target in targets.items():
        a = state_a[name]
        if torch.is_tensor(a):
            target.copy_(_point(a, state_b[name], t) if is_interpolated(a) else a)


@torch.no_grad()
def write_state(targets, state):
    """Copy `state` into the tensors `targets` (model_tensors()), bit for bit."""
    for name, target in targets.items():
        target.copy_(state[name])


def running_stat_layers(model):
    """The normalization layers that keep running statistics and use them in eval mode (BatchNorm of every
    dimension, SyncBatchNorm, InstanceNorm with track_running_stats)."""
    norm_base = torch.nn.modules.batchnorm._NormBase
    return [m for m in model.modules()
            if isinstance(m, norm_base) and m.track_running_stats and m.running_mean is not None]


@torch.no_grad()
def reestimate_running_stats(model, batches, device=None, precision="fp32"):
    """Reset the running statistics of every running_stat_layers() layer and estimate them again from
    `batches` of (inputs, targets): those layers alone in train mode with momentum None, torch's
    cumulative average (each batch's mean and unbiased variance weighted equally). Everything else
    stays as it was (dropout in eval mode: the estimate is deterministic and describes the network as it
    is evaluated). Each layer's momentum and mode come back after. Returns how many batches ran."""
    layers = running_stat_layers(model)
    saved = [(layer, layer.momentum, layer.training) for layer in layers]
    count = 0
    try:
        for layer in layers:
            layer.reset_running_stats()
            layer.momentum, layer.training = None, True
        with precision_context(precision, device or torch.device("cpu")):
            for inputs, _ in batches:
                call_model(model, inputs if device is None else to_device(inputs, device, True))
                count += 1
    finally:
        for layer, momentum, training in saved:
            layer.momentum, layer.training = momentum, training
    return count


def check_barrier_kind(kind):
    if kind not in BARRIER_KINDS:
        raise ChoiceError(f"barrier kind {kind!r} is not one of {', '.join(BARRIER_KINDS)}")


def barrier(t, values, kind="linear", higher_is_better=False):
    """The height of the bump along a path from t = 0 to t = 1 (t[0] = 0, t[-1] = 1), in the values' units:

        linear: max over t of  v(t) - ((1 - t) v(0) + t v(1))    (above the chord between the ends)
        mean:   max over t of  v(t) - (v(0) + v(1)) / 2           (above the ends' mean)

    For a quantity where higher is better (accuracy) the bump is a dip, and the barrier is the same
    formula over -v: max over t of the chord (or the ends' mean) minus v(t). Both kinds are >= 0 (the
    ends themselves count) and NaN if any value is NaN."""
    check_barrier_kind(kind)
    t, v = np.asarray(t, dtype=np.float64), np.asarray(values, dtype=np.float64)
    if higher_is_better:
        v = -v
    base = (1.0 - t) * v[0] + t * v[-1] if kind == "linear" else np.full_like(v, 0.5 * (v[0] + v[-1]))
    return float(np.max(v - base))
