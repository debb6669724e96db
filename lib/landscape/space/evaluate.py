"""Mean loss and accuracy of a model over tensors held on its device: pure, one host sync per call."""
import math

import torch

from .losses import class_hits, per_sample
from .model_io import call_model, count_of, take, to_device
from .precision import precision_context


def tensor_batches(x, y, batch_size):
    """Consecutive (inputs, targets) slices of device-resident inputs (a tensor or a dict of them) and targets."""
    return [(take(x, slice(start, start + batch_size)), y[start:start + batch_size])
            for start in range(0, count_of(x), batch_size)]


@torch.inference_mode()
def evaluate_batches(model, batches, loss_total, precision="fp32", accuracy=None, device=None):
    """(mean loss, accuracy in percent or None) over an iterable of (inputs, targets) batches.
    A point whose loss is not finite gets NaN accuracy: its argmax would be a number without meaning.

    loss_total(outputs, targets, inputs) -> (summed loss, weight) (losses.py): the mean is the sum over
    all batches divided by their total weight. accuracy: None, or hits(outputs, targets, inputs) counting
    the right answers among that weight. Batches not on `device` are moved there. Sums stay on the device
    and are read back once, so the GPU never waits on the host mid-pass.
    """
    loss = hits = None
    weight = 0  # a count of samples, or a device tensor of tokens: added without reading it back
    with precision_context(precision, device or torch.device("cpu")):
        for inputs, targets in batches:
            if device is not None:
                inputs, targets = to_device(inputs, device, True), targets.to(device, non_blocking=True)
            outputs = call_model(model, inputs)
            total, batch_weight = loss_total(outputs, targets, inputs)
            loss = total.double() if loss is None else loss + total.double()
            weight = weight + batch_weight
            if accuracy is not None:
                right = accuracy(outputs, targets, inputs)
                hits = right if hits is None else hits + right
    if loss is None:
        raise ValueError("the data hold no samples")
    sums = [loss, torch.as_tensor(weight, dtype=torch.float64, device=loss.device)]
    values = torch.stack(sums if hits is None else sums + [hits.double()]).tolist()
    if values[1] == 0:
        raise ValueError("the data hold no samples (or, for causal_lm, no predicted tokens)")
    mean = values[0] / values[1]
    if accuracy is None:
        return mean, None
    return mean, 100.0 * values[2] / values[1] if math.isfinite(mean) else float("nan")  # no accuracy of a NaN model


def evaluate(model, x, y, loss_sum, batch_size, precision="fp32", accuracy=True):
    """(mean loss, accuracy in percent, or None without accuracy) over all of x, y held on one device, for a
    summed classification loss_sum(logits, targets) (the trainer's form, losses.loss_function)."""
    return evaluate_batches(model, tensor_batches(x, y, batch_size), per_sample(loss_sum), precision,
                            class_hits if accuracy else None, y.device)


def device_layout(x):
    """Images stored channels_last once: oneDNN and cuDNN convolutions run faster on it (docs/BENCHMARKS.md)."""
    return x.contiguous(memory_format=torch.channels_last) if x.dim() == 4 else x
