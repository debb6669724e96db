"""Curves between two networks (Garipov et al. 2018): fit_curve, evaluate_curve, curve_plane, the curve file
and `python -m landscape.connect curve`, checked against the closed forms of the Bezier and polychain
curves, a training step computed by hand, an uninterrupted run (resuming, bit for bit), hand-built models
evaluated by plain loops, and Gram-Schmidt done in numpy."""
import copy
import threading

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from test_interpolate import F32, checkpoints, loaded, plain_eval, recomputed, same, snapshot
from tiny import make_model

import landscape
from landscape.cli.connect import main as connect_main
from landscape.errors import CheckpointError, ChoiceError, DataError, GridSpecError, ModelError, SurfaceFileError
from landscape.inputs.data import load_dataset
from landscape.space.curves import coefficients, curve_parameters, curve_state, line_bends
from landscape.training.curve import FitState, lr_factor

F64 = 2.0 ** -53


def bn_mlp(seed, width=6):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(2, width), nn.BatchNorm1d(width), nn.ReLU(), nn.Dropout(0.2), nn.Linear(width, 2))


def blobs(n=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 2, (n,), generator=g)
    return torch.randn(n, 2, generator=g) + 2.0 * y[:, None].float(), y


def params_of(model):
    return {name: p.detach().clone() for name, p in model.named_parameters()}


# --- the closed forms ------------------------------------------------------------------------------------

def polychain(t, p):
    """Straight segments through p[0], ..., p[k+1] at t = i / (k + 1), written out per segment."""
    k1 = len(p) - 1
    i = min(int(t * k1), k1 - 1)
    return (i + 1 - k1 * t) * p[i] + (k1 * t - i) * p[i + 1]


HAND = {
    ("bezier", 1): lambda t, p: (1 - t) ** 2 * p[0] + 2 * t * (1 - t) * p[1] + t ** 2 * p[2],
    ("bezier", 2): lambda t, p: ((1 - t) ** 3 * p[0] + 3 * t * (1 - t) ** 2 * p[1] + 3 * t ** 2 * (1 - t) * p[2]
                                 + t ** 3 * p[3]),
    ("polychain", 1): polychain,
    ("polychain", 2): polychain,
}


@pytest.mark.parametrize("kind, bends", sorted(HAND))
def test_the_points_of_a_curve_are_the_closed_form_and_its_ends_exact(kind, bends):
    g = torch.Generator().manual_seed(bends)
    points = [torch.randn(3, 4, generator=g, dtype=torch.float64) for _ in range(bends + 2)]
    ends = [{"w": points[0], "buf": torch.tensor([1.0, 2.0], dtype=torch.float64), "count": torch.tensor(3)},
            {"w": points[-1], "buf": torch.tensor([5.0, -2.0], dtype=torch.float64), "count": torch.tensor(9)}]
    middle = [{"w": p} for p in points[1:-1]]
    scale = max(float(p.abs().max()) for p in points)
    for t in (0.0, 0.2, 1 / 3, 0.5, 0.7, 1.0):
        state = curve_state(kind, ends[0], middle, ends[1], t)
        # a few float64 roundings of terms no larger than the largest point
        assert torch.allclose(state["w"], HAND[kind, bends](t, points), rtol=0, atol=16 * F64 * scale), t
        assert torch.allclose(state["buf"], (1 - t) * ends[0]["buf"] + t * ends[1]["buf"], rtol=0, atol=8 * F64 * 5)
        assert torch.equal(state["count"], ends[0]["count"])  # integers stay model_a's
    assert torch.equal(curve_state(kind, ends[0], middle, ends[1], 0.0)["w"], points[0])
    assert torch.equal(curve_state(kind, ends[0], middle, ends[1], 1.0)["w"], points[-1])
    assert torch.equal(curve_state(kind, ends[0], middle, ends[1], 1.0)["buf"], ends[1]["buf"])
    if kind == "polychain":  # the chain passes through each bend at its knot i / (k + 1)
        for i, bend in enumerate(middle, 1):
            assert torch.equal(curve_state(kind, ends[0], middle, ends[1], i / (bends + 1))["w"], bend["w"])
    assert sum(coefficients(kind, bends, 0.35)) == pytest.approx(1.0, abs=8 * F64)  # weights of an affine mix


