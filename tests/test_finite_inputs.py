"""Every tensor read from a file is checked for NaN and inf before use: directions, checkpoints (weights,
buffers, optimizer state), data, projections; on the command line and through the API. One such value
would make points NaN (or the whole grid) and the run would still end 'complete'."""
import math
import os
import shutil

import h5py
import numpy as np
import pytest
import torch

import landscape
from landscape.cli.hessian import main as hessian_main
from landscape.errors import CheckpointError, DataError, DirectionError, ModelError
from landscape.files.directions import Directions
from landscape.files.pca_record import load_plane
from landscape.files.projection import read_projection, write_projection
from landscape.inputs.checkpoint import load_weights, save_checkpoint
from landscape.space.finite import first_nonfinite, nonfinite_count
from landscape.training.trainer import resume, save_state

from test_bad_input import GRID_2D, paths, refused
from tiny import make_data, make_model


def poisoned_copy(made, tmp_path, group, index, value, where=(0,)):
    """A copy of the made 2D direction file with `value` at `where` in group/index."""
    shutil.copy(made / "dirs.h5", tmp_path / "dirs.h5")
    with h5py.File(tmp_path / "dirs.h5", "r+") as f:
        data = f[group][str(index)][()]
        if where is None:
            data[...] = value
        else:
            data.reshape(-1)[list(where)] = value
        f[group][str(index)][...] = data
    return tmp_path / "dirs.h5"


@pytest.mark.parametrize("group,index,value,where", [
    ("xdirection", 0, math.nan, None),          # every value NaN: every point NaN
    ("xdirection", 3, math.nan, (1, 2)),       # two values in a bias
    ("ydirection", 6, math.inf, (0,)),         # one inf in the last layer
    ("ydirection", 0, -math.inf, (5,)),
])
def test_a_direction_file_with_nan_or_inf_is_refused_before_any_results_file(made, tmp_path, capsys, group, index,
                                                                             value, where):
    poisoned_copy(made, tmp_path, group, index, value, where)
    line = refused(capsys, tmp_path, *GRID_2D, *paths(tmp_path))
    assert f"{group}/{index}" in line and "NaN or infinite" in line
    assert not os.path.exists(tmp_path / "surf.h5")


