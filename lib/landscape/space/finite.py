"""NaN or inf in a tensor read from outside (directions, weights, data) would spoil every point that
uses it, silently: these count such values so that the readers can refuse them, naming where."""
import torch


def nonfinite_count(values):
    """How many entries of a tensor or array are NaN or infinite (integer and bool ones never are)."""
    t = torch.as_tensor(values)
    if not (t.is_floating_point() or t.is_complex()):
        return 0
    return int((~torch.isfinite(t)).sum())


def first_nonfinite(named):
    """(name, count) of the first of the (name, tensor) pairs that holds NaN or inf values, or None."""
    for name, values in named:
        count = nonfinite_count(values)
        if count:
            return name, count
    return None
