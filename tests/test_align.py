"""landscape.align (Git Re-Basin weight and activation matching) and the permutation structure it traces.

Truths: the forward pass (a permutation of hidden units leaves every output unchanged, to float64 rounding),
planted permutations (b is a with its units shuffled: align must give back the inverse and a's exact
weights), the architecture read by hand (which layers share a residual stream), brute force over all
permutations of tiny layers (the assignment step's optimum), and the objective recomputed directly from the
permuted weights (coordinate ascent never lowers it).
"""
import copy
import itertools

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import landscape
from landscape.errors import AlignmentError, ChoiceError, DataError
from landscape.inputs.models import get_model
from landscape.inputs.models.resnet import cifar_resnet
from landscape.space.activation_matching import CrossMoments
from landscape.space.permutation_spec import apply_permutations, invert
from landscape.space.permutation_trace import permutation_spec
from landscape.space.weight_matching import objective, weight_matching

# A permutation only changes the order of the sums in each layer. In float64 a sum of n terms is off by at
# most n·eps·Σ|terms| (eps = 2.2e-16); with fan-ins up to 576 (64 channels × 3×3) over 7 layers that is
# about 1e-12 of the outputs' scale, so 1e-10 leaves room, while a wrong permutation moves outputs by O(1).
RTOL = 1e-10


class ResidualMLP(nn.Module):
    """A user's model: fc2 reads and writes the same residual stream (one group on both of its axes)."""

    def __init__(self, width=6):
        super().__init__()
        self.fc1, self.fc2, self.out = nn.Linear(5, width), nn.Linear(width, width), nn.Linear(width, 3)

    def forward(self, x):
        h = F.relu(self.fc1(x))
        h = h + torch.tanh(self.fc2(h))
        return F.log_softmax(self.out(h), dim=1)


class PooledConvNet(nn.Module):
    """A user's conv net with a global average pool written as a mean over the spatial dimensions."""

    def __init__(self):
        super().__init__()
        self.conv1, self.conv2, self.head = nn.Conv2d(3, 5, 3, padding=1), nn.Conv2d(5, 7, 3), nn.Linear(7, 4)

    def forward(self, x):
        h = F.max_pool2d(F.relu(self.conv1(x)), 2)
        return self.head(F.gelu(self.conv2(h)).mean((2, 3)))


def mlp():
    return nn.Sequential(nn.Linear(6, 10), nn.ReLU(), nn.Linear(10, 8), nn.BatchNorm1d(8), nn.Tanh(), nn.Linear(8, 3))


def small_vgg():
    """Conv-BN-ReLU-pool twice on 8×8 inputs, so the flatten turns each of 6 channels into 2×2 features."""
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(4, 6, 3, padding=1), nn.BatchNorm2d(6), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Flatten(), nn.Linear(6 * 2 * 2, 5), nn.BatchNorm1d(5), nn.ReLU(), nn.Linear(5, 3))


FAMILIES = {  # name: (factory, input shape)
    "mlp": (mlp, (7, 6)),
    "vgg": (small_vgg, (3, 3, 8, 8)),
    "resnet8": (lambda: cifar_resnet(8), (2, 3, 32, 32)),  # the zoo's CIFAR ResNet, one block per stage
    "residual_mlp": (ResidualMLP, (7, 5)),
    "pooled_conv": (PooledConvNet, (3, 3, 9, 9)),
}


def family(name, seed=0):
    """(model in float64 eval mode with random BatchNorm statistics, inputs)."""
    factory, shape = FAMILIES[name]
    torch.manual_seed(seed)
    model = factory().double().eval()
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.running_mean.normal_()
            module.running_var.uniform_(0.5, 2.0)
            nn.init.normal_(module.weight)
            nn.init.normal_(module.bias)
    return model, torch.randn(*shape, dtype=torch.float64)


def random_permutations(spec, seed):
    g = torch.Generator().manual_seed(seed)
    return {name: torch.randperm(size, generator=g) for name, size in spec.groups.items()}


def planted(model, seed=1, noise=0.0):
    """(model with its hidden units shuffled by random permutations q, q), plus Gaussian noise of `noise`
    times each entry's standard deviation."""
    spec = permutation_spec(model)
    q = random_permutations(spec, seed)
    state = apply_permutations(model.state_dict(), spec, q)
    g = torch.Generator().manual_seed(seed)
    if noise:
        state = {k: v + noise * v.std() * torch.randn(v.shape, generator=g, dtype=v.dtype)
                 if v.is_floating_point() and v.numel() > 1 else v for k, v in state.items()}
    shuffled = copy.deepcopy(model)
    shuffled.load_state_dict(state)
    return shuffled, q


