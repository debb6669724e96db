"""landscape.interpolate: the line between two networks' weights, its barriers, and BatchNorm statistics
re-estimated along it, checked against a closed form, against hand-built interpolated models evaluated
with plain torch loops, and against the mean and variance of the data themselves."""
import copy
import threading
from fractions import Fraction

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import script_results
from tiny import make_model

import landscape
from landscape.api.connect import LossPath
from landscape.cli.connect import main as connect_main
from landscape.errors import ChoiceError, DataError, GridSpecError, LandscapeError, ModelError, SurfaceFileError
from landscape.inputs.checkpoint import load_weights, save_checkpoint
from landscape.inputs.data import load_dataset
from landscape.space.paths import barrier, interpolated_state, reestimate_running_stats, running_stat_layers

F32 = 2.0 ** -24  # float32 unit roundoff


class Product(torch.nn.Module):
    """f(x) = a * b * x in float64: the loss along a line is a quartic in t that is known exactly."""

    def __init__(self, a, b):
        super().__init__()
        self.a = torch.nn.Parameter(torch.tensor([a], dtype=torch.float64))
        self.b = torch.nn.Parameter(torch.tensor([b], dtype=torch.float64))

    def forward(self, x):
        return self.a * self.b * x


def mse(outputs, targets):
    return ((outputs - targets) ** 2).mean()


def mlp(seed):
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(5, 8), torch.nn.Tanh(), torch.nn.Dropout(0.5), torch.nn.Linear(8, 3))


def bn_net(seed):
    torch.manual_seed(seed)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.ReLU(),
                              torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(4, 3))
    with torch.no_grad():  # running statistics of their own, far from a reset's (0, 1), and unlike each other
        net[1].running_mean.uniform_(-1, 1)
        net[1].running_var.uniform_(0.5, 2)
        net[1].num_batches_tracked.fill_(seed + 7)
    return net


def classes(n, shape, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, *shape, generator=g), torch.randint(0, 3, (n,), generator=g)


def by_hand(model_a, model_b, t):
    """A new model at w(t), built from state_dict arithmetic alone (integer entries model_a's)."""
    sa, sb = model_a.state_dict(), model_b.state_dict()
    state = {k: (1 - t) * a + t * sb[k] if a.is_floating_point() else a for k, a in sa.items()}
    model = copy.deepcopy(model_a)
    model.load_state_dict(state)
    return model.eval()


def plain_eval(model, x, y):
    """(mean cross-entropy, accuracy in percent) over the whole set in one pass."""
    with torch.no_grad():
        logits = model(x)
    return F.cross_entropy(logits, y).item(), 100.0 * (logits.argmax(1) == y).double().mean().item()


def snapshot(model):
    return ({k: v.clone() for k, v in model.state_dict().items()}, [m.training for m in model.modules()],
            [getattr(m, "momentum", None) for m in model.modules()], [p.requires_grad for p in model.parameters()])


def same(model, saved):
    state, modes, momenta, grads = saved
    now = model.state_dict()
    equal = all(torch.equal(now[k], v) and now[k].dtype == v.dtype for k, v in state.items())
    return (list(now) == list(state) and equal
            and [m.training for m in model.modules()] == modes
            and [getattr(m, "momentum", None) for m in model.modules()] == momenta
            and [p.requires_grad for p in model.parameters()] == grads)


# --- the closed form -------------------------------------------------------------------------------------

X = torch.tensor([[1.0], [-1.0], [2.0], [-2.0]], dtype=torch.float64)
M = Fraction(10, 4)  # mean of x^2


def quartic(t):
    """L(t) for (a, b) from (1, 1) to (-1, -2), target y = x: p(t) = (1 - 2t)(1 - 3t), L = m (p - 1)^2
    = m t^2 (6t - 5)^2, exact in rationals."""
    return M * (t * (6 * t - 5)) ** 2