@pytest.mark.parametrize("kind", ["bezier", "polychain"])
@pytest.mark.parametrize("bends", [1, 2, 3])
def test_a_curve_starts_as_the_straight_line(kind, bends):
    g = torch.Generator().manual_seed(0)
    a, b = ({"w": torch.randn(5, generator=g, dtype=torch.float64)} for _ in range(2))
    start = line_bends(a, b, bends)
    for t in np.linspace(0, 1, 11):
        on_curve = curve_parameters(kind, a, start, b, t)["w"]
        assert torch.allclose(on_curve, (1 - t) * a["w"] + t * b["w"], rtol=0, atol=32 * F64 * 4)
    assert not torch.allclose(start[0]["w"], a["w"])  # the bends do lie between the ends


def test_garipov_schedule_is_their_piecewise_linear_factor():
    assert [lr_factor("garipov", e, 10) for e in (0, 5)] == [1.0, 1.0]
    assert lr_factor("garipov", 6, 10) == pytest.approx(1 - 0.1 / 0.4 * 0.99, rel=1e-15)
    assert lr_factor("garipov", 9, 10) == pytest.approx(0.01, rel=1e-13) and lr_factor("constant", 9, 10) == 1.0
    assert lr_factor("garipov", 10, 11) == 0.01  # past 90 %: 1 % of the rate


# --- training ---------------------------------------------------------------------------------------------

def test_one_step_is_the_hand_computed_gradient_at_the_drawn_point_in_train_mode():
    a, b = bn_mlp(0), bn_mlp(1)
    x, y = blobs(32)
    lr, wd, seed = 0.3, 0.01, 4
    curve = landscape.fit_curve(a, b, (x, y), epochs=1, lr=lr, momentum=0.0, weight_decay=wd, batch_size=32,
                                seed=seed, schedule="constant")
    draws = torch.Generator().manual_seed(seed)  # the fit's draws: this epoch's order, then the batch's t
    order = torch.randperm(32, generator=draws)
    t = float(torch.rand(1, generator=draws)[0])
    pa, pb = params_of(a), params_of(b)
    theta = {n: 0.5 * pa[n] + 0.5 * pb[n] for n in pa}  # the bend on the line at t = 1/2

    def gradient(train_mode):
        model = copy.deepcopy(a).train(train_mode)
        point = {n: ((1 - t) ** 2 * pa[n] + 2 * t * (1 - t) * theta[n] + t ** 2 * pb[n]).requires_grad_()
                 for n in pa}
        torch.manual_seed(seed)  # dropout's mask, as the fit seeds it
        loss = F.cross_entropy(torch.func.functional_call(model, point, (x[order],)), y[order])
        loss = loss + 0.5 * wd * sum((p * p).sum() for p in point.values())
        grads = torch.autograd.grad(loss, list(point.values()))
        return {n: 2 * t * (1 - t) * g for n, g in zip(point, grads)}  # d phi / d theta = 2 t (1 - t)
    step = gradient(True)
    scale = max(float(lr * g.abs().max()) for g in step.values())
    tol = 1e-4 * scale  # float32 forward and backward through 2 small layers, summed over 32 samples
    for n in pa:
        assert torch.allclose(curve.bends[0][n], theta[n] - lr * step[n], rtol=0, atol=tol + 4 * F32), n
    moved = max(float((curve.bends[0][n] - theta[n]).abs().max()) for n in pa)
    assert moved > 100 * tol  # the step is far above the tolerance
    in_eval = gradient(False)  # BatchNorm on running statistics gives another step: the test tells them apart
    assert max(float((lr * (in_eval[n] - step[n])).abs().max()) for n in pa) > 100 * tol


def test_the_ends_stay_fixed_and_the_models_as_they_were():
    a, b = bn_mlp(2), bn_mlp(3)
    a.train()
    saved_a, saved_b = snapshot(a), snapshot(b)
    user_rng = torch.get_rng_state()
    curve = landscape.fit_curve(a, b, blobs(40), epochs=3, batch_size=8)
    assert same(a, saved_a) and same(b, saved_b) and torch.equal(torch.get_rng_state(), user_rng)
    for t, model in ((0.0, a), (1.0, b)):
        made = curve.model_at(t).state_dict()
        for name, value in model.state_dict().items():
            want = a.state_dict()[name] if not value.is_floating_point() else value  # counters are model_a's
            assert torch.equal(made[name], want), (t, name)
    start = line_bends(params_of(a), params_of(b), 1)[0]
    # every bend trained but the bias before BatchNorm: batch statistics cancel it, so its gradient is zero
    assert [n for n in start if torch.equal(curve.bends[0][n], start[n])] == ["0.bias"]
    assert curve.complete and curve.epoch == 3 and len(curve.history) == 3