def assert_same_outputs(one, other, x):
    with torch.no_grad():
        y1, y2 = one(x), other(x)
    assert (y1 - y2).abs().max() <= RTOL * y1.abs().max()


@pytest.mark.parametrize("name", FAMILIES)
def test_a_permutation_of_hidden_units_leaves_the_outputs_unchanged(name):
    model, x = family(name)
    shuffled, q = planted(model)
    assert any(not torch.equal(p, torch.arange(len(p))) for p in q.values())
    assert any(not torch.equal(v, shuffled.state_dict()[k]) for k, v in model.state_dict().items())
    assert_same_outputs(model, shuffled, x)
    aligned = landscape.align(shuffled, model).model  # and the copy align makes computes what model_b does
    assert_same_outputs(model, aligned, x)


@pytest.mark.parametrize("name", FAMILIES)
def test_align_recovers_a_planted_permutation_exactly(name):
    model, _ = family(name)
    shuffled, q = planted(model)
    found = landscape.align(model, shuffled)
    assert found.converged and set(found.permutations) == set(q)
    for group, p in q.items():
        assert torch.equal(found.permutations[group], invert(p)), group
    for key, value in model.state_dict().items():
        assert torch.equal(found.model.state_dict()[key], value), key


@pytest.mark.parametrize("name", ["mlp", "vgg", "resnet8"])
def test_align_sees_through_noise_and_removes_the_midpoint_barrier(name):
    """b = a shuffled plus 1 % noise: the permutation found is still the planted one's inverse, and the
    midpoint of a and the aligned b computes nearly what a does, unlike the midpoint of a and b."""
    model, x = family(name)
    shuffled, q = planted(model, noise=0.01)
    found = landscape.align(model, shuffled)
    assert all(torch.equal(found.permutations[g], invert(p)) for g, p in q.items())

    def midpoint_error(other):  # the 'loss' of the midpoint: its squared distance from a's outputs
        middle = copy.deepcopy(model)
        middle.load_state_dict({k: (v + other.state_dict()[k]) / 2 if v.is_floating_point() else v
                                for k, v in model.state_dict().items()})
        with torch.no_grad():
            return float(((middle(x) - model(x)) ** 2).mean() / (model(x) ** 2).mean())
    assert midpoint_error(found.model) < 1e-3 < midpoint_error(shuffled)


def test_the_zoo_resnet_shares_one_permutation_along_each_residual_stream():
    """By hand from resnet.py: identity shortcuts join the stem conv and the blocks' conv2 of stage 1; a
    stage's first block has a 1x1-conv shortcut, whose units join its conv2 and the stage's later conv2s."""
    spec = permutation_spec(get_model("resnet20"))
    streams = {"conv1": ("conv1", "layer1.0.conv2", "layer1.1.conv2", "layer1.2.conv2")}
    for stage in (2, 3):
        streams[f"layer{stage}.0.conv2"] = (f"layer{stage}.0.conv2", f"layer{stage}.0.shortcut.0",
                                            f"layer{stage}.1.conv2", f"layer{stage}.2.conv2")
    inner = {f"layer{s}.{b}.conv1": (f"layer{s}.{b}.conv1",) for s in (1, 2, 3) for b in range(3)}
    assert spec.producers == {**streams, **inner}
    assert spec.groups["conv1"] == 16 and spec.groups["layer3.0.conv2"] == 64
    shortcut = spec.axes["layer2.0.shortcut.0.weight"]  # reads stream 1, writes stream 2
    assert [(pa.axis, pa.group) for pa in shortcut] == [(0, "layer2.0.conv2"), (1, "conv1")]
    assert "linear.bias" not in spec.axes  # the outputs are never permuted
    assert len(permutation_spec(get_model("resnet20_noshort")).groups) == 19  # every conv on its own


def test_the_flatten_moves_each_channel_as_a_block_of_features():
    spec = permutation_spec(get_model("vgg9"))  # 256 channels of 4×4 maps into fc.0
    assert spec.axes["fc.0.weight"][1].block == 16 and spec.axes["fc.0.weight"][1].group == "features.20"
    assert [pa.group for pa in spec.axes["fc.1.running_var"]] == ["fc.0"]


