"""Every error a user can cause is one line, before anything is written (issue 20, kind 8).

A table-driven sweep: the command-line cases run a driver's main in this process and expect exit 2,
one `error:` line, no traceback and the folder unchanged; the API cases expect a LandscapeError that
names the problem and no file. Each kind has siblings of the example that was reported.
"""
import math
import os
import shutil

import h5py
import numpy as np
import pytest
import torch
import torch.nn as nn

import landscape
from landscape.cli import hessian as hessian_cli
from landscape.cli import render as render_cli
from landscape.cli import surface as surface_cli
from landscape.errors import LandscapeError, PointError

from broken import NoParameters, OnlyIntegerBuffers, Returns, make_fails_off_the_start
from tiny import make_data, make_model

TINY_DATA = ["--dataset", "tiny:make_data"]
TINY_MODEL = ["--model", "tiny:make_model"]
MAINS = {"surface": surface_cli.main, "hessian": hessian_cli.main}
DRIVER_FLAGS = {"surface": ["--batch_size", "64"], "hessian": ["--max_iter", "5"]}


def listing(folder):
    return {name: open(os.path.join(folder, name), "rb").read() for name in sorted(os.listdir(folder))}


def refused(capsys, folder, main, argv, made=()):
    """Run `main(argv)`: exit 2, one `error:` line, no traceback, nothing in `folder` changed but the files
    named in `made`; the line."""
    before = listing(folder)
    try:
        code = main(argv)
    except SystemExit as e:  # argparse refusals
        code = e.code
    out, err = capsys.readouterr()
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2, out + err
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in out + err, err
    assert {k: v for k, v in listing(folder).items() if k not in made} == before
    return lines[0]


def files_of(folder, tag="run"):
    return ["--dir_file", str(folder / f"{tag}_dirs.h5"), "--surf_file", str(folder / f"{tag}_surf.h5")]


# (case id, drivers, flags, words the line must hold)
CLI_CASES = [
    # coordinates that overflow float32 (the parameters) or float64 (the grid), or are no numbers at all
    ("x beyond float32", ("surface", "hessian"), ["--x=-1e39:1e39:3"], "overflows the model's float32"),
    ("y beyond float32", ("surface",), ["--x=-1:1:3", "--y=-1e39:1e39:3"], "overflows the model's float32"),
    ("x one-sided beyond float32", ("surface",), ["--x=0:5e38:2"], "overflows the model's float32"),
    ("x span beyond float64", ("surface", "hessian"), ["--x=-1e308:1e308:3"], "overflows a float64"),
    ("x beyond float64", ("surface",), ["--x=-1e309:1:3"], "must be finite"),
    ("x -inf", ("surface",), ["--x=-inf:1:3"], "must be finite"),
    ("x inf", ("surface",), ["--x=-1:inf:3"], "must be finite"),
    ("x nan", ("surface", "hessian"), ["--x=nan:1:3"], "must be finite"),
    ("y nan", ("surface",), ["--x=-1:1:3", "--y=-1:nan:3"], "must be finite"),
    ("x 0 steps", ("surface",), ["--x=-1:1:0"], "at least 1"),
    ("x steps finer than float64", ("surface",), ["--x=1:1.0000000000000002:5"], "closer than float64"),
    ("x huge step count", ("surface", "hessian"), ["--x=-1:1:100000000000"], "of memory"),
    ("x*y huge step count", ("surface",), ["--x=-1:1:1000000", "--y=-1:1:1000000"], "of memory"),
    # a synthetic data set too large for memory
    ("synthetic train too large", ("surface", "hessian"),
     ["--dataset", "synthetic", "--synthetic_size", "100000000000", "10"], "synthetic data"),
    ("synthetic test too large", ("surface",),
     ["--dataset", "synthetic", "--synthetic_size", "10", "100000000000000000"], "of memory"),
    # a model whose forward fails (the first-batch check, or the batch-size probe)
    ("model shape mismatch", ("surface", "hessian"), ["--model", "broken:returns"], "shapes cannot be multiplied"),
    ("model raises", ("surface", "hessian"),
     ["--model", "broken:returns", "--model_kwargs", '{"how": "runtime_error"}'], "deliberate failure"),
    ("model fails in the batch-size probe", ("surface",),
     ["--model", "broken:returns", "--model_kwargs", '{"how": "big_batch_error"}', "--batch_size", "auto"],
     "batch-size probe"),
    # a model with nothing to move
    ("model without parameters", ("surface", "hessian"), ["--model", "broken:no_parameters"], "no floating-point"),
    ("model with integer buffers only", ("surface",), ["--model", "broken:only_integer_buffers"], "no floating-point"),
    ("model not a module", ("surface",), ["--model", "broken:not_a_module"], "not a torch.nn.Module"),
    # outputs the loss cannot take
    ("model returns a tuple", ("surface", "hessian"),
     ["--model", "broken:returns", "--model_kwargs", '{"how": "tuple"}'], "returns a tuple"),
    ("model returns a dict without logits", ("surface",),
     ["--model", "broken:returns", "--model_kwargs", '{"how": "scores"}'], "returns a dict with keys scores"),
    ("model returns None", ("surface",),
     ["--model", "broken:returns", "--model_kwargs", '{"how": "none"}'], "returns None"),
    # targets that do not fit the loss
    ("float targets", ("surface", "hessian"), ["--dataset", "broken:float_targets"], "do not fit the loss"),
    ("(N, 2) targets", ("surface", "hessian"), ["--dataset", "broken:pair_targets"], "do not fit the loss"),
    ("(N, 2) float targets", ("surface",), ["--dataset", "broken:float_pair_targets"], "do not fit the loss"),
    ("(N, 1) targets", ("surface",), ["--dataset", "broken:column_targets"], "do not fit the loss"),
    ("(N, 2) targets with mse", ("surface",), ["--dataset", "broken:pair_targets", "--loss_name", "mse"],
     "do not fit the loss mse"),
    ("NaN inputs", ("surface", "hessian"), ["--dataset", "broken:nan_inputs"], "non-finite"),
]


