"""landscape.barrier_matrix: every line equals landscape.interpolate on the same two models (and on the
aligned pair), the spanning tree equals a brute-force search over every tree and every path, a stopped
matrix resumes computing only the points not done, two ranks compute what one does, and bad input is
refused in one line."""
import copy
import csv
import importlib
import itertools
import json
import threading

import h5py
import numpy as np
import pytest
import torch
from conftest import script_results
from scipy.optimize import linear_sum_assignment
from test_interpolate import checkpoints, loaded, refusal, same, snapshot

import landscape
from landscape.api.matrix_result import SpanningTree
from landscape.cli.connect import main as connect_main
from landscape.errors import ChoiceError, GridSpecError, ModelError
from landscape.inputs.data import load_dataset
from landscape.inputs.user import state_digest
from landscape.space.minima import minimax_heights, spanning_tree

matrix_module = importlib.import_module("landscape.api.barrier_matrix")  # the module, not the function
F32 = 2.0 ** -24  # float32 unit roundoff
HIDDEN = 10


def blobs(count, seed):
    """Three classes of 4-feature points that no linear map separates."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(count, 4, generator=g)
    return x, (x[:, 0] * x[:, 1] > 0).long() + (x[:, 2] > 0.5).long()


def trained(seed, steps=40):
    """A BatchNorm MLP trained briefly from its own seed: minima apart, so the lines between them rise."""
    torch.manual_seed(seed)
    net = torch.nn.Sequential(torch.nn.Linear(4, HIDDEN), torch.nn.BatchNorm1d(HIDDEN), torch.nn.ReLU(),
                              torch.nn.Linear(HIDDEN, 3))
    x, y = blobs(64, 100)
    params = list(net.parameters())
    velocity = [torch.zeros_like(p) for p in params]
    for _ in range(steps):  # SGD with momentum by hand: torch.optim would import torch._dynamo (2 s) in every rank
        grads = torch.autograd.grad(torch.nn.functional.cross_entropy(net(x), y), params)
        with torch.no_grad():
            for p, v, g in zip(params, velocity, grads):
                p.sub_(0.3 * v.mul_(0.9).add_(g))
    return net.eval()


def permuted(net, order):
    """A copy of `net` with its hidden units reordered (copy's unit k is net's unit order[k]): the same function."""
    out = copy.deepcopy(net)
    with torch.no_grad():
        for entry in (out[0].weight, out[0].bias, out[1].weight, out[1].bias, out[1].running_mean, out[1].running_var):
            entry.copy_(entry[order])
        out[3].weight.copy_(out[3].weight[:, order])
    return out


def unit_features(net):
    """Each hidden unit's incoming and outgoing weights, its BatchNorm affine and statistics: one row per unit."""
    bn = net[1]
    return torch.cat([net[0].weight, net[0].bias[:, None], bn.weight[:, None], bn.bias[:, None],
                      bn.running_mean[:, None], bn.running_var[:, None], net[3].weight.T], 1).detach().double()


def match_units(model_a, model_b):
    """A small weight matching: model_b's units reordered to maximize the summed inner product of their
    features with model_a's (one linear assignment). A deterministic align function for the tests."""
    _, order = linear_sum_assignment((unit_features(model_a) @ unit_features(model_b).T).numpy(), maximize=True)
    return permuted(model_b, torch.as_tensor(order))


def three():
    """Two trained minima and a third that is the first with its units shuffled."""
    a = trained(0)
    return [("a", a), ("b", trained(1)), ("a_shuffled", permuted(a, torch.randperm(HIDDEN,
                                                                    generator=torch.Generator().manual_seed(7))))]


# --- every line is interpolate's ---------------------------------------------------------------------------