def test_model_at_is_the_formula_with_the_buffers_on_the_line():
    a, b = bn_mlp(4), bn_mlp(5)
    with torch.no_grad():
        b[1].running_mean.uniform_(1, 2)  # the ends' statistics differ
    curve = landscape.fit_curve(a, b, blobs(24), epochs=2, batch_size=8)
    ea, eb, theta = curve.end_a, curve.end_b, curve.bends[0]
    for t in (0.25, 0.6):
        state = curve.model_at(t).state_dict()
        for name in theta:
            want = (1 - t) ** 2 * ea[name] + 2 * t * (1 - t) * theta[name] + t ** 2 * eb[name]
            assert torch.allclose(state[name], want, rtol=0, atol=8 * F32 * float(want.abs().max() + 1)), name
        for name in ("1.running_mean", "1.running_var"):
            want = (1 - t) * ea[name] + t * eb[name]
            assert torch.allclose(state[name], want, rtol=0, atol=4 * F32 * float(want.abs().max())), name
    with pytest.raises(ModelError, match="t=1.5: a curve runs from t = 0 to t = 1"):
        curve.model_at(1.5)


def stop_at(n, stop=None):
    """Cross-entropy that, at its n-th call, sets `stop` or raises: a stop signal or a kill mid-epoch (one
    function name for every n, so the fit's settings record the same loss)."""
    calls = []

    def stopping(outputs, targets):
        calls.append(1)
        if len(calls) == n:
            if stop is None:
                raise RuntimeError("killed")
            stop.set()
        return F.cross_entropy(outputs, targets)
    return stopping


@pytest.mark.parametrize("how, loader", [("stop", False), ("kill", False), ("stop", True)])
def test_a_resumed_fit_ends_with_the_bends_of_an_uninterrupted_one_bit_for_bit(tmp_path, how, loader):
    a, b, data = bn_mlp(6), bn_mlp(7), blobs(40)
    options = dict(kind="polychain", bends=2, epochs=3, batch_size=8, lr=0.1)  # 5 batches an epoch
    if loader:  # a shuffling DataLoader draws its order from torch's generator, which the file keeps too
        data = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(*data), batch_size=8, shuffle=True)
        options["settings"] = {"data": "blobs(40)"}  # its hash changes with every shuffle: named instead
    whole = landscape.fit_curve(a, b, data, loss=stop_at(0), path=str(tmp_path / "whole.h5"), **options)
    path, stop = str(tmp_path / "parts.h5"), threading.Event()
    middle_of_epoch_2 = 1 + 5 + 3  # the first-batch probe, epoch 1, three batches of epoch 2
    if how == "stop":
        part = landscape.fit_curve(a, b, data, loss=stop_at(middle_of_epoch_2, stop), path=path, stop=stop, **options)
        assert part.epoch == 1 and not part.complete
    else:
        with pytest.raises(Exception, match="killed"):
            landscape.fit_curve(a, b, data, loss=stop_at(middle_of_epoch_2), path=path, **options)
    assert landscape.load_curve(path, bn_mlp(0)).epoch == 1  # the file holds the last whole epoch
    resumed = landscape.fit_curve(a, b, data, loss=stop_at(0), path=path, **options)
    assert resumed.complete and resumed.history == whole.history
    for mine, theirs in zip(resumed.bends + resumed.state.momentum, whole.bends + whole.state.momentum):
        assert mine.keys() == theirs.keys() and all(torch.equal(mine[n], theirs[n]) for n in mine)
    again = landscape.fit_curve(a, b, data, loss=stop_at(0), path=path, **options)  # complete: nothing to train
    assert all(torch.equal(again.bends[1][n], whole.bends[1][n]) for n in whole.bends[1])


