"""NaN or inf in a tensor read from outside (directions, weights, data) would spoil every point that
uses it, silently: these count such values so that the readers can refuse them, naming where."""
import torch


def nonfinite_count(values, dtype=None):
    """How many entries of a tensor or array are NaN or infinite (integer and bool ones never are), once
    cast to `dtype` if given: a float64 1e39 is finite, but infinite in the float32 model it goes into."""
    t = torch.as_tensor(values)
    if not (t.is_floating_point() or t.is_complex()):
        return 0
    if dtype is not None and t.is_floating_point():
        t = t.to(dtype)
    return int((~torch.isfinite(t)).sum())


def first_nonfinite(named, dtype=None):
    """(name, count) of the first of the (name, tensor) pairs that holds NaN or inf values (cast to
    `dtype` first if given), or None."""
    for name, values in named:
        count = nonfinite_count(values, dtype)
        if count:
            return name, count
    return None
