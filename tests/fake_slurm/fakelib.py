"""What the Slurm stand-ins share: the state folder (FAKE_SLURM_DIR) and the call log in it.

Every call appends one JSON line to $FAKE_SLURM_DIR/calls.jsonl, so tests can assert on what the
job script did, in order. `scontrol requeue` leaves a mark there that the sbatch stand-in reads.
"""
import json
import os
import tempfile
import time


def state_dir():
    path = os.environ.get("FAKE_SLURM_DIR")
    if not path:
        path = os.environ["FAKE_SLURM_DIR"] = tempfile.mkdtemp(prefix="fake_slurm_")
    os.makedirs(path, exist_ok=True)
    return path


def calls_path():
    return os.path.join(state_dir(), "calls.jsonl")


def requeue_mark(job_id):
    return os.path.join(state_dir(), f"requeue-{job_id}")


def restart_count():
    return int(os.environ.get("SLURM_RESTART_COUNT", "0"))


def log(tool, event, **fields):
    record = dict(tool=tool, event=event, time=time.time(), job=os.environ.get("SLURM_JOB_ID"),
                  restart=restart_count(), **fields)
    with open(calls_path(), "a") as f:
        f.write(json.dumps(record) + "\n")


def read_calls(folder):
    """All logged calls, oldest first (for tests)."""
    with open(os.path.join(folder, "calls.jsonl")) as f:
        return [json.loads(line) for line in f]
