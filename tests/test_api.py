"""The Python API (landscape.surface & co.): against a brute-force loop, the driver, and under mpirun."""
import os
import re
import textwrap
import threading

import h5py
import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import landscape
from landscape.errors import DirectionError, GridSpecError, LossError, SurfaceFileError

from bruteforce import brute_force_surface, reference_direction_file
from conftest import ROOT, python_cmd, run, script_results
from tiny import make_data, make_model

XS, YS = (-1.0, 1.0, 5), (-0.5, 1.0, 3)


@pytest.fixture
def trained(tmp_path):
    torch.manual_seed(1)
    model = make_model()
    reference_direction_file(tmp_path / "dirs.h5", model, seed=0)
    return model, landscape.load_directions(tmp_path / "dirs.h5")


def quiet(**kw):
    return dict(progress_secs=1e9, **kw)


def test_surface_equals_brute_force_and_leaves_the_model_as_it_was(trained, tmp_path):
    model, dirs = trained
    model.train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    params = list(model.parameters())
    res = landscape.surface(model, make_data()[0], directions=dirs, x=XS, y=YS, batch_size=7, **quiet())
    loss, acc = brute_force_surface(before, tmp_path / "dirs.h5", np.linspace(*XS), np.linspace(*YS))
    assert res.train_loss.shape == (3, 5) and res.complete
    # The brute force sums the 48 float32 losses in one batch, the API in batches of 7, and it moves each
    # parameter by a*dx + b*dy in one step where the API adds them one after the other (a rounding of one
    # ulp more): positive terms summed in another order differ by at most 48 * 2**-24 = 2.9e-6 of the sum,
    # and one ulp of the weights moves this small net's loss by far less, so 1e-5. The argmax behind the
    # accuracy flips only at a tie of two logits within that rounding (~1e-7 of them): not among these 720.
    np.testing.assert_allclose(res.train_loss, loss, rtol=1e-5)
    np.testing.assert_allclose(res.train_acc, acc, atol=1e-9)
    assert res.test_loss is None
    assert model.training and list(model.parameters()) == params  # same objects, same mode
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


@pytest.mark.slow
def test_same_values_as_plot_surface_on_the_same_checkpoint_and_directions(trained, tmp_path):
    model, dirs = trained
    torch.save(model.state_dict(), tmp_path / "model.t7")
    out = tmp_path / "cli.h5"
    r = run(python_cmd("plot_surface.py", "--model", "tiny:make_model", "--dataset", "tiny:make_data", "--model_file",
                       str(tmp_path / "model.t7"), "--dir_file", str(tmp_path / "dirs.h5"), "--surf_file", str(out),
                       "--x=-1:1:5", "--y=-0.5:1:3", "--test", "--batch_size", "16",
                       "--threads", "1"))  # as this process runs (conftest): the same float32 sums
    assert r.returncode == 0, r.stderr
    train, test = make_data()
    res = landscape.surface(model, train, directions=dirs, x=XS, y=YS, test_data=test, batch_size=16,
                            path=str(tmp_path / "api.h5"), **quiet())
    cli = landscape.load(str(out))
    for name in ("train_loss", "train_acc", "test_loss", "test_acc"):
        np.testing.assert_array_equal(getattr(res, name), getattr(cli, name), err_msg=name)
    with h5py.File(tmp_path / "api.h5", "r") as f:  # the driver's layout
        assert f["train_loss"].shape == (3, 5) and f["surface_done"][()].all() and "surface_settings" in f.attrs


def test_path_resumes_and_refuses_other_settings(trained, tmp_path):
    model, dirs = trained
    path = str(tmp_path / "r.h5")
    first = landscape.surface(model, make_data()[0], directions=dirs, x=XS, path=path, **quiet())
    stamp = os.stat(path)
    again = landscape.surface(model, make_data()[0], directions=dirs, x=XS, path=path, **quiet())
    np.testing.assert_array_equal(first.train_loss, again.train_loss)
    assert again.train_loss.shape == (5,)
    before = open(path, "rb").read()
    with pytest.raises(SurfaceFileError, match="loss"):
        landscape.surface(model, make_data()[0], directions=dirs, x=XS, path=path, loss=F.cross_entropy, **quiet())
    # neither the resume with nothing left to do nor the refusal wrote or replaced the file (`stamp <=` held always)
    after = os.stat(path)
    assert open(path, "rb").read() == before and (after.st_ino, after.st_mtime_ns) == (stamp.st_ino, stamp.st_mtime_ns)