def test_the_loss_along_a_line_and_its_barriers_are_the_closed_form():
    path = landscape.interpolate(Product(1, 1), Product(-1, -2), (X, X.clone()), n=13, loss=mse, bn="keep")
    grid = [Fraction(k, 12) for k in range(13)]  # linspace(0, 1, 13), t = 5/12 among them: L's maximum
    truth = np.array([float(quartic(t)) for t in grid])
    tol = 1e-13  # float64 arithmetic on numbers of order 1, a few dozen operations
    assert path.t[0] == 0 and path.t[-1] == 1
    assert np.allclose(path.t, [float(t) for t in grid], rtol=0, atol=2 * 2.0 ** -52)  # linspace's rounding
    assert np.allclose(path.train_loss, truth, rtol=tol, atol=tol)
    assert path.train_acc is None and path.test_loss is None and path.test_acc is None  # float targets: no accuracy
    l0, l1 = quartic(Fraction(0)), quartic(Fraction(1))
    assert (l0, l1) == (0, M)
    linear = max(quartic(t) - ((1 - t) * l0 + t * l1) for t in grid)
    assert linear == quartic(Fraction(5, 12)) - Fraction(5, 12) * M  # the chord rises: its maximum sits elsewhere
    assert path.barrier("train_loss", "linear") == pytest.approx(float(linear), rel=tol, abs=tol)
    mean = M * Fraction(625, 576) - M / 2  # max of L at t = 5/12, where |t (6t - 5)| = 25/24
    assert path.barrier("train_loss", "mean") == pytest.approx(float(mean), rel=tol, abs=tol)
    assert path.barrier() == path.barrier("train_loss", "linear")


def test_barrier_signs_losses_up_and_accuracies_down():
    t = np.linspace(0, 1, 5)
    loss, acc = np.array([0.1, 1.0, 0.6, 0.4, 0.3]), np.array([90.0, 60.0, 70.0, 75.0, 80.0])
    path = LossPath(t=t, train_loss=loss, train_acc=acc)
    assert path.barrier("train_loss") == pytest.approx(0.85)  # 1.0 over the chord's 0.15 at t = 1/4
    assert path.barrier("train_loss", "mean") == pytest.approx(0.8)  # 1.0 over the ends' mean 0.2
    assert path.barrier("train_acc") == pytest.approx(27.5)  # 60 under the chord's 87.5
    assert path.barrier("train_acc", "mean") == pytest.approx(25.0)  # 60 under the ends' mean 85
    assert barrier(t, -acc, "linear") == pytest.approx(27.5)  # a drop of accuracy is a rise of -accuracy
    assert barrier(t, [0.0, 1.0, np.nan, 0.5, 0.0]) != barrier(t, [0.0, 1.0, np.nan, 0.5, 0.0])  # NaN, not a number


def test_barrier_refuses_what_the_path_does_not_have_in_one_line():
    path = LossPath(t=np.linspace(0, 1, 3), train_loss=np.zeros(3))
    for name, kind, words in (("test_loss", "linear", "no test_data"), ("train_acc", "linear", "accuracy does not"),
                              ("loss", "linear", "choose one of"), ("train_loss", "max", "not one of linear, mean")):
        with pytest.raises(ChoiceError, match=words) as e:
            path.barrier(name, kind)
        assert "\n" not in str(e.value)


# --- against a plain loop ---------------------------------------------------------------------------------