def _assignment_is_optimal(spec, a, b, perms, group):
    """Whether no permutation of `group` (all of them tried) raises the objective, the others held."""
    best = objective(spec, a, b, perms)
    for trial in itertools.permutations(range(spec.groups[group])):
        if objective(spec, a, b, {**perms, group: torch.tensor(trial)}) > best + 1e-12 * abs(best):
            return False
    return True


def test_each_step_is_the_best_assignment_found_by_brute_force():
    torch.manual_seed(3)
    one = nn.Sequential(nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 2)).double()
    other = nn.Sequential(nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 2)).double()
    spec = permutation_spec(one)
    a, b = dict(one.named_parameters()), dict(other.named_parameters())
    found = weight_matching(spec, a, b)
    assert _assignment_is_optimal(spec, a, b, found.permutations, "0")  # one group: the global optimum
    two = [nn.Sequential(nn.Linear(6, 4), nn.ReLU(), nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 2)).double()
           for _ in range(2)]
    spec = permutation_spec(two[0])
    a, b = dict(two[0].named_parameters()), dict(two[1].named_parameters())
    found = weight_matching(spec, a, b)
    assert found.converged  # a fixed point of coordinate ascent: no group alone can do better
    assert all(_assignment_is_optimal(spec, a, b, found.permutations, group) for group in spec.groups)


@pytest.mark.parametrize("name", ["mlp", "resnet8", "residual_mlp"])
def test_weight_matching_never_lowers_its_objective(name):
    model_a, _ = family(name, seed=0)
    model_b, _ = family(name, seed=1)  # unrelated weights: many steps to take
    spec = permutation_spec(model_a)
    a, b = dict(model_a.named_parameters()), dict(model_b.named_parameters())

    def direct(perms):  # the objective from the permuted weights themselves
        moved = apply_permutations(b, spec, perms)
        return sum(float((a[k] * moved[k]).detach().sum()) for k in a)
    values = [direct({g: torch.arange(n) for g, n in spec.groups.items()})]
    found = weight_matching(spec, a, b, seed=5, on_step=lambda perms: values.append(direct(perms)))
    scale = sum(float(a[k].detach().abs().sum() * b[k].detach().abs().max()) for k in a)
    assert all(later >= earlier - 1e-13 * scale for earlier, later in zip(values, values[1:]))
    assert values[-1] > values[0] + 1e-3 * scale  # it did climb
    assert abs(found.objective - values[-1]) <= 1e-12 * scale


def test_activation_matching_recovers_a_planted_permutation():
    for name in ("mlp", "resnet8"):
        model, x = family(name)
        shuffled, q = planted(model)
        data = (x.repeat(8, *([1] * (x.ndim - 1))) + torch.randn(8 * len(x), *x.shape[1:], dtype=x.dtype),
                torch.zeros(8 * len(x), dtype=torch.long))
        found = landscape.align(model, shuffled, method="activations", data=data)
        assert all(torch.equal(found.permutations[g], invert(p)) for g, p in q.items()), name
        assert_same_outputs(model, found.model, x)


def test_align_leaves_both_models_as_they_were():
    model, _ = family("vgg")
    shuffled, _ = planted(model)
    before = [copy.deepcopy(m.state_dict()) for m in (model, shuffled)]
    found = landscape.align(model, shuffled)
    assert found.model is not shuffled
    for m, state in zip((model, shuffled), before):
        assert all(torch.equal(v, m.state_dict()[k]) for k, v in state.items())


class TinyTransformerBlock(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed, self.head = nn.Linear(4, 8), nn.Linear(8, 2)
        self.attn = nn.MultiheadAttention(8, 2, batch_first=True)

    def forward(self, x):
        h = self.embed(x)
        return self.head(h + self.attn(h, h, h)[0])


class SharedLayer(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc, self.head = nn.Linear(4, 4), nn.Linear(4, 2)

    def forward(self, x):
        return self.head(torch.relu(self.fc(torch.relu(self.fc(x)))))


def tied():
    model = nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 2))
    model[2].weight = model[0].weight
    return model


