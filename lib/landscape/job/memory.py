"""Memory decisions on a GPU: which batch fits with room to spare, and where the Lanczos basis lives.

The probes take the work to try as a callable, so the same loop serves evaluation (forward only)
and the Hessian (double backward), and tests drive it on the CPU with fake failures and sizes.
"""
from dataclasses import dataclass

import torch

from ..errors import DeviceError
from ..host import available_memory

# cuDNN and cuBLAS report a failed workspace or handle allocation as a plain RuntimeError with
# their status name in it, not as torch.cuda.OutOfMemoryError.
ALLOCATION_FAILURES = ("out of memory", "CUDNN_STATUS_ALLOC_FAILED", "CUBLAS_STATUS_ALLOC_FAILED",
                       "CUBLAS_STATUS_NOT_INITIALIZED", "CUDNN_STATUS_NOT_SUPPORTED", "CUFFT_ALLOC_FAILED")
MARGIN = 0.8  # a chosen batch may use at most this share of the memory left to the rank


def is_allocation_failure(error):
    """True for every way PyTorch, cuDNN or cuBLAS say an allocation failed."""
    if isinstance(error, torch.cuda.OutOfMemoryError):
        return True
    return isinstance(error, RuntimeError) and any(s in str(error) for s in ALLOCATION_FAILURES)


@dataclass(frozen=True)
class Probe:
    size: int     # largest batch that ran
    extra: int    # bytes it needed above what was allocated before it (0 where not measured)


def largest_that_runs(run, start, recover=lambda: None):
    """Halve from `start` until `run(size)` succeeds; run returns the extra bytes its batch needed.
    Errors other than allocation failures propagate; a batch of 1 that fails is not a memory limit."""
    size = max(1, start)
    while True:
        try:
            return Probe(size, run(size))
        except RuntimeError as error:
            if size == 1 or not is_allocation_failure(error):
                raise
        recover()
        size //= 2


def with_margin(probe, headroom, margin=MARGIN):
    """The largest batch from halving probe.size whose extra memory, scaled linearly from the probe's,
    stays within margin * headroom (the bytes left to this rank). Scaling down is safe: activations
    grow with the batch, so a smaller batch needs at most its share."""
    size = probe.size
    while size > 1 and probe.extra * size / probe.size > margin * headroom:
        size //= 2
    return size


def rank_headroom(free_bytes, unused_cache_bytes, ranks_sharing):
    """Bytes this rank may still use: the free memory and its own unused cache, split between the
    ranks on the same GPU (each probes alone, but all run at once)."""
    return (free_bytes + unused_cache_bytes) / max(1, ranks_sharing)


class CudaMeter:
    """Measures a probe's work on a GPU: the peak bytes above what was allocated before it."""

    def __init__(self, device):
        self.device = device

    def run(self, work, size):
        torch.cuda.synchronize(self.device)
        before = torch.cuda.memory_allocated(self.device)
        torch.cuda.reset_peak_memory_stats(self.device)
        work(size)
        torch.cuda.synchronize(self.device)
        return torch.cuda.max_memory_allocated(self.device) - before

    def recover(self):
        torch.cuda.empty_cache()

    def headroom(self, ranks_sharing):
        torch.cuda.empty_cache()
        free, _ = torch.cuda.mem_get_info(self.device)
        unused = torch.cuda.memory_reserved(self.device) - torch.cuda.memory_allocated(self.device)
        return rank_headroom(free, unused, ranks_sharing)


def probe_batch(meter, work, start, ranks_sharing=1, margin=MARGIN):
    """Largest batch from halving `start` that work() runs with, keeping the safety margin."""
    probe = largest_that_runs(lambda size: meter.run(work, size), start, recover=meter.recover)
    return with_margin(probe, meter.headroom(ranks_sharing), margin)


def power_of_two_at_least(n, cap):
    return min(cap, 1 << (max(n, 1) - 1).bit_length())


# --- the Lanczos basis ----------------------------------------------------------------------------

@dataclass(frozen=True)
class BasisPlan:
    device: str      # where the Krylov basis is kept: the rank's GPU, or 'cpu'
    dtype: torch.dtype
    note: str        # what was chosen and why, for the log and the provenance


def basis_bytes(dim, steps, dtype):
    return dim * steps * torch.empty((), dtype=dtype).element_size()


def plan_basis(dim, max_steps, device, device_headroom, host_available, margin=MARGIN):
    """Where the Lanczos basis (max_steps vectors of dim numbers) is kept.

    float64 beside the model on the device when it fits there; else float64 in host memory (each
    step copies one vector over, and the orthogonalization runs on the CPU); else
    float32 on the device, whose rounding (about 6e-8 relative per stored vector) limits how
    orthogonal the basis stays, so eigenvalues below ~1e-6 * |lambda_max| are not resolved.
    """
    full = basis_bytes(dim, max_steps, torch.float64)
    if device == "cpu" or full <= margin * device_headroom:
        return BasisPlan(device, torch.float64, f"float64 basis on {device} ({full / 2**30:.1f} GiB at most)")
    if full <= margin * host_available:
        return BasisPlan("cpu", torch.float64, f"float64 basis in host memory ({full / 2**30:.1f} GiB): "
                                               f"it does not fit beside the model on {device}")
    half = basis_bytes(dim, max_steps, torch.float32)
    if half <= margin * device_headroom:
        return BasisPlan(device, torch.float32, f"float32 basis on {device} ({half / 2**30:.1f} GiB): float64 "
                                                f"fits neither on the device nor in host memory; eigenvalues "
                                                f"below ~1e-6 of |lambda_max| are not resolved")
    raise DeviceError(f"the Lanczos basis ({dim} x {max_steps} numbers, {half / 2**30:.1f} GiB in float32) fits "
                      f"neither on {device} nor in host memory; lower --max_iter")


def host_available_bytes(ranks_on_node=1):
    """Memory available on this host now, split between the ranks on it."""
    return (available_memory() or 0) / max(1, ranks_on_node)


def lanczos_basis_plan(dim, max_steps, device, ranks_sharing=1, ranks_on_node=1):
    """plan_basis with this rank's measured device headroom and host memory."""
    if device.type != "cuda":
        return plan_basis(dim, max_steps, "cpu", 0, 0)
    return plan_basis(dim, max_steps, str(device), CudaMeter(device).headroom(ranks_sharing),
                      host_available_bytes(ranks_on_node))


KEEP_SHARE = 0.25  # kept gradient graphs may use this share of the host memory available to a rank


def kept_graph_budget(device, dim, basis_steps, ranks_on_node=1):
    """Bytes a point may keep its batches' gradient graphs in (curvature.blocks.KeptGraphs): on a CPU,
    KEEP_SHARE of the host memory available to this rank less its float64 Lanczos bases at their longest
    (basis_steps vectors); 0 on a GPU, where it has not been measured yet (no GPU was lent to issue 22)."""
    if device.type == "cuda":
        return 0
    return max(0, int(KEEP_SHARE * host_available_bytes(ranks_on_node) - basis_bytes(dim, basis_steps, torch.float64)))