def test_the_line_is_the_hand_built_models_evaluated_by_a_plain_loop():
    a, b = mlp(0), mlp(1)
    a.train()  # dropout on: only the call's eval mode makes the values deterministic
    (x, y), (xt, yt) = classes(64, (5,), 0), classes(24, (5,), 1)
    saved_a, saved_b = snapshot(a), snapshot(b)
    path = landscape.interpolate(a, b, (x, y), n=6, test_data=(xt, yt), batch_size=16)
    assert same(a, saved_a) and same(b, saved_b)
    rows = np.array([[*plain_eval(by_hand(a, b, t), x, y), *plain_eval(by_hand(a, b, t), xt, yt)] for t in path.t])
    # float32 logits; the loss summed over up to 64 samples by batches of 16 here, at once by hand
    assert np.allclose(path.train_loss, rows[:, 0], rtol=64 * 4 * F32, atol=0)
    assert np.allclose(path.test_loss, rows[:, 2], rtol=64 * 4 * F32, atol=0)
    assert np.allclose(path.train_acc, rows[:, 1], rtol=1e-14, atol=0)  # percentages of 1/64: a flip moves 1.5
    assert np.allclose(path.test_acc, rows[:, 3], rtol=1e-14, atol=0)
    assert path.bn == "recompute" and path.bn_batches == 0  # no BatchNorm: nothing was re-estimated
    assert not np.allclose(path.train_loss, path.train_loss[0])  # the line moves
    with pytest.raises(ValueError):
        path.train_loss[0] = 0.0  # read-only arrays in a frozen result


def test_without_batchnorm_recompute_and_keep_are_the_same():
    a, b = mlp(2), mlp(3)
    data = classes(30, (5,))
    kept = landscape.interpolate(a, b, data, n=4, bn="keep")
    recomputed = landscape.interpolate(a, b, data, n=4, bn="recompute", bn_batches=1)
    assert np.array_equal(kept.train_loss, recomputed.train_loss)
    assert np.array_equal(kept.train_acc, recomputed.train_acc)


def test_a_dataloader_and_dict_inputs_give_what_a_tensor_pair_gives():
    class Keyword(torch.nn.Module):
        def __init__(self, seed):
            super().__init__()
            self.net = mlp(seed)

        def forward(self, features):
            return self.net(features)

    x, y = classes(40, (5,))
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=10)
    pair = landscape.interpolate(mlp(4), mlp(5), (x, y), n=3, batch_size=10)
    loaded = landscape.interpolate(mlp(4), mlp(5), loader, n=3)
    keyword = landscape.interpolate(Keyword(4), Keyword(5), ({"features": x}, y), n=3, batch_size=10)
    for other in (loaded, keyword):  # the same batches of the same samples: the same sums, bit for bit
        assert np.array_equal(other.train_loss, pair.train_loss) and np.array_equal(other.train_acc, pair.train_acc)


# --- BatchNorm --------------------------------------------------------------------------------------------

def recomputed_by_hand(a, b, t, x, batch, count):
    """w(t) by state_dict arithmetic, then its statistics recomputed by hand."""
    return recomputed(by_hand(a, b, t), x, batch, count)


def recomputed(model, x, batch, count):
    """BatchNorm statistics reset and estimated from the first `count` batches of `batch` samples in train
    mode with momentum None, by hand; then eval mode."""
    for layer in running_stat_layers(model):
        layer.reset_running_stats()
        layer.momentum = None
    model.train()
    with torch.no_grad():
        for start in range(0, count * batch, batch):
            model(x[start:start + batch])
    return model.eval()


def test_batchnorm_statistics_are_reestimated_at_every_point_as_a_hand_loop_does():
    a, b = bn_net(0), bn_net(1)
    (x, y), (xt, yt) = classes(48, (3, 6, 6), 0), classes(20, (3, 6, 6), 1)
    saved_a, saved_b = snapshot(a), snapshot(b)
    path = landscape.interpolate(a, b, (x, y), n=5, test_data=(xt, yt), bn="recompute", bn_batches=2, batch_size=16)
    assert same(a, saved_a) and same(b, saved_b)  # statistics, counters, momentum and modes as they were
    assert path.bn == "recompute" and path.bn_batches == 2
    hand = [recomputed_by_hand(a, b, t, x, 16, 2) for t in path.t]
    train = np.array([plain_eval(m, x, y) for m in hand])
    test = np.array([plain_eval(m, xt, yt) for m in hand])
    assert np.allclose(path.train_loss, train[:, 0], rtol=48 * 4 * F32, atol=0)
    assert np.allclose(path.test_loss, test[:, 0], rtol=48 * 4 * F32, atol=0)
    assert np.allclose(path.train_acc, train[:, 1], rtol=1e-14, atol=0)  # a flipped answer would move 2 or 5
    assert np.allclose(path.test_acc, test[:, 1], rtol=1e-14, atol=0)
    kept = landscape.interpolate(a, b, (x, y), n=5, bn="keep", batch_size=16)
    by_keep = np.array([plain_eval(by_hand(a, b, t), x, y) for t in path.t])  # statistics interpolated
    assert np.allclose(kept.train_loss, by_keep[:, 0], rtol=48 * 4 * F32, atol=0)
    assert kept.bn_batches == 0 and not np.allclose(kept.train_loss, path.train_loss, rtol=1e-3)


