"""Tied weights (one tensor under two names, as GPT-2's lm_head.weight is transformer.wte.weight) count
once: one direction entry, one move per grid point, one block of the Hessian, one tensor restored from a
checkpoint. Checked against hand-written lists, brute-force loops and dense Hessians."""
import copy

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import landscape
from landscape.curvature.hvp import hessian_param_names, mean_loss_hvp
from landscape.curvature.plan import hessian_dim
from landscape.errors import CheckpointError
from landscape.inputs.checkpoint import load_weights
from landscape.inputs.series import difference_matrix
from landscape.space.directions import named_entries
from landscape.space.flatparams import PointSetter

V, E = 7, 4
WEIGHTS = ["emb.weight", "bn.weight", "bn.bias", "mid.weight", "mid.bias"]
STATES = ["emb.weight", "bn.weight", "bn.bias", "bn.running_mean", "bn.running_var", "bn.num_batches_tracked",
          "mid.weight", "mid.bias"]  # no head.weight: it is emb.weight


class TiedLM(nn.Module):
    """Token in, next-token logits out, the output layer tied to the embedding."""

    def __init__(self):
        super().__init__()
        self.emb, self.bn, self.mid = nn.Embedding(V, E), nn.BatchNorm1d(E), nn.Linear(E, E)
        self.head = nn.Linear(E, V, bias=False)
        self.head.weight = self.emb.weight

    def forward(self, tokens):
        return self.head(torch.tanh(self.mid(self.bn(self.emb(tokens)))))


def tied_lm(seed=0):
    torch.manual_seed(seed)
    model = TiedLM()
    model.train()
    model(torch.arange(V))  # BN running statistics away from 0 and 1
    return model.eval()


def tokens(n=24):
    g = torch.Generator().manual_seed(1)
    return torch.randint(0, V, (n,), generator=g), torch.randint(0, V, (n,), generator=g)


def tensor_of(model, name):
    module, _, attr = name.rpartition(".")
    return getattr(model.get_submodule(module), attr)


def brute_force_losses(model, names, direction, xs, data, loss):
    """Each point from a fresh copy of the model: every named tensor moved once, in place."""
    out = []
    for a in xs:
        moved = copy.deepcopy(model).eval()  # keeps the tie: one Parameter in both modules
        with torch.no_grad():
            for name, d in zip(names, direction):
                t = tensor_of(moved, name)
                if t.is_floating_point():
                    t.add_(a * torch.as_tensor(d).to(t.dtype))
            out.append(float(loss(moved(data[0]), data[1])))
    return out


def test_a_tied_tensor_is_one_entry_of_either_kind_of_direction():
    model = tied_lm()
    assert [n for n, _ in named_entries(model, "weights")] == WEIGHTS
    assert [n for n, _ in named_entries(model, "states")] == STATES
    dirs = landscape.random_directions(model, 2, dir_type="states")
    assert dirs.attrs["names"] == STATES and len(dirs.x) == len(dirs.y) == len(STATES)
    assert landscape.random_directions(model, params=["head.*"]).attrs["params"] == ["head.*"]  # names the tie


@pytest.mark.parametrize("dir_type", ["states", "weights"])
def test_the_surface_moves_a_tied_weight_once(dir_type):
    model, data = tied_lm(), tokens()
    dirs = landscape.random_directions(model, 1, dir_type=dir_type, seed=3)
    xs = (-1.0, 0.0, 0.5)
    res = landscape.surface(model, data, directions=dirs, x=(-1.0, 0.5, 4), batch_size=100, progress_secs=1e9)
    got = [res.train_loss[0], res.train_loss[2], res.train_loss[3]]
    truth = brute_force_losses(model, dirs.attrs["names"], dirs.x, xs, data, F.cross_entropy)
    # float32, the same sums in another order: a few units in the last place of losses of order 1
    assert got == pytest.approx(truth, rel=1e-5, abs=1e-6)
    assert model.head.weight is model.emb.weight  # given back tied


def gpt2(n_layer=1):
    transformers = pytest.importorskip("transformers")
    config = transformers.GPT2Config(vocab_size=20, n_positions=8, n_embd=8, n_layer=n_layer, n_head=2,
                                     bos_token_id=0, eos_token_id=0)
    torch.manual_seed(0)
    return transformers.GPT2LMHeadModel(config).eval()


class Logits(nn.Module):
    def __init__(self, lm):
        super().__init__()
        self.lm = lm

    def forward(self, ids):
        return self.lm(ids).logits


def token_loss(logits, targets):
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))


def test_a_tiny_gpt2s_states_direction_moves_its_tied_embedding_once():
    model = Logits(gpt2()).eval()
    names = [n for n, _ in named_entries(model, "states")]
    assert "lm.lm_head.weight" not in names and names == [n for n, _ in model.named_parameters()]
    g = torch.Generator().manual_seed(2)
    ids = torch.randint(0, 20, (6, 6), generator=g)
    data = (ids[:, :-1], ids[:, 1:])
    dirs = landscape.random_directions(model, 1, dir_type="states", seed=5)
    res = landscape.surface(model, data, loss=token_loss, directions=dirs, x=(-0.5, 0.5, 3), batch_size=6,
                            progress_secs=1e9)
    truth = brute_force_losses(model, dirs.attrs["names"], dirs.x, (-0.5, 0.0, 0.5), data, token_loss)
    assert list(res.train_loss) == pytest.approx(truth, rel=1e-5, abs=1e-6)


