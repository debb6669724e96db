"""A tiny model that waits for a gate file once its job has created its results file: process tests
hold a job mid-grid, lock taken, until they have observed what they need (a watcher's page), without
timing assumptions. Forwards before that (the job's probes) pass. A gate whose text starts with 'fail'
makes the forward raise: a job that crashes."""
import os
import time

import torch.nn as nn

from tiny import make_model

GATE_TIMEOUT_SECS = 600  # a test that never opens its gate still ends (its job is killed first)


class Gated(nn.Module):
    def __init__(self, inner, gate, results):
        super().__init__()
        self.inner, self.gate, self.results = inner, gate, results

    def forward(self, x):
        waited = 0.0
        while os.path.exists(self.results) and not os.path.exists(self.gate) and waited < GATE_TIMEOUT_SECS:
            time.sleep(0.02)
            waited += 0.02
        if os.path.exists(self.gate):
            with open(self.gate, "rb") as f:
                if f.read(4) == b"fail":
                    raise RuntimeError("deliberate failure behind the gate")
        return self.inner(x)


def make_gated_model(gate, results):
    return Gated(make_model(), gate, results)