def test_recompute_uses_the_first_batches_of_a_dataloader_even_a_shuffled_one():
    a, b = bn_net(2), bn_net(3)
    x, y = classes(30, (3, 5, 5))
    fixed = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=10)
    path = landscape.interpolate(a, b, fixed, n=3, bn_batches=2)
    hand = [recomputed_by_hand(a, b, t, x, 10, 2) for t in path.t]
    assert np.allclose(path.train_loss, [plain_eval(m, x, y)[0] for m in hand], rtol=30 * 4 * F32, atol=0)
    shuffled = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=10, shuffle=True)
    flat = landscape.interpolate(a, copy.deepcopy(a), shuffled, n=4, bn_batches=1)
    # w(t) = w at every t (to rounding): one batch drawn once gives every point the same statistics, where
    # a batch drawn anew at each t would move the loss by far more than the sums' rounding
    assert flat.bn_batches == 1 and np.ptp(flat.train_loss) <= 30 * 4 * F32 * flat.train_loss.max()
    redrawn = [plain_eval(recomputed_by_hand(a, a, 0.0, x[torch.randperm(30)], 10, 1), x, y)[0] for _ in range(4)]
    assert np.ptp(redrawn) > 100 * 30 * 4 * F32 * max(redrawn)  # the test could fail: batches do differ


def test_reestimated_statistics_are_the_data_mean_and_the_mean_of_batch_variances():
    layer = torch.nn.BatchNorm1d(3, momentum=0.3).eval()
    g = torch.Generator().manual_seed(0)
    x = torch.randn(40, 3, generator=g, dtype=torch.float64) * torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64) + 5
    layer.double()
    batches = [(x[i:i + 10], None) for i in range(0, 40, 10)]
    assert reestimate_running_stats(layer, batches) == 4
    assert torch.allclose(layer.running_mean, x.mean(0), rtol=1e-14, atol=0)  # equal batches: the data's mean
    variances = torch.stack([x[i:i + 10].var(0, unbiased=True) for i in range(0, 40, 10)])
    assert torch.allclose(layer.running_var, variances.mean(0), rtol=1e-14, atol=0)
    assert layer.momentum == 0.3 and not layer.training and int(layer.num_batches_tracked) == 4


def test_the_states_are_interpolated_entry_by_entry_and_integers_kept():
    a, b = bn_net(4).state_dict(), bn_net(5).state_dict()
    middle = interpolated_state(a, b, 0.25)
    assert torch.equal(middle["1.num_batches_tracked"], a["1.num_batches_tracked"])
    assert torch.allclose(middle["0.weight"], 0.75 * a["0.weight"] + 0.25 * b["0.weight"], rtol=2 * F32, atol=1e-7)
    assert all(torch.equal(interpolated_state(a, b, 1.0)[k], b[k]) for k in a if a[k].is_floating_point())
    assert all(torch.equal(interpolated_state(a, b, 0.0)[k], a[k]) for k in a)


# --- refusals ---------------------------------------------------------------------------------------------

def wider():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(5, 9), torch.nn.Tanh(), torch.nn.Dropout(0.5), torch.nn.Linear(9, 3))


def other_activation():
    net = mlp(0)
    net[1] = torch.nn.ReLU()
    return net


