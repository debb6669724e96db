"""plot_trajectory.py: checkpoint series, PCA direction file, projection, surface chain under mpirun, bad input."""
import os
import shutil

import h5py
import numpy as np
import pytest
import torch

from landscape.cli.train import main as train_main
from landscape.cli.trajectory import main
from landscape.errors import DirectionError
from landscape.inputs.checkpoint import save_checkpoint
from landscape.inputs.series import checkpoint_series, with_final
from landscape.plot.trajectory import render_path_overlay
from landscape.space.pca import project

from conftest import mpirun_cmd, run
from tiny import make_model

pytestmark = pytest.mark.slow  # starts processes (mpirun or python drivers)

PCA_DIR = "PCA_weights_save_epoch=1"
TINY = ["--model", "tiny:make_model", "--max_epoch", "2", "--dataset", "cifar10"]  # the reference passes --dataset


def perturbed_tiny(seed, width=4):
    """A tiny model with random weights and BN statistics (so 'states' rows differ in them too)."""
    torch.manual_seed(seed)
    model = make_model(width=width)
    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            if tensor.is_floating_point():
                tensor.add_(0.3 * torch.randn_like(tensor))
            else:
                tensor.fill_(seed)  # num_batches_tracked: an integer that differs per checkpoint
    return model


def tiny_series(folder, epochs=(0, 1, 2)):
    folder.mkdir(exist_ok=True)
    for epoch in epochs:
        save_checkpoint(folder / f"model_{epoch}.t7", perturbed_tiny(10 + epoch), epoch, acc=0.0)
    return folder


def listing(folder):
    return sorted(os.listdir(folder))


def read_h5(path):
    with h5py.File(path, "r") as f:
        out = {k: f[k][()] for k in f if isinstance(f[k], h5py.Dataset)}
        out.update({g: [f[g][str(i)][()] for i in range(len(f[g]))] for g in ("xdirection", "ydirection") if g in f})
        out["attrs"] = dict(f.attrs)
    return out


def test_series_includes_the_last_epoch_and_the_final_model():
    series = checkpoint_series("m", "model_", ".t7", 0, 5, 2)
    assert series == [os.path.join("m", f"model_{e}.t7") for e in (0, 2, 4, 5)]
    assert with_final(series, os.path.join("m", "model_5.t7")) == series
    assert with_final(series, "best.t7") == series + ["best.t7"]


def independent_matrix(folder, epochs, dir_type, ignore):
    """Rows checkpoint - final (numpy float64) over the model's entries, read with torch.load directly."""
    model = make_model()
    names = [n for n, _ in model.named_parameters()] if dir_type == "weights" else list(model.state_dict())
    states = [torch.load(folder / f"model_{e}.t7")["state_dict"] for e in epochs]
    final = states[-1]

    def entry(sd, name):
        t = sd[name]
        keep = t.is_floating_point() and not (ignore == "biasbn" and t.dim() <= 1)
        return (t.double() if keep else torch.zeros(t.shape, dtype=torch.float64)).reshape(-1).numpy()
    rows = [np.concatenate([entry(sd, n) - entry(final, n) for n in names]) for sd in states]
    return np.stack(rows), states, names


@pytest.mark.parametrize("dir_type,ignore", [("states", "none"), ("weights", "biasbn")])
def test_pca_file_and_projections_match_independent_math(tmp_path, dir_type, ignore, capsys):
    folder = tiny_series(tmp_path / "run")
    common = [*TINY, "--model_folder", str(folder), "--dir_type", dir_type, "--ignore", ignore]
    assert main(common) == 0
    assert main(common + ["--proj_method", "lstsq"]) == 0  # reuses the direction file
    assert "using the existing direction file" in capsys.readouterr().out
    suffix = "" if ignore == "none" else f"_ignore={ignore}"
    dir_file = folder / f"PCA_{dir_type}{suffix}_save_epoch=1" / "directions.h5"
    pca_file = read_h5(dir_file)
    matrix, states, names = independent_matrix(folder, (0, 1, 2), dir_type, ignore)

    # directions: the top-2 right singular vectors of the centred matrix (sklearn's PCA)
    centred = matrix - matrix.mean(axis=0)
    _, s, vt = np.linalg.svd(centred, full_matrices=False)
    dx, dy = (np.concatenate([d.reshape(-1) for d in pca_file[g]]).astype(np.float64)
              for g in ("xdirection", "ydirection"))
    for got, want in ((dx, vt[0]), (dy, vt[1])):
        np.testing.assert_allclose(got * np.sign(got @ want), want, atol=1e-6)
    np.testing.assert_allclose(pca_file["singular_values_"], s[:2], rtol=1e-5)
    np.testing.assert_allclose(pca_file["explained_variance_"], s[:2] ** 2 / 2, rtol=1e-5)
    np.testing.assert_allclose(pca_file["explained_variance_ratio_"], s[:2] ** 2 / (s ** 2).sum(), rtol=1e-5)
    assert [tuple(d.shape) for d in pca_file["xdirection"]] == [tuple(states[0][n].shape) for n in names]
    assert pca_file["attrs"]["dir_type"] == dir_type
    assert [os.path.basename(p.decode()) for p in pca_file["checkpoint_files"]] == [f"model_{e}.t7" for e in (0, 1, 2)]

    for method in ("cos", "lstsq"):
        proj = read_h5(f"{dir_file}_proj_{method}.h5")
        want_x, want_y = project(matrix, dx, dy, method)
        np.testing.assert_allclose(proj["proj_xcoord"], want_x.numpy(), atol=1e-6)
        np.testing.assert_allclose(proj["proj_ycoord"], want_y.numpy(), atol=1e-6)
        assert proj["proj_xcoord"][-1] == 0 and proj["proj_ycoord"][-1] == 0  # the final model's zero row
        # Three points with the final model among them span exactly the PCA plane, so
        # final + x dx + y dy rebuilds every checkpoint's kept entries.
        rebuilt = np.outer(proj["proj_xcoord"], dx) + np.outer(proj["proj_ycoord"], dy)
        np.testing.assert_allclose(rebuilt, matrix, atol=1e-5)
    assert os.path.exists(f"{dir_file}_proj_cos.h5.png") and os.path.exists(f"{dir_file}_proj_cos.h5.pdf")


