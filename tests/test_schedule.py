from landscape.job.schedule import Dispatcher


class FakeClock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t


def drain(d, nranks, per_request=1, until="done"):
    """Round-robin ranks until every one has received `until`; returns points and the reply log."""
    handed, log, finished = [], [], set()
    while len(finished) < nranks:
        for rank in range(nranks):
            if rank in finished:
                continue
            r = d.handle(rank, completed=per_request)
            log.append((rank, r.kind))
            handed += list(r.points)
            if r.kind == until:
                finished.add(rank)
    return handed, log


def test_every_point_is_handed_out_exactly_once():
    d = Dispatcher(range(100), nranks=3, flush_points=1000, flush_secs=1e9)
    handed, _ = drain(d, 3)
    assert sorted(handed) == list(range(100))


def test_flush_epochs_reach_every_rank_before_more_work():
    d = Dispatcher(range(40), nranks=3, flush_points=10, flush_secs=1e9, max_chunk=2)
    _, log = drain(d, 3)
    flushes = [i for i, (_, kind) in enumerate(log) if kind == "flush"]
    assert flushes, "a flush epoch must start every 10 points"
    assert len(flushes) % 3 == 0
    for start in flushes[::3]:  # the three flush replies of one epoch come before any work reply
        kinds = {log[k][1] for k in range(start, start + 3)}
        assert kinds == {"flush"}


def test_time_based_flush():
    clock = FakeClock()
    d = Dispatcher(range(10), nranks=1, flush_points=10**6, flush_secs=60, clock=clock)
    assert d.handle(0).kind == "work"
    assert d.handle(0).kind == "work"
    clock.t = 61
    assert d.handle(0).kind == "flush"
    assert d.handle(0).kind == "work"


def test_stop_request_finishes_everyone_and_no_flush_after_done():
    clock = FakeClock()
    d = Dispatcher(range(100), nranks=2, flush_points=10**6, flush_secs=60, clock=clock)
    assert d.handle(0).kind == "work"
    assert d.handle(1, stop=True).kind == "done"
    clock.t = 1000  # an epoch would be due, but after a 'done' none may start
    assert d.handle(0).kind == "done"


def test_chunks_shrink_towards_the_end():
    d = Dispatcher(range(1000), nranks=2, flush_points=10**6, flush_secs=1e9, max_chunk=8)
    assert len(d.handle(0).points) == 8
    d.pos = 995
    assert len(d.handle(0).points) == 1


def test_rounds_commit_then_wait_for_the_plan_then_continue():
    d = Dispatcher([0, 1], nranks=2, flush_points=10**6, flush_secs=1e9, rounds=True)
    assert d.handle(0).points == (0,) and d.handle(1).points == (1,)
    assert d.handle(0, completed=1).kind == "round"  # the round is over: everyone commits
    assert d.handle(1, completed=1).kind == "round"
    assert d.handle(1).kind == "wait"  # rank 0 has not planned yet
    d.next_round([5, 6, 7])
    handed, log = drain(d, 2, until="wait")
    assert sorted(handed) == [5, 6, 7]
    assert [k for _, k in log].count("round") == 2  # the second round ends like the first
    d.next_round([])  # the planner has nothing more: everyone is done
    assert {d.handle(r).kind for r in range(2)} == {"done"}


def test_stop_during_planning_ends_the_job():
    d = Dispatcher([0], nranks=2, flush_points=10**6, flush_secs=1e9, rounds=True)
    d.handle(0)
    assert d.handle(0, completed=1).kind == "round" and d.handle(1).kind == "round"
    assert d.handle(1).kind == "wait"
    assert d.handle(1, stop=True).kind == "done"
    d.next_round([3, 4])
    assert d.handle(0).kind == "done"


def test_points_longer_than_the_stop_margin_commit_before_the_next():
    clock = FakeClock()
    d = Dispatcher(range(10), nranks=2, flush_points=10**6, flush_secs=1e9, max_chunk=1, clock=clock, slow_secs=100)
    assert d.handle(0).kind == "work" and d.handle(1).kind == "work"
    clock.t = 50  # rank 0's point took 50 s: under the margin, no commit needed
    assert d.handle(0, completed=1).kind == "work"
    clock.t = 200  # rank 0's second point took 150 s: it must not start another holding the first two
    assert d.handle(0, completed=1).kind == "flush"
    assert d.handle(1, completed=1).kind == "flush"  # the commit is collective
    assert d.handle(0).kind == "work"  # nothing held any more
    assert d.handle(1).kind == "work"


def test_fast_points_do_not_commit_every_time():
    clock = FakeClock()
    d = Dispatcher(range(10), nranks=1, flush_points=10**6, flush_secs=1e9, max_chunk=1, clock=clock, slow_secs=100)
    for _ in range(5):
        clock.t += 1
        assert d.handle(0, completed=1).kind == "work"


def test_fast_points_get_bigger_chunks_so_rank_0_answers_fewer_requests():
    clock = FakeClock()
    d = Dispatcher(range(10**5), nranks=2, flush_points=10**9, flush_secs=1e9, max_chunk=8, clock=clock,
                   request_secs=0.5)
    assert len(d.handle(0).points) == 8  # nothing timed yet
    clock.t += 8 * 0.01  # 10 ms points
    assert len(d.handle(0, completed=8).points) == 50  # 0.5 s of work
    clock.t += 50 * 2.0  # now 2 s points: one at a time, so a commit waits for at most one
    assert len(d.handle(0, completed=50).points) == 1
    fixed = Dispatcher(range(10**5), nranks=2, flush_points=10**9, flush_secs=1e9, max_chunk=8, clock=clock)
    fixed.handle(0)
    clock.t += 0.08
    assert len(fixed.handle(0, completed=8).points) == 8


def flush_times(d, clock, step, n):
    """Times at which a one-rank dispatcher starts a commit, for n requests of 4 points `step` s apart."""
    times = []
    for _ in range(n):
        clock.t += step
        if d.handle(0, completed=4).kind == "flush":
            times.append(clock.t)
    return times


def test_spacing_keeps_commits_rare_when_they_are_slow():
    clock = FakeClock()
    d = Dispatcher(range(10**5), nranks=1, flush_points=4, flush_secs=1e9, max_chunk=4, clock=clock, spacing=True)
    d.handle(0)
    first = flush_times(d, clock, 0.4, 10)  # no commit timed yet: every 4 points, as configured
    assert len(first) == 5
    d.commit_took(1.0)  # a 1 s commit: the next not before 50 s
    later = flush_times(d, clock, 0.4, 300)
    assert later and later[0] - first[0] >= 50 and len(later) <= 3
    fixed = Dispatcher(range(10**5), nranks=1, flush_points=4, flush_secs=1e9, max_chunk=4, clock=clock)
    fixed.handle(0)
    assert len(flush_times(fixed, clock, 0.4, 10)) == 5  # without spacing: every other request
