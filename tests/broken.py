"""Models and data sets that a run must refuse in one line ('broken:NAME' for the drivers; test_error_sweep.py)."""
import math
from dataclasses import dataclass
from types import SimpleNamespace

import torch
import torch.nn as nn

from tiny import make_data, make_model


@dataclass
class Output:
    logits: torch.Tensor


class Returns(nn.Module):
    """The tiny model whose forward returns its logits in another form (or fails), chosen by `how`."""

    def __init__(self, how):
        super().__init__()
        self.inner, self.how = make_model(), how

    def forward(self, x):
        z = self.inner(x)
        forms = {"namespace": lambda: SimpleNamespace(logits=z), "dataclass": lambda: Output(z),
                 "dict": lambda: {"logits": z}, "scores": lambda: {"scores": z}, "tuple": lambda: (z, z.detach()), "list": lambda: [z],
                 "none": lambda: None, "scalar": lambda: z.sum(), "integers": lambda: z.argmax(1, keepdim=True),
                 "flat": lambda: z.reshape(-1), "shape_error": lambda: z @ torch.ones(3, 3)}
        if self.how == "runtime_error":
            raise RuntimeError("deliberate failure in forward")
        if self.how == "big_batch_error" and len(x) > 16:
            raise RuntimeError(f"deliberate failure on a batch of {len(x)}")
        return forms.get(self.how, lambda: z)()


class NoParameters(nn.Module):
    def forward(self, x):
        return x.flatten(1)[:, :10]


class OnlyIntegerBuffers(nn.Module):
    def __init__(self):
        super().__init__()
        self.register_buffer("steps", torch.zeros(3, dtype=torch.int64))

    def forward(self, x):
        return x.flatten(1)[:, :10]


def returns(how="shape_error"):
    return Returns(how)


def no_parameters():
    return NoParameters()


def only_integer_buffers():
    return OnlyIntegerBuffers()


def not_a_module():
    return lambda x: x


def _with_targets(targets_of):
    (x, y), _ = make_data()
    return (x, targets_of(y)), None


def float_targets():
    return _with_targets(lambda y: y.float() / 10)


def pair_targets():
    return _with_targets(lambda y: torch.stack([y, y], dim=1))


def float_pair_targets():
    return _with_targets(lambda y: torch.rand(len(y), 2))


def column_targets():
    return _with_targets(lambda y: y[:, None])


def nan_inputs():
    (x, y), _ = make_data()
    x = x.clone()
    x[5, 1, 2, 3] = math.nan
    return (x, y), None


def make_nan_weight_model():
    """A model whose first weight holds one NaN (a diverged run's weights, built in code)."""
    model = make_model()
    with torch.no_grad():
        model[0].weight.view(-1)[0] = float("nan")
    return model


class FailsOffTheStart(nn.Module):
    """Runs at its starting point (where the checks before the work run it) and raises anywhere else: a
    model that fails mid-grid."""

    def __init__(self):
        super().__init__()
        self.inner = make_model()
        self.start = [p.detach().clone() for p in self.inner.parameters()]

    def forward(self, x):
        if any(not torch.equal(p, p0) for p, p0 in zip(self.inner.parameters(), self.start)):
            raise RuntimeError("this model breaks away from its start")
        return self.inner(x)


def make_fails_off_the_start():
    return FailsOffTheStart()


def big_batch_error():
    """Fails on batches of more than 16 samples only: past the checks on the first batch."""
    return Returns("big_batch_error")
