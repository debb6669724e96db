"""Hands out grid points on demand: pure bookkeeping, no MPI (lib/landscape/mpi.py carries the messages).

Every rank asks for work and receives one of:
  Reply('work', points)  evaluate these flat indices (a small chunk: faster ranks simply ask more often)
  Reply('flush')         write what you have and flush the file, collectively with every other rank
  Reply('done')          write what you have, close the file, stop
Flush epochs start every `flush_points` points or `flush_secs` seconds. Once an epoch ends, every
rank receives 'flush' before anything else, and no epoch starts after the first 'done', so the
collective calls of all ranks always match.
"""
import time
from dataclasses import dataclass


@dataclass(frozen=True)
class Reply:
    kind: str
    points: tuple = ()


class Dispatcher:
    def __init__(self, todo, nranks, flush_points, flush_secs, max_chunk=8, clock=time.monotonic):
        self.todo, self.pos, self.nranks = list(todo), 0, nranks
        self.flush_points, self.flush_secs, self.max_chunk = flush_points, flush_secs, max_chunk
        self.clock = clock
        self.epoch_start, self.handed_in_epoch = clock(), 0
        self.flush_pending = set()
        self.finishing = False
        self.completed = 0  # points that ranks reported finished

    def chunk_size(self):
        """Guided chunks: big while much is left, single points near the end for balance."""
        left = len(self.todo) - self.pos
        return max(1, min(self.max_chunk, left // (4 * self.nranks)))

    def _epoch_over(self):
        due = (self.handed_in_epoch >= self.flush_points
               or self.clock() - self.epoch_start >= self.flush_secs)
        return self.handed_in_epoch > 0 and due

    def handle(self, rank, completed=0, stop=False):
        """One request from `rank`, which has finished `completed` points since its last request."""
        self.completed += completed
        if stop:
            self.finishing = True
        if not self.flush_pending and not self.finishing and self._epoch_over():
            self.flush_pending = set(range(self.nranks))
        if rank in self.flush_pending:
            self.flush_pending.discard(rank)
            if not self.flush_pending:
                self.epoch_start, self.handed_in_epoch = self.clock(), 0
            return Reply("flush")
        if self.flush_pending:
            raise RuntimeError(f"rank {rank} asked for work during a flush it already joined")
        if self.finishing or self.pos >= len(self.todo):
            self.finishing = True
            return Reply("done")
        n = self.chunk_size()
        points = tuple(self.todo[self.pos:self.pos + n])
        self.pos += n
        self.handed_in_epoch += n
        return Reply("work", points)