def test_changed_checkpoint_is_not_silently_reused(tmp_path, capsys):
    folder = tiny_series(tmp_path / "run")
    args = [*TINY, "--model_folder", str(folder)]
    assert main(args) == 0
    dir_file = folder / PCA_DIR / "directions.h5"
    before = read_h5(dir_file)["xdirection"]
    save_checkpoint(folder / "model_1.t7", perturbed_tiny(99), 1, acc=0.0)
    capsys.readouterr()
    assert main(args) == 2
    assert "made from other inputs (checkpoints" in capsys.readouterr().err
    assert main(args + ["--overwrite"]) == 0
    after = read_h5(dir_file)["xdirection"]
    assert not all(np.allclose(a, b) for a, b in zip(before, after))


def bad_missing(folder):
    os.remove(folder / "model_1.t7")
    return [], [str(folder / "model_1.t7"), "missing"]


def bad_architecture(folder):
    save_checkpoint(folder / "model_1.t7", perturbed_tiny(11, width=6), 1, acc=0.0)
    return [], [str(folder / "model_1.t7"), "0.weight (checkpoint [6, 3, 3, 3], model [4, 3, 3, 3])"]


def bad_too_few(folder):
    return ["--max_epoch", "1"], ["at least 3 checkpoints", str(folder / "model_1.t7")]


@pytest.mark.parametrize("case", [bad_missing, bad_architecture, bad_too_few])
def test_bad_input_exits_2_with_one_clear_line_and_writes_nothing(tmp_path, capsys, case):
    folder = tiny_series(tmp_path / "run")
    extra, messages = case(folder)
    before = listing(folder)
    assert main([*TINY, "--model_folder", str(folder), *extra]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1
    for message in messages:
        assert message in err
    assert listing(folder) == before


def test_surface_flags_without_surface_are_refused(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([*TINY, "--model_folder", str(tmp_path), "--batch_size", "8"])
    assert exit_info.value.code == 2 and "need --surface" in capsys.readouterr().err


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    folder = tmp_path_factory.mktemp("trained")
    code = train_main(["--model", "resnet20", "--dataset", "synthetic", "--synthetic_size", "64", "32",
                       "--epochs", "2", "--save_epoch", "1", "--batch_size", "32", "--lr", "0.05",
                       "--device", "cpu", "--save", str(folder)])
    assert code == 0
    return folder


def test_whole_chain_with_the_surface_under_mpirun(trained):
    r = run(mpirun_cmd(2, "plot_trajectory.py", "--model", "resnet20", "--model_folder", str(trained),
                       "--max_epoch", "2", "--surface", "--grid_points", "4", "--dataset", "synthetic",
                       "--synthetic_size", "64", "32", "--batch_size", "64", "--progress_secs", "5"))
    assert r.returncode == 0, r.stdout + r.stderr
    folder = trained / PCA_DIR
    dir_file = read_h5(folder / "directions.h5")
    for name in ("explained_variance_ratio_", "singular_values_", "explained_variance_"):
        assert dir_file[name].shape == (2,)
    ratios = dir_file["explained_variance_ratio_"]
    assert ratios[0] >= ratios[1] > 0 and ratios.sum() <= 1 + 1e-9
    dx, dy = (np.concatenate([d.reshape(-1) for d in dir_file[g]]) for g in ("xdirection", "ydirection"))
    np.testing.assert_allclose([dx @ dx, dy @ dy, dx @ dy], [1, 1, 0], atol=1e-5)

    proj = read_h5(folder / "directions.h5_proj_cos.h5")
    xs, ys = proj["proj_xcoord"], proj["proj_ycoord"]
    assert xs.shape == ys.shape == (3,)
    surfaces = [n for n in listing(folder) if n.startswith("directions_surf_") and n.endswith(".h5")]
    assert len(surfaces) == 1
    surf = read_h5(folder / surfaces[0])
    assert surf["train_loss"].shape == (4, 4) and surf["surface_done"].all()
    assert np.isfinite(surf["train_loss"]).all()
    assert surf["xcoordinates"].min() < xs.min() and xs.max() < surf["xcoordinates"].max()
    assert surf["ycoordinates"].min() < ys.min() and ys.max() < surf["ycoordinates"].max()
    stem = surfaces[0][:-3]
    for out in ("directions.h5_proj_cos.h5.png", "directions.h5_proj_cos.h5.pdf",
                f"{stem}_train_loss_2dcontour_proj.png", f"{stem}_train_loss_2dcontour_proj.pdf"):
        assert os.path.getsize(folder / out) > 0

    # what plot_surface.py --proj_file calls: the overlay from the two files alone ...
    assert render_path_overlay(str(folder / surfaces[0]), str(folder / "directions.h5_proj_cos.h5")) == [
        str(folder / f"{stem}_train_loss_2dcontour_proj.{fmt}") for fmt in ("png", "pdf")]
    # ... which refuses a projection along other directions than the surface's
    other = folder / "other_proj.h5"
    shutil.copy(folder / "directions.h5_proj_cos.h5", other)
    with h5py.File(other, "r+") as f:
        f.attrs["directions_sha256"] = "0" * 64
    with pytest.raises(DirectionError, match="other directions"):
        render_path_overlay(str(folder / surfaces[0]), str(other))
