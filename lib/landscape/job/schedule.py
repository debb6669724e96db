"""Hands out grid points on demand: pure bookkeeping, no MPI (lib/landscape/job/mpi.py carries the messages).

Every rank asks for work and receives one of:
  Reply('work', points)  evaluate these flat indices (a small chunk: faster ranks simply ask more often)
  Reply('flush')         write what you have and flush the file, collectively with every other rank
  Reply('round')         like 'flush', and the round of points is over: rank 0 then plans the next one
  Reply('wait')          nothing to hand out until rank 0 has planned the next round: ask again shortly
  Reply('done')          write what you have, close the file, stop
Flush epochs start every `flush_points` points or `flush_secs` seconds. Once an epoch ends, every
rank receives 'flush' before anything else, and no epoch starts after the first 'done', so the
collective calls of all ranks always match.

Spacing: a commit is collective, so each one stalls every rank for its duration. With `spacing`, an epoch
is due no sooner than 50 durations of the last commit after it (commits then cost at most 2 % of the time),
whatever `flush_points` says: with hundreds of ranks, 256 points are done in well under a second.

Slow points: once a point has taken `slow_secs` (the stop margin: the warning a scheduler gives before it
kills) or longer, a rank holding finished points commits them before it is handed another, so a kill
during a long point costs that point only.
"""
import threading
import time
from dataclasses import dataclass

COMMITS_APART = 50  # commit durations between epochs at least: commits cost <= 2 % of the time
SERVE_SECS = 0.005  # rank 0's time per request, measured upper bound (bench_coordinator.py, 64 ranks on 2 cores)


@dataclass(frozen=True)
class Reply:
    kind: str
    points: tuple = ()


class Dispatcher:
    def __init__(self, todo, nranks, flush_points, flush_secs, max_chunk=8, clock=time.monotonic,
                 rounds=False, slow_secs=None, request_secs=None, spacing=False):
        """rounds: when `todo` runs out, end the round with a collective commit and wait for next_round().
        request_secs: once points are timed, a chunk holds about this much work instead of max_chunk points:
        rank 0 answers fewer requests when points are fast, and a commit waits for less of a slow rank's
        chunk when they are slow (bench/bench_coordinator.py measures the gain)."""
        self.todo, self.pos, self.nranks = list(todo), 0, nranks
        self.flush_points, self.flush_secs, self.max_chunk = flush_points, flush_secs, max_chunk
        self.clock = clock
        self.epoch_start, self.handed_in_epoch = clock(), 0
        self.flush_pending = set()
        self.finishing = False
        self.completed = 0  # points that ranks reported finished
        self.rounds, self.planning, self.round_kind = rounds, False, "flush"
        self.slow_secs, self.longest_point = slow_secs, 0.0
        self.request_secs, self.timed_secs, self.timed_points = request_secs, 0.0, 0
        self.spacing, self.last_commit = spacing, 0.0
        self.handed_at, self.uncommitted = {}, [0] * nranks
        self.lock = threading.Lock()  # rank 0's server thread hands out; its main thread plans rounds

    def chunk_size(self):
        """Guided chunks: big while much is left, single points near the end for balance."""
        left = len(self.todo) - self.pos
        chunk = self.max_chunk
        if self.request_secs and self.timed_points:  # about request_secs of work: fewer requests, short stalls
            secs = max(self.request_secs, 4 * SERVE_SECS * self.nranks)  # rank 0 busy <= 1/4 of the time
            chunk = max(1, int(secs / max(self._mean_point(), 1e-9)))
        return max(1, min(chunk, left // (4 * self.nranks)))

    def _mean_point(self):
        return self.timed_secs / self.timed_points if self.timed_points else 0.0

    def _epoch_over(self):
        elapsed = self.clock() - self.epoch_start
        due = self.handed_in_epoch >= self.flush_points or elapsed >= self.flush_secs
        if self.spacing:
            due = due and elapsed >= COMMITS_APART * self.last_commit
        return self.handed_in_epoch > 0 and due

    def commit_took(self, seconds):
        """Rank 0 reports how long its last collective commit took (for the spacing of epochs)."""
        with self.lock:
            self.last_commit = seconds

    def _start_epoch(self, kind):
        self.flush_pending, self.round_kind = set(range(self.nranks)), kind

    def _time_points(self, rank, completed):
        if completed and rank in self.handed_at:
            took = self.clock() - self.handed_at[rank]
            self.longest_point = max(self.longest_point, took / completed)
            self.timed_secs, self.timed_points = self.timed_secs + took, self.timed_points + completed
        self.uncommitted[rank] += completed

    def _slow_and_holding(self, rank):
        return self.slow_secs is not None and self.longest_point >= self.slow_secs and self.uncommitted[rank] > 0

    def handle(self, rank, completed=0, stop=False):
        """One request from `rank`, which has finished `completed` points since its last request."""
        with self.lock:
            return self._handle(rank, completed, stop)

    def _handle(self, rank, completed, stop):
        self.completed += completed
        self._time_points(rank, completed)
        if stop:
            self.finishing = True
        if not self.flush_pending and not self.finishing and (self._epoch_over() or self._slow_and_holding(rank)):
            self._start_epoch("flush")
        if rank in self.flush_pending:
            self.flush_pending.discard(rank)
            self.uncommitted[rank] = 0
            if not self.flush_pending:
                self.epoch_start, self.handed_in_epoch = self.clock(), 0
            return Reply(self.round_kind)
        if self.flush_pending:
            raise RuntimeError(f"rank {rank} asked for work during a flush it already joined")
        if not self.finishing and self.pos >= len(self.todo) and self.rounds:
            if self.planning:
                return Reply("wait")
            self.planning = True
            self._start_epoch("round")
            return self._handle(rank, 0, False)
        if self.finishing or self.pos >= len(self.todo):
            self.finishing = True
            return Reply("done")
        n = self.chunk_size()
        points = tuple(self.todo[self.pos:self.pos + n])
        self.pos += n
        self.handed_in_epoch += n
        self.handed_at[rank] = self.clock()
        return Reply("work", points)

    def next_round(self, points):
        """Rank 0, after the round's commit: the next round's points (none: the refinement is over)."""
        with self.lock:
            self.todo, self.pos, self.planning = list(points), 0, False
            self.rounds = self.rounds and len(self.todo) > 0
