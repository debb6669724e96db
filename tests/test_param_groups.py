"""Parameter groups by glob pattern: the names matched (against hand-written lists), random directions
zero outside the group, the Hessian over a group against the dense Hessian's sub-block, and refusals."""
import h5py
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import landscape
from landscape.cli.hessian import main as hessian_main
from landscape.cli.surface import main as surface_main
from landscape.curvature.hvp import hessian_param_names, mean_loss_hvp
from landscape.curvature.plan import hessian_dim
from landscape.errors import ChoiceError, CurvatureError, SurfaceFileError
from landscape.files.resume import stored_settings
from landscape.space.groups import entry_group, matching_names

D, C = 3, 3
ATTN = ["blocks.0.attn.q.weight", "blocks.0.attn.q.bias", "blocks.0.attn.k.weight", "blocks.0.attn.k.bias",
        "blocks.1.attn.q.weight", "blocks.1.attn.q.bias", "blocks.1.attn.k.weight", "blocks.1.attn.k.bias"]


class Attn(nn.Module):
    def __init__(self):
        super().__init__()
        self.q, self.k = nn.Linear(D, D), nn.Linear(D, D)


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.attn, self.mlp = Attn(), nn.Linear(D, D)

    def forward(self, h):
        h = h + torch.tanh(self.attn.q(h)) * self.attn.k(h)
        return h + torch.tanh(self.mlp(h))


class Net(nn.Module):
    """Names like a transformer's: blocks.0.attn.q.weight, blocks.0.mlp.weight, ..., head.weight."""

    def __init__(self):
        super().__init__()
        self.blocks = nn.ModuleList([Block(), Block()])
        self.head = nn.Linear(D, C)

    def forward(self, x):
        for block in self.blocks:
            x = block(x)
        return self.head(x)


def net():
    torch.manual_seed(0)
    return Net().double()


def data(n=30):
    g = torch.Generator().manual_seed(1)
    return torch.randn(n, D, generator=g, dtype=torch.float64), torch.randint(0, C, (n,), generator=g)


def handwritten_loss(p, x, y):
    """Net's mean cross-entropy written out from a dict of its tensors: the truth the Hessian is checked on."""
    for i in range(2):
        q = x @ p[f"blocks.{i}.attn.q.weight"].T + p[f"blocks.{i}.attn.q.bias"]
        k = x @ p[f"blocks.{i}.attn.k.weight"].T + p[f"blocks.{i}.attn.k.bias"]
        x = x + torch.tanh(q) * k
        x = x + torch.tanh(x @ p[f"blocks.{i}.mlp.weight"].T + p[f"blocks.{i}.mlp.bias"])
    logits = x @ p["head.weight"].T + p["head.bias"]
    return -(logits.log_softmax(1)[torch.arange(len(y)), y]).mean()


def dense_subblock(model, group, x, y):
    """torch.autograd.functional.hessian over every parameter, then the rows and columns of `group`."""
    named = [(n, p.detach()) for n, p in model.named_parameters()]
    sizes = [t.numel() for _, t in named]

    def loss(flat):
        parts = dict(zip([n for n, _ in named], (c.view(t.shape) for c, (_, t) in zip(flat.split(sizes), named))))
        return handwritten_loss(parts, x, y)
    full = torch.autograd.functional.hessian(loss, torch.cat([t.reshape(-1) for _, t in named]))
    starts = dict(zip([n for n, _ in named], torch.tensor([0] + sizes).cumsum(0).tolist()))
    index = torch.cat([torch.arange(starts[n], starts[n] + t.numel()) for n, t in named if n in group])
    return full[index][:, index]


def test_patterns_match_the_hand_written_names_in_model_order():
    model = net()
    assert entry_group(model, ["blocks.*.attn.*"]) == ATTN
    assert entry_group(model, ["head.*", "blocks.1.mlp.weight", "*.0.mlp.*"]) == [  # model order, not pattern order
        "blocks.0.mlp.weight", "blocks.0.mlp.bias", "blocks.1.mlp.weight", "head.weight", "head.bias"]
    assert entry_group(model, ["*.k.weight", "*.k.weight"]) == ["blocks.0.attn.k.weight", "blocks.1.attn.k.weight"]
    assert matching_names(["a.b", "a.c"], ["a.?"]) == ["a.b", "a.c"]


