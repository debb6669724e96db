"""python -m landscape.sharpness: the table the command writes equals the API's on the same checkpoints, bad
input is one line and exit 2, two ranks give one rank's table, and a killed table resumes to the same values."""
import contextlib
import os
import signal
import subprocess
import sys
import time

import h5py
import numpy as np
import pytest
import torch
from conftest import env, run
from tiny import make_data, make_model, make_slow_model

import landscape
from landscape.cli.sharpness import main, parse_measure
from landscape.errors import ChoiceError
from landscape.inputs.checkpoint import load_weights

MEASURES = ["sharpness:rho=0.05,steps=3", "sharpness:rho=0.05,measure=average,samples=4", "max_eig",
            "trace:probes=4", "pac_bayes_flatness:quantity=loss,draws=2,tol=0.2"]
TINY = ["--model", "tiny:make_model", "--dataset", "tiny:make_data", "--progress_secs", "0", "--threads", "1"]


@pytest.fixture
def checkpoints(tmp_path):
    paths = []
    for seed in range(3):
        torch.manual_seed(seed)
        paths.append(str(tmp_path / f"epoch{seed}.pt"))
        torch.save(make_model().state_dict(), paths[-1])
    return paths


def loaded(path, factory=make_model, **kwargs):
    """A checkpoint factory as the command builds it: the model, the file's weights, eval mode."""
    def build():
        model = factory(**kwargs)
        load_weights(model, path)
        return model.eval()
    return build


def table_values(path):
    with h5py.File(path, "r") as f:
        return f["table_value"][()], f["table_done"][()]


def drive(capsys, *flags):
    try:
        code = main([*TINY, *flags])
    except SystemExit as e:  # argparse refusals
        code = e.code
    out, err = capsys.readouterr()
    return code, out, err


def test_the_command_writes_the_api_table_of_the_same_checkpoints(tmp_path, checkpoints, capsys):
    code, out, err = drive(capsys, "--checkpoints", *checkpoints, "--measures", *MEASURES)
    assert code == 0, out + err
    written = tmp_path / "sharpness_table.h5"  # the default: beside the checkpoints
    assert "Kendall τ against the error gap" in out and str(written) in out
    assert (tmp_path / "sharpness_table.csv").exists() and (tmp_path / "sharpness_table_gap.png").exists()

    train, test = make_data()
    api = landscape.sharpness_table([(f"epoch{i}", loaded(p)) for i, p in enumerate(checkpoints)], train, test,
                                    measures=[parse_measure(m) for m in MEASURES], device="cpu")
    values, done = table_values(written)
    assert done.all()
    np.testing.assert_array_equal(values, api.values)  # the same items computed the same way: bit for bit


def test_measures_parse_from_words_json_values_and_objects():
    assert parse_measure("max_eig") == {"kind": "max_eig"}
    assert parse_measure("sharpness:rho=0.05,adaptive=false,norm=linf,m=null") == dict(
        kind="sharpness", rho=0.05, adaptive=False, norm="linf", m=None)
    assert parse_measure('{"kind": "sharpness", "rho": 0.1, "params": ["0.*"]}')["params"] == ["0.*"]
    with pytest.raises(ChoiceError, match="each option is key=value"):
        parse_measure("sharpness:rho")


@pytest.mark.parametrize("flags,named", [
    (["--measures", "sharpnes:rho=1"], "a measure is one of"),
    (["--measures", "sharpness:steps=3"], "needs its radius 'rho'"),
    (["--measures", "max_eig:rho=1"], "max_eig takes the options"),
    (["--checkpoints", "{tmp}/nowhere.pt"], "1 of 1 checkpoints are missing: .*nowhere.pt"),
    (["--checkpoints", "{first}", "--model_folder", "{tmp}"], "either as --checkpoints FILE ... or as --model_folder"),
    (["--checkpoints", "{first}", "--table_file", "{first}"], "--table_file"),
    (["--checkpoints", "{first}", "--dataset", "tiny:make_train_only"], "needs a test set"),
])
def test_bad_input_is_one_line_and_exit_2_and_writes_nothing(tmp_path, checkpoints, capsys, flags, named):
    before = sorted(os.listdir(tmp_path))
    flags = [f.format(tmp=tmp_path, first=checkpoints[0]) for f in flags]
    if "--checkpoints" not in flags:
        flags += ["--checkpoints", *checkpoints]
    code, out, err = drive(capsys, *flags)
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1 and "Traceback" not in err, out + err
    assert __import__("re").search(named, lines[0]), lines[0]
    assert sorted(os.listdir(tmp_path)) == before