def test_every_line_and_barrier_is_interpolate_on_the_pair_bit_for_bit_and_the_files_hold_them(tmp_path):
    models = three()
    data, test = blobs(64, 100), blobs(24, 101)
    saved = [snapshot(m) for _, m in models]
    options = dict(n=5, test_data=test, batch_size=16, bn_batches=2)
    matrix = landscape.barrier_matrix(models, data, align=match_units, path=tmp_path / "m.h5", progress_secs=1e9,
                                      **options)
    assert all(same(m, s) for (_, m), s in zip(models, saved))  # every model as it was
    assert matrix.complete and matrix.aligned and matrix.names == ("a", "b", "a_shuffled")
    assert matrix.lines == ((0, 1, False), (0, 2, False), (1, 2, False), (0, 1, True), (0, 2, True), (1, 2, True))
    for i, j, aligned in matrix.lines:
        end = match_units(models[i][1], models[j][1]) if aligned else models[j][1]
        line = landscape.interpolate(models[i][1], end, data, **options)
        filed = matrix.path_of(i, j, aligned)
        for name in ("t", "train_loss", "train_acc", "test_loss", "test_acc"):  # the same arithmetic
            assert np.array_equal(getattr(filed, name), getattr(line, name)), (i, j, aligned, name)
        for name, kind in itertools.product(("train_loss", "train_acc", "test_loss", "test_acc"), ("linear", "mean")):
            assert matrix.matrix(name, kind, aligned)[i, j] == line.barrier(name, kind)
            assert matrix.matrix(name, kind, aligned)[j, i] == line.barrier(name, kind)
    before, after = matrix.matrix(), matrix.matrix(aligned=True)
    assert np.all(np.diag(before) == 0) and np.array_equal(before, before.T)
    # a and its shuffled copy compute one function, yet the straight line between them climbs; aligned, the
    # line is a's own weights at every t up to the rounding of (1 - t) w + t w (one float32 ulp each), and
    # the losses along it (about 1, sums of 64 terms) agree to far below the climb
    assert before[0, 2] > 0.05 and after[0, 2] <= 64 * 4 * F32
    with h5py.File(matrix.path, "r") as f:
        settings = json.loads(f.attrs["surface_settings"])
        assert settings["models"] == ["a", "b", "a_shuffled"] and settings["align"].endswith("match_units")
        assert settings["model_sha256"] == [state_digest(m) for _, m in models]
        assert json.loads(f["train_loss"].attrs["lines"]) == [list(line) for line in matrix.lines]
        assert np.array_equal(f["train_loss"][()], matrix.values["train_loss"])
    with open(matrix.csv) as f:
        rows = list(csv.DictReader(f))
    assert [(r["model_a"], r["model_b"], r["aligned"]) for r in rows] == [
        ("a", "b", "0"), ("a", "a_shuffled", "0"), ("b", "a_shuffled", "0"),
        ("a", "b", "1"), ("a", "a_shuffled", "1"), ("b", "a_shuffled", "1")]
    for r, (i, j, aligned) in zip(rows, matrix.lines):
        assert float(r["test_acc_mean"]) == matrix.matrix("test_acc", "mean", aligned)[i, j]  # repr: exact
        assert r["points_done"] == "5"
    assert matrix.figures == (str(tmp_path / "m_barriers.png"),)


def test_the_tree_of_the_matrix_joins_the_shuffled_copy_by_its_aligned_line():
    matrix = landscape.barrier_matrix(three(), blobs(64, 100), n=3, align=match_units, progress_secs=1e9)
    before, after = matrix.tree(), matrix.tree(aligned=True)
    assert before.spans and after.spans and len(after.edges) == 2
    assert (0, 2) in [(i, j) for i, j, _ in after.edges]  # a to its own shuffled copy: the lowest line of all
    assert after.edges[0][:2] == (0, 2) and after.max_edge == after.edges[-1]
    assert matrix.path is None and matrix.csv is None and matrix.figures == ()  # a temporary results file


