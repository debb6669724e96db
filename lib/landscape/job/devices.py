"""Decisions about devices, launchers and precision, as pure functions of what was observed.

The observing (environment, torch.cuda, MPI) happens in lib/landscape/job/mpi.py; these functions only
decide, so each rule is tested directly on a machine without a GPU or a cluster. torch is imported
only where a function needs it, so the MPI layer can use the launch rules without loading torch.
"""
from dataclasses import dataclass

from ..errors import ChoiceError, DeviceError

# Who started this process, innermost launcher first. Python's os.environ is the environment the
# launcher gave the process (MPI_Init's own setenv calls do not show in it), so a variable here was
# set by a launcher. An MPI launcher inside a Slurm allocation starts its daemons with srun, and
# the ranks inherit the daemons' SLURM_STEP_NUM_TASKS (one task per node): the MPI launcher's own
# count is the one that describes this job, and srun's counts only when no MPI launcher is present.
LAUNCHER_SIZE_VARS = (
    ("OMPI_COMM_WORLD_SIZE", "Open MPI's mpirun"),
    ("PMI_SIZE", "a PMI launcher (MPICH/Intel MPI mpiexec, or srun --mpi=pmi2)"),
    ("PMIX_SIZE", "a PMIx launcher"),
    ("MV2_COMM_WORLD_SIZE", "MVAPICH's launcher"),
    ("SLURM_STEP_NUM_TASKS", "srun"),
)


def launcher_size(environ):
    """(variable, number of tasks) that the launcher of this process announced, or None.

    SLURM_STEP_NUM_TASKS counts only inside a job (SLURM_JOB_ID set): a stray copy of it in a
    shell outside Slurm says nothing about how this process was started.
    """
    for var, _ in LAUNCHER_SIZE_VARS:
        if var not in environ:
            continue
        if var.startswith("SLURM_") and "SLURM_JOB_ID" not in environ:
            continue
        try:
            return var, int(environ[var])
        except ValueError:
            continue
    return None


def launch_problem(environ, mpi_size, have_mpi4py=True):
    """One line saying why the launcher's task count and MPI's world size disagree, or None."""
    announced = launcher_size(environ)
    if announced is None or announced[1] == mpi_size:
        return None
    var, tasks = announced
    who = dict(LAUNCHER_SIZE_VARS)[var]
    head = (f"{who} started {tasks} tasks ({var}={tasks}) but MPI sees a world of {mpi_size}; "
            f"the tasks would race on the direction file and the lock")
    if not have_mpi4py:
        return f"{head}. Likely cause: mpi4py is not installed, so every task runs alone; install mpi4py"
    if mpi_size == 1:
        return (f"{head}. Likely cause: a PMI mismatch, the launcher's PMI is not the one the MPI under mpi4py "
                f"speaks, so every task starts as its own one-rank job; use srun --mpi=pmix (or pmi2) to match "
                f"that MPI, or that MPI's own mpirun")
    return f"{head}. Likely cause: a PMI mismatch or nested launchers; start the job with one launcher"


# --- which device ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class CudaState:
    """What this process sees of CUDA (observed by mpi.probe_cuda)."""
    gpus_on_node: int          # GPU device files present (/dev/nvidia0, ...), whatever torch thinks
    hidden: bool               # CUDA_VISIBLE_DEVICES hides every GPU on purpose
    torch_cuda: str = None     # torch.version.cuda: None for a CPU-only build
    available: bool = False    # torch.cuda.is_available()
    count: int = 0             # torch.cuda.device_count()
    problem: str = ""          # CUDA initialisation warning or error, empty when none


def choose_device(requested, cuda, local_rank):
    """'cpu' or 'cuda:<i>' for --device `requested`; a DeviceError where a GPU would be wrongly used or
    wrongly skipped. auto uses the CPU only where there is no GPU to use: GPUs that are present but
    unusable (driver too old for the wheel, CPU-only wheel) are refused, never quietly bypassed."""
    if requested not in ("auto", "cpu", "cuda"):
        raise ChoiceError(f"--device={requested!r} is not one of auto, cpu, cuda")
    if requested == "cpu":
        return "cpu"
    if cuda.available and cuda.count > 0:
        return f"cuda:{local_rank % cuda.count}"
    gpus_meant = cuda.gpus_on_node > 0 and not cuda.hidden
    if requested == "auto" and not gpus_meant:
        return "cpu"
    if requested == "cuda" and not gpus_meant:
        why = "CUDA_VISIBLE_DEVICES hides every GPU" if cuda.hidden else "no GPU is visible to this rank"
        raise DeviceError(f"--device cuda was asked for but {why}; pass --device cpu (or auto) to run on the CPU")
    if cuda.torch_cuda is None:
        why = "this torch is a CPU-only build"
    else:
        why = cuda.problem or f"torch (CUDA {cuda.torch_cuda}) cannot use them"
    raise DeviceError(f"{cuda.gpus_on_node} GPU(s) are present but unusable: {why}; update the driver or install "
                      f"a torch wheel that matches it, or pass --device cpu to run on the CPU")


