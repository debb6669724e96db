"""Which batch size: evaluation batches the fastest on a CPU (timed) and the largest that fits with a
margin on a GPU (probed); HVP batches the fastest product (timed) among those that fit.

Evaluation batches (forward passes) and HVP batches (double backward, several times a forward's
memory) each get their own choice; a test may pass its own meter (and timer) to drive the GPU path on
the CPU.
"""
import resource
import time
from dataclasses import dataclass

import torch

from ..host import available_memory
from ..space.model_io import call_model, count_of, device_of, take
from ..space.precision import precision_context, strict_fp32
from .memory import MARGIN, CudaMeter, power_of_two_at_least, probe_batch

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


HESSIAN_CPU_BATCH = 256  # 'auto' on the CPU before the batch was timed: what a file that records no batch used
HVP_CPU_SIZES = (32, 64, 128, 256, 512)  # nominal CPU candidates, each evened out over the samples (even_batch)
GPU_STEPS_BELOW = 2  # on a GPU the ceiling that fits and this many halvings of it are timed
SLOWER = 1.25  # a candidate this much slower per product than the best so far ends the climb to larger ones


@dataclass(frozen=True)
class BatchChoice:
    size: int
    timed: dict  # {candidate: best seconds of one product over all the samples}
    products: float  # what the timing spent, in products over all the samples

    def note(self):
        if not self.timed:
            return f"its {self.size} samples in one batch, untimed"
        return f"timed {len(self.timed)} sizes, {self.products:.1f} products' worth"


def even_batch(size, count):
    """The batch that cuts `count` samples into as many batches as `size` does, all within one sample of
    each other (500 samples at 128: 4 batches of 125, not three of 128 and one of 116)."""
    size = max(1, min(size, count))
    return -(-count // -(-count // size))


def hessian_batch_size(hvp_of, x, y, dim, device, ranks_sharing=1, gpu_max=4096, meter=None, timer=None,
                       rounds=2):
    """hvp_batch='auto': the size of the fastest product over all of x's samples (see choose_hvp_batch)."""
    return choose_hvp_batch(hvp_of, x, y, dim, device, ranks_sharing, gpu_max, meter, timer, rounds).size


def choose_hvp_batch(hvp_of, x, y, dim, device, ranks_sharing=1, gpu_max=4096, meter=None, timer=None, rounds=2):
    """The HVP batch whose product over all count_of(x) samples is fastest, timed; a BatchChoice.

    Candidates: on a CPU HVP_CPU_SIZES, on a GPU the largest power of two whose double-backward HVP runs
    with the safety margin (the graph of the gradient stays alive, so it needs several times a forward
    pass's memory; `meter` measures it, a test passes its own) and GPU_STEPS_BELOW halvings of it; each
    evened out over the samples (even_batch), never above what fits. They are timed from the smallest up,
    one product on one batch each, per sample count: a product over everything costs ceil(count / size)
    of them. The climb stops at a candidate SLOWER than the best so far (larger ones only get slower once
    the batch falls out of cache) or that would not fit in host memory by the last one's growth. Then the
    candidates within SLOWER of the best are timed again (`rounds` in all; each keeps its fastest: other
    jobs only add time, and a first call pays allocations). Cost: the sizes timed over the sample count,
    in products, about 2 at 500 samples and 0.2 at 5,000 (BatchChoice.products). timer(size) -> seconds
    of one product over `size` samples; hvp_of(batches) builds the operator.
    On a CPU up to HESSIAN_CPU_BATCH samples go in one batch untimed, as before: the cost per sample
    measured flat within noise below it (ResNet-20: 6.2-6.4 ms at 63-250), timing would cost two
    products of what may be a small map, and repeated calls then give the same numbers to the last bit.
    """
    count = count_of(x)
    timer = timer or _product_timer(hvp_of, x, y, dim, device)
    if device.type != "cuda" and meter is None:
        if count <= HESSIAN_CPU_BATCH:
            return BatchChoice(count, {}, 0.0)
        nominal, fits = HVP_CPU_SIZES, HostMeter(ranks_sharing).fits
    else:
        meter = meter or CudaMeter(device)
        v = _probe_vector(dim, device)
        ceiling = probe_batch(meter, lambda size: _one_hvp(hvp_of, x, y, v, size),
                              power_of_two_at_least(count, gpu_max), ranks_sharing)
        nominal, fits = [max(1, ceiling >> k) for k in range(GPU_STEPS_BELOW, -1, -1)], lambda *_: True
    sizes = sorted({even_batch(b, count) for b in nominal})
    best, spent = {}, 0
    for size in sizes:
        if best and not fits(size, max(best)):
            break
        best[size] = timer(size) * -(-count // size)
        spent += size
        if best[size] > SLOWER * min(best.values()):
            break
    for _ in range(rounds - 1):
        for size in [s for s in best if best[s] <= SLOWER * min(best.values())]:
            best[size] = min(best[size], timer(size) * -(-count // size))
            spent += size
    return BatchChoice(min(best, key=best.get), best, spent / count)


def _probe_vector(dim, device):
    return torch.randn(dim, generator=torch.Generator().manual_seed(0)).to(device)


def _one_hvp(hvp_of, x, y, v, size):
    with strict_fp32():
        hvp_of([(take(x, slice(0, size)), y[:size])])(v)


def _product_timer(hvp_of, x, y, dim, device):
    """timer(size): seconds of one product over the first `size` samples (the device synchronized)."""
    v = _probe_vector(dim, device)

    def timer(size):
        sync = torch.cuda.synchronize if device.type == "cuda" else (lambda *_: None)
        sync(device)
        start = time.perf_counter()
        _one_hvp(hvp_of, x, y, v, size)
        sync(device)
        return time.perf_counter() - start
    return timer


class HostMeter:
    """On a CPU: would a larger batch fit in host memory? Judged by the peak memory that the largest batch
    timed so far added to the process, scaled to the new size, against MARGIN of what is available now."""

    def __init__(self, ranks_sharing=1):
        self.base, self.ranks_sharing = _peak_rss(), max(1, ranks_sharing)

    def fits(self, size, last):
        needed = max(0, _peak_rss() - self.base) * size / last
        available = available_memory()
        return available is None or needed <= MARGIN * available / self.ranks_sharing


def _peak_rss():
    """Bytes of this process's peak resident memory (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