class TokenModel(nn.Module):
    """Integer tokens (B, T) -> next-token scores (B, T, V)."""

    def __init__(self, vocab=7, width=5):
        super().__init__()
        self.embed, self.out = nn.Embedding(vocab, width), nn.Linear(width, vocab)

    def forward(self, tokens):
        return self.out(torch.tanh(self.embed(tokens)))


def token_loss(outputs, targets):
    return F.cross_entropy(outputs.reshape(-1, outputs.shape[-1]), targets.reshape(-1))


def test_token_inputs_custom_loss_and_a_dataloader_equal_a_plain_loop():
    torch.manual_seed(0)
    model = TokenModel()
    tokens = torch.randint(0, 7, (12, 6))
    inputs, targets = tokens[:, :-1], tokens[:, 1:]
    dirs = landscape.random_directions(model, n=2, seed=3)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(inputs, targets), batch_size=5)
    res = landscape.surface(model, loader, loss=token_loss, directions=dirs, x=(-1, 1, 3), y=(0, 1, 2), **quiet())
    assert res.train_acc is None and "train_acc" not in res.values  # (B, T, V) scores: no accuracy
    for j, b in enumerate(np.linspace(0, 1, 2)):
        for i, a in enumerate(np.linspace(-1, 1, 3)):
            moved = TokenModel()
            moved.load_state_dict(model.state_dict())
            with torch.no_grad():
                for p, dx, dy in zip(moved.parameters(), dirs.x, dirs.y):
                    p.add_(a * dx + b * dy)
                want = sum(token_loss(moved(inputs[k:k + 5]), targets[k:k + 5]).item() * len(inputs[k:k + 5])
                           for k in range(0, 12, 5)) / 12
            assert res.train_loss[j, i] == pytest.approx(want, rel=1e-5)


def test_bad_losses_and_grids_are_refused_and_nan_is_stored():
    torch.manual_seed(0)
    model, data = make_model(), make_data()[0]
    with pytest.raises(LossError, match="function"):
        landscape.surface(model, data, loss=3, x=XS, **quiet())
    with pytest.raises(LossError, match="one number"):
        landscape.surface(model, data, loss=lambda o, t: F.cross_entropy(o, t, reduction="none"), x=XS, **quiet())
    with pytest.raises(GridSpecError, match="num"):
        landscape.surface(model, data, x=(-1, 1, 2.5), **quiet())
    with pytest.raises(DirectionError, match="two directions"):
        landscape.surface(model, data, directions=landscape.random_directions(model), x=XS, y=YS, **quiet())
    res = landscape.surface(model, data, loss=lambda o, t: torch.tensor(float("nan")), x=XS, **quiet())
    assert np.isnan(res.train_loss).all() and np.isnan(res.train_acc).all() and res.complete


@pytest.mark.slow
def test_random_directions_match_the_drivers_direction_file(tmp_path):
    torch.manual_seed(2)
    model = make_model()
    torch.save(model.state_dict(), tmp_path / "m.t7")
    dir_file = tmp_path / "d.h5"
    r = run(python_cmd("plot_surface.py", "--model", "tiny:make_model", "--dataset", "tiny:make_data", "--model_file",
                       str(tmp_path / "m.t7"), "--dir_file", str(dir_file), "--x=0:0:1", "--y=0:0:1", "--seed", "4"))
    assert r.returncode == 0, r.stderr
    ours, theirs = landscape.random_directions(model, n=2, seed=4), landscape.load_directions(dir_file)
    for a, b in zip(ours.x + ours.y, theirs.x + theirs.y):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    ours.save(tmp_path / "again.h5")
    for a, b in zip(ours.x, landscape.load_directions(tmp_path / "again.h5").x):
        assert torch.equal(a, b)