def sharing_warning(host, device_ids):
    """A warning when the ranks of one node (device_ids: each rank's GPU identity) outnumber its GPUs."""
    gpus = {d for d in device_ids if d is not None}
    if not gpus or len(device_ids) <= len(gpus):
        return None
    return (f"warning: {len(device_ids)} ranks on {host} share {len(gpus)} GPU(s): ranks on one GPU compete for "
            f"its time and memory; start one rank per GPU (e.g. srun --gpus-per-task=1)")


def local_rank_from_env(environ):
    """This process's rank on its node as the launcher announced it; 0 when started alone."""
    for var in ("OMPI_COMM_WORLD_LOCAL_RANK", "MPI_LOCALRANKID", "MV2_COMM_WORLD_LOCAL_RANK", "SLURM_LOCALID"):
        if var in environ:
            return int(environ[var])
    return 0


# --- precision ------------------------------------------------------------------------------------

def tf32_override_warning(environ, precision):
    """A warning naming the environment variables that defeat `precision` on a GPU, else None.

    TORCH_ALLOW_TF32_CUBLAS_OVERRIDE=1 makes PyTorch's cuBLAS calls use TF32 whatever its flags
    say, and NVIDIA_TF32_OVERRIDE is read by cuBLAS and cuDNN themselves: 0 forbids TF32 (which
    defeats --precision tf32), and no other value is promised to leave the flags in charge.
    """
    found = []
    torch_override = environ.get("TORCH_ALLOW_TF32_CUBLAS_OVERRIDE", "").strip().lower()
    if precision != "tf32" and torch_override not in ("", "0", "false", "no", "off"):
        found.append(f"TORCH_ALLOW_TF32_CUBLAS_OVERRIDE={environ['TORCH_ALLOW_TF32_CUBLAS_OVERRIDE']}")
    nvidia = environ.get("NVIDIA_TF32_OVERRIDE")
    if nvidia is not None and (nvidia.strip() == "0") == (precision == "tf32"):
        found.append(f"NVIDIA_TF32_OVERRIDE={nvidia}")
    if not found:
        return None
    wanted = "TF32" if precision == "tf32" else "strict fp32 (TF32 off)"
    return (f"warning: {' and '.join(found)} in the environment can override PyTorch's TF32 flags, so "
            f"{wanted} is not guaranteed; unset {'them' if len(found) > 1 else 'it'} for trustworthy numbers")


# CPU flags that mean bf16 arithmetic in hardware: Intel AMX tiles and AVX-512 BF16 (x86 'flags' in
# /proc/cpuinfo), Arm's BF16 extension ('Features'). Without one, autocast emulates bf16 in fp32 units.
NATIVE_BF16_CPU_FLAGS = ("amx_bf16", "avx512_bf16", "bf16")
# What --precision bf16 gained and cost where it was measured: docs/BENCHMARKS.md, "bf16 against fp32 (issue 25)".
BF16_MEASURED = ("--precision bf16 ran ResNet-20/56 surfaces 2.2-3.2x faster than fp32 on a Xeon with AMX, the loss "
                 "within 1% (relative) at every point measured (docs/BENCHMARKS.md)")


def native_bf16(device_type, cpu_flags=frozenset(), cuda_bf16=False):
    """What gives this device bf16 arithmetic in hardware, in words ('amx_bf16, avx512_bf16'), or None.
    cpu_flags: the CPU's feature flags (host.cpu_flags); cuda_bf16: the GPU has bf16 units (not emulation)."""
    if device_type == "cuda":
        return "bf16 tensor cores" if cuda_bf16 else None
    if device_type == "cpu":
        return ", ".join(flag for flag in NATIVE_BF16_CPU_FLAGS if flag in cpu_flags) or None
    return None


def bf16_note(precision, device_type, native):
    """One line telling an fp32 surface run that its hardware has native bf16 (`native`, from native_bf16),
    with what bf16 gained and cost where it was measured; None for another precision or without native bf16.
    It only informs: fp32 stays the default, as bf16 moves the loss (docs/BENCHMARKS.md, "bf16 against fp32")."""
    if precision != "fp32" or native is None:
        return None
    where = "this GPU" if device_type == "cuda" else "this CPU"
    return f"note: {where} has native bf16 ({native}); {BF16_MEASURED}; fp32 stays the default"
