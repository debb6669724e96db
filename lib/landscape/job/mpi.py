"""All MPI in one place: the world, device binding, crash handling and the work-request channel.

Without mpi4py (or under a plain `python`), World is a single process and nothing here needs MPI.
"""
import glob
import os
import platform
import sys
import threading
import time
import traceback
import warnings

from ..errors import DeviceError, LandscapeError
from ..host import cpu_flags
from .devices import (
    CudaState,
    choose_device,
    launch_problem,
    local_rank_from_env,
    native_bf16,
    sharing_warning,
    tf32_override_warning,
)

REQUEST, REPLY = 11, 12


class World:
    def __init__(self, comm=None):
        self.comm = comm
        self.rank = comm.Get_rank() if comm else 0
        self.size = comm.Get_size() if comm else 1
        self.node = _node_comm(comm)  # the ranks on this host
        self.local_rank = self.node.Get_rank() if self.node else local_rank_from_env(os.environ)
        self.local_size = self.node.Get_size() if self.node else 1
        self.device_sharing = 1  # ranks of this node on this rank's device, set by share_device

    def bcast(self, obj):
        return self.comm.bcast(obj, root=0) if self.size > 1 else obj

    def gather(self, obj):
        return self.comm.gather(obj, root=0) if self.size > 1 else [obj]

    def node_allgather(self, obj):
        """obj of every rank on this host, in local-rank order."""
        return self.node.allgather(obj) if self.node else [obj]

    def barrier(self):
        """Wait for all ranks while sleeping, so idle ranks do not steal cores from busy ones."""
        if self.size > 1:
            req = self.comm.Ibarrier()
            while not req.Test():
                time.sleep(0.005)


def rank0_first(world, fn):
    """Run `fn` on rank 0 only; every rank gets its result, or the same LandscapeError.
    The others wait asleep in a barrier (not spinning in bcast), as rank 0 may work for minutes."""
    result, error = None, None
    if world.rank == 0:
        try:
            result = fn()
        except LandscapeError as e:
            error = e
    world.barrier()
    result, error = world.bcast((result, error))
    if error is not None:
        error.from_rank0 = True  # rank 0 prints it; the others stay silent (cli/run.guarded_main)
        raise error
    return result


_WORLD = []  # one World per process: each API call reuses it (and its node communicator, and device_sharing)


def init_world():
    if not _WORLD:
        try:
            from mpi4py import MPI
            _WORLD.append(World(MPI.COMM_WORLD))
        except ImportError:
            _WORLD.append(World(None))
    return _WORLD[0]


def _node_comm(comm):
    """MPI's shared-memory split of the world: the ranks on this host (None when alone)."""
    if comm is None or comm.Get_size() == 1:
        return None
    from mpi4py import MPI
    return comm.Split_type(MPI.COMM_TYPE_SHARED)


def check_launch(world):
    """Before any work: the launcher and MPI must agree on the number of tasks (else every task runs
    alone and they race on the files), and several ranks need MPI thread support (rank 0's server)."""
    have_mpi4py = world.comm is not None
    problem = launch_problem(os.environ, world.size, have_mpi4py)
    if problem:
        raise DeviceError(problem)
    if world.size > 1:
        _require_threads()


def probe_cuda():
    """What this process sees of CUDA, with any initialisation warning (e.g. a driver too old)."""
    import torch  # here, not at the top: the MPI layer itself runs without torch
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    hidden = visible is not None and visible.strip() in ("", "-1", "none", "NoDevFiles")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        available = torch.cuda.is_available()
        count = torch.cuda.device_count() if available else 0
    problem = "; ".join(str(w.message).strip().splitlines()[0] for w in caught if "CUDA" in str(w.message))
    return CudaState(gpus_on_node=len(glob.glob("/dev/nvidia[0-9]*")), hidden=hidden, torch_cuda=torch.version.cuda,
                     available=available, count=count, problem=problem)


def native_bf16_of(device):
    """native_bf16 for this device as observed: the CPU's flags, or whether the GPU has bf16 units (torch's
    check without emulation; older torch has no including_emulation and then counts emulation too)."""
    import torch
    if device.type != "cuda":
        return native_bf16(device.type, cpu_flags=cpu_flags())
    with torch.cuda.device(device):
        try:
            units = torch.cuda.is_bf16_supported(including_emulation=False)
        except TypeError:
            units = torch.cuda.is_bf16_supported()
    return native_bf16("cuda", cuda_bf16=units)


def _check_kernels_run(device):
    """A GPU whose card the wheel has no kernels for fails only at its first kernel: run one now."""
    import torch
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            ok = torch.ones(8, device=device).mul_(2).sum().item() == 16.0
        except RuntimeError as error:
            raise DeviceError(f"{device} ({torch.cuda.get_device_name(device)}) cannot run this torch's kernels: "
                              f"{str(error).splitlines()[0]}; install a torch wheel built for this card, or pass "
                              f"--device cpu") from None
    if not ok:
        raise DeviceError(f"{device} computed 8 * 2 wrongly: the GPU or its driver is faulty")
    for w in caught:
        print(f"warning: {device}: {str(w.message).strip().splitlines()[0]}", file=sys.stderr, flush=True)