USER_SCRIPT = """
import sys, torch, numpy as np, landscape
from tiny import make_data, make_model
torch.manual_seed(1)
model = make_model()
res = landscape.surface(model, make_data()[0], directions=landscape.random_directions(model, n=2, seed=5),
                        x=(-1, 1, 5), y=(-0.5, 1, 3), progress_secs=1e9)
np.save(sys.argv[1], res.train_loss)
"""


@pytest.mark.slow
def test_user_script_under_mpirun_equals_one_process(tmp_path):
    one, two = script_results(tmp_path, USER_SCRIPT)
    np.testing.assert_array_equal(one, two)
    assert np.isfinite(two).all()


def test_readme_example_runs_as_written(tmp_path, monkeypatch):
    readme = open(os.path.join(ROOT, "README.md")).read()
    section = readme[readme.index("## Python API"):]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    monkeypatch.chdir(tmp_path)
    exec(compile(textwrap.dedent(code), "README.md", "exec"), {})
    assert (tmp_path / "my_surface.h5").exists()


def test_resume_reuses_the_batch_size_and_takes_the_users_settings(trained, tmp_path):
    model, dirs = trained
    path = str(tmp_path / "s.h5")
    first = landscape.surface(model, make_data()[0], directions=dirs, x=XS, path=path, batch_size=16,
                              settings={"data": "v1"}, **quiet())
    again = landscape.surface(model, make_data()[0], directions=dirs, x=XS, path=path, settings={"data": "v1"},
                              **quiet())  # batch_size auto: the file's 16, not a newly timed one
    np.testing.assert_array_equal(first.train_loss, again.train_loss)
    with pytest.raises(SurfaceFileError, match="data: file has 'v1', this run has 'v2'"):
        landscape.surface(model, make_data()[0], directions=dirs, x=XS, path=path, settings={"data": "v2"}, **quiet())


def test_the_users_own_settings_may_name_anything_x_and_y(trained, tmp_path, capsys):
    """Only the drivers' old grid spellings are read as grids; a user's x and y are compared as given."""
    model, dirs = trained
    path = str(tmp_path / "s.h5")
    mine = {"x": "pixels-v1", "y": "labels-v1"}
    first = landscape.surface(model, make_data()[0], directions=dirs, x=XS, path=path, settings=mine, **quiet())
    capsys.readouterr()
    again = landscape.surface(model, make_data()[0], directions=dirs, x=XS, path=path, settings=mine, **quiet())
    assert "5/5 points already done" in capsys.readouterr().out
    np.testing.assert_array_equal(first.train_loss, again.train_loss)
    with pytest.raises(SurfaceFileError, match="x: file has 'pixels-v1', this run has 'pixels-v2'"):
        landscape.surface(model, make_data()[0], directions=dirs, x=XS, path=path, settings=dict(mine, x="pixels-v2"),
                          **quiet())
    with pytest.raises(SurfaceFileError, match=r"x: file has 'pixels-v1', this run has \[-1.0, 1.0, 5\]"):
        landscape.surface(model, make_data()[0], directions=dirs, x=XS, path=path, settings=dict(mine, x=[-1.0, 1.0, 5]),
                          **quiet())


def test_a_stop_event_leaves_the_grid_unfinished_and_the_same_call_resumes_it(trained, tmp_path):
    model, dirs = trained
    path, stop = str(tmp_path / "s.h5"), threading.Event()
    stop.set()
    stopped = landscape.surface(model, make_data()[0], directions=dirs, x=XS, y=YS, path=path,
                                job=landscape.JobOptions(stop=stop), **quiet())
    assert not stopped.complete and not stopped.done["surface"].all()
    resumed = landscape.surface(model, make_data()[0], directions=dirs, x=XS, y=YS, path=path, **quiet())
    fresh = landscape.surface(model, make_data()[0], directions=dirs, x=XS, y=YS, **quiet())
    assert resumed.complete
    np.testing.assert_array_equal(resumed.train_loss, fresh.train_loss)


