"""What tests/test_stops.py starts and signals: models and a loss the drivers load (as 'stop_helpers:...'),
and Job, a driver process whose lines are read as they come and whose ranks are signalled through pidfds."""
import os
import queue
import re
import signal
import subprocess
import threading
import time

import torch.nn as nn
import torch.nn.functional as F

from landscape.inputs.first_batch import FIRST_BATCH

from conftest import env
from tiny import make_model, nap


class ProbeSleeper(nn.Module):
    """Sleeps `delay` seconds on every batch larger than the first-batch checks' (inputs/first_batch.py):
    the batch-size probe (and the grid) sleep, the checks of the model's outputs do not."""

    def __init__(self, delay):
        super().__init__()
        self.inner, self.delay = make_model(), delay

    def forward(self, x):
        if len(x) > FIRST_BATCH:
            nap(self.delay)
        return self.inner(x)


def make_probe_sleeper(delay=60.0):
    return ProbeSleeper(delay)


def make_model_slowly():
    """A model factory that announces itself, then takes a minute (a large checkpoint on a slow disk)."""
    print("stop_helpers: building the model", flush=True)
    nap(60)
    return make_model()


CALLS = []


def loss_with_events(outputs, targets):
    """Cross-entropy; on call LOSS_FAIL_AT (1 and 2: the first-batch checks of the driver and the API,
    2 + k: grid point k with a fixed batch size) it returns one value per
    sample (a LossError), on call LOSS_SIGNAL_AT it sends its own process SIGUSR1."""
    CALLS.append(1)
    if len(CALLS) == int(os.environ.get("LOSS_SIGNAL_AT", 0)):
        os.kill(os.getpid(), signal.SIGUSR1)
    if len(CALLS) == int(os.environ.get("LOSS_FAIL_AT", 0)):
        return F.cross_entropy(outputs, targets, reduction="none")
    return F.cross_entropy(outputs, targets)


class Job:
    """A driver process whose stdout a thread reads line by line; signals go to its ranks through pidfds
    (a rank that has exited is never confused with a new process of the same pid)."""

    def __init__(self, cmd, tmp_path, **extra_env):
        self.err = tmp_path / "stderr.txt"
        with open(self.err, "w") as err:
            self.proc = subprocess.Popen(cmd, env=env(**extra_env), stdout=subprocess.PIPE, stderr=err, text=True,
                                         start_new_session=True)
        self.out, self.lines, self.fds = [], queue.Queue(), []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for line in self.proc.stdout:
            self.out.append(line)
            self.lines.put(line)

    def wait_for(self, pattern, timeout=120):
        deadline = time.time() + timeout
        while time.time() < deadline:
            try:
                if re.search(pattern, self.lines.get(timeout=max(0.0, deadline - time.time()))):
                    return
            except queue.Empty:
                break
        raise AssertionError(f"no line matching {pattern!r}:\n{''.join(self.out)}\n{self.err.read_text()}")

    def ranks(self, n):
        """pidfds of the n driver processes (mpirun's children, or the process itself)."""
        if not self.fds:
            pids = [self.proc.pid]
            if n > 1:
                out = subprocess.run(["pgrep", "-P", str(self.proc.pid)], capture_output=True, text=True).stdout
                pids = [int(p) for p in out.split()]
            assert len(pids) == n, pids
            self.fds = [os.pidfd_open(pid) for pid in pids]
        return self.fds

    def signal(self, sig, n):
        for fd in self.ranks(n):
            try:
                signal.pidfd_send_signal(fd, sig)
            except ProcessLookupError:
                pass  # this rank has exited

    def signal_until_exit(self, sig, n):
        """The same signal again and again until the job has ended: one of them lands in every phase of
        the teardown, MPI_Finalize and Python's finalization included."""
        for _ in range(3000):
            if self.proc.poll() is not None:
                return
            self.signal(sig, n)
            time.sleep(0.005)  # pacing only: the job's end is what ends the loop

    def finish(self, timeout=60):
        """(exit code, stdout, stderr) once the job has ended; killed after `timeout` s (then the test fails)."""
        try:
            self.proc.wait(timeout=timeout)
        finally:
            if self.proc.poll() is None:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
            for fd in self.fds:
                os.close(fd)
        self.reader.join(timeout=30)  # the rest of stdout: the pipe is closed once every process is gone
        return self.proc.returncode, "".join(self.out), self.err.read_text()