@pytest.mark.parametrize("case,driver,flags,named", [
    pytest.param(case, driver, flags, named, id=f"{driver}: {case}")
    for case, drivers, flags, named in CLI_CASES for driver in drivers])
def test_the_drivers_refuse_in_one_line(tmp_path, capsys, case, driver, flags, named):
    given = flags
    defaults = [*([] if "--model" in given else TINY_MODEL), *([] if "--dataset" in given else TINY_DATA),
                *([] if any(f.startswith("--x") for f in given) else ["--x=-1:1:3"])]
    # the batch-size probe runs in the API call, after the driver has made its direction file (an input
    # of the run, complete and reusable); no results file is made
    made = ("run_dirs.h5",) if "batch-size probe" in case else ()
    line = refused(capsys, tmp_path, MAINS[driver], [*defaults, *DRIVER_FLAGS[driver], *given, *files_of(tmp_path)],
                   made)
    assert named in line, line
    assert not os.path.exists(tmp_path / "run_surf.h5")


@pytest.fixture(scope="module")
def direction_file(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("dirs")
    assert surface_cli.main([*TINY_MODEL, *TINY_DATA, "--x=-1:1:3", "--y=-1:1:3", *files_of(tmp, "made")]) == 0
    other = tmp / "other.h5"
    with h5py.File(other, "w") as f:
        f["something"] = np.arange(3)
    return tmp / "made_dirs.h5", other


@pytest.mark.parametrize("which", ["direction file", "other HDF5 file"])
@pytest.mark.parametrize("flags", [[], ["--html", "{out}/p.html"], ["--vtk", "{out}/p.vts"], ["--png"]])
def test_render_refuses_a_file_that_is_not_a_results_file(direction_file, tmp_path, capsys, which, flags):
    path = direction_file[0] if which == "direction file" else direction_file[1]
    before = listing(path.parent)
    line = refused(capsys, tmp_path, render_cli.main, [str(path), *[f.format(out=tmp_path) for f in flags]])
    assert "is not a results file" in line and (which != "direction file" or "a direction file" in line)
    assert listing(path.parent) == before


@pytest.mark.parametrize("driver", ["surface", "hessian"])
def test_a_direction_file_given_as_the_results_file_is_refused(direction_file, tmp_path, capsys, driver):
    dirs = direction_file[0]
    other = tmp_path / "other_dirs.h5"  # a direction file this run does not read (its own is refused as an input)
    shutil.copy(dirs, other)
    before = listing(dirs.parent)
    flags = [*TINY_MODEL, *TINY_DATA, "--x=-1:1:3", "--y=-1:1:3", *DRIVER_FLAGS[driver], "--dir_file", str(dirs),
             "--surf_file", str(other)]
    line = refused(capsys, tmp_path, MAINS[driver], flags)
    assert "not a results file" in line
    assert listing(dirs.parent) == before


@pytest.mark.parametrize("which", ["direction file", "other HDF5 file"])
def test_load_refuses_a_file_that_is_not_a_results_file(direction_file, which):
    path = direction_file[0] if which == "direction file" else direction_file[1]
    with pytest.raises(LandscapeError, match="is not a results file"):
        landscape.load(path)


# ---- the API: (case id, model maker, data maker, call keywords, words the error must hold)
def _data(n=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 3, 8, 8, generator=g), torch.randint(0, 10, (n,), generator=g)


def _with_nan(value):
    x, y = _data()
    x = x.clone()
    x[3, 0, 1, 1] = value
    return x, y


API_CASES = [
    *[(f"output {how}", lambda how=how: Returns(how), _data, {}, words)
      for how, words in (("scores", "returns a dict with keys scores"), ("tuple", "returns a tuple of 2"),
                         ("list", "returns a list of 1"), ("none", "returns None"),
                         ("scalar", "returns a float32 tensor of shape ()"), ("integers", "returns an int64 tensor"),
                         ("flat", "returns a float32 tensor of shape (160,)"))],
    ("forward shape error", lambda: Returns("shape_error"), _data, {}, "shapes cannot be multiplied"),
    ("forward raises", lambda: Returns("runtime_error"), _data, {}, "deliberate failure in forward"),
    ("not a module: function", lambda: (lambda x: x), _data, {}, "must be a torch.nn.Module, got a function"),
    ("not a module: state dict", lambda: make_model().state_dict(), _data, {}, "must be a torch.nn.Module"),
    ("no parameters", NoParameters, _data, {}, "no floating-point parameters"),
    ("integer buffers only", OnlyIntegerBuffers, _data, {}, "no floating-point parameters"),
    ("one tensor", make_model, lambda: _data()[0], {}, "data is a float32 tensor"),
    ("one numpy array", make_model, lambda: _data()[0].numpy(), {}, "numpy array"),
    ("three tensors", make_model, lambda: (*_data(), _data()[1]), {}, "holds 3 tensors"),
    ("numpy pair", make_model, lambda: tuple(t.numpy() for t in _data()), {}, "give torch tensors"),
    ("dict of tensors", make_model, lambda: dict(zip("xy", _data())), {}, "data is a dict"),
    ("one tensor in a list", make_model, lambda: [_data()[0]], {}, "holds 1 tensors"),
    ("batches that are not pairs", make_model, lambda: [(_data()[0],), (_data()[0],)], {}, "each batch"),
    ("empty pair", make_model, lambda: tuple(t[:0] for t in _data()), {}, "more than 0"),
    ("empty batches", make_model, lambda: [], {}, "no batches"),
    ("targets of the wrong length", make_model, lambda: (_data()[0], _data()[1][:20]), {}, "same number of samples"),
    ("NaN inputs", make_model, lambda: _with_nan(math.nan), {}, "non-finite"),
    ("inf inputs", make_model, lambda: _with_nan(math.inf), {}, "non-finite"),
    ("-inf inputs", make_model, lambda: _with_nan(-math.inf), {}, "non-finite"),
    ("NaN float targets", make_model, lambda: (_data()[0], torch.full((32,), math.nan)), {}, "targets of data hold"),
    ("float targets", make_model, lambda: (_data()[0], torch.rand(32)), {}, "do not fit the loss crossentropy"),
    ("(N, 2) targets", make_model, lambda: (_data()[0], torch.randint(0, 10, (32, 2))), {}, "do not fit the loss"),
    ("class index beyond the outputs", make_model, lambda: (_data()[0], _data()[1] + 10), {}, "is outside [0, 10)"),
    ("negative class index", make_model, lambda: (_data()[0], _data()[1] - 20), {}, "is outside [0, 10)"),
    ("batches with float targets", make_model, lambda: [(_data()[0], torch.rand(32))], {}, "do not fit the loss"),
    ("batches with tuple targets", make_model, lambda: [(_data()[0], (_data()[1],))], {}, "must be a tensor"),
    ("user loss that fails", make_model, _data, dict(loss=lambda o, t: o.logits), "AttributeError"),
    ("x beyond float32", make_model, _data, dict(x=(-1e39, 1e39, 3)), "overflows the model's float32"),
    ("y beyond float32", make_model, _data, dict(x=(-1, 1, 3), y=(0, 1e39, 2)), "overflows the model's float32"),
    ("x span beyond float64", make_model, _data, dict(x=(-1e308, 1e308, 3)), "overflows a float64"),
    ("x nan", make_model, _data, dict(x=(math.nan, 1, 3)), "must be finite"),
    ("x -inf", make_model, _data, dict(x=(-math.inf, 1, 3)), "must be finite"),
    ("x 0 steps", make_model, _data, dict(x=(-1, 1, 0)), "at least 1"),
    ("x steps finer than float64", make_model, _data, dict(x=(1, 1.0000000000000002, 5)), "closer than float64"),
    ("device not a choice", make_model, _data, dict(device="tpu"), "is not one of auto, cpu, cuda"),
    ("directions a missing file", make_model, _data, dict(directions="nope.h5"), "nope.h5"),
    ("directions a list", make_model, _data, dict(directions=[torch.zeros(3)]), "directions must be"),
]


@pytest.mark.parametrize("function", ["surface", "hessian_map"])
@pytest.mark.parametrize("case,model_of,data_of,keywords,named", [
    pytest.param(*case, id=case[0]) for case in API_CASES])
def test_the_api_refuses_with_a_landscape_error(tmp_path, function, case, model_of, data_of, keywords, named):
    path = tmp_path / "out.h5"
    call = dict(x=(-1, 1, 3), path=path, **({"max_iter": 5} if function == "hessian_map" else {}))
    call.update(keywords)
    with pytest.raises(LandscapeError) as raised:
        getattr(landscape, function)(model_of(), data_of(), **call)
    assert named in str(raised.value) and "\n" not in str(raised.value), str(raised.value)
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("model", [lambda: (lambda x: x), NoParameters])
def test_random_directions_refuses_what_is_not_a_model_with_parameters(model):
    with pytest.raises(LandscapeError, match="torch.nn.Module|no floating-point parameters"):
        landscape.random_directions(model())


def test_a_model_failing_in_the_batch_size_probe_is_named(tmp_path):
    with pytest.raises(LandscapeError, match="batch-size probe: RuntimeError: deliberate failure on a batch of 32"):
        landscape.surface(Returns("big_batch_error"), _data(), x=(-1, 1, 3), path=tmp_path / "out.h5")
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("how", ["tuple", "dict"])
def test_outputs_that_a_users_loss_takes_are_accepted(tmp_path, how):
    """The refusal of non-tensor outputs is about the named losses: a loss that takes them runs, and its
    values equal those of the plain model with cross-entropy."""
    pick = (lambda o: o[0]) if how == "tuple" else (lambda o: o["logits"])
    torch.manual_seed(0)
    wrapped = Returns(how)
    plain = nn.Sequential(*wrapped.inner)  # the same modules, so the same weights and directions
    dirs = landscape.random_directions(plain, 1)
    got = landscape.surface(wrapped, _data(), loss=lambda o, t: nn.functional.cross_entropy(pick(o), t),
                            directions=landscape.Directions([d for d in dirs.x], None, {}), x=(-1, 1, 3))
    want = landscape.surface(plain, _data(), directions=dirs, x=(-1, 1, 3))
    np.testing.assert_allclose(got.train_loss, want.train_loss, rtol=1e-6)
    if how == "tuple":
        assert got.train_acc is None  # no accuracy of outputs where no logits are found
    else:  # the logits are found under "logits": accuracy applies
        np.testing.assert_array_equal(got.train_acc, want.train_acc)


@pytest.mark.parametrize("how", ["namespace", "dataclass", "dict"])
@pytest.mark.parametrize("api", ["surface", "hessian_map"])
def test_named_losses_read_logits_from_objects_and_dicts(how, api):
    """Outputs with .logits (HuggingFace's ModelOutput, a namespace, a dataclass) or ["logits"] are read by the
    named losses: every value equals the plain model's, accuracy included."""
    torch.manual_seed(0)
    wrapped = Returns(how)
    plain = nn.Sequential(*wrapped.inner)
    dirs = landscape.random_directions(plain, 1)
    call = getattr(landscape, api)
    extra = {} if api == "surface" else {"tol": 1e-4}
    got = call(wrapped, _data(), directions=landscape.Directions([d for d in dirs.x], None, {}), x=(-1, 1, 3), **extra)
    want = call(plain, _data(), directions=dirs, x=(-1, 1, 3), **extra)
    for name in ("train_loss", "train_acc") if api == "surface" else ("max_eig", "min_eig"):
        np.testing.assert_allclose(getattr(got, name), getattr(want, name), rtol=1e-6)


@pytest.mark.parametrize("driver", ["surface", "hessian"])
def test_a_model_that_fails_mid_grid_is_one_line_and_exit_3(tmp_path, capsys, driver):
    flags = ["--model", "broken:make_fails_off_the_start", *TINY_DATA, "--x=-1:1:3", *DRIVER_FLAGS[driver],
             "--dir_file", str(tmp_path / "d.h5"), "--surf_file", str(tmp_path / "s.h5")]
    code = MAINS[driver](flags)
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 3 and len(lines) == 1 and "Traceback" not in err, err
    assert "failed at point" in lines[0] and "breaks away from its start" in lines[0]
    assert lines[0].endswith(f"the results in {tmp_path / 's.h5'} are kept (exit 3)")
    with pytest.raises(PointError, match="breaks away from its start"):
        getattr(landscape, "surface" if driver == "surface" else "hessian_map")(
            make_fails_off_the_start(), make_data()[0], x=(-1, 1, 3), **({"max_iter": 5} if driver == "hessian" else {}))


class OnlyBiases(nn.Module):
    """Parameters of one dimension only: the reference's Hessian subset (more than one dimension) is empty."""

    def __init__(self):
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(10))

    def forward(self, x):
        return x.reshape(len(x), -1)[:, :10] + self.bias


