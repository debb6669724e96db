"""Rank 0's progress line: points done, rate and ETA, printed at most every `every` seconds."""
import sys
import time


def format_seconds(s):
    s = int(round(s))
    h, rem = divmod(s, 3600)
    m, sec = divmod(rem, 60)
    return f"{h}h{m:02d}m{sec:02d}s" if h else f"{m}m{sec:02d}s"


class Progress:
    def __init__(self, label, total, already_done, every=10.0, stream=sys.stdout, clock=time.monotonic):
        self.label, self.total, self.start_done = label, total, already_done
        self.every, self.stream, self.clock = every, stream, clock
        self.t0 = self.last = clock()

    def line(self, new_done):
        done = self.start_done + new_done
        elapsed = max(self.clock() - self.t0, 1e-9)
        rate = new_done / elapsed
        left = self.total - done
        eta = format_seconds(left / rate) if rate > 0 else "?"
        return (f"[{self.label}] {done}/{self.total} points ({100.0 * done / max(self.total, 1):.1f}%), "
                f"{rate:.2f} points/s, ETA {eta}")

    def update(self, new_done, force=False):
        if force or self.clock() - self.last >= self.every:
            self.last = self.clock()
            print(self.line(new_done), file=self.stream, flush=True)