def test_importing_the_command_module_leaves_landscape_sharpness_callable():
    import landscape.sharpness as module  # binds the module over the API function on the package
    model = torch.nn.Sequential(torch.nn.Linear(3, 2))
    data = (torch.randn(8, 3), torch.randint(0, 2, (8,)))
    assert landscape.sharpness is module
    by_module = landscape.sharpness(model, data, rho=0.01, steps=2)
    from landscape.api import sharpness
    assert by_module.value == sharpness(model, data, rho=0.01, steps=2).value


QUICK = MEASURES[:1] + ["max_eig"]  # for the process tests: fewer items, the same machinery


def command(ranks, checkpoints, table, *extra):
    python = [sys.executable, "-m", "landscape.sharpness", *TINY, "--checkpoints", *checkpoints,
              "--measures", *QUICK, "--table_file", str(table), *extra]
    return python if ranks == 1 else ["mpirun", "-n", str(ranks), "--oversubscribe", *python]


def alive(pid):
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False


def wait_for_done(path, proc, minimum):
    """Until the table file holds at least `minimum` committed items (the job commits after each)."""
    while proc.poll() is None:
        try:
            with h5py.File(path, "r") as f:
                if f["table_done"][()].sum() >= minimum:
                    return
        except (OSError, KeyError):
            pass
        time.sleep(0.05)
    raise AssertionError(f"the job ended (exit {proc.returncode}) before committing {minimum} items")


@pytest.mark.slow
def test_a_table_killed_under_two_ranks_resumes_on_one_to_the_values_of_an_uninterrupted_one(tmp_path):
    """Two ranks compute the first items (killed once 3 are committed), one rank the rest: every value equals
    the API's in one process, so two ranks give one rank's table and a killed table loses nothing."""
    checkpoints = []
    for seed in range(3):  # the tiny model inside a wrapper that sleeps at each forward pass
        torch.manual_seed(seed)
        checkpoints.append(str(tmp_path / f"slow{seed}.pt"))
        torch.save(make_slow_model(delay=0).state_dict(), checkpoints[-1])
    slow = ["--model", "tiny:make_slow_model", "--model_kwargs", '{"delay": 0.01}', "--flush_points", "1"]
    cut = tmp_path / "cut.h5"
    proc = subprocess.Popen(command(2, checkpoints, cut, *slow), env=env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    wait_for_done(cut, proc, minimum=3)
    ranks = [int(p) for p in subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True,
                                            text=True).stdout.split()]
    os.killpg(proc.pid, signal.SIGKILL)
    for pid in ranks:  # the ranks too, and until they are gone: one left alive could commit after the read
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    proc.wait()
    while any(alive(pid) for pid in ranks):
        time.sleep(0.05)
    values, done = table_values(cut)
    assert 3 <= done.sum() < done.size
    r = run(command(1, checkpoints, cut, *slow))
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"{int(done.sum())}/{done.size} points already done" in r.stdout
    resumed, finished = table_values(cut)
    assert finished.all()
    np.testing.assert_array_equal(resumed[done.astype(bool)], values[done.astype(bool)])  # kept as they were
    uninterrupted = landscape.sharpness_table([(f"slow{i}", loaded(path, make_slow_model, delay=0))
                                               for i, path in enumerate(checkpoints)], *make_data(),
                                              measures=[parse_measure(m) for m in QUICK], device="cpu")
    np.testing.assert_array_equal(resumed, uninterrupted.values)