def test_the_hessian_driver_refuses_a_poisoned_direction_file(made, tmp_path, capsys):
    poisoned_copy(made, tmp_path, "xdirection", 1, math.nan)
    code = hessian_main(["--model", "tiny:make_model", "--dataset", "tiny:make_data", *GRID_2D, *paths(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2 and "xdirection/1" in err and err.count("\n") == 1
    assert not os.path.exists(tmp_path / "surf.h5")


@pytest.mark.parametrize("call", ["surface", "hessian_map"])
def test_the_api_refuses_nan_directions_from_a_file_and_from_memory(made, tmp_path, call):
    poisoned_copy(made, tmp_path, "ydirection", 2, math.inf, (0,))
    model, data = make_model(), make_data()[0]
    with pytest.raises(DirectionError, match=r"ydirection/2 .* 1 NaN or infinite"):
        getattr(landscape, call)(model, data, directions=landscape.load_directions(str(tmp_path / "dirs.h5")),
                                 x=(-1, 1, 3), y=(-1, 1, 3), path=str(tmp_path / "r.h5"))
    good = landscape.random_directions(model, n=1)
    bad = Directions([t.clone() for t in good.x], None, good.attrs)
    bad.x[0].view(-1)[0] = math.nan
    with pytest.raises(DirectionError, match="xdirection/0"):
        getattr(landscape, call)(model, data, directions=bad, x=(-1, 1, 3), path=str(tmp_path / "r.h5"))
    assert sorted(os.listdir(tmp_path)) == ["dirs.h5"]


def poisoned_checkpoint(path, key, value):
    model = make_model()
    with torch.no_grad():
        model.state_dict()[key].view(-1)[0] = value
    save_checkpoint(path, model, epoch=1, acc=0.0)
    return str(path)


@pytest.mark.parametrize("key,value", [("0.weight", math.nan), ("1.running_var", math.inf), ("7.bias", -math.inf)])
def test_a_checkpoint_with_nan_or_inf_is_refused_as_model_and_as_target(made, tmp_path, capsys, key, value):
    bad = poisoned_checkpoint(tmp_path / "bad.t7", key, value)
    with pytest.raises(CheckpointError, match=f"'{key}' holds 1 NaN or infinite"):
        load_weights(make_model(), bad)
    line = refused(capsys, tmp_path, *GRID_2D, "--model_file", bad, "--surf_file", str(tmp_path / "s.h5"))
    assert key in line
    line = refused(capsys, tmp_path, "--x=0:1:3", "--model_file2", bad, "--dir_file", str(tmp_path / "d.h5"))
    assert key in line  # the interpolation target: refused before its direction file is written


def test_data_files_with_nan_inputs_or_targets_are_refused(tmp_path, capsys):
    (x, y), _ = make_data()
    torch.save(dict(x=x, y=y.float().masked_fill(torch.arange(len(y)) == 3, math.nan)), tmp_path / "targets.pt")
    bad_x = x.clone()
    bad_x[2, 1, 0, 0] = math.inf
    np.savez(tmp_path / "inputs.npz", x=bad_x.numpy(), y=y.numpy())
    line = refused(capsys, tmp_path, "--x=0:1:3", "--dataset", str(tmp_path / "targets.pt"),
                   "--loss", "torch.nn.functional:mse_loss")
    assert "targets hold 1 non-finite" in line
    line = refused(capsys, tmp_path, "--x=0:1:3", "--dataset", str(tmp_path / "inputs.npz"))
    assert "inputs hold 1 non-finite" in line and "sample 2" in line


def test_a_resume_from_an_optimizer_state_with_nan_is_refused(tmp_path):
    model = make_model()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    model(torch.randn(2, 3, 8, 8)).sum().backward()
    optimizer.step()
    optimizer.state[next(iter(model.parameters()))]["momentum_buffer"].view(-1)[4] = math.nan
    save_state(str(tmp_path), 1, model, 0.0, optimizer, torch.Generator(), torch.device("cpu"), {})
    with pytest.raises(CheckpointError, match="momentum_buffer of parameter 0 holds 1 NaN"):
        resume(str(tmp_path), 1, make_model(), torch.optim.SGD(make_model().parameters(), lr=0.1, momentum=0.9),
               torch.Generator(), torch.device("cpu"), {})


def test_projection_and_pca_direction_files_with_nan_are_refused(made, tmp_path):
    write_projection(str(tmp_path / "p.h5"), np.array([0.0, math.nan]), np.array([1.0, 2.0]),
                     [("a.t7", "0" * 64), ("b.t7", "1" * 64)], {})
    with pytest.raises(DirectionError, match="proj_xcoord holds 1 NaN"):
        read_projection(str(tmp_path / "p.h5"))
    dirs = poisoned_copy(made, tmp_path, "ydirection", 4, math.nan, (0,))
    entries = [t for _, t in make_model().named_parameters()]
    names = [n for n, _ in make_model().named_parameters()]
    with pytest.raises(DirectionError, match="ydirection/4"):
        load_plane(str(dirs), names, [t.shape for t in entries])


def test_the_count_sees_nan_and_inf_in_any_float_type_and_none_in_integers():
    assert nonfinite_count(torch.tensor([1.0, math.nan, math.inf, -math.inf])) == 3
    assert nonfinite_count(np.array([1e300, 1e308 * 10], dtype=np.float64)) == 1
    assert nonfinite_count(torch.tensor([1.0, 2.0], dtype=torch.bfloat16)) == 0
    assert nonfinite_count(torch.tensor([complex(1, math.nan)])) == 1
    assert nonfinite_count(torch.arange(5)) == 0 and nonfinite_count(torch.ones(3, dtype=torch.bool)) == 0
    assert first_nonfinite([("a", torch.ones(2)), ("b", torch.tensor([math.nan])), ("c", torch.tensor([math.inf]))]) \
        == ("b", 1)
    assert first_nonfinite([("a", torch.ones(2))]) is None


@pytest.mark.parametrize("call", ["surface", "hessian_map"])
@pytest.mark.parametrize("where", [0, 2])  # the first batch (refused before any file), a later one (mid-grid)
def test_the_api_refuses_nan_in_any_batch_of_an_iterable(tmp_path, call, where):
    (x, y), _ = make_data()
    batches = [(x[k:k + 16].clone(), y[k:k + 16]) for k in range(0, 48, 16)]
    batches[where][0][3, 0, 1, 1] = math.nan
    model = make_model()
    with pytest.raises(DataError, match=f"the inputs of (the first batch of the data|batch {where} of the data) "
                                        f"hold 1 non-finite"):
        getattr(landscape, call)(model, batches, x=(-1, 1, 3), path=str(tmp_path / "r.h5"),
                                 **({"max_iter": 5} if call == "hessian_map" else {}))
    assert os.path.exists(tmp_path / "r.h5") == (where > 0)  # a later batch is seen at the first point


def test_a_model_with_nan_weights_is_named_as_the_model_not_as_its_directions(tmp_path, capsys):
    from broken import make_nan_weight_model
    line = refused(capsys, tmp_path, "--x=-1:1:3", "--model", "broken:make_nan_weight_model",
                   "--dir_file", str(tmp_path / "d.h5"))
    assert "'0.weight' holds 1 NaN" in line and "direction" not in line
    dirs = landscape.random_directions(make_model(), n=1)
    with pytest.raises(ModelError, match="'0.weight' holds 1 NaN"):
        landscape.surface(make_nan_weight_model(), make_data()[0], directions=dirs, x=(-1, 1, 3))


def test_values_beyond_float32_are_infinite_where_they_go(made, tmp_path, capsys):
    """A float64 1e39 is finite in its file but inf in the float32 model: refused as NaN/inf are."""
    shutil.copy(made / "dirs.h5", tmp_path / "dirs.h5")
    with h5py.File(tmp_path / "dirs.h5", "r+") as f:
        big = f["xdirection/2"][()].astype(np.float64)
        big.reshape(-1)[0] = 1e39
        del f["xdirection/2"]
        f["xdirection/2"] = big
    line = refused(capsys, tmp_path, *GRID_2D, *paths(tmp_path))
    assert "xdirection/2" in line and "1 NaN or infinite" in line
    state = {k: v.double() for k, v in make_model().state_dict().items()}
    state["7.weight"].view(-1)[3] = 1e39
    torch.save(state, tmp_path / "f64.t7")
    with pytest.raises(CheckpointError, match="'7.weight' holds 1 NaN or infinite"):
        load_weights(make_model(), str(tmp_path / "f64.t7"))


def test_a_projection_file_with_nan_is_refused_before_the_grid(made, tmp_path, capsys):
    write_projection(str(tmp_path / "p.h5"), np.array([0.0, math.inf]), np.array([1.0, 2.0]),
                     [("a.t7", "0" * 64), ("b.t7", "1" * 64)], {})
    line = refused(capsys, tmp_path, *GRID_2D, *paths(tmp_path), "--proj_file", str(tmp_path / "p.h5"), "--plot")
    assert "proj_xcoord holds 1 NaN" in line
    assert not os.path.exists(tmp_path / "surf.h5")
