"""All MPI in one place: the world, device binding, crash handling and the work-request channel.

Without mpi4py (or under a plain `python`), World is a single process and nothing here needs MPI.
"""
import os
import sys
import threading
import time
import traceback

from .errors import LandscapeError


REQUEST, REPLY = 11, 12


class World:
    def __init__(self, comm=None):
        self.comm = comm
        self.rank = comm.Get_rank() if comm else 0
        self.size = comm.Get_size() if comm else 1
        self.local_rank = _local_rank(comm)

    def bcast(self, obj):
        return self.comm.bcast(obj, root=0) if self.size > 1 else obj

    def gather(self, obj):
        return self.comm.gather(obj, root=0) if self.size > 1 else [obj]

    def barrier(self):
        """Wait for all ranks while sleeping, so idle ranks do not steal cores from busy ones."""
        if self.size > 1:
            req = self.comm.Ibarrier()
            while not req.Test():
                time.sleep(0.005)


def init_world():
    try:
        from mpi4py import MPI
    except ImportError:
        return World(None)
    return World(MPI.COMM_WORLD)


def _local_rank(comm):
    """Rank among the processes of this node: from MPI's shared-memory split, else the launcher's env."""
    if comm is not None and comm.Get_size() > 1:
        from mpi4py import MPI
        node = comm.Split_type(MPI.COMM_TYPE_SHARED)
        rank = node.Get_rank()
        node.Free()
        return rank
    for var in ("OMPI_COMM_WORLD_LOCAL_RANK", "SLURM_LOCALID", "MPI_LOCALRANKID"):
        if var in os.environ:
            return int(os.environ[var])
    return 0


def pick_device(world, requested="auto"):
    """The GPU of this rank's node-local index, or the CPU where there is none."""
    import torch  # here, not at the top: the sleep-cost simulation runs 64 ranks without torch
    if requested not in ("auto", "cpu", "cuda"):
        raise ValueError(f"--device={requested!r} is not one of auto, cpu, cuda")
    if requested == "cpu" or (requested == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise LandscapeError("--device cuda (or --cuda) was asked for but no GPU is visible to this rank")
    return torch.device("cuda", world.local_rank % torch.cuda.device_count())


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