@pytest.mark.parametrize("change, words", [
    (dict(kind="bezier"), "kind: the file has 'polychain', this call 'bezier'"),
    (dict(bends=1), "bends: the file has 2, this call 1"),
    (dict(lr=0.2), "lr: the file has 0.1, this call 0.2"),
    (dict(seed=1), "seed: the file has 0, this call 1"),
    (dict(data=blobs(40, seed=1)), "data_sha256"),
    (dict(b=bn_mlp(9)), "model_b_sha256"),
])
def test_a_curve_file_of_other_settings_is_refused_in_one_line(tmp_path, change, words):
    args = dict(a=bn_mlp(6), b=bn_mlp(7), data=blobs(40), kind="polychain", bends=2, epochs=1, batch_size=8, lr=0.1,
                path=str(tmp_path / "curve.h5"))
    landscape.fit_curve(args.pop("a"), args.pop("b"), args.pop("data"), **args)
    before = open(args["path"], "rb").read()
    args = dict(args, **dict(dict(a=bn_mlp(6), b=bn_mlp(7), data=blobs(40)), **change))
    with pytest.raises(CheckpointError, match=words) as e:
        landscape.fit_curve(args.pop("a"), args.pop("b"), args.pop("data"), **args)
    assert "\n" not in str(e.value) and open(args["path"], "rb").read() == before


@pytest.mark.parametrize("options, error, words", [
    (dict(kind="spline"), ChoiceError, "kind='spline' is not one of bezier, polychain"),
    (dict(bends=0), DataError, "bends=0: give a positive whole number"),
    (dict(epochs=2.0), DataError, "epochs=2.0"),
    (dict(lr=0.0), DataError, r"lr=0.0: give a finite number > 0"),
    (dict(momentum=1.0), DataError, r"momentum=1.0: give a finite number in \[0, 1\)"),
    (dict(weight_decay=-1e-4), DataError, "weight_decay=-0.0001"),
    (dict(schedule="cosine"), ChoiceError, "schedule='cosine' is not one of garipov, constant"),
])
def test_fit_options_out_of_range_are_refused_in_one_line(options, error, words):
    with pytest.raises(error, match=words) as e:
        landscape.fit_curve(bn_mlp(0), bn_mlp(1), blobs(8), **options)
    assert "\n" not in str(e.value)


# --- the check: a curve far below the line's barrier -----------------------------------------------

def spirals(n=128):
    """Two interleaved spirals: separable only by a nonlinear boundary, which nets trained from other seeds
    draw with other hidden units, so the straight line between two of them crosses a high ridge."""
    g = torch.Generator().manual_seed(0)
    y = torch.randint(0, 2, (n,), generator=g)
    r = torch.rand(n, generator=g) + 0.15
    theta = r * 3 * np.pi + y * np.pi
    return torch.stack([r * torch.cos(theta), r * torch.sin(theta)], 1), y


def trained_mlp(seed, x, y):
    torch.manual_seed(seed)
    net = nn.Sequential(nn.Linear(2, 16), nn.ReLU(), nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, 2))
    opt = torch.optim.Adam(net.parameters(), lr=0.03)
    for _ in range(200):
        opt.zero_grad()
        F.cross_entropy(net(x), y).backward()
        opt.step()
    return net


def test_a_bezier_curve_between_two_trained_nets_has_a_far_lower_barrier_than_the_line():
    x, y = spirals()
    a, b = trained_mlp(0, x, y), trained_mlp(1, x, y)
    line = landscape.interpolate(a, b, (x, y), n=21)
    curve = landscape.evaluate_curve(landscape.fit_curve(a, b, (x, y), epochs=20, batch_size=16), (x, y), n=21)
    assert max(line.train_loss[0], line.train_loss[-1]) < 0.3 and line.barrier() > 2.0  # trained ends, a ridge
    assert np.array_equal(curve.train_loss[[0, -1]], line.train_loss[[0, -1]])  # the same ends, bit for bit
    # over 10 seed pairs of this setting the curve's barrier was 0.05-0.2 of the line's (4.3 to 8.3 there)
    assert curve.barrier() < 0.5 * line.barrier()
    assert curve.train_loss.max() < 0.5 * line.train_loss.max()


# --- evaluation, the file, the plane ------------------------------------------------------------------------

