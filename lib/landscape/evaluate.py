"""Mean loss and accuracy of a model over tensors held on its device: pure, one host sync per call."""
import contextlib
import math
import time

import torch
import torch.nn.functional as F

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


def precision_context(precision, device):
    """Autocast/TF32 settings for a validated --precision; 'fp32' is strict fp32 (TF32 off)."""
    if precision not in PRECISIONS:
        raise ValueError(f"--precision={precision!r} is not one of {', '.join(PRECISIONS)}")
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = precision == "tf32"
        torch.backends.cudnn.allow_tf32 = precision == "tf32"
    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


@torch.inference_mode()
def evaluate(model, x, y, loss_sum, batch_size, precision="fp32"):
    """(mean loss, accuracy in percent) over all of x, y; batches weighted by their size.

    Sums stay on the device and are read back once, so the GPU never waits on the host mid-pass.
    """
    loss = torch.zeros((), device=x.device, dtype=torch.float64)
    correct = torch.zeros((), device=x.device, dtype=torch.int64)
    with precision_context(precision, x.device):
        for start in range(0, len(x), batch_size):
            xb, yb = x[start:start + batch_size], y[start:start + batch_size]
            logits = model(xb)
            loss += loss_sum(logits, yb)
            correct += (logits.argmax(dim=1) == yb).sum()
    total_loss, total_correct = torch.stack([loss, correct.double()]).tolist()
    n = len(x)
    if math.isnan(total_loss):  # NaN logits have an argmax too, but no accuracy
        return math.nan, math.nan
    return total_loss / n, 100.0 * total_correct / n


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


def auto_batch_size(model, x, precision="fp32", gpu_max=8192, rounds=3):
    """CPU: the fastest of CPU_BATCHES (it depends on model and caches), timed on up to 512 images in
    `rounds` interleaved rounds keeping each size's best, since one round is easily skewed by warm-up
    or other load (docs/bench_surface.md). GPU: the largest power of two up to gpu_max that fits."""
    if x.device.type != "cuda":
        sizes = [b for b in CPU_BATCHES if b <= len(x)] or [len(x)]
        best = {b: float("inf") for b in sizes}
        for _ in range(rounds):
            for b in sizes:
                best[b] = min(best[b], _seconds_per_image(model, x, b, precision))
        return min(sizes, key=best.get)
    size = min(gpu_max, 1 << (max(len(x), 1) - 1).bit_length())
    while size > 1:
        try:
            with torch.inference_mode(), precision_context(precision, x.device):
                model(x[:size])
            torch.cuda.synchronize(x.device)
            return size
        except torch.cuda.OutOfMemoryError:
            torch.cuda.empty_cache()
            size //= 2
    return 1