def test_align_weights_is_landscape_align_and_joins_the_shuffled_copy_at_no_barrier():
    models, data = three(), blobs(64, 100)
    matrix = landscape.barrier_matrix(models, data, n=3, align="weights", progress_secs=1e9)
    line = landscape.interpolate(models[0][1], landscape.align(models[0][1], models[2][1]).model, data, n=3)
    assert matrix.matrix(aligned=True)[0, 2] == line.barrier()
    assert matrix.matrix()[0, 2] > 0.05 and abs(line.barrier()) <= 64 * 4 * F32  # the planted shuffle undone


# --- the spanning tree, against brute force ----------------------------------------------------------------

HEIGHTS = np.array([[0.0, 0.0, 0.7, 0.4, 0.9],  # a zero edge (scipy's "no edge"), ties (0.4), and one NaN
                    [0.0, 0.0, 0.4, 0.8, np.nan],
                    [0.7, 0.4, 0.0, 0.2, 0.6],
                    [0.4, 0.8, 0.2, 0.0, 0.5],
                    [0.9, np.nan, 0.6, 0.5, 0.0]])


def connected(count, edges):
    reached, frontier = {0}, [0]
    while frontier:
        here = frontier.pop()
        for i, j in edges:
            for a, b in ((i, j), (j, i)):
                if a == here and b not in reached:
                    reached.add(b)
                    frontier.append(b)
    return len(reached) == count


def test_the_tree_is_a_lightest_spanning_tree_and_its_paths_are_the_minimax_barriers():
    count = len(HEIGHTS)
    known = [(i, j) for i, j in itertools.combinations(range(count), 2) if np.isfinite(HEIGHTS[i, j])]
    trees = [chosen for chosen in itertools.combinations(known, count - 1) if connected(count, chosen)]
    lightest = min(sum(HEIGHTS[i, j] for i, j in chosen) for chosen in trees)
    edges = spanning_tree(HEIGHTS)
    assert len(edges) == count - 1 and connected(count, [(i, j) for i, j, _ in edges])
    assert sum(h for _, _, h in edges) == pytest.approx(lightest, abs=1e-15)  # sums of five tenths
    assert [h for _, _, h in edges] == sorted(h for _, _, h in edges) and (0, 1, 0.0) in edges
    minimax = minimax_heights(count, edges)
    for a, b in itertools.combinations(range(count), 2):  # every simple path from a to b, its highest edge
        middles = [m for m in range(count) if m not in (a, b)]
        best = min(max(HEIGHTS[u, v] for u, v in zip((a, *route), (*route, b)))
                   for k in range(len(middles) + 1) for route in itertools.permutations(middles, k)
                   if all(np.isfinite(HEIGHTS[u, v]) for u, v in zip((a, *route), (*route, b))))
        assert minimax[a, b] == minimax[b, a] == best
    assert np.all(np.diag(minimax) == 0)


def test_unfinished_barriers_leave_a_forest_and_infinite_minimax():
    heights = np.full((4, 4), np.nan)
    heights[0, 1] = heights[1, 0] = 0.3
    heights[2, 3] = heights[3, 2] = 0.1
    tree = SpanningTree(("p", "q", "r", "s"), spanning_tree(heights))
    assert tree.edges == ((2, 3, 0.1), (0, 1, 0.3)) and not tree.spans
    assert np.isinf(tree.minimax()[0, 2]) and tree.minimax()[0, 1] == 0.3
    assert "a forest" in tree.describe()


# --- stop and resume, the rank's cache ---------------------------------------------------------------------

def factories(built):
    """(name, factory) pairs whose factories count their builds in `built`."""
    def factory(seed):
        def build():
            built.append(seed)
            return trained(seed, steps=5)
        return build
    return [(f"s{seed}", factory(seed)) for seed in range(3)]


