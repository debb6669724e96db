"""Batch probes and the Lanczos basis plan, with fake allocation failures and memory sizes."""
import pytest
import torch

from landscape.curvature.hvp import hessian_param_names, mean_loss_hvp
from landscape.errors import DeviceError
from landscape.job.batch import HESSIAN_CPU_BATCH, auto_batch_size, hessian_batch_size
from landscape.job.memory import (
    Probe,
    basis_bytes,
    is_allocation_failure,
    largest_that_runs,
    plan_basis,
    power_of_two_at_least,
    rank_headroom,
    with_margin,
)
from landscape.space.precision import read_tf32_flags, tf32_flags_for

from tiny import make_data, make_model

GiB = 2 ** 30


@pytest.mark.parametrize("error", [
    torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"),
    RuntimeError("cuDNN error: CUDNN_STATUS_ALLOC_FAILED"),
    RuntimeError("CUDA error: CUBLAS_STATUS_ALLOC_FAILED when calling `cublasCreate(handle)`"),
    RuntimeError("CUDA error: CUBLAS_STATUS_NOT_INITIALIZED when calling `cublasCreate(handle)`"),
    RuntimeError("CUDA error: out of memory"),
])
def test_every_kind_of_allocation_failure_is_recognised(error):
    assert is_allocation_failure(error)


def test_other_errors_are_not_allocation_failures():
    assert not is_allocation_failure(RuntimeError("mat1 and mat2 shapes cannot be multiplied"))
    assert not is_allocation_failure(ValueError("out of memory"))  # not raised by an allocator


def fake_gpu(capacity, per_sample, message="cuDNN error: CUDNN_STATUS_ALLOC_FAILED"):
    """run(size) of a device that holds `capacity` bytes of activations, failing like cuDNN beyond."""
    tried = []

    def run(size):
        tried.append(size)
        if size * per_sample > capacity:
            raise RuntimeError(message)
        return size * per_sample
    return run, tried


def test_the_probe_halves_through_cudnn_failures():
    run, tried = fake_gpu(capacity=300, per_sample=1)
    recovered = []
    probe = largest_that_runs(run, 1024, recover=lambda: recovered.append(1))
    assert probe == Probe(256, 256) and tried == [1024, 512, 256] and len(recovered) == 2


def test_the_probe_does_not_hide_real_errors():
    run, _ = fake_gpu(capacity=10, per_sample=1, message="Expected 4-dimensional input")
    with pytest.raises(RuntimeError, match="4-dimensional"):
        largest_that_runs(run, 64)
    run, _ = fake_gpu(capacity=0, per_sample=1)
    with pytest.raises(RuntimeError, match="ALLOC_FAILED"):  # even one sample does not fit: say so
        largest_that_runs(run, 64)


def test_the_margin_halves_a_batch_that_fills_the_memory():
    # 256 ran, needing 9 GiB above the model, with 10 GiB left: 90% > 80%, so 128 (4.5 GiB)
    assert with_margin(Probe(256, 9 * GiB), headroom=10 * GiB) == 128
    assert with_margin(Probe(256, 7 * GiB), headroom=10 * GiB) == 256
    assert with_margin(Probe(1, 9 * GiB), headroom=1 * GiB) == 1


def test_ranks_on_one_gpu_share_its_headroom():
    headroom = rank_headroom(free_bytes=60 * GiB, unused_cache_bytes=20 * GiB, ranks_sharing=2)
    assert headroom == 40 * GiB
    assert with_margin(Probe(1024, 72 * GiB), headroom) == 256  # 512 needs 36 GiB > 0.8 * 40 GiB, 256 fits


def test_probe_start_is_a_power_of_two_covering_the_data():
    assert power_of_two_at_least(50000, 8192) == 8192
    assert power_of_two_at_least(300, 8192) == 512
    assert power_of_two_at_least(1, 8192) == 1


def test_the_basis_stays_on_the_device_when_it_fits():
    plan = plan_basis(dim=10 ** 6, max_steps=100, device="cuda:0", device_headroom=40 * GiB, host_available=0)
    assert plan.device == "cuda:0" and plan.dtype == torch.float64