def pick_device(world, requested="auto", precision="fp32"):
    """This rank's device: its node-local GPU, or the CPU where there is no GPU to use.

    The GPU is made current (torch.cuda.set_device) here, before any model or data factory runs, so
    factories that call .cuda() land on it too. Every rank prints its host, local rank and device once.
    """
    import torch
    cuda = probe_cuda() if requested != "cpu" else CudaState(0, False)
    device = torch.device(choose_device(requested, cuda, world.local_rank))
    if device.type == "cuda":
        torch.cuda.set_device(device)
        _check_kernels_run(device)
    name = f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else ""
    of = f" of {world.local_size}" if world.node else ""  # alone, the launcher's local rank is all we know
    print(f"[rank {world.rank}/{world.size}] host {platform.node()}, local rank {world.local_rank}{of}, "
          f"device {device}{name}", flush=True)
    ids = share_device(world, device)
    if device.type == "cuda" and (world.node is None or world.local_rank == 0):
        for warning in (sharing_warning(platform.node(), ids),
                        tf32_override_warning(os.environ, precision)):
            if warning:
                print(warning, file=sys.stderr, flush=True)
    return device


def share_device(world, device):
    """Collective: note in world.device_sharing how many ranks of this node use `device` (batch probes
    leave them room); returns every local rank's GPU identity. GPUs go by identity, not index: with one
    GPU bound per task (srun --gpus-per-task) every rank sees "cuda:0"."""
    mine = _gpu_identity(device)
    ids = world.node_allgather(mine)
    world.device_sharing = ids.count(mine) if device.type == "cuda" else 1
    return ids


def _gpu_identity(device):
    """The physical GPU behind `device` (its UUID, else its PCI address); None on the CPU."""
    if device.type != "cuda":
        return None
    import torch
    props = torch.cuda.get_device_properties(device)
    return str(getattr(props, "uuid", "")) or f"{props.pci_domain_id}:{props.pci_bus_id}:{props.pci_device_id}"


def ranks_per_gpu(world, device):
    """How many ranks of this node share `device` (1 on the CPU): its batch probe leaves them room."""
    return world.device_sharing if device.type == "cuda" else 1


def cpu_threads_per_rank():
    """Share this rank's cores: Slurm's --cpus-per-task, else the node's cores over its ranks."""
    if "SLURM_CPUS_PER_TASK" in os.environ:
        return max(1, int(os.environ["SLURM_CPUS_PER_TASK"]))
    node_ranks = int(os.environ.get("OMPI_COMM_WORLD_LOCAL_SIZE", 1))
    return max(1, len(os.sched_getaffinity(0)) // max(1, node_ranks))


def abort_on_uncaught(world):
    """An exception on any rank ends the whole job with its traceback instead of leaving others hanging."""
    if world.size == 1:
        return

    def hook(kind, value, tb):
        sys.stderr.write(f"[rank {world.rank}] uncaught exception, aborting all ranks:\n")
        sys.stderr.write("".join(traceback.format_exception(kind, value, tb)))
        sys.stderr.flush()
        world.comm.Abort(1)
    sys.excepthook = hook
    threading.excepthook = lambda a: hook(a.exc_type, a.exc_value, a.exc_traceback)  # rank 0's work server


def _require_threads():
    """Rank 0 answers work requests from a thread while its main thread computes and writes."""
    from mpi4py import MPI
    if MPI.Query_thread() != MPI.THREAD_MULTIPLE:
        raise LandscapeError("this MPI library does not provide MPI_THREAD_MULTIPLE, which rank 0's work "
                             "server needs; use an MPI built with thread support (Open MPI and MPICH are)")


class WorkChannel:
    """Ranks ask rank 0 for work; a thread on rank 0 answers from the Dispatcher (mpi4py's demo pattern)."""

    def __init__(self, world, dispatcher=None, on_reply=None):
        self.world, self.dispatcher, self.on_reply = world, dispatcher, on_reply
        if world.size > 1:
            _require_threads()
        self.comm = world.comm.Dup() if world.size > 1 else None
        self.server = None
        if self.comm is not None and world.rank == 0:
            self.server = threading.Thread(target=self._serve, daemon=True)
            self.server.start()

    def request(self, completed, stop):
        if self.comm is None:
            return self._answer(0, completed, stop)
        self.comm.send((completed, stop), dest=0, tag=REQUEST)
        return self.comm.recv(source=0, tag=REPLY)

    def _answer(self, rank, completed, stop):
        reply = self.dispatcher.handle(rank, completed, stop)
        if self.on_reply:
            self.on_reply(self.dispatcher)
        return reply

    def _serve(self):
        from mpi4py import MPI
        status, finished = MPI.Status(), 0
        while finished < self.world.size:
            if not self.comm.Iprobe(source=MPI.ANY_SOURCE, tag=REQUEST, status=status):
                time.sleep(0.001)
                continue
            source = status.Get_source()
            completed, stop = self.comm.recv(source=source, tag=REQUEST)
            reply = self._answer(source, completed, stop)
            finished += reply.kind == "done"
            self.comm.send(reply, dest=source, tag=REPLY)

    def close(self):
        if self.server is not None:
            self.server.join()
        if self.comm is not None:
            self.comm.Free()