def test_the_hessian_dimension_counts_a_tied_matrix_once():
    model = tied_lm()
    assert hessian_dim(model, hessian_param_names(model, "all")) == V * E + 2 * E + E * E + E  # emb, bn, mid
    lm = gpt2()
    # wte, wpe, ln_1, c_attn, attn c_proj, ln_2, c_fc, mlp c_proj, ln_f; lm_head is wte
    assert hessian_dim(lm, hessian_param_names(lm, "all")) == \
        20 * 8 + 8 * 8 + 16 + (8 * 24 + 24) + (8 * 8 + 8) + 16 + (8 * 32 + 32) + (32 * 8 + 8) + 16


def test_the_hessian_of_a_tied_model_is_the_dense_hessian_of_its_loss_written_out():
    model, (x, y) = tied_lm(), tokens()
    model.double()
    bn = model.bn

    def loss(flat):
        w, m, b = flat[:V * E].view(V, E), flat[V * E:V * E + E * E].view(E, E), flat[V * E + E * E:]
        h = (w[x] - bn.running_mean) / torch.sqrt(bn.running_var + bn.eps) * bn.weight + bn.bias
        logits = torch.tanh(h @ m.T + b) @ w.T  # the same matrix in and out
        return F.cross_entropy(logits, y)
    theta = torch.cat([model.emb.weight.detach().reshape(-1), model.mid.weight.detach().reshape(-1),
                       model.mid.bias.detach()])
    truth = torch.autograd.functional.hessian(loss, theta)
    hvp = mean_loss_hvp(model, ["emb.weight", "mid.weight", "mid.bias"], F.cross_entropy, [(x, y)])
    assert hvp.dim == V * E + E * E + E
    eye = torch.eye(hvp.dim, dtype=torch.float64)
    operator = torch.stack([hvp(eye[i]) for i in range(hvp.dim)], 1)
    assert torch.allclose(operator, truth, rtol=0, atol=1e-12 * float(truth.abs().max()))


def test_a_tied_models_checkpoint_restores_the_tie(tmp_path):
    saved = tied_lm(seed=0)
    torch.save(saved.state_dict(), tmp_path / "both.pt")  # lists emb.weight and head.weight, one storage
    state = {k: v.clone() for k, v in saved.state_dict().items()}
    torch.save({k: v for k, v in state.items() if k != "head.weight"}, tmp_path / "once.pt")
    state["head.weight"] += 1
    torch.save(state, tmp_path / "untied.pt")
    for name in ("both.pt", "once.pt"):
        model = load_weights(tied_lm(seed=1), tmp_path / name)
        assert model.head.weight is model.emb.weight and torch.equal(model.emb.weight, saved.emb.weight)
    with pytest.raises(CheckpointError, match="'emb.weight' and 'head.weight' hold different values, but model "
                                              "TiedLM holds them as one tied tensor"):
        load_weights(tied_lm(seed=1), tmp_path / "untied.pt")


def test_a_trajectorys_path_matrix_has_one_column_per_tied_coordinate(tmp_path):
    paths = []
    for k in range(3):
        model = tied_lm(seed=k)
        paths.append(str(tmp_path / f"model_{k}.pt"))
        torch.save(model.state_dict(), paths[-1])
    matrix, names, shapes = difference_matrix(tied_lm(), paths, paths[-1], "states", "none")
    assert names == STATES and matrix.shape == (3, V * E + 4 * E + 1 + E * E + E)  # bn: 2 affine, 2 statistics
    first, last = tied_lm(seed=0), tied_lm(seed=2)
    assert torch.equal(matrix[0, :V * E], (first.emb.weight.double() - last.emb.weight.double()).reshape(-1).float())


class SharedScale(nn.Module):
    """One buffer registered in two modules."""

    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Linear(3, 3), nn.Linear(3, 3)
        self.a.register_buffer("scale", torch.ones(3))
        self.b.register_buffer("scale", self.a.scale)


def test_a_shared_buffer_is_one_entry_and_moves_in_every_module_holding_it():
    model = SharedScale()
    names, entries = zip(*named_entries(model, "states"))
    assert list(names) == ["a.weight", "a.bias", "a.scale", "b.weight", "b.bias"]
    direction = [torch.full(t.shape, float(i + 1)) for i, t in enumerate(entries)]
    original = model.a.scale
    setter = PointSetter(model, list(names), list(entries), direction)
    setter.set(0.5)
    assert model.a.scale is model.b.scale and torch.equal(model.b.scale, torch.full((3,), 1 + 0.5 * 3))
    setter.restore()
    assert model.a.scale is model.b.scale and model.b.scale.data_ptr() == original.data_ptr()  # storage as it was
    assert torch.equal(original, torch.ones(3))
