"""landscape.sharpness_table: every item equals the measure called directly, the CSV and HDF5 hold the table,
Kendall's τ matches a hand count, and a stopped table resumes without recomputing a finished item."""
import csv
import importlib
import itertools
import json
import math
import threading

import h5py
import numpy as np
import pytest
import torch

import landscape
from landscape.plot.table import kendall_tau

table_module = importlib.import_module("landscape.api.sharpness_table")  # the module, not the function of that name

MEASURES = [dict(kind="sharpness", rho=0.05, steps=3), dict(kind="sharpness", rho=0.05, measure="average", samples=4),
            "max_eig", dict(kind="trace", probes=4), dict(kind="pac_bayes_flatness", quantity="loss", draws=2, tol=0.2)]


def make_data(count, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(count, 4, generator=g)
    return x, (x[:, 0] + 0.3 * x[:, 1] > 0).long()


def make_model(seed):
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(4, 5), torch.nn.Tanh(), torch.nn.Linear(5, 2))


def checkpoints(count=3):
    return [(f"epoch{s}", (lambda s=s: make_model(s))) for s in range(count)]


def direct(model, train, test):
    """Each column computed by the public functions, one checkpoint at a time."""
    loss_fn = torch.nn.CrossEntropyLoss()
    with torch.no_grad():
        row = []
        for x, y in (train, test):
            out = model(x)
            row += [float(loss_fn(out, y)), float((out.argmax(1) != y).double().mean())]
    curvature = landscape.hessian_map(model, train, x=(0, 0, 1), trace=4, device="cpu")
    return row + [landscape.sharpness(model, train, rho=0.05, steps=3).value,
                  landscape.sharpness(model, train, rho=0.05, measure="average", samples=4).value,
                  float(curvature.max_eig[0]), float(curvature.trace[0]),
                  landscape.pac_bayes_flatness(model, train, quantity="loss", draws=2, tol=0.2).flatness]


def test_every_item_equals_the_measure_called_directly_and_the_files_hold_the_table(tmp_path):
    train, test = make_data(48, 1), make_data(24, 2)
    table = landscape.sharpness_table(checkpoints(), train, test, measures=MEASURES, path=tmp_path / "t.h5",
                                      device="cpu")
    assert table.complete and table.columns[4:] == ("worst_l2_adaptive_rho0.05", "average_l2_adaptive_rho0.05",
                                                    "max_eig", "trace", "pac_bayes")
    for i, (_, factory) in enumerate(checkpoints()):
        # the losses: fp32 sums of 48 terms in another order (a few float32 ulps, 6e-8 each); the rest: equal
        np.testing.assert_allclose(table.values[i], direct(factory(), train, test), rtol=1e-6, atol=1e-12)
    with open(table.csv) as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["checkpoint", *table.columns, "error_gap", "loss_gap"]
    assert [r[0] for r in rows[1:]] == ["epoch0", "epoch1", "epoch2"]
    np.testing.assert_array_equal(np.array([r[1:-2] for r in rows[1:]], dtype=float), table.values)
    gaps = np.array([r[-2] for r in rows[1:]], dtype=float)
    np.testing.assert_array_equal(gaps, table.values[:, 3] - table.values[:, 1])
    with h5py.File(table.path, "r") as f:
        np.testing.assert_array_equal(f["table_value"][()], table.values)
        assert json.loads(f["table_value"].attrs["measures"])[0] == dict(MEASURES[0], name=table.columns[4])
        assert json.loads(f.attrs["table_settings"])["checkpoints"] == ["epoch0", "epoch1", "epoch2"]
    assert table.figures and all(p.endswith(".png") for p in table.figures)


def test_kendall_tau_equals_a_hand_count_of_concordant_and_discordant_pairs():
    measure, gap = np.array([0.3, 1.2, 0.7, 2.5, 1.9, np.nan]), np.array([0.1, 0.4, 0.5, 0.2, 0.9, 0.3])
    kept = [(m, g) for m, g in zip(measure, gap) if np.isfinite(m)]
    signs = [np.sign((a[0] - b[0]) * (a[1] - b[1])) for a, b in itertools.combinations(kept, 2)]
    assert kendall_tau(measure, gap) == pytest.approx(sum(signs) / len(signs), abs=1e-12)  # no ties: τ-b = τ-a
    assert np.isnan(kendall_tau([1.0, np.nan], [0.0, 1.0]))


