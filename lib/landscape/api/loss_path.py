"""LossPath: loss and accuracy at points t of a path between two networks (a line, a curve, a line of a
barrier matrix) and the barrier on it; PathQuantities: which quantities those points hold and how their
BatchNorm statistics were set, what every evaluator of a path (api/path_eval.py) records."""
from dataclasses import dataclass

import numpy as np

from ..errors import ChoiceError, GridSpecError
from ..space.paths import barrier

HIGHER_IS_BETTER = {"train_loss": False, "test_loss": False, "train_acc": True, "test_acc": True}


@dataclass(frozen=True, eq=False)
class LossPath:
    """Loss and accuracy at n points t of a path from model_a (t = 0) to model_b (t = 1), as read-only numpy
    arrays. Accuracies are in percent, None where accuracy does not apply (a user's loss on other outputs);
    the test arrays are None without test_data. bn: how BatchNorm statistics were set at each point;
    bn_batches: how many training batches re-estimated them at each point (0 with bn='keep', or when the
    model has no layer with running statistics). done: which points are computed (all of them, unless a
    run into a results file was stopped: its other points are NaN); path: that results file, or None."""
    t: np.ndarray
    train_loss: np.ndarray
    train_acc: np.ndarray = None
    test_loss: np.ndarray = None
    test_acc: np.ndarray = None
    bn: str = "keep"
    bn_batches: int = 0
    done: np.ndarray = None
    path: str = None

    @property
    def complete(self):
        return self.done is None or bool(np.all(self.done))

    def barrier(self, name="train_loss", kind="linear"):
        """The barrier of one quantity along the path (space/paths.barrier), in its units:

            losses, linear:      max over t of L(t) - ((1 - t) L(0) + t L(1))
            losses, mean:        max over t of L(t) - (L(0) + L(1)) / 2
            accuracies, linear:  max over t of ((1 - t) A(0) + t A(1)) - A(t)   (the dip below the chord)
            accuracies, mean:    (A(0) + A(1)) / 2 - min over t of A(t)

        so a barrier is a rise in loss or a drop in accuracy, >= 0 either way, and NaN if a point is NaN."""
        if name not in HIGHER_IS_BETTER:
            raise ChoiceError(f"barrier of {name!r}: choose one of {', '.join(HIGHER_IS_BETTER)}")
        values = getattr(self, name)
        if values is None:
            why = "no test_data was given" if name.startswith("test") else "accuracy does not apply to this loss"
            raise ChoiceError(f"barrier of {name!r}: this path has no {name} ({why})")
        if not self.complete:
            raise GridSpecError(f"barrier of {name!r}: only {int(np.sum(self.done))} of the path's {len(self.t)} "
                                f"points are done; run the same call again to finish {self.path or 'it'}")
        return barrier(self.t, values, kind, HIGHER_IS_BETTER[name])


@dataclass(frozen=True)
class PathQuantities:
    """What a LossPath records of how it was made, and which quantities its points hold."""
    bn: str
    bn_batches: int
    accuracy: bool
    test: bool

    @property
    def quantities(self):
        return tuple(f"{s}_{q}" for s in ("train", "test")[:1 + self.test] for q in ("loss", "acc")[:1 + self.accuracy])

    def path(self, t, columns, done=None, path=None):
        """The LossPath of these columns ({quantity: values over t}), its arrays read-only copies."""
        arrays = {name: _frozen(values) for name, values in dict(columns, t=t).items()}
        done = _frozen(np.ones(len(t), dtype=bool) if done is None else done)
        return LossPath(bn=self.bn, bn_batches=self.bn_batches, done=done, path=path, **arrays)


def _frozen(values):
    array = np.array(values)
    array.setflags(write=False)
    return array
