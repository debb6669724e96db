from landscape.schedule import Dispatcher


class FakeClock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t


def drain(d, nranks, per_request=1):
    """Round-robin ranks until every one has received 'done'; returns points and the reply log."""
    handed, log, finished = [], [], set()
    while len(finished) < nranks:
        for rank in range(nranks):
            if rank in finished:
                continue
            r = d.handle(rank, completed=per_request)
            log.append((rank, r.kind))
            handed += list(r.points)
            if r.kind == "done":
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