def test_a_saved_result_resumes_like_the_file_a_run_wrote(trained, tmp_path, capsys):
    """Result.save writes through the results file's own code: checksums, settings, provenance."""
    model, dirs = trained
    stop, calls = threading.Event(), []

    def loss(outputs, targets):  # asks for a stop after the probe and three points (one batch each)
        calls.append(1)
        if len(calls) == 4:
            stop.set()
        return F.cross_entropy(outputs, targets)
    kwargs = dict(loss=loss, directions=dirs, x=XS, y=YS, batch_size=64, **quiet())
    partial = landscape.surface(model, make_data()[0], job=landscape.JobOptions(stop=stop), **kwargs)  # no path
    done = partial.done["surface"]
    assert 0 < done.sum() < done.size
    partial.save(tmp_path / "saved.h5")
    with pytest.raises(SurfaceFileError, match="exists"):
        partial.save(tmp_path / "saved.h5")
    capsys.readouterr()
    resumed = landscape.surface(model, make_data()[0], path=str(tmp_path / "saved.h5"), **kwargs)
    assert f"{int(done.sum())}/{done.size} points already done" in capsys.readouterr().out
    fresh = landscape.surface(model, make_data()[0], **kwargs)
    assert resumed.complete
    np.testing.assert_array_equal(resumed.train_loss, fresh.train_loss)
    np.testing.assert_array_equal(resumed.train_loss[done], partial.train_loss[done])  # kept, verified
    fresh.save(tmp_path / "complete.h5")
    before = open(tmp_path / "complete.h5", "rb").read()
    again = landscape.surface(model, make_data()[0], path=str(tmp_path / "complete.h5"), **kwargs)
    assert again.complete and open(tmp_path / "complete.h5", "rb").read() == before  # finished: not rewritten
    with h5py.File(tmp_path / "complete.h5", "r+") as f:
        f["train_loss"][0, 0] += 1.0  # a saved value that no longer matches its checksum is named
    with pytest.raises(SurfaceFileError, match="do not match their checksum"):
        landscape.surface(model, make_data()[0], path=str(tmp_path / "complete.h5"), **kwargs)


def test_refine_computes_fewer_points_and_interpolates_the_rest(trained):
    model, dirs = trained
    res = landscape.surface(model, make_data()[0], directions=dirs, x=(-1, 1, 17), y=(-1, 1, 17),
                            refine=landscape.Refine(0.5, budget=100), **quiet())
    done = res.done["surface"]
    assert res.complete and 0 < done.sum() < done.size
    np.testing.assert_array_equal(res.train_loss_interp[done], res.train_loss[done])
    assert np.isfinite(res.train_loss_interp).all()
    with pytest.raises(GridSpecError, match="refine on test_loss"):
        landscape.surface(model, make_data()[0], directions=dirs, x=XS, y=YS, refine=landscape.Refine(0.1, "test_loss"))


def test_named_losses_equal_the_drivers_sums(trained):
    model, dirs = trained
    data = make_data()[0]
    named = landscape.surface(model, data, directions=dirs, x=XS, loss="mse", batch_size=16, **quiet())
    mean_mse = lambda o, t: ((torch.softmax(o, 1) - F.one_hot(t, o.shape[1]).float()) ** 2).mean(1).mean()
    own = landscape.surface(model, data, directions=dirs, x=XS, loss=mean_mse, batch_size=16, **quiet())
    # the same float32 terms summed per batch of 16 (mse_sum) or as 16 x their float32 mean: each a float32
    # sum of 16 positive terms, at most 16 * 2**-24 = 1e-6 apart, then added in float64: 1e-5 leaves 10x
    np.testing.assert_allclose(named.train_loss, own.train_loss, rtol=1e-5)
    with pytest.raises(LossError, match="'hinge' is not one of crossentropy, mse"):
        landscape.surface(model, data, directions=dirs, x=XS, loss="hinge", **quiet())