def test_a_stopped_matrix_resumes_computing_only_the_points_not_done(tmp_path, monkeypatch):
    path, stop, seen, built = str(tmp_path / "m.h5"), threading.Event(), [], []
    evaluate = matrix_module.LineCache.evaluate

    def recording(cache, index):
        seen.append(int(index))
        if len(seen) == 7:
            stop.set()  # as SIGTERM would: the job ends at its next safe point, its points committed
        return evaluate(cache, index)
    monkeypatch.setattr(matrix_module.LineCache, "evaluate", recording)
    options = dict(n=6, batch_size=16, path=path, progress_secs=1e9)
    stopped = landscape.barrier_matrix(factories(built), blobs(48, 3), job=landscape.JobOptions(stop=stop,
                                                                                               flush_points=1),
                                       **options)
    assert not stopped.complete and 0 < stopped.done.sum() < stopped.done.size
    assert np.isnan(stopped.matrix()).sum() >= 2  # a line not finished has no barrier yet
    i, j, _ = stopped.lines[int(np.flatnonzero(~stopped.done.all(1))[0])]
    with pytest.raises(GridSpecError, match="points are done; run the same call again"):
        stopped.path_of(i, j).barrier()
    first = list(seen)
    seen.clear()
    resumed = landscape.barrier_matrix(factories([]), blobs(48, 3), **options)
    done_before = set(np.flatnonzero(stopped.done.reshape(-1)))
    assert resumed.complete and set(seen) == set(range(resumed.done.size)) - done_before
    assert done_before <= set(first)
    whole = landscape.barrier_matrix(factories([]), blobs(48, 3), **dict(options, path=None))
    for name in ("train_loss", "train_acc"):
        assert np.array_equal(resumed.values[name], whole.values[name])
    # the rank built a line's two models only when the next point was on another line: three builds to
    # check the models (rank 0 hashes them then, for the results file), then two per change of line
    changes = sum(1 for k, index in enumerate(first) if k == 0 or index // 6 != first[k - 1] // 6)
    assert len(built) == 3 + 2 * changes and changes < len(first)


def test_a_matrix_stopped_before_it_starts_writes_nothing(tmp_path):
    stop = threading.Event()
    stop.set()
    matrix = landscape.barrier_matrix(three(), blobs(16, 1), n=3, path=tmp_path / "m.h5",
                                      job=landscape.JobOptions(stop=stop))
    assert not matrix.done.any() and not (tmp_path / "m.h5").exists() and np.isnan(matrix.matrix()[0, 1])
    with pytest.raises(ChoiceError, match="holds no lines after alignment: give align="):
        matrix.matrix(aligned=True)


MATRIX_SCRIPT = """
import sys
import numpy as np
import landscape
from test_barrier_matrix import blobs, match_units, three
m = landscape.barrier_matrix(three(), blobs(64, 100), n=4, align=match_units, batch_size=16, bn_batches=2,
                             path=sys.argv[1].replace(".npy", ".h5"), progress_secs=1e9)
np.save(sys.argv[1], np.stack([m.values["train_loss"], m.values["train_acc"], m.done]))
"""


@pytest.mark.slow
def test_a_matrix_split_across_two_ranks_equals_one_process(tmp_path):
    two, = script_results(tmp_path, MATRIX_SCRIPT, ranks=(2,))
    one = landscape.barrier_matrix(three(), blobs(64, 100), n=4, align=match_units, batch_size=16, bn_batches=2,
                                   progress_secs=1e9)
    assert np.array_equal(two, np.stack([one.values["train_loss"], one.values["train_acc"], one.done]))


# --- refusals ----------------------------------------------------------------------------------------------

def wider():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(4, HIDDEN + 1), torch.nn.BatchNorm1d(HIDDEN + 1), torch.nn.ReLU(),
                               torch.nn.Linear(HIDDEN + 1, 3))