@pytest.mark.parametrize("keywords,named", [
    (dict(tol=math.inf), "need 0 < tol < 1"), (dict(tol=5.0), "need 0 < tol < 1"), (dict(seed="a"), "seed='a'"),
    (dict(seed=1.5), "seed=1.5"), (dict(model=OnlyBiases()), "Hessian parameter names must be a non-empty list"),
])
def test_the_hessian_maps_own_choices_are_refused_in_one_line(tmp_path, keywords, named):
    model = keywords.pop("model", None) or make_model()
    with pytest.raises(LandscapeError) as raised:
        landscape.hessian_map(model, make_data()[0], x=(-1, 1, 3), max_iter=5, path=tmp_path / "h.h5", **keywords)
    assert named in str(raised.value) and "\n" not in str(raised.value)


@pytest.mark.parametrize("flags,named", [
    (["--lr", "nan"], "--lr must be a finite number > 0"),
    (["--lr", "-1"], "--lr must be a finite number > 0"),
    (["--weight_decay", "inf"], "--weight_decay must be a finite number >= 0"),
    (["--momentum", "nan"], "--momentum must be a finite number >= 0"),
    (["--save", "{file}"], "is a file"),
    (["--save", "{file}/sub"], "cannot create the --save folder"),
    (["--model", "broken:no_parameters"], "no floating-point parameters"),
    (["--model", "broken:returns"], "fails on the first 16 input(s)"),
    (["--dataset", "broken:float_targets"], "do not fit the loss"),
    (["--model", "broken:big_batch_error", "--batch_size", "32"], "training failed: RuntimeError"),
])
def test_the_trainer_refuses_in_one_line(tmp_path, capsys, flags, named):
    from landscape.cli.train import main as train_main
    (tmp_path / "plain").write_text("a file")
    flags = [f.format(file=tmp_path / "plain") for f in flags]
    base = ["--model", "tiny:make_model", "--dataset", "tiny:make_data", "--epochs", "1", "--noaug",
            "--save", str(tmp_path / "run")]
    try:
        code = train_main([*base, *flags])
    except SystemExit as e:  # the parser's refusals
        code = e.code
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err and named in err.splitlines()[-1], err