def test_evaluate_curve_is_the_hand_built_points_evaluated_by_a_plain_loop():
    a, b = bn_mlp(10), bn_mlp(11)
    (x, y), (xt, yt) = blobs(48), blobs(16, seed=1)
    curve = landscape.fit_curve(a, b, (x, y), epochs=2, batch_size=12)
    along = landscape.evaluate_curve(curve, (x, y), n=5, test_data=(xt, yt), bn_batches=2, batch_size=16)
    hand = [recomputed(curve.model_at(t), x, 16, 2) for t in along.t]
    train, test = np.array([plain_eval(m, x, y) for m in hand]), np.array([plain_eval(m, xt, yt) for m in hand])
    assert np.allclose(along.train_loss, train[:, 0], rtol=48 * 4 * F32, atol=0)
    assert np.allclose(along.test_loss, test[:, 0], rtol=48 * 4 * F32, atol=0)
    assert np.allclose(along.train_acc, train[:, 1], rtol=1e-14, atol=0)
    assert along.bn_batches == 2 and along.complete
    line = landscape.interpolate(a, b, (x, y), n=5, test_data=(xt, yt), bn_batches=2, batch_size=16)
    for name in ("train_loss", "train_acc", "test_loss", "test_acc"):  # the ends are the line's, bit for bit
        assert np.array_equal(getattr(along, name)[[0, -1]], getattr(line, name)[[0, -1]]), name
    assert not np.allclose(along.train_loss[1:-1], line.train_loss[1:-1])


def test_a_curve_into_a_results_file_equals_it_in_memory_and_another_curve_is_refused(tmp_path):
    a, b, data = bn_mlp(14), bn_mlp(15), blobs(32)
    curve = landscape.fit_curve(a, b, data, epochs=1, batch_size=8)
    path = str(tmp_path / "along.h5")
    memory = landscape.evaluate_curve(curve, data, n=4, bn_batches=1, batch_size=8)
    filed = landscape.evaluate_curve(curve, data, n=4, bn_batches=1, batch_size=8, path=path, progress_secs=1e9)
    assert filed.path == path and np.array_equal(filed.train_loss, memory.train_loss)
    assert np.array_equal(landscape.load(path).train_loss, memory.train_loss)
    other = landscape.fit_curve(a, b, data, epochs=1, batch_size=8, seed=1)
    with pytest.raises(SurfaceFileError, match="curve_sha256"):
        landscape.evaluate_curve(other, data, n=4, bn_batches=1, batch_size=8, path=path, progress_secs=1e9)


def test_a_saved_curve_loads_back_whole_and_a_wrong_model_is_refused(tmp_path):
    a, b = bn_mlp(12), bn_mlp(13)
    curve = landscape.fit_curve(a, b, blobs(24), kind="polychain", bends=2, epochs=1, batch_size=8)
    path = str(tmp_path / "curve.h5")
    curve.save(path)
    for template in (bn_mlp(99), lambda: bn_mlp(98)):  # a module or a factory; their own values do not matter
        loaded = landscape.load_curve(path, template)
        assert loaded.kind == "polychain" and loaded.epoch == 1 and loaded.settings == curve.settings
        assert loaded.digest() == curve.digest() and loaded.history == curve.history
        for t in (0.0, 0.3, 1.0):
            mine, theirs = loaded.model_at(t).state_dict(), curve.model_at(t).state_dict()
            assert all(torch.equal(mine[n], theirs[n]) for n in theirs)
    with pytest.raises(CheckpointError, match="exists; Curve.save replaces a file only with overwrite=True"):
        curve.save(path)
    with pytest.raises(ModelError, match=r"another architecture than the model: entry '0.weight' is shaped \(7, 2\)"):
        landscape.load_curve(path, bn_mlp(0, width=7))
    landscape.Directions([torch.zeros(1)]).save(tmp_path / "other.h5")
    with pytest.raises(CheckpointError, match="other.h5 is not a curve file"):
        landscape.load_curve(str(tmp_path / "other.h5"), bn_mlp(0))


def plain_mlp(seed):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(2, 5), nn.Tanh(), nn.Linear(5, 2))