@pytest.mark.parametrize("make_b, error, words", [
    (wider, ModelError, r"entry '0.weight' is shaped \(8, 5\) in model_a and \(9, 5\) in model_b"),
    (other_activation, ModelError, "module '1' is a Tanh in model_a; model_b has a ReLU"),
    (lambda: torch.nn.Sequential(*mlp(0), torch.nn.Linear(3, 3)), ModelError, "module '4' is in model_b only"),
    (lambda: bn_net(0), ModelError, "module '0' is a Linear in model_a; model_b has a Conv2d"),
    (lambda: "model.pt", ModelError, "model_b: the model must be a torch.nn.Module"),
])
def test_models_that_no_line_joins_are_refused_naming_the_first_difference(make_b, error, words):
    with pytest.raises(error, match=words) as e:
        landscape.interpolate(mlp(0), make_b(), classes(8, (5,)), n=3)
    assert "\n" not in str(e.value)


def test_a_buffer_only_one_model_has_is_named():
    a, b = mlp(0), mlp(1)
    b[0].register_buffer("scale", torch.ones(1))
    with pytest.raises(ModelError, match="entry '0.scale' is in model_b only"):
        landscape.interpolate(a, b, classes(8, (5,)), n=3)


@pytest.mark.parametrize("options, error, words", [
    (dict(n=1), GridSpecError, "n=1: a line needs a whole number of points >= 2"),
    (dict(n=True), GridSpecError, "n=True"),
    (dict(n=2.5), GridSpecError, "n=2.5"),
    (dict(bn="fold"), ChoiceError, "bn='fold' is not one of recompute, keep"),
    (dict(bn_batches=0), DataError, "bn_batches=0: give a positive whole number, or None"),
    (dict(batch_size="auto"), DataError, "batch_size='auto': give a positive whole number"),
])
def test_options_out_of_range_are_refused_in_one_line(options, error, words):
    with pytest.raises(error, match=words) as e:
        landscape.interpolate(bn_net(0), bn_net(1), classes(8, (3, 5, 5)), **options)
    assert "\n" not in str(e.value)


def test_recompute_on_data_without_batches_is_refused():
    with pytest.raises(DataError, match="hold no batches"):
        landscape.interpolate(bn_net(0), bn_net(1), [], n=3, bn="recompute")


def test_a_failure_mid_line_names_the_point_and_leaves_both_models_as_they_were():
    a, b = bn_net(6), bn_net(7)
    a.train()
    saved_a, saved_b = snapshot(a), snapshot(b)
    calls = []

    def failing(outputs, targets):
        calls.append(1)
        if len(calls) > 3:  # the first-batch probe and two points pass
            raise RuntimeError("out of patience")
        return F.cross_entropy(outputs, targets)
    with pytest.raises(LandscapeError, match=r"at t = 0\.5 of the line: RuntimeError: out of patience"):
        landscape.interpolate(a, b, classes(8, (3, 5, 5)), n=5, loss=failing, batch_size=8)
    assert same(a, saved_a) and same(b, saved_b)


# --- into a results file ----------------------------------------------------------------------------------

def test_a_line_into_a_results_file_equals_the_line_in_memory_and_resumes_without_work(tmp_path):
    a, b = bn_net(8), bn_net(9)
    data, test = classes(40, (3, 5, 5)), classes(12, (3, 5, 5), 1)
    path = str(tmp_path / "line.h5")
    memory = landscape.interpolate(a, b, data, n=5, test_data=test, batch_size=16, bn_batches=2)
    saved = snapshot(a)
    filed = landscape.interpolate(a, b, data, n=5, test_data=test, batch_size=16, bn_batches=2, path=path,
                                  progress_secs=1e9)
    assert same(a, saved) and filed.path == path and filed.complete and filed.bn_batches == 2
    for name in ("t", "train_loss", "train_acc", "test_loss", "test_acc"):  # the same arithmetic, bit for bit
        assert np.array_equal(getattr(filed, name), getattr(memory, name)), name
    loaded = landscape.load(path)  # surface's layout: a 1D grid over t
    assert np.array_equal(loaded.x, memory.t) and np.array_equal(loaded.train_loss, memory.train_loss)
    before = open(path, "rb").read()
    again = landscape.interpolate(a, b, data, n=5, test_data=test, batch_size=16, bn_batches=2, path=path,
                                  progress_secs=1e9)
    assert np.array_equal(again.train_loss, memory.train_loss) and open(path, "rb").read() == before
    for other, words in ((dict(bn="keep"), "bn: file has 'recompute'"), (dict(bn_batches=1), "bn_batches"),
                         (dict(model_b=bn_net(10)), "model_b_sha256")):
        args = {"model_b": b, "bn_batches": 2, **other}
        with pytest.raises(SurfaceFileError, match=words):
            landscape.interpolate(a, args.pop("model_b"), data, n=5, test_data=test, batch_size=16, path=path,
                                  progress_secs=1e9, **args)
    assert open(path, "rb").read() == before


