"""Curve: a curve between two networks' weights as fit_curve makes it, its points as models, and its file.

    curve.model_at(0.5)                 # a new module at phi(0.5)
    curve.save("curve.h5"); landscape.load_curve("curve.h5", make_model)
"""
import contextlib
import copy
import hashlib
import os
from dataclasses import dataclass, replace

import torch

from ..errors import CheckpointError, ModelError
from ..files.curve import read_curve_file, write_curve_file
from ..inputs.checkpoint import update_with_tensors
from ..inputs.user import is_pair
from ..space.curves import curve_tensors, write_curve_state
from ..space.evaluate import tensor_batches
from ..space.model_io import qualified_name
from ..space.paths import reestimate_running_stats, state_mismatch, write_state
from ..training.curve import FitState


@dataclass(frozen=True, eq=False)
class Curve:
    """kind ('bezier' or 'polychain'); module: a copy of model_a (its state w_a), the architecture every
    point is built on; end_a, end_b: the ends' states ({name: CPU tensor}, parameters then buffers);
    state: the fit's FitState (bends, momentum, random states, epoch, history); settings: what the fit
    was asked (and the file compares on resuming); path: its curve file, or None."""
    kind: str
    module: torch.nn.Module
    end_a: dict
    end_b: dict
    state: FitState
    settings: dict
    path: str = None

    @property
    def bends(self):
        """[{parameter name: tensor}] of each bend theta_1..theta_k (CPU)."""
        return self.state.bends

    @property
    def epoch(self):
        return self.state.epoch

    @property
    def history(self):
        """The mean training loss of each finished epoch, at the t drawn for its batches."""
        return self.state.history

    @property
    def complete(self):
        return self.state.epoch >= self.settings["epochs"]

    def replaced(self, state):
        return replace(self, state=state)

    def model_at(self, t, bn_data=None, batch_size=256):
        """A new module (a copy of the curve's) at phi(t). Its BatchNorm statistics lie on the line between
        the ends' unless bn_data (an (inputs, targets) pair, cut into batch_size batches, or re-iterable
        batches) is given: they are then estimated again from all of it (as evaluate_curve's 'recompute')."""
        t = float(t)
        if not 0.0 <= t <= 1.0:
            raise ModelError(f"t={t!r}: a curve runs from t = 0 to t = 1")
        model = copy.deepcopy(self.module)
        write_curve_state(curve_tensors(model), self.kind, self.end_a, self.bends, self.end_b, t)
        if bn_data is not None:
            device = next(iter(curve_tensors(model).values())).device
            batches = tensor_batches(*bn_data, batch_size) if is_pair(bn_data) else bn_data
            reestimate_running_stats(model, batches, device)
        return model

    @contextlib.contextmanager
    def positions(self, device):
        """move_to(t) for evaluate_grid: sets self.module's state to phi(t) (the module on `device`), and
        puts w_a back when the block ends."""
        live = curve_tensors(self.module)
        start = {name: t.clone() for name, t in live.items()}
        end_a, end_b = ({name: t.to(device) for name, t in end.items()} for end in (self.end_a, self.end_b))
        bends = [{name: t.to(device) for name, t in bend.items()} for bend in self.bends]
        try:
            yield lambda t: write_curve_state(live, self.kind, end_a, bends, end_b, t)
        finally:
            write_state(live, start)

    def described(self, key):
        """What a results file of the curve's points records of it (their default settings): the kind
        (under `key`: 'line' for points along it, 'plane' for its plane), the architecture, the digest."""
        return {key: self.kind, "model": qualified_name(self.module), "curve_sha256": self.digest()}

    def digest(self):
        """sha256 over the kind, the ends and the bends: what a results file of its points records."""
        h = hashlib.sha256(self.kind.encode())
        for entries in (self.end_a, self.end_b, *self.bends):
            for name, t in entries.items():
                h.update(name.encode())
                update_with_tensors(h, [t])
        return h.hexdigest()

    def save(self, path, overwrite=False):
        """Write the curve file (fit_curve's: ends, bends, training state, settings); fit_curve(path=path)
        with the same settings resumes an unfinished one. An existing file is replaced only with overwrite."""
        if os.path.lexists(path) and not overwrite:
            raise CheckpointError(f"{path} exists; Curve.save replaces a file only with overwrite=True")
        write_curve_file(path, curve_record(self))


def curve_record(curve):
    """What write_curve_file writes of a curve."""
    state = curve.state
    return dict(kind=curve.kind, epoch=state.epoch, settings=curve.settings, end_a=curve.end_a, end_b=curve.end_b,
                bends=state.bends, momentum=state.momentum, rng=state.rng, history=state.history)


def read_fit(path, like):
    """(record, FitState) of a curve file whose ends fit the state `like` ({name: tensor}: names, shapes,
    kinds), its tensors in like's dtypes; a ModelError naming the first difference otherwise."""
    record = read_curve_file(path)
    found = state_mismatch(like, record["end_a"])
    if found is not None:
        found = found.replace("model_a", "the model").replace("model_b", path)
        raise ModelError(f"{path} holds a curve of another architecture than the model: {found}")

    def cast(entries):
        return {name: t.to(like[name].dtype) for name, t in entries.items()}
    record.update(end_a=cast(record["end_a"]), end_b=cast(record["end_b"]))
    state = FitState([cast(b) for b in record["bends"]], [cast(m) for m in record["momentum"]], record["rng"],
                     record["epoch"], record["history"])
    return record, state


def load_curve(path, model):
    """The Curve in a curve file (fit_curve's or Curve.save's). model: a module of the curve's architecture
    (copied; its values do not matter) or a function making one (a model factory)."""
    made = model if isinstance(model, torch.nn.Module) else model() if callable(model) else None
    if not isinstance(made, torch.nn.Module):
        raise ModelError(f"load_curve needs a torch.nn.Module or a function returning one; got a "
                         f"{type(made if made is not None else model).__name__}")
    module = copy.deepcopy(made) if made is model else made
    live = curve_tensors(module)
    record, state = read_fit(str(path), {name: t for name, t in live.items()})
    write_state(live, {name: record["end_a"][name] for name in live})
    return Curve(record["kind"], module, record["end_a"], record["end_b"], state, record["settings"], str(path))