def test_the_plane_is_gram_schmidt_through_the_ends_and_the_bend_and_its_points_are_the_models_there():
    a, b = plain_mlp(0), plain_mlp(1)
    x, y = blobs(32)
    curve = landscape.fit_curve(a, b, (x, y), epochs=3, batch_size=8, lr=0.2)
    plane = landscape.curve_plane(curve, (x, y), points=4, curve_points=9, bn="keep")
    flat = [np.concatenate([e[n].double().numpy().ravel() for n in curve.bends[0]])
            for e in (curve.end_a, curve.bends[0], curve.end_b)]
    u = (flat[2] - flat[0]) / np.linalg.norm(flat[2] - flat[0])
    across = (flat[1] - flat[0]) - ((flat[1] - flat[0]) @ u) * u
    v = across / np.linalg.norm(across)
    tol = 1e-12 * np.linalg.norm(flat[2] - flat[0])  # float64 dot products of a few dozen terms
    assert np.allclose(plane.ends_xy, [[0, 0], [np.linalg.norm(flat[2] - flat[0]), 0]], rtol=0, atol=tol)
    assert np.allclose(plane.bends_xy, [[(flat[1] - flat[0]) @ u, np.linalg.norm(across)]], rtol=0, atol=tol)
    for t, (px, py) in zip(plane.t, plane.curve_xy):  # one bend: the curve lies in the plane
        on_curve = (1 - t) ** 2 * flat[0] + 2 * t * (1 - t) * flat[1] + t ** 2 * flat[2]
        assert np.allclose(flat[0] + px * u + py * v, on_curve, rtol=0, atol=1e-6 * np.abs(flat).max())
    grid = plane.surface
    assert grid.train_loss.shape == (4, 4) and grid.complete
    assert grid.x[0] < 0 < plane.ends_xy[1, 0] < grid.x[-1] and grid.y[0] < 0 < plane.bends_xy[0, 1] < grid.y[-1]
    for j, i in ((0, 0), (2, 1), (3, 3)):
        model = copy.deepcopy(a)
        weights = flat[0] + grid.x[i] * u + grid.y[j] * v
        torch.nn.utils.vector_to_parameters(torch.from_numpy(weights).float(), model.parameters())
        loss, acc = plain_eval(model.eval(), x, y)
        assert grid.train_loss[j, i] == pytest.approx(loss, rel=32 * 4 * F32), (i, j)
        assert grid.train_acc[j, i] == pytest.approx(acc, rel=1e-14)
    ends = [{n: e[n] for n in curve.bends[0]} for e in (curve.end_a, curve.end_b)]
    flat_curve = curve.replaced(FitState(line_bends(*ends, 1), [{}]))  # the curve before any training
    with pytest.raises(GridSpecError, match="lies on the line between its ends .* it spans no plane"):
        landscape.curve_plane(flat_curve, (x, y), points=3)


# --- python -m landscape.connect curve ------------------------------------------------------------------

def test_the_command_fits_resumes_prints_the_barriers_and_draws(tmp_path, capsys):
    a_file, b_file = checkpoints(tmp_path)
    out = str(tmp_path / "curve.h5")
    flags = ["curve", "--model", "tiny:make_model", "--dataset", "tiny:make_data", "--model_file", a_file,
             "--model_file2", b_file, "--epochs", "2", "--fit_batch_size", "16", "--n", "5", "--bn_batches", "2",
             "--batch_size", "16", "--out", out, "--plane", "--plane_points", "3", "--threads", "1",
             "--progress_secs", "1e9"]
    assert connect_main(flags) == 0
    printed = capsys.readouterr().out
    train, _ = load_dataset("tiny:make_data")
    a, b = loaded(a_file, b_file)
    curve = landscape.load_curve(out, make_model)
    assert curve.complete and curve.epoch == 2
    along = landscape.evaluate_curve(curve, (train.x, train.y), n=5, bn_batches=2, batch_size=16)
    line = landscape.interpolate(a, b, (train.x, train.y), n=5, bn_batches=2, batch_size=16)
    assert f"{'train_loss (linear)':<22} {line.barrier():12.6g} {along.barrier():16.6g}" in printed
    for name in ("curve_along_t.png", "curve_along_t.pdf", "curve_plane.png", "curve_plane.h5"):
        assert (tmp_path / name).exists(), name
    assert "[curve] epoch 2/2" in printed
    assert connect_main(flags) == 0 and "[curve] epoch" not in capsys.readouterr().out  # nothing left to fit
    code = connect_main(flags[:flags.index("--epochs") + 1] + ["3"] + flags[flags.index("--epochs") + 2:])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "epochs: the file has 2, this call 3" in err and "\n" not in err
