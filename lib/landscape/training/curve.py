"""Training the bends of a curve between two fixed networks (Garipov et al. 2018), epoch by epoch.

Each minibatch draws t ~ U(0, 1) and takes an SGD step (momentum, as their code) on the loss of the
model at phi(t) (space/curves.py), run through torch.func.functional_call so the gradients reach the
bends alone; the ends are constants. The model runs in train mode: BatchNorm normalises with the
batch's statistics at phi(t), as in their training (the running statistics it gathers meanwhile
belong to a throwaway copy). weight_decay adds 0.5 * weight_decay * |phi(t)|^2 over the parameters to
the loss, their regulariser (on the point of the curve, not on the bends themselves).

Every random number comes from a state saved at the end of each epoch: the order of the samples and
the t of each batch from one CPU generator seeded with `seed`, dropout (and a shuffling DataLoader)
from torch's global generators, which run forked (torch.random.fork_rng), so the caller's own random
state is left as it was. Resuming from an epoch's state repeats the uninterrupted run bit for bit on
the CPU (on a GPU, as far as its kernels are deterministic).
"""
import math
from dataclasses import dataclass, field

import torch

from ..errors import LandscapeError
from ..space.curves import curve_parameters
from ..space.model_io import call_functional, count_of, take, to_device

SCHEDULES = ("garipov", "constant")


@dataclass(frozen=True)
class FitOptions:
    kind: str
    bends: int
    epochs: int
    lr: float
    momentum: float
    weight_decay: float
    batch_size: int
    seed: int
    schedule: str


@dataclass(frozen=True)
class FitState:
    """Where a fit stands after `epoch` finished epochs: the bends (CPU tensors), SGD's momentum buffers
    (one {name: tensor} per bend, {} before the first step), the random states, and the mean training
    loss of each epoch so far (at the t drawn)."""
    bends: list
    momentum: list
    rng: dict = None  # None before the first epoch: the generators are seeded
    epoch: int = 0
    history: tuple = field(default_factory=tuple)


def lr_factor(schedule, epoch, epochs):
    """The learning rate of epoch `epoch` (0-based) over the base lr. 'garipov': their schedule, the full
    rate for the first half of the epochs, then linearly down to 1 % at 90 %, then 1 %; 'constant': 1."""
    if schedule == "constant":
        return 1.0
    alpha = epoch / epochs
    if alpha <= 0.5:
        return 1.0
    return 1.0 - (alpha - 0.5) / 0.4 * 0.99 if alpha <= 0.9 else 0.01


def fit(work, ends, trainable, start, data, loss_total, options, device, save=None, stop=None, report=None):
    """Train from `start` (a FitState) up to options.epochs; returns the FitState of the last finished
    epoch. work: a copy of the model on `device` whose parameters are replaced by phi(t); ends: the
    (params_a, params_b) dicts on the device; trainable: the names of the parameters whose bends train
    (model_a's requires_grad); data: an (inputs, targets) pair on the device or re-iterable batches.
    save(state) runs after each epoch; stop (an Event) ends the run between batches, dropping the
    unfinished epoch; report(state, lr) after each epoch."""
    bends = [{name: t.to(device, copy=True).requires_grad_(name in trainable) for name, t in bend.items()}
             for bend in start.bends]
    optimizer = torch.optim.SGD([t for bend in bends for name, t in bend.items() if name in trainable],
                                lr=options.lr, momentum=options.momentum)
    for bend, saved in zip(bends, start.momentum):
        for name, buffer in saved.items():
            optimizer.state[bend[name]]["momentum_buffer"] = buffer.to(device, copy=True)
    state = start
    work.train()
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices, device_type=device.type if devices else "cuda"):
        generator = _restore_rng(start.rng, options.seed, device)
        for epoch in range(start.epoch, options.epochs):
            lr = options.lr * lr_factor(options.schedule, epoch, options.epochs)
            for group in optimizer.param_groups:
                group["lr"] = lr
            mean = _epoch(work, ends, bends, optimizer, _batches(data, options.batch_size, generator, device),
                          generator, loss_total, options, stop)
            if mean is None:
                return state  # stopped mid-epoch: the last finished epoch stands
            if not math.isfinite(mean):
                raise LandscapeError(f"the curve's training loss is {mean} in epoch {epoch + 1}; lower lr "
                                     f"(now {options.lr:g}) and start over")
            state = FitState([_cpu(bend) for bend in bends], _momentum(optimizer, bends), _rng_state(generator, device),
                             epoch + 1, (*state.history, mean))
            if save is not None:
                save(state)
            if report is not None:
                report(state, lr)
            if stop is not None and stop.is_set():
                return state
    return state


def _epoch(work, ends, bends, optimizer, batches, generator, loss_total, options, stop):
    """One pass over the batches: the mean loss at the t drawn, or None when a stop came."""
    params_a, params_b = ends
    total_loss, total_weight = 0.0, 0
    for inputs, targets in batches:
        if stop is not None and stop.is_set():
            return None
        t = float(torch.rand(1, generator=generator)[0])
        point = curve_parameters(options.kind, params_a, bends, params_b, t)
        total, weight = loss_total(call_functional(work, point, inputs), targets, inputs)
        objective = total / weight
        if options.weight_decay:
            objective = objective + 0.5 * options.weight_decay * sum((p * p).sum() for p in point.values())
        optimizer.zero_grad(set_to_none=True)
        objective.backward()
        optimizer.step()
        total_loss = total_loss + total.detach().double()
        total_weight = total_weight + weight
    if total_weight == 0:
        raise LandscapeError("the curve's training data hold no batches")
    return float(total_loss / total_weight)


def _batches(data, batch_size, generator, device):
    """A tensor pair: this epoch's shuffle (from the generator) cut into full batches of batch_size (all the
    samples in one batch when they are fewer), the last partial batch left out, so that BatchNorm never
    meets a batch of one sample; re-iterable batches: as they come, moved to the device."""
    if isinstance(data, tuple):
        inputs, targets = data
        count = count_of(inputs)
        order = torch.randperm(count, generator=generator).to(targets.device)
        size = min(batch_size, count)
        return [(take(inputs, order[i:i + size]), targets[order[i:i + size]]) for i in range(0, count - size + 1, size)]
    return ((to_device(inputs, device), targets.to(device)) for inputs, targets in data)


def _restore_rng(saved, seed, device):
    """The data generator (CPU) and the global generators (forked) as `saved`, or seeded when it is None."""
    generator = torch.Generator()
    if saved is None:
        generator.manual_seed(seed)
        torch.random.default_generator.manual_seed(seed)
        if device.type == "cuda":
            with torch.cuda.device(device):
                torch.cuda.manual_seed(seed)
        return generator
    generator.set_state(saved["curve"])
    torch.set_rng_state(saved["torch"])
    if device.type == "cuda" and saved.get("cuda") is not None:
        torch.cuda.set_rng_state(saved["cuda"], device)
    return generator


def _rng_state(generator, device):
    state = {"curve": generator.get_state(), "torch": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def _cpu(entries):
    return {name: t.detach().to("cpu", copy=True) for name, t in entries.items()}


def _momentum(optimizer, bends):
    """SGD's momentum buffers, one {name: tensor} per bend (an entry that never had a gradient has none)."""
    found = []
    for bend in bends:
        found.append({name: optimizer.state[t]["momentum_buffer"].detach().to("cpu", copy=True)
                      for name, t in bend.items() if optimizer.state.get(t, {}).get("momentum_buffer") is not None})
    return found
