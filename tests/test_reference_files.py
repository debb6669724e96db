"""A direction file written by the reference code records nothing of how it was made. Given with
--model_file2/--model_file3 it is checked by value: its x (y) direction must be that model minus
the model within float32 rounding, else the driver refuses before it writes anything."""
import h5py
import numpy as np
import torch
import torch.nn.functional as F
from test_bad_input import GRID_2D, drive, refused

from landscape.inputs.checkpoint import save_checkpoint
from landscape.space.directions import named_entries, target_mismatch

from tiny import make_data, make_model


def two_models(folder):
    torch.manual_seed(1)
    first, second = make_model(), make_model()
    for model in (first, second):  # BN statistics that differ, so 'states' directions move them too
        model.train()
        with torch.no_grad():
            model(torch.randn(16, 3, 8, 8))
        model.eval()
    save_checkpoint(folder / "m1.t7", first, epoch=1, acc=0.0)
    save_checkpoint(folder / "m2.t7", second, epoch=2, acc=0.0)
    return first, second


def reference_file(path, groups):
    """The reference's layout: groups of datasets '0'..'n-1', no attributes."""
    with h5py.File(path, "w") as f:
        for name, direction in groups.items():
            group = f.create_group(name)
            for i, d in enumerate(direction):
                group.create_dataset(str(i), data=np.asarray(d))


def difference(first, second, dir_type):
    """second - first over the entries of `dir_type`, as the reference computes it (float32 tensors;
    integer buffers such as num_batches_tracked are differences too)."""
    return [(b - a).numpy() for (_, a), (_, b) in zip(named_entries(first, dir_type), named_entries(second, dir_type))]


def flags(folder, *extra):
    return ["--model_file", str(folder / "m1.t7"), "--model_file2", str(folder / "m2.t7"),
            "--dir_file", str(folder / "ref.h5"), "--surf_file", str(folder / "surf.h5"), *extra]


def test_a_reference_file_holding_model_file2_minus_the_model_draws_the_line_to_it(tmp_path, capsys):
    first, second = two_models(tmp_path)
    reference_file(tmp_path / "ref.h5", {"xdirection": difference(first, second, "weights")})
    code, out, err = drive(capsys, *flags(tmp_path, "--x=0:1:3"))
    assert code == 0, err
    assert "does not record --model_file2" not in err  # checked by value, so not among the unchecked flags
    (x, y), _ = make_data()
    end = make_model()  # an independent truth: at x = 1 the weights are model_file2's (BN statistics stay the model's)
    end.load_state_dict(first.state_dict())
    with torch.no_grad():
        for p, q in zip(end.parameters(), second.parameters()):
            p.copy_(q)
        truth = [F.cross_entropy(model.eval()(x), y).item() for model in (first, end)]
    with h5py.File(tmp_path / "surf.h5", "r") as f:
        loss = f["train_loss"][()]
    np.testing.assert_allclose(loss[[0, -1]], truth, rtol=1e-5)


def test_a_reference_file_holding_another_direction_is_refused_before_anything_is_written(tmp_path, capsys):
    first, second = two_models(tmp_path)
    other = difference(first, second, "weights")
    other[0] = other[0] * (1 + 2 ** -20)  # off by far more than float32 rounding in one entry only
    reference_file(tmp_path / "ref.h5", {"xdirection": other})
    line = refused(capsys, tmp_path, *flags(tmp_path, "--x=0:1:3"))
    assert "does not record how it was made" in line and "the x direction is not --model_file2 minus" in line
    assert "entry '0.weight'" in line
    assert not (tmp_path / "surf.h5").exists()


def test_states_directions_are_checked_over_the_state_dict(tmp_path, capsys):
    first, second = two_models(tmp_path)
    states = difference(first, second, "states")
    reference_file(tmp_path / "ref.h5", {"xdirection": states})
    code, _, err = drive(capsys, *flags(tmp_path, "--x=0:1:3", "--dir_type", "states"))
    assert code == 0, err
    names = [name for name, _ in named_entries(first, "states")]
    moved = names.index("1.running_var")  # a BN statistic: in 'states' directions only
    states[moved] = states[moved] + 1e-3
    reference_file(tmp_path / "ref.h5", {"xdirection": states})
    (tmp_path / "surf.h5").unlink()
    line = refused(capsys, tmp_path, *flags(tmp_path, "--x=0:1:3", "--dir_type", "states"))
    assert "entry '1.running_var'" in line


def test_a_file_of_other_entries_is_refused_for_its_shape_before_its_values(tmp_path, capsys):
    """A 'states' file given as 'weights': the entry count says what is wrong, not a value difference."""
    first, second = two_models(tmp_path)
    reference_file(tmp_path / "ref.h5", {"xdirection": difference(first, second, "states")})
    line = refused(capsys, tmp_path, *flags(tmp_path, "--x=0:1:3"))
    assert "its xdirection has 11 entries, the model has 8" in line, line


def test_model_file3_is_checked_against_the_y_direction(tmp_path, capsys):
    first, second = two_models(tmp_path)
    x = difference(first, second, "weights")
    reference_file(tmp_path / "ref.h5", {"xdirection": x, "ydirection": [-d for d in x]})
    line = refused(capsys, tmp_path, *flags(tmp_path, *GRID_2D, "--model_file3", str(tmp_path / "m2.t7")))
    assert "the y direction is not --model_file3 minus" in line


def test_float32_rounding_is_accepted_and_nothing_more(tmp_path):
    """The tolerance is the arithmetic's: 2u(|theta| + |theta2|) per entry, u = 2^-24."""
    first, second = two_models(tmp_path)
    entries = [t for _, t in named_entries(first, "weights")]
    targets = [t for _, t in named_entries(second, "weights")]
    wider = [(b.double() - a.double()).float() for a, b in zip(entries, targets)]  # computed in float64
    assert target_mismatch(wider, entries, targets) is None
    nudged = [d.clone() for d in wider]
    i = int(np.argmax([float((a.abs() + b.abs()).max()) for a, b in zip(entries, targets)]))
    scale = (entries[i].abs() + targets[i].abs()).reshape(-1)
    nudged[i].view(-1)[int(scale.argmax())] += 3 * 2 ** -24 * float(scale.max())  # just past the bound
    assert target_mismatch(nudged, entries, targets)[0] == i
    assert target_mismatch([d * float("nan") for d in wider], entries, targets) is not None
