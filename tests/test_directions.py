import pytest
import torch
import torch.nn as nn

from landscape.space.directions import named_entries, normalize_direction, random_direction, target_direction


def small_net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 5))


def make(net, dir_type="weights", norm="filter", ignore="biasbn", seed=0):
    entries = [t for _, t in named_entries(net, dir_type)]
    return entries, normalize_direction(random_direction(entries, seed), entries, norm, ignore)


def test_filter_normalization_matches_each_filter_norm_and_zeros_biasbn():
    net = small_net()
    entries, d = make(net)
    for w, di in zip(entries, d):
        if w.dim() <= 1:
            assert torch.count_nonzero(di) == 0
        else:
            for wf, df in zip(w, di):  # conv output channels and FC rows alike
                assert torch.allclose(df.norm(), wf.norm(), rtol=1e-5)


def test_biasbn_not_ignored_copies_weights_like_the_reference():
    net = small_net()
    entries, d = make(net, ignore="none")
    for w, di in zip(entries, d):
        if w.dim() == 1:
            assert torch.equal(di, w)


@pytest.mark.parametrize("norm,check", [
    ("layer", lambda w, d: torch.allclose(d.norm(), w.norm(), rtol=1e-5)),
    ("dlayer", lambda w, d: torch.allclose(d.norm(), torch.tensor(1.0), rtol=1e-5)),
    ("dfilter", lambda w, d: all(torch.allclose(f.norm(), torch.tensor(1.0), rtol=1e-5) for f in d)),
])
def test_other_norms(norm, check):
    net = small_net()
    entries, d = make(net, norm=norm)
    assert all(check(w, di) for w, di in zip(entries, d) if w.dim() > 1)


def test_weight_norm_scales_entrywise():
    net = small_net()
    entries = [t for _, t in named_entries(net, "weights")]
    raw = random_direction(entries, 3)
    d = normalize_direction(raw, entries, "weight", "biasbn")
    assert torch.allclose(d[0], raw[0] * entries[0])


def test_states_directions_cover_bn_buffers_and_leave_integer_buffers_alone():
    net = small_net()
    names = [n for n, _ in named_entries(net, "states")]
    assert "1.running_mean" in names and "1.running_var" in names and "1.num_batches_tracked" in names
    entries, d = make(net, "states", ignore="none")
    i = names.index("1.num_batches_tracked")
    assert torch.count_nonzero(d[i]) == 0 and d[i].is_floating_point()
    assert torch.equal(d[names.index("1.running_var")], entries[names.index("1.running_var")])


def test_seed_reproduces_and_differs():
    net = small_net()
    _, a = make(net, seed=5)
    _, b = make(net, seed=5)
    _, c = make(net, seed=6)
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    assert not torch.equal(a[0], c[0])


def test_unknown_modes_raise():
    net = small_net()
    entries = [t for _, t in named_entries(net, "weights")]
    raw = random_direction(entries, 0)
    with pytest.raises(ValueError, match="xnorm"):
        normalize_direction(raw, entries, "", "biasbn")
    with pytest.raises(ValueError, match="ignore"):
        normalize_direction(raw, entries, "filter", "bias")
    with pytest.raises(ValueError, match="dir_type"):
        named_entries(net, "params")


def test_target_direction_is_the_difference():
    a, b = small_net(), small_net()
    with torch.no_grad():
        for p in b.parameters():
            p.add_(1.0)
    ea = [t for _, t in named_entries(a, "weights")]
    eb = [t for _, t in named_entries(b, "weights")]
    assert all(torch.allclose(d, torch.ones_like(d)) for d in target_direction(ea, eb))
