"""A tiny custom model and data set, loaded by the drivers as 'tiny:make_model' / 'tiny:make_data'."""
import time

import torch
import torch.nn as nn


def make_model(width=4, num_classes=10):
    return nn.Sequential(
        nn.Conv2d(3, width, 3, stride=2, padding=1), nn.BatchNorm2d(width), nn.ReLU(),
        nn.Conv2d(width, width, 3, stride=2, padding=1), nn.ReLU(),
        nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(4 * width, num_classes))


def make_data(n_train=48, n_test=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n_train + n_test, 3, 8, 8, generator=g)
    y = torch.randint(0, 10, (n_train + n_test,), generator=g)
    return (x[:n_train], y[:n_train]), (x[n_train:], y[n_train:])


def make_train_only():
    """A data factory with a training set and no test set."""
    return make_data()[0], None


def make_linear(num_classes=3, features=5):
    return nn.Sequential(nn.Flatten(), nn.Linear(features, num_classes, bias=False))


def nap(seconds):
    """Sleep in short slices, as a long computation returns to Python between its batches: a stop signal
    that the kernel hands to another thread (MPI's, torch's) only flags the main thread, whose Python
    handler runs when it next wakes; one long sleep would hide the stop for its whole length."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        time.sleep(0.05)


class Slow(nn.Module):
    """Wraps a model with a per-forward delay, so tests can stop or kill a job mid-grid."""

    def __init__(self, inner, delay):
        super().__init__()
        self.inner, self.delay = inner, delay

    def forward(self, x):
        time.sleep(self.delay)
        return self.inner(x)


def make_slow_model(delay=0.05, width=4):
    return Slow(make_model(width), delay)


class FailsOnOneRank(nn.Module):
    """Raises in forward on one MPI rank only, once the grid has moved it off its starting point (the checks
    before the work run it there and pass): the whole job must end, not hang."""

    def __init__(self, inner, rank):
        super().__init__()
        self.inner, self.rank = inner, str(rank)
        self.start = [p.detach().clone() for p in inner.parameters()]

    def forward(self, x):
        import os
        moved = any(not torch.equal(p, p0) for p, p0 in zip(self.inner.parameters(), self.start))
        if os.environ.get("OMPI_COMM_WORLD_RANK") == self.rank and moved:
            raise RuntimeError("deliberate failure on one rank")
        return self.inner(x)


def make_failing_model(rank=1):
    return FailsOnOneRank(make_model(), rank)