@pytest.mark.parametrize("models, options, error, words", [
    ([("a", trained(0, 0)), ("c", wider())], {}, ModelError,
     r"models 'a' \(model_a\) and 'c' \(model_b\) differ, so no line joins their weights: entry '0.weight' is "
     r"shaped \(10, 4\) in model_a and \(11, 4\) in model_b"),
    ([trained(0, 0)], {}, ChoiceError, "needs at least two models; got 1"),
    ([("a", trained(0, 0)), ("a", trained(1, 0))], {}, ChoiceError, "'a' is given more than once"),
    ([("a", trained(0, 0)), "b.t7"], {}, ChoiceError, r"models\[1\] is a str: give an nn.Module or a \(name"),
    (trained(0, 0), {}, ChoiceError, "models must be a list"),
    ([("a", trained(0, 0)), ("b", lambda: "b.t7")], {}, ModelError, "model 'b': its factory returned a str"),
    (None, dict(align="permute"), ChoiceError, "align='permute': give None, one of weights, activations, or a"),
    (None, dict(kind="max"), ChoiceError, "barrier kind 'max' is not one of linear, mean"),
    (None, dict(n=1), GridSpecError, "n=1: a line needs a whole number of points >= 2"),
    (None, dict(bn="fold"), ChoiceError, "bn='fold' is not one of recompute, keep"),
    (None, dict(align=lambda a, b: "aligned"), ModelError, r"align\('a', 'b'\) returned a str, not an nn.Module"),
    (None, dict(align=lambda a, b: wider()), ModelError, r"align\('a', 'b'\) returned a model no line joins to 'a'"),
])
def test_bad_models_and_options_are_refused_in_one_line(models, options, error, words):
    models = models if models is not None else [("a", trained(0, 0)), ("b", trained(1, 0))]
    with pytest.raises(error, match=words) as e:
        landscape.barrier_matrix(models, blobs(16, 1), n=options.pop("n", 3), progress_secs=1e9, **options)
    assert "\n" not in str(e.value)


# --- python -m landscape.connect matrix ---------------------------------------------------------------------

def test_the_command_prints_the_matrix_and_tree_the_api_computes_and_resumes(tmp_path, capsys):
    files = checkpoints(tmp_path, (4, 4, 4))
    out = str(tmp_path / "matrix.h5")
    flags = ["matrix", "--model", "tiny:make_model", "--dataset", "tiny:make_data", "--checkpoints", *files,
             "--n", "3", "--batch_size", "16", "--bn_batches", "2", "--test", "--kind", "mean", "--out", out,
             "--progress_secs", "1e9", "--threads", "1"]
    assert connect_main(flags) == 0
    printed = capsys.readouterr().out
    train, test = load_dataset("tiny:make_data")
    models = list(zip(("m0", "m1", "m2"), loaded(*files)))
    api = landscape.barrier_matrix(models, (train.x, train.y), n=3, test_data=(test.x, test.y), batch_size=16,
                                   bn_batches=2, kind="mean", progress_secs=1e9)
    for name in ("train_loss", "test_loss"):
        row = api.matrix(name)[0]
        assert row[1] > 0 and f"[matrix] {'m0':<10}" + "".join(f" {v:>10.6g}" for v in row) in printed
        assert f"minimum spanning tree: {api.tree(name).describe(6)}" in printed
    assert "after alignment" not in printed and f"{out[:-3]}_barriers.csv" in printed
    assert np.array_equal(landscape.load(out).train_loss, api.values["train_loss"])
    assert connect_main(flags) == 0 and "9/9 points already done" in capsys.readouterr().out  # the rerun resumes


@pytest.mark.parametrize("widths, extra, words", [
    ((4, 4, 5), [], "m2.t7 does not fit model"),  # a checkpoint of another width: refused on loading
    ((4,), [], "needs at least two models; got 1"),
    ((4, 4), ["--align", "permute"], "argument --align: invalid choice: 'permute'"),
    ((4, 4), ["--kind", "max"], "argument --kind: invalid choice: 'max'"),
])
def test_the_command_refuses_bad_input_in_one_line_with_exit_2(tmp_path, capsys, widths, extra, words):
    flags = ["matrix", "--model", "tiny:make_model", "--dataset", "tiny:make_data", "--checkpoints",
             *checkpoints(tmp_path, widths), "--n", "3", "--threads", "1", *extra]
    code, err = refusal(flags, capsys)
    assert code == 2
    assert words in err and "\n" not in err.split("error: ", 1)[-1]