def test_attention_of_a_tiny_gpt2():
    transformers = pytest.importorskip("transformers")
    config = transformers.GPT2Config(vocab_size=20, n_positions=8, n_embd=8, n_layer=2, n_head=2, bos_token_id=0,
                                     eos_token_id=0)
    model = transformers.GPT2LMHeadModel(config)
    assert entry_group(model, ["transformer.h.*.attn.*"]) == [
        f"transformer.h.{i}.attn.{layer}.{kind}" for i in (0, 1) for layer in ("c_attn", "c_proj")
        for kind in ("weight", "bias")]
    # lm_head.weight is transformer.wte.weight (tied): one tensor, found by either name, listed by its first
    assert entry_group(model, ["lm_head.*"]) == ["transformer.wte.weight"]
    dirs = landscape.random_directions(model, 2, params=["transformer.h.*.attn.*"], dir_type="states", seed=4)
    full = landscape.random_directions(model, 2, dir_type="states", seed=4)
    for grouped, ungrouped in ((dirs.x, full.x), (dirs.y, full.y)):
        for name, d, e in zip(dirs.attrs["names"], grouped, ungrouped):
            assert torch.equal(d, e if ".attn.c_" in name else torch.zeros_like(e)), name


@pytest.mark.parametrize("patterns, named", [
    (["blocks.*.atn.*"], "params pattern 'blocks.*.atn.*' matches none of the model's 14 names, e.g. "
                         "blocks.0.attn.q.weight, blocks.0.attn.k.bias, blocks.1.attn.q.weight, blocks.1.mlp.weight, "
                         "head.bias"),
    (["BLOCKS.*"], "'BLOCKS.*' matches none"),  # case-sensitive on every system
    ([], "params=[]: give a non-empty list of glob patterns"),
    (["*", ""], "give a non-empty list")])
def test_a_group_that_cannot_be_made_is_refused_in_one_line(patterns, named):
    for call in (lambda: landscape.random_directions(net(), params=patterns),
                 lambda: landscape.hessian_map(net(), data(), x=(0.0, 1.0, 2), params=patterns)):
        with pytest.raises(ChoiceError) as refused:
            call()
        assert named in str(refused.value) and "\n" not in str(refused.value)


def test_a_bare_string_is_no_group():
    """Not taken as one pattern: for hessian_map a string is the subset 'reference' or 'all'."""
    with pytest.raises(ChoiceError, match="params='blocks.*': give a non-empty list"):
        landscape.random_directions(net(), params="blocks.*")
    with pytest.raises(CurvatureError, match="params='attn' is not one of reference, all, nor a list of glob"):
        landscape.hessian_map(net(), data(), x=(0.0, 1.0, 2), params="attn")


@pytest.mark.parametrize("dir_type", ["weights", "states"])
def test_directions_are_zero_outside_the_group_and_the_ungrouped_ones_inside(dir_type, tmp_path):
    model = net()
    for norm, ignore in (("filter", "biasbn"), ("layer", "none")):
        grouped = landscape.random_directions(model, 2, norm=norm, ignore=ignore, dir_type=dir_type, seed=7,
                                              params=("blocks.*.attn.*",))
        ungrouped = landscape.random_directions(model, 2, norm=norm, ignore=ignore, dir_type=dir_type, seed=7)
        for g, u in ((grouped.x, ungrouped.x), (grouped.y, ungrouped.y)):
            for name, d, e in zip(ungrouped.attrs["names"], g, u):
                assert torch.equal(d, e if name in ATTN else torch.zeros_like(e)), name
            assert any(bool(d.any()) for d in g)
    assert grouped.attrs["params"] == ["blocks.*.attn.*"] and "params" not in ungrouped.attrs
    grouped.save(tmp_path / "dirs.h5")
    assert landscape.load_directions(tmp_path / "dirs.h5").attrs["params"] == ["blocks.*.attn.*"]


def test_the_hessian_over_a_group_is_the_dense_hessians_sub_block():
    model, (x, y) = net(), data()
    names = hessian_param_names(model, ["blocks.*.attn.*"])
    assert names == ATTN and hessian_dim(model, names) == 4 * (D * D + D)
    hvp = mean_loss_hvp(model, names, F.cross_entropy, [(x[:17], y[:17]), (x[17:], y[17:])])
    eye = torch.eye(hvp.dim, dtype=torch.float64)
    operator = torch.stack([hvp(eye[i]) for i in range(hvp.dim)], 1)
    truth = dense_subblock(model, set(ATTN), x, y)
    assert torch.allclose(operator, truth, rtol=0, atol=1e-12 * float(truth.abs().max()))  # float64 rounding


