"""Which batch size: the fastest on a CPU (timed), the largest that fits with a margin on a GPU (probed).

Evaluation batches (forward passes) and HVP batches (double backward, several times a forward's
memory) each get their own choice; a test may pass its own meter to drive the GPU path on the CPU.
"""
import time

import torch

from ..space.model_io import call_model, count_of, device_of, take
from ..space.precision import precision_context, strict_fp32
from .memory import CudaMeter, power_of_two_at_least, probe_batch

CPU_BATCHES = (64, 128, 256, 512)


def _seconds_per_image(model, x, batch, precision):
    probe = take(x, slice(0, max(batch, min(count_of(x), 512))))
    with torch.inference_mode(), precision_context(precision, device_of(x)):
        call_model(model, take(probe, slice(0, batch)))  # warm-up: first calls allocate and pick kernels
        t0 = time.perf_counter()
        for start in range(0, count_of(probe), batch):
            call_model(model, take(probe, slice(start, start + batch)))
    return (time.perf_counter() - t0) / count_of(probe)


def auto_batch_size(model, x, precision="fp32", gpu_max=8192, rounds=3, ranks_sharing=1, meter=None):
    """CPU: the fastest of CPU_BATCHES (it depends on model and caches), timed on up to 512 images in
    `rounds` interleaved rounds keeping each size's best, since one round is easily skewed by warm-up
    or other load (docs/bench_surface.md). GPU: the largest power of two up to gpu_max that runs,
    halved further until it leaves a safety margin for the `ranks_sharing` ranks on the same GPU
    (`meter` measures memory; a test may pass its own to drive the GPU path on the CPU)."""
    if device_of(x).type != "cuda" and meter is None:
        sizes = [b for b in CPU_BATCHES if b <= count_of(x)] or [count_of(x)]
        best = {b: float("inf") for b in sizes}
        for _ in range(rounds):
            for b in sizes:
                best[b] = min(best[b], _seconds_per_image(model, x, b, precision))
        return min(sizes, key=best.get)

    def forward(size):
        with torch.inference_mode(), precision_context(precision, device_of(x)):
            call_model(model, take(x, slice(0, size)))
    return probe_batch(meter or CudaMeter(device_of(x)), forward, power_of_two_at_least(count_of(x), gpu_max),
                       ranks_sharing)


HESSIAN_CPU_BATCH = 256  # the former fixed default: on the CPU, memory is not what limits the batch


def hessian_batch_size(hvp_of, x, y, dim, device, ranks_sharing=1, gpu_max=4096, meter=None):
    """--hessian_batch auto. On a GPU the largest power of two whose double-backward HVP runs, with
    the safety margin; the double backward keeps the graph of the gradient alive, so it needs several
    times a forward pass's memory and gets its own probe. hvp_of(batches) builds the operator."""
    if device.type != "cuda" and meter is None:
        return min(HESSIAN_CPU_BATCH, count_of(x))
    meter = meter or CudaMeter(device)
    v = torch.randn(dim, generator=torch.Generator().manual_seed(0)).to(device)

    def one_hvp(size):
        with strict_fp32():
            hvp_of([(take(x, slice(0, size)), y[:size])])(v)
    return probe_batch(meter, one_hvp, power_of_two_at_least(count_of(x), gpu_max), ranks_sharing)
