import os
import subprocess
import sys

import numpy as np
import pytest
import torch

# Tiny models on 2 shared cores: thread hand-offs cost more than the math, and the mpirun
# subprocesses need the other core. Subprocesses get OMP_NUM_THREADS=1 through env().
torch.set_num_threads(1)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TESTS = os.path.join(ROOT, "tests")


def env(**extra):
    e = dict(os.environ)
    e["PYTHONPATH"] = os.pathsep.join([os.path.join(ROOT, "lib"), TESTS, e.get("PYTHONPATH", "")])
    e.update(OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1", OMP_NUM_THREADS="1",
             OMPI_MCA_rmaps_base_oversubscribe="1", PYTHONUNBUFFERED="1")
    e.update(extra)
    return e


def mpirun_cmd(n, script, *args):
    return ["mpirun", "-n", str(n), "--oversubscribe", sys.executable, os.path.join(ROOT, script), *args]


def python_cmd(script, *args):
    """One process without mpirun: quicker to start, for checks that do not need several ranks."""
    return [sys.executable, os.path.join(ROOT, script), *args]


def run(cmd, timeout=240, cwd=None, **extra_env):
    """Run a command to completion; returns CompletedProcess with text output."""
    return subprocess.run(cmd, cwd=cwd, env=env(**extra_env), capture_output=True, text=True, timeout=timeout)


def script_results(folder, text, ranks=(1, 2)):
    """Run a user's script (it saves one array to argv[1]) under `mpirun -n N` for each N; the arrays, in order."""
    script = folder / "user.py"
    script.write_text(text)
    out = []
    for n in ranks:
        r = run(mpirun_cmd(n, str(script), str(folder / f"n{n}.npy")))
        assert r.returncode == 0, r.stderr + r.stdout
        out.append(np.load(folder / f"n{n}.npy"))
    return out


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Drivers run in-process set torch's threads for their rank; every test starts from one thread again,
    so a test's rounding never depends on which tests ran before it. Reset again afterwards: module
    fixtures are set up before this one, and would otherwise run with what the last test left."""
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(1)


@pytest.fixture
def tiny_args():
    """Flags for a fast tiny job: custom model and data from tests/tiny.py."""
    return ["--model", "tiny:make_model", "--dataset", "tiny:make_data", "--progress_secs", "0.5"]


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: starts processes (mpirun, drivers); `make test-fast` skips them")


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    """A 2D direction file and its finished results file (tiny model and data, grid -1:1:3 x -1:1:3), and
    a checkpoint of another tiny model: dirs.h5, surf.h5, other.t7."""
    from landscape.cli.surface import main
    from landscape.inputs.checkpoint import save_checkpoint

    from tiny import make_model
    tmp = tmp_path_factory.mktemp("made")
    torch.manual_seed(5)
    save_checkpoint(tmp / "other.t7", make_model(), epoch=1, acc=0.0)
    flags = ["--model", "tiny:make_model", "--dataset", "tiny:make_data", "--batch_size", "64", "--progress_secs", "5",
             "--x=-1:1:3", "--y=-1:1:3"]
    assert main([*flags, "--dir_file", str(tmp / "dirs.h5"), "--surf_file", str(tmp / "surf.h5")]) == 0
    return tmp