def test_a_stopped_table_resumes_computing_only_the_items_not_done(tmp_path, monkeypatch):
    train, test = make_data(32, 3), make_data(16, 4)
    path, stop, seen = str(tmp_path / "t.h5"), threading.Event(), []
    made = table_module._item_evaluator

    def recording(*args):
        evaluate = made(*args)

        def evaluate_point(index):
            seen.append(int(index))
            if len(seen) == 5:
                stop.set()  # as SIGTERM would: the job ends at its next safe point, its items committed
            return evaluate(index)
        return evaluate_point
    monkeypatch.setattr(table_module, "_item_evaluator", recording)
    kwargs = dict(measures=["max_eig", dict(kind="sharpness", rho=0.05, steps=2)], path=path, device="cpu")
    stopped = landscape.sharpness_table(checkpoints(), train, test,
                                        job=landscape.JobOptions(stop=stop, flush_points=1), **kwargs)
    assert not stopped.complete and 0 < stopped.done.sum() < stopped.done.size
    first = list(seen)
    seen.clear()
    resumed = landscape.sharpness_table(checkpoints(), train, test, **kwargs)
    done_before = set(np.flatnonzero(stopped.done.reshape(-1)))
    assert resumed.complete and set(seen) == set(range(resumed.done.size)) - done_before
    assert done_before <= set(first)
    whole = landscape.sharpness_table(checkpoints(), train, test, **dict(kwargs, path=None))
    np.testing.assert_array_equal(resumed.values, whole.values)


def test_a_table_stopped_before_it_starts_writes_nothing(tmp_path):
    stop = threading.Event()
    stop.set()
    table = landscape.sharpness_table(checkpoints(2), make_data(16, 1), make_data(8, 2), measures=["max_eig"],
                                      path=tmp_path / "t.h5", device="cpu", job=landscape.JobOptions(stop=stop))
    assert not table.done.any() and not (tmp_path / "t.h5").exists()


def test_bad_measures_and_checkpoints_are_refused_by_name():
    data = make_data(8, 1)
    with pytest.raises(landscape.errors.ChoiceError, match="rho"):
        landscape.sharpness_table(checkpoints(1), data, data, measures=[dict(kind="sharpness")])
    with pytest.raises(landscape.errors.ChoiceError, match="unique"):
        landscape.sharpness_table(checkpoints(1), data, data, measures=["max_eig", "max_eig"])
    with pytest.raises(landscape.errors.ChoiceError, match="unique"):
        landscape.sharpness_table(checkpoints(1) * 2, data, data)


def test_a_flatness_no_noise_can_reach_is_stored_as_nan_and_the_table_goes_on(capsys):
    """PAC-Bayes flatness is undefined where no noise moves the accuracy by the target: a model at chance on
    10 classes stays within a few points of chance whatever the noise (400 samples: a chance accuracy
    spreads by 1.5 points, the target is 10). The item is done, its value NaN; the other checkpoint's value
    is the one the function gives when called directly."""
    x = torch.randn(400, 4, generator=torch.Generator().manual_seed(5))
    torch.manual_seed(0)
    right, chance = torch.nn.Linear(4, 10), torch.nn.Linear(4, 10)
    with torch.no_grad():
        y = right(x).argmax(1)  # right is right on every sample
        chance.weight.zero_()
        chance.bias.zero_()  # one class everywhere: right as often as that class occurs, about one in ten
    table = landscape.sharpness_table([("right", right), ("chance", chance)], (x, y), (x, y),
                                      measures=[dict(kind="pac_bayes_flatness", draws=2, tol=0.2)], device="cpu")
    assert table.complete
    column = table.column("pac_bayes")
    assert math.isnan(column[1]) and "pac_bayes is undefined here, stored as NaN" in capsys.readouterr().out
    assert column[0] == landscape.pac_bayes_flatness(right, (x, y), draws=2, tol=0.2).flatness