def test_wrn_sized_basis_goes_to_host_memory_then_to_fp32():
    dim, steps = 54 * 10 ** 6, 100  # WRN-56-8: 43 GB of float64
    assert basis_bytes(dim, steps, torch.float64) == pytest.approx(43.2e9)
    host = plan_basis(dim, steps, "cuda:0", device_headroom=30 * GiB, host_available=200 * GiB)
    assert host.device == "cpu" and host.dtype == torch.float64 and "host memory" in host.note
    fp32 = plan_basis(dim, steps, "cuda:0", device_headroom=30 * GiB, host_available=40 * GiB)
    assert fp32.device == "cuda:0" and fp32.dtype == torch.float32 and "not resolved" in fp32.note
    with pytest.raises(DeviceError, match="--max_iter"):
        plan_basis(dim, steps, "cuda:0", device_headroom=10 * GiB, host_available=10 * GiB)


def test_a_cpu_run_keeps_its_float64_basis():
    plan = plan_basis(10 ** 6, 100, "cpu", device_headroom=0, host_available=0)
    assert plan.device == "cpu" and plan.dtype == torch.float64


class FakeMeter:
    """A GPU of `capacity` bytes for activations at `per_sample` bytes each; the work itself really runs."""

    def __init__(self, capacity, per_sample, headroom):
        self.capacity, self.per_sample, self.free, self.sizes = capacity, per_sample, headroom, []

    def run(self, work, size):
        self.sizes.append(size)
        work(size)
        if size * self.per_sample > self.capacity:
            raise RuntimeError("CUDA error: CUBLAS_STATUS_ALLOC_FAILED when calling `cublasSgemm`")
        return size * self.per_sample

    def recover(self):
        pass

    def headroom(self, ranks_sharing):
        return self.free / ranks_sharing


def test_the_hessian_probe_runs_double_backward_hvps_in_strict_fp32():
    model = make_model()
    (x, y), _ = make_data(n_train=40)
    x = torch.cat([x] * 4)  # 160 samples: the probe starts at 256 and halves
    y = torch.cat([y] * 4)
    names = hessian_param_names(model, "reference")
    dim = sum(p.numel() for n, p in model.named_parameters() if n in names)
    seen = []

    def hvp_of(batches):
        op = mean_loss_hvp(model, names, lambda logits, t: torch.nn.functional.cross_entropy(logits, t), batches)

        def apply(v):
            seen.append((len(batches[0][1]), read_tf32_flags()))
            return op(v)
        return apply
    meter = FakeMeter(capacity=100, per_sample=1, headroom=1000)
    timed = []

    def per_batch(size):  # a GPU where a batch costs the same whatever its size: the fewest batches win
        timed.append(size)
        return 1.0
    assert hessian_batch_size(hvp_of, x, y, dim, torch.device("cpu"), meter=meter, timer=per_batch) == 54
    assert meter.sizes == [256, 128, 64]
    assert [size for size, _ in seen] == [160, 128, 64]  # x[:256] holds all 160
    assert all(flags == tf32_flags_for(False) for _, flags in seen)
    assert sorted(set(timed)) == [16, 32, 54]  # 64 and two halvings, evened out over 160 samples
    # twenty ranks on the GPU: each may use 80% of a 50-byte share, which holds 32 samples, not 64
    assert hessian_batch_size(hvp_of, x, y, dim, torch.device("cpu"), ranks_sharing=20, meter=meter,
                              timer=per_batch) == 32


def test_the_hessian_batch_on_the_cpu_is_timed_among_evened_out_sizes():
    timed = []

    def cache_bound(size):  # a fixed cost per batch, and per sample twice as slow above 128
        timed.append(size)
        return 10 + size * (1.0 if size <= 128 else 2.0)
    assert hessian_batch_size(None, torch.zeros(1000), None, 0, torch.device("cpu"), timer=cache_bound) == 125
    assert timed[:4] == [32, 63, 125, 250]  # 1000 in 32, 16, 8, 4 batches; 250 is slower and ends the climb
    assert hessian_batch_size(None, torch.zeros(HESSIAN_CPU_BATCH), None, 0, torch.device("cpu"),
                              timer=lambda s: 1 / 0) == HESSIAN_CPU_BATCH  # one batch, untimed, as before


def test_the_gpu_evaluation_probe_keeps_its_margin():
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 3))
    x = torch.randn(3000, 3, 2, 2)
    meter = FakeMeter(capacity=2000, per_sample=1, headroom=1500)
    # 4096 covers the data; 2048 is too many for the device; 1024 fits but takes 1024 > 0.8 * 1200
    assert auto_batch_size(model, x, gpu_max=8192, meter=FakeMeter(2000, 1, 1200)) == 512
    assert auto_batch_size(model, x, gpu_max=8192, meter=meter) == 1024
    assert meter.sizes == [4096, 2048, 1024]
