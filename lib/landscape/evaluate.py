"""Mean loss and accuracy of a model over tensors held on its device: pure, one host sync per call."""
import contextlib
import math
import time

import torch
import torch.nn.functional as F

from .errors import LossError
from .devices import tf32_mode
from .memory import CudaMeter, power_of_two_at_least, probe_batch

LOSS_NAMES = ("crossentropy", "mse")
PRECISIONS = ("fp32", "tf32", "bf16")


def crossentropy_sum(logits, y):
    return F.cross_entropy(logits.float(), y, reduction="sum")


def mse_sum(logits, y):
    """The reference's MSE: softmax probabilities against one-hot targets, mean over classes."""
    probs = torch.softmax(logits.float(), dim=1)
    onehot = F.one_hot(y, probs.shape[1]).to(probs.dtype)
    return ((probs - onehot) ** 2).mean(dim=1).sum()


def loss_function(name):
    """Summed-over-batch loss for a validated --loss_name."""
    losses = {"crossentropy": crossentropy_sum, "mse": mse_sum}
    if name not in losses:
        raise ValueError(f"--loss_name={name!r} is not one of {', '.join(LOSS_NAMES)}")
    return losses[name]


def checked_mean_loss(loss):
    """A user's loss(outputs, targets) -> batch mean, refused now if not callable and on use if its
    value is not one number."""
    if not callable(loss):
        raise LossError(f"loss must be a function loss(outputs, targets) -> mean loss, got a {type(loss).__name__}")

    def mean(outputs, targets):
        value = loss(outputs, targets)
        if not torch.is_tensor(value) or value.numel() != 1:
            shape = tuple(value.shape) if torch.is_tensor(value) else type(value).__name__
            raise LossError(f"loss {qualified_name(loss)} must return the batch's mean loss as one number (a scalar "
                            f"tensor), got {shape}")
        return value.reshape(())
    return mean


def mean_loss_total(loss):
    """The batch's summed loss from a user's loss(outputs, targets) -> batch mean."""
    if loss is None:
        return crossentropy_sum
    mean = checked_mean_loss(loss)
    return lambda outputs, targets: mean(outputs, targets).double() * len(outputs)


def qualified_name(obj):
    """'module.Name' of a function or class, or of a model's class (what settings and messages show)."""
    kind = obj if isinstance(obj, type) or callable(obj) and not isinstance(obj, torch.nn.Module) else type(obj)
    return f"{getattr(kind, '__module__', '?')}.{getattr(kind, '__qualname__', repr(kind))}"


@contextlib.contextmanager
def precision_context(precision, device):
    """Autocast/TF32 settings for a validated --precision, inside the block only: 'fp32' is strict fp32
    (TF32 off), and the TF32 switches the caller had come back after, so a trainer's or the user's
    own settings are never flipped for good."""
    if precision not in PRECISIONS:
        raise ValueError(f"--precision={precision!r} is not one of {', '.join(PRECISIONS)}")
    with contextlib.ExitStack() as stack:
        stack.enter_context(tf32_mode(precision == "tf32"))
        if precision == "bf16":
            stack.enter_context(torch.autocast(device.type, dtype=torch.bfloat16))
        yield


def tensor_batches(x, y, batch_size):
    """Consecutive (inputs, targets) slices of two device-resident tensors."""
    return [(x[start:start + batch_size], y[start:start + batch_size]) for start in range(0, len(x), batch_size)]


def gives_accuracy(outputs, targets):
    """Accuracy applies to (N, classes) scores against N integer class indices, and to nothing else."""
    return (outputs.ndim == 2 and targets.ndim == 1 and len(targets) == len(outputs)
            and not targets.is_floating_point() and not targets.is_complex() and targets.dtype != torch.bool)


@torch.inference_mode()
def evaluate_batches(model, batches, loss_total, precision="fp32", accuracy=True, device=None):
    """(mean loss, accuracy in percent or None) over an iterable of (inputs, targets) batches.
    A point whose loss is not finite gets NaN accuracy: its argmax would be a number without meaning.

    loss_total(outputs, targets) is the batch's summed loss, so batches are weighted by their size.
    Batches not on `device` are moved there. Sums stay on the device and are read back once, so
    the GPU never waits on the host mid-pass.
    """
    loss = correct = None
    count = 0
    with precision_context(precision, device or torch.device("cpu")):
        for inputs, targets in batches:
            if device is not None:
                inputs, targets = inputs.to(device, non_blocking=True), targets.to(device, non_blocking=True)
            outputs = model(inputs)
            batch = loss_total(outputs, targets).double()
            loss = batch if loss is None else loss + batch
            if accuracy:
                hits = (outputs.argmax(dim=1) == targets).sum()
                correct = hits if correct is None else correct + hits
            count += len(inputs)
    if count == 0:
        raise ValueError("the data hold no samples")
    sums = torch.stack([loss, correct.double()] if accuracy else [loss]).tolist()
    mean = sums[0] / count
    if not accuracy:
        return mean, None
    return mean, 100.0 * sums[1] / count if math.isfinite(mean) else float("nan")  # no accuracy of a NaN model


def evaluate(model, x, y, loss_sum, batch_size, precision="fp32", accuracy=True):
    """(mean loss, accuracy in percent, or None without accuracy) over all of x, y held on one device."""
    return evaluate_batches(model, tensor_batches(x, y, batch_size), loss_sum, precision, accuracy, x.device)


@torch.inference_mode()
def probe_loss(model, x, y, loss_sum):
    """Run the loss once on two samples, before any work, so a bad loss fails early; returns whether
    accuracy applies to the model's outputs and these targets."""
    outputs = model(x[:2])
    loss_sum(outputs, y[:2])
    return gives_accuracy(outputs, y[:2])


def device_layout(x):
    """Images stored channels_last once: oneDNN and cuDNN convolutions run faster on it (docs/BENCHMARKS.md)."""
    return x.contiguous(memory_format=torch.channels_last) if x.dim() == 4 else x


CPU_BATCHES = (64, 128, 256, 512)


def _seconds_per_image(model, x, batch, precision):
    probe = x[:max(batch, min(len(x), 512))]
    with torch.inference_mode(), precision_context(precision, x.device):
        model(probe[:batch])  # warm-up: first calls allocate and pick kernels
        t0 = time.perf_counter()
        for start in range(0, len(probe), batch):
            model(probe[start:start + batch])
    return (time.perf_counter() - t0) / len(probe)


def auto_batch_size(model, x, precision="fp32", gpu_max=8192, rounds=3, ranks_sharing=1, meter=None):
    """CPU: the fastest of CPU_BATCHES (it depends on model and caches), timed on up to 512 images in
    `rounds` interleaved rounds keeping each size's best, since one round is easily skewed by warm-up
    or other load (docs/bench_surface.md). GPU: the largest power of two up to gpu_max that runs,
    halved further until it leaves a safety margin for the `ranks_sharing` ranks on the same GPU
    (`meter` measures memory; a test may pass its own to drive the GPU path on the CPU)."""
    if x.device.type != "cuda" and meter is None:
        sizes = [b for b in CPU_BATCHES if b <= len(x)] or [len(x)]
        best = {b: float("inf") for b in sizes}
        for _ in range(rounds):
            for b in sizes:
                best[b] = min(best[b], _seconds_per_image(model, x, b, precision))
        return min(sizes, key=best.get)

    def forward(size):
        with torch.inference_mode(), precision_context(precision, x.device):
            model(x[:size])
    return probe_batch(meter or CudaMeter(x.device), forward, power_of_two_at_least(len(x), gpu_max), ranks_sharing)