def test_the_hessian_map_over_a_group_gives_the_sub_blocks_extremes_and_records_the_patterns(tmp_path):
    model, (x, y) = net(), data()
    dirs = landscape.random_directions(model, 1, seed=2)
    path = tmp_path / "h.h5"
    res = landscape.hessian_map(model, (x, y), directions=dirs, x=(0.0, 0.5, 2), path=path, samples=None,
                                params=["blocks.*.attn.*"], tol=1e-8, progress_secs=1e9)
    for i, a in enumerate((0.0, 0.5)):
        moved = net()
        with torch.no_grad():
            for p, d in zip(moved.parameters(), dirs.x):
                p.add_(a * d.double())
        eig = torch.linalg.eigvalsh(dense_subblock(moved, set(ATTN), x, y))
        scale = float(eig.abs().max())
        assert abs(res.max_eig[i] - float(eig[-1])) <= 1e-6 * scale
        assert abs(res.min_eig[i] - float(eig[0])) <= 1e-6 * scale
    assert stored_settings(path, "hessian")["hessian_params"] == ["blocks.*.attn.*"]
    # a resume with the same patterns (a tuple now) compares equal; other patterns are other settings
    again = landscape.hessian_map(model, (x, y), directions=dirs, x=(0.0, 0.5, 2), path=path, samples=None,
                                  params=("blocks.*.attn.*",), tol=1e-8, progress_secs=1e9)
    assert again.complete and (again.max_eig == res.max_eig).all()
    with pytest.raises(SurfaceFileError, match="hessian_params"):
        landscape.hessian_map(model, (x, y), directions=dirs, x=(0.0, 0.5, 2), path=path, samples=None,
                              params=["blocks.*.mlp.*"], tol=1e-8, progress_secs=1e9)


TINY = ["--model", "tiny:make_model", "--dataset", "tiny:make_data", "--x=-1:1:3", "--progress_secs", "5"]


def drive(main, capsys, *flags):
    try:
        code = main([*TINY, *flags])
    except SystemExit as e:  # argparse refusals
        code = e.code
    out, err = capsys.readouterr()
    return code, out, [line for line in err.splitlines() if line.strip()]


def test_the_surface_drivers_params_limit_its_random_directions(tmp_path, capsys):
    files = ["--dir_file", str(tmp_path / "dirs.h5"), "--surf_file", str(tmp_path / "surf.h5")]
    code, out, err = drive(surface_main, capsys, "--params", "7.*", "3.weight", *files, "--batch_size", "64")
    assert code == 0, err
    with h5py.File(tmp_path / "dirs.h5") as f:
        names = landscape.load_directions(tmp_path / "dirs.h5").attrs["names"]
        moved = [n for i, n in enumerate(names) if f["xdirection"][str(i)][()].any()]
    assert moved == ["3.weight", "7.weight"]  # the tiny net's second conv and its linear layer (biases: biasbn)
    code, _, err = drive(surface_main, capsys, "--params", "0.*", *files)  # the file moves another group
    assert code == 2 and len(err) == 1 and "--params 0.* (the file has 7.* 3.weight)" in err[0]
    code, _, err = drive(surface_main, capsys, "--params", "fc.*", "--dir_file", str(tmp_path / "new.h5"))
    assert code == 2 and len(err) == 1 and "params pattern 'fc.*' matches none" in err[0]
    assert not (tmp_path / "new.h5").exists()


def test_the_hessian_drivers_params_choose_the_hessians_parameters(tmp_path, capsys):
    files = ["--dir_file", str(tmp_path / "dirs.h5"), "--surf_file", str(tmp_path / "surf.h5")]
    code, _, err = drive(hessian_main, capsys, "--params", "7.*", "--hessian_params", "all", *files)
    assert code == 2 and len(err) == 1 and "--params 7.* and --hessian_params all both choose" in err[0]
    code, _, err = drive(hessian_main, capsys, "--params", "fc.*", *files)
    assert code == 2 and len(err) == 1 and "params pattern 'fc.*' matches none" in err[0]
    assert list(tmp_path.iterdir()) == []  # refused before the direction file
    code, _, err = drive(hessian_main, capsys, "--params", "7.*", "--hessian_samples", "16", "--max_iter", "50", *files)
    assert code == 0, err
    assert stored_settings(tmp_path / "surf.h5", "hessian")["hessian_params"] == ["7.*"]


def test_the_trajectory_driver_refuses_params_its_pca_directions_cannot_take(tmp_path, capsys):
    from landscape.cli.trajectory import main as trajectory_main
    with pytest.raises(SystemExit) as ended:
        trajectory_main(["--model_folder", str(tmp_path), "--surface", "--params", "7.*"])
    assert ended.value.code == 2 and "--params limits random directions" in capsys.readouterr().err