class Branchy(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(4, 6), nn.Linear(4, 6)
        self.head = nn.Linear(12, 2)

    def forward(self, x):
        return self.head(torch.cat([self.fc1(x), self.fc2(x)], dim=1))


class DataDependent(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 2)

    def forward(self, x):
        return self.fc(x) if x.sum() > 0 else -self.fc(x)


REFUSED = {  # model: what the one-line message must name
    "attention": (TinyTransformerBlock, ["'embed'", "'attn'", "MultiheadAttention"]),
    "layer_norm": (lambda: nn.Sequential(nn.Linear(4, 8), nn.LayerNorm(8), nn.Linear(8, 2)), ["'1'", "LayerNorm"]),
    "concatenation": (Branchy, ["'fc1'", "torch.cat()"]),
    "reshape": (lambda: nn.Sequential(nn.Linear(4, 6), nn.Unflatten(1, (2, 3)), nn.Flatten(), nn.Linear(6, 2)),
                ["'0'", "Unflatten"]),
    "module_called_twice": (SharedLayer, ["'fc'", "2 times"]),
    "tied_weights": (tied, ["'2.weight'", "'0.weight'"]),
    "untraceable": (DataDependent, ["DataDependent", "torch.fx"]),
}


@pytest.mark.parametrize("name", REFUSED)
def test_unsupported_models_are_refused_in_one_line_naming_the_layer(name):
    factory, named = REFUSED[name]
    torch.manual_seed(0)
    model_a, model_b = factory(), factory()
    with pytest.raises(AlignmentError) as caught:
        landscape.align(model_a, model_b)
    message = str(caught.value)
    assert "\n" not in message and all(part in message for part in named), message


def test_models_of_other_architectures_are_refused():
    with pytest.raises(AlignmentError, match=r"'0.weight' is \(10, 6\) in model_a and \(12, 6\) in model_b"):
        landscape.align(mlp(), nn.Sequential(nn.Linear(6, 12), nn.ReLU(), nn.Linear(12, 8), nn.BatchNorm1d(8),
                                             nn.Tanh(), nn.Linear(8, 3)))

    class Unskipped(ResidualMLP):  # the same tensors, without the residual sum
        def forward(self, x):
            return F.log_softmax(self.out(torch.tanh(self.fc2(F.relu(self.fc1(x))))), dim=1)
    with pytest.raises(AlignmentError, match="wired differently"):
        landscape.align(ResidualMLP(), Unskipped())


def test_groups_that_reach_the_outputs_or_the_inputs_stay_put():
    """The logits (even through log_softmax) are outputs, and units added to the input live in its space:
    neither is permuted, and a model with nothing else to permute comes back unchanged."""
    assert set(permutation_spec(ResidualMLP()).groups) == {"fc1"}  # fc2 writes into fc1's stream

    class InputSkip(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(4, 4)

        def forward(self, x):
            return x + self.fc(x)
    found = landscape.align(InputSkip(), InputSkip())
    assert found.permutations == {} and found.converged

    class SoftmaxMix(nn.Module):  # fc2's units are summed with softmax(logits), which never move
        def __init__(self):
            super().__init__()
            self.fc1, self.logits, self.fc2, self.head = (nn.Linear(4, 6), nn.Linear(6, 3), nn.Linear(6, 3),
                                                          nn.Linear(3, 2))

        def forward(self, x):
            h = F.relu(self.fc1(x))
            y = self.logits(h)
            return self.head(self.fc2(h) + F.softmax(y, dim=1)), y
    assert set(permutation_spec(SoftmaxMix()).groups) == {"fc1"}


def test_bad_options_are_refused():
    model = mlp()
    with pytest.raises(ChoiceError, match="method='neurons'"):
        landscape.align(model, model, method="neurons")
    with pytest.raises(ChoiceError, match="max_iter=0"):
        landscape.align(model, model, max_iter=0)
    with pytest.raises(DataError, match="method='activations' only"):
        landscape.align(model, model, data=(torch.zeros(2, 6), torch.zeros(2)))
    with pytest.raises(DataError, match="give data="):
        landscape.align(model, model, method="activations")


def test_the_correlations_summed_batch_by_batch_are_pearson_correlations():
    torch.manual_seed(0)
    a = torch.randn(40, 3, dtype=torch.float64) * torch.tensor([1.0, 5.0, 0.1]) + 3.0
    b = a[:, [2, 0, 1]] * 2.0 + torch.randn(40, 3, dtype=torch.float64) + torch.tensor([0.0, -7.0, 1.0])
    b = torch.cat([b, torch.ones(40, 1, dtype=torch.float64)], dim=1)  # a unit that never varies
    moments = CrossMoments()
    for rows in (slice(0, 15), slice(15, 40)):
        moments.add(a[rows], b[rows])
    expected = torch.corrcoef(torch.cat([a, b[:, :3]], dim=1).T)[:3, 3:]
    assert torch.allclose(moments.correlation()[:, :3], expected, rtol=0, atol=1e-12)
    assert torch.equal(moments.correlation()[:, 3], torch.zeros(3, dtype=torch.float64))