def test_the_test_set_takes_the_train_sets_batch_size(trained, capsys):
    model, dirs = trained
    train, test = make_data()
    landscape.surface(model, train, directions=dirs, x=XS, test_data=test, **quiet())
    assert capsys.readouterr().out.count("evaluation batch size") == 1  # timed once, used for both sets


def test_a_reference_file_of_state_directions_without_attributes_is_read_as_states(tmp_path):
    from landscape.files.directions import Directions, write_directions
    torch.manual_seed(0)
    model = make_model()
    states = landscape.random_directions(model, n=2, dir_type="states", seed=1)
    write_directions(tmp_path / "ref.h5", Directions(states.x, states.y, {}))  # the reference code writes no attrs
    bare = landscape.load_directions(tmp_path / "ref.h5")
    assert "dir_type" not in bare.attrs
    got = landscape.surface(model, make_data()[0], directions=bare, x=XS, y=YS, batch_size=16, **quiet())
    want = landscape.surface(model, make_data()[0], directions=states, x=XS, y=YS, batch_size=16, **quiet())
    np.testing.assert_array_equal(got.train_loss, want.train_loss)


def test_bad_choices_are_refused_before_any_file_is_written(tmp_path):
    from landscape.errors import DataError, DeviceError, LandscapeError
    model, data = make_model(), make_data()[0]
    path = tmp_path / "never.h5"
    for kwargs, error, message in [(dict(precision="fp16"), LandscapeError, "fp16"),
                                   (dict(precision="tf32"), DeviceError, "NVIDIA GPUs only"),
                                   (dict(batch_size=0), DataError, "batch_size=0"),
                                   (dict(batch_size=2.5), DataError, "batch_size=2.5")]:
        with pytest.raises(error, match=message):
            landscape.surface(model, data, x=XS, path=str(path), **kwargs, **quiet())
    for kwargs, message in [(dict(samples=0), "samples=0"), (dict(hvp_batch=-1), "hvp_batch=-1"),
                            (dict(density="3/40"), "give whole numbers of probes")]:
        with pytest.raises(LandscapeError, match=message):
            landscape.hessian_map(model, data, x=XS, path=str(path), **kwargs, **quiet())
    assert not path.exists()
    assert landscape.surface(model, data, x=XS, y="", batch_size=16, **quiet()).train_loss.shape == (5,)


class Pairs(torch.utils.data.Dataset):
    def __init__(self, x, y):
        self.x, self.y = x, y

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return self.x[i], self.y[i]


def test_a_shuffled_loader_resumes_over_tensors_and_is_refused_otherwise(trained, tmp_path):
    from landscape.errors import DataError
    model, dirs = trained
    x, y = make_data()[0]
    over_tensors = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=16, shuffle=True)
    path = str(tmp_path / "s.h5")
    first = landscape.surface(model, over_tensors, directions=dirs, x=XS, path=path, **quiet())
    again = landscape.surface(model, over_tensors, directions=dirs, x=XS, path=path, **quiet())  # same digest
    np.testing.assert_array_equal(first.train_loss, again.train_loss)
    other = torch.utils.data.DataLoader(Pairs(x, y), batch_size=16, shuffle=True)
    with pytest.raises(DataError, match="shuffled DataLoader"):
        landscape.surface(model, other, directions=dirs, x=XS, path=str(tmp_path / "t.h5"), **quiet())
    landscape.surface(model, other, directions=dirs, x=XS, path=str(tmp_path / "t.h5"), settings={"data": "mine"},
                      **quiet())


def test_every_module_gets_its_own_mode_back():
    """A wrapper in train mode around a model left in eval mode (a HuggingFace model inside a LoRA or a
    Lightning module): each module's mode comes back as it was, not the wrapper's for all."""
    inner = make_model()
    wrapper = torch.nn.Sequential(inner).train()
    inner.eval()
    before = [m.training for m in wrapper.modules()]
    landscape.surface(wrapper, make_data()[0], x=(-1, 1, 3), **quiet())
    assert [m.training for m in wrapper.modules()] == before and before[0] and not before[1]