def test_a_stopped_line_is_unfinished_and_the_same_call_finishes_it(tmp_path):
    a, b = mlp(6), mlp(7)
    data, path, stop = classes(20, (5,)), str(tmp_path / "line.h5"), threading.Event()
    calls = []

    def stopping(outputs, targets):  # the probe and three points pass, then a stop is asked for
        calls.append(1)
        if len(calls) == 4:
            stop.set()
        return F.cross_entropy(outputs, targets)
    stopped = landscape.interpolate(a, b, data, n=40, loss=stopping, path=path, job=landscape.JobOptions(stop=stop),
                                    progress_secs=1e9)
    assert not stopped.complete and 3 <= stopped.done.sum() < 40
    assert np.isnan(stopped.train_loss[~stopped.done]).all() and np.isfinite(stopped.train_loss[stopped.done]).all()
    with pytest.raises(GridSpecError, match="of the path's 40 points are done; run the same call again"):
        stopped.barrier()
    finished = landscape.interpolate(a, b, data, n=40, loss=stopping, path=path, progress_secs=1e9)
    fresh = landscape.interpolate(a, b, data, n=40, loss=stopping)
    assert finished.complete and np.array_equal(finished.train_loss, fresh.train_loss)
    assert finished.barrier() == fresh.barrier()


LINE_SCRIPT = """
import sys
import numpy as np
import torch
import landscape
from test_interpolate import bn_net, classes
path = landscape.interpolate(bn_net(0), bn_net(1), classes(40, (3, 5, 5)), n=7, batch_size=16, bn_batches=2,
                             path=sys.argv[1].replace(".npy", ".h5"), progress_secs=1e9)
np.save(sys.argv[1], np.stack([path.t, path.train_loss, path.train_acc]))
"""


@pytest.mark.slow
def test_a_line_into_a_file_split_across_two_ranks_equals_one_process(tmp_path):
    two, = script_results(tmp_path, LINE_SCRIPT, ranks=(2,))
    one = landscape.interpolate(bn_net(0), bn_net(1), classes(40, (3, 5, 5)), n=7, batch_size=16, bn_batches=2)
    assert np.array_equal(two, np.stack([one.t, one.train_loss, one.train_acc]))


# --- python -m landscape.connect line ----------------------------------------------------------------------

def checkpoints(tmp_path, widths=(4, 4)):
    files = []
    for seed, width in enumerate(widths):
        torch.manual_seed(seed)
        files.append(str(tmp_path / f"m{seed}.t7"))
        save_checkpoint(files[-1], make_model(width), epoch=1, acc=0.0)
    return files


def loaded(*files):
    """tiny's model with each checkpoint's weights."""
    models = [make_model() for _ in files]
    for model, file in zip(models, files):
        load_weights(model, file)
    return models


def line_flags(a_file, b_file, out, *extra):
    """`connect line` on tiny's model and data, 5 points, into `out`."""
    return ["line", "--model", "tiny:make_model", "--dataset", "tiny:make_data", "--model_file", a_file,
            "--model_file2", b_file, "--n", "5", "--batch_size", "16", "--bn_batches", "2", "--out", out,
            "--progress_secs", "1e9", "--threads", "1", *extra]


def refusal(flags, capsys):
    """The exit code of connect_main(flags) (argparse's own refusals included) and what it wrote to stderr."""
    try:
        code = connect_main(flags)
    except SystemExit as e:  # argparse's own refusal
        code = e.code
    return code, capsys.readouterr().err.strip()


def test_the_command_prints_and_files_what_the_api_computes(tmp_path, capsys):
    a_file, b_file = checkpoints(tmp_path)
    out = str(tmp_path / "line.h5")
    flags = line_flags(a_file, b_file, out, "--test")
    assert connect_main(flags) == 0
    printed = capsys.readouterr().out
    train, test = load_dataset("tiny:make_data")
    a, b = loaded(a_file, b_file)
    api = landscape.interpolate(a, b, (train.x, train.y), n=5, test_data=(test.x, test.y), batch_size=16,
                                bn_batches=2)
    filed = landscape.load(out)
    for name in ("train_loss", "train_acc", "test_loss", "test_acc"):
        assert np.array_equal(filed.values[name], getattr(api, name)), name
    assert f"barrier (linear): train_loss {api.barrier('train_loss'):.6g}, train_acc" in printed
    assert f"test_acc {api.barrier('test_acc', 'mean'):.6g}" in printed
    assert "BatchNorm statistics: re-estimated from 2 batch(es)" in printed
    assert connect_main(flags) == 0 and "5/5 points already done" in capsys.readouterr().out  # the rerun resumes


@pytest.mark.parametrize("method", ["weights", "activations"])
def test_the_command_with_align_prints_and_files_both_lines_the_api_computes(tmp_path, capsys, method):
    a_file, b_file = checkpoints(tmp_path)
    out = str(tmp_path / "line.h5")
    assert connect_main(line_flags(a_file, b_file, out, "--align", method)) == 0
    printed = capsys.readouterr().out
    train, _ = load_dataset("tiny:make_data")
    a, b = loaded(a_file, b_file)
    aligned = landscape.align(a, b, method=method, data=(train.x, train.y) if method == "activations" else None)
    evaluation = dict(n=5, batch_size=16, bn_batches=2)
    line = landscape.interpolate(a, b, (train.x, train.y), **evaluation)
    after = landscape.interpolate(a, aligned.model, (train.x, train.y), **evaluation)
    assert not np.array_equal(line.train_loss[1:-1], after.train_loss[1:-1])  # the permutation moved the midpoints
    assert f"[aligned] barrier (linear): train_loss {after.barrier():.6g}, train_acc" in printed
    assert f"[line] {'train_loss (linear)':<22} {line.barrier():12.6g} {after.barrier():16.6g}" in printed
    assert np.array_equal(landscape.load(str(tmp_path / "line_aligned.h5")).values["train_loss"], after.train_loss)
    assert np.array_equal(landscape.load(out).values["train_loss"], line.train_loss)
    for name in ("line_along_t.png", "line_along_t.pdf"):
        assert (tmp_path / name).exists(), name


@pytest.mark.parametrize("widths, extra, words", [
    ((4, 4), ["--n", "1"], "n=1: a line needs a whole number of points >= 2"),
    ((4, 5), [], "m1.t7 does not fit model"),  # model_b of another width: its checkpoint is refused on loading
    ((4, 4), ["--bn", "fold"], "argument --bn: invalid choice: 'fold'"),
])
def test_the_command_refuses_bad_input_in_one_line_with_exit_2(tmp_path, capsys, widths, extra, words):
    a_file, b_file = checkpoints(tmp_path, widths)
    flags = ["line", "--model", "tiny:make_model", "--dataset", "tiny:make_data", "--model_file", a_file,
             "--model_file2", b_file, "--threads", "1", *extra]
    code, err = refusal(flags, capsys)
    assert code == 2
    assert words in err and "\n" not in err.split("error: ", 1)[-1]
