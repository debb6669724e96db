"""PAC-Bayes flatness (issue 24, item 2): landscape.pac_bayes_flatness and curvature/flatness.py.

Truths: the crossing sqrt(target/c) of an exact quadratic deviation c·σ² (the search alone); for a linear
model at its least-squares minimum under a mean-squared loss, E_u[L(w+u)] - L(w) = σ²·trace(A) exactly,
A = [X 1]ᵀ[X 1]/n (half the Hessian), and with the same draws at every σ the Monte-Carlo estimate is
σ²·ĉ with ĉ = mean_j z_jᵀ A z_j, whose spread about trace(A) is sqrt(2·trace(A²)/draws); ReLU rescaling
(layer 1 by α, layer 2 by 1/α) leaves the function and, up to ε, the magnitude-aware noise unchanged.
"""
import math

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import landscape
from landscape.curvature.flatness import largest_sigma
from landscape.errors import CurvatureError, LandscapeError, LossError


def test_search_brackets_the_crossing_of_an_exact_quadratic():
    for c, start in [(3.0, 1.0), (1e4, 1.0), (1e-3, 1.0), (50.0, 1e-3)]:
        found = largest_sigma(lambda s: c * s * s, 0.1, 1e-3, start=start)
        crossing = math.sqrt(0.1 / c)
        assert found.lower <= crossing <= found.upper <= found.lower * (1 + 1e-3)
        assert all((d <= 0.1) == (s <= crossing) for s, d in found.evaluations)


def test_search_counts_nan_as_beyond_and_refuses_an_unreachable_target():
    found = largest_sigma(lambda s: float("nan") if s > 0.3 else 0.0, 0.1, 1e-3)
    assert found.lower <= 0.3 <= found.upper
    with pytest.raises(CurvatureError, match="no σ reaches it"):
        largest_sigma(lambda s: 0.0, 0.1, 1e-2)


def least_squares_linear(n=96, d=64):
    """A float64 Linear(d, 1) at the least-squares minimum of noisy targets: the residuals are orthogonal to
    [X 1], so the loss under weight noise has no first-order term, draw by draw."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, d, generator=g, dtype=torch.float64)
    y = x @ torch.randn(d, generator=g, dtype=torch.float64) + 0.1 * torch.randn(n, generator=g, dtype=torch.float64)
    design = torch.cat([x, torch.ones(n, 1, dtype=torch.float64)], 1)
    solution = torch.linalg.lstsq(design, y.unsqueeze(1)).solution.squeeze(1)
    model = nn.Linear(d, 1).double()
    with torch.no_grad():
        model.weight.copy_(solution[:d].unsqueeze(0))
        model.bias.copy_(solution[d:])
    return model, (x, y), design.T @ design / n


def mse(outputs, targets):
    return ((outputs.squeeze(1) - targets) ** 2).mean()


def test_quadratic_loss_gives_the_analytic_sigma():
    model, data, a = least_squares_linear()
    draws, target, tol = 200, 0.1, 1e-3
    found = landscape.pac_bayes_flatness(model, data, loss=mse, quantity="loss", target=target, draws=draws, tol=tol)
    # the same draws at every σ: each deviation is σ²·ĉ for one ĉ (to float64 rounding)
    ratios = torch.tensor([d / s ** 2 for s, _, d in found.evaluations], dtype=torch.float64)
    c_hat = ratios.mean().item()
    assert (ratios - c_hat).abs().max().item() <= 1e-9 * c_hat
    assert found.sigma <= math.sqrt(target / c_hat) <= found.sigma_upper
    # ĉ against the closed form trace(A): within 5 standard deviations of its Monte-Carlo spread
    spread = math.sqrt(2 * torch.trace(a @ a).item() / draws)
    assert abs(c_hat - torch.trace(a).item()) <= 5 * spread
    analytic = math.sqrt(target / torch.trace(a).item())
    assert abs(found.sigma / analytic - 1) <= 0.5 * 5 * spread / torch.trace(a).item() + tol
    assert found.flatness == pytest.approx(1 / found.sigma ** 2, rel=1e-12)
    assert found.base == pytest.approx(mse(model(data[0]), data[1]).item(), rel=1e-9)


def relu_net(alpha=1.0):
    """Linear-ReLU-Linear in float64, layer 1 scaled by alpha and layer 2's weight by 1/alpha: one function."""
    torch.manual_seed(3)
    model = nn.Sequential(nn.Linear(5, 8), nn.ReLU(), nn.Linear(8, 3)).double()
    with torch.no_grad():
        model[0].weight.mul_(alpha)
        model[0].bias.mul_(alpha)
        model[2].weight.div_(alpha)
    return model


def class_data(n=64):
    g = torch.Generator().manual_seed(4)
    return torch.randn(n, 5, generator=g, dtype=torch.float64), torch.randint(0, 3, (n,), generator=g)


def test_magnitude_aware_flatness_survives_relu_rescaling_and_plain_does_not():
    data = class_data()
    same = dict(loss=F.cross_entropy, quantity="loss", target=0.05, draws=8, tol=1e-3)
    plain = [landscape.pac_bayes_flatness(relu_net(alpha), data, **same).sigma for alpha in (1.0, 4.0)]
    aware = [landscape.pac_bayes_flatness(relu_net(alpha), data, magnitude_aware=True, **same).sigma
             for alpha in (1.0, 4.0)]
    assert abs(aware[1] / aware[0] - 1) <= 1e-2  # ε = 1e-3 against weights ~0.3 moves it far less
    assert abs(plain[1] / plain[0] - 1) >= 0.2


def own_labels(model):
    """Inputs labelled by the model itself: accuracy 1, which enough noise drops by 0.1."""
    x, _ = class_data()
    with torch.no_grad():
        return x, model(x).argmax(1)


def test_accuracy_search_is_reproducible_and_leaves_the_model_as_it_was():
    model = relu_net().train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    data = own_labels(model)
    runs = [landscape.pac_bayes_flatness(model, data, draws=4, seed=seed, tol=1e-2) for seed in (7, 7, 8)]
    assert runs[0] == runs[1]
    assert runs[0].evaluations != runs[2].evaluations
    first = runs[0]
    assert first.base == 1.0 and first.quantity == "accuracy" and first.target == 0.1
    for sigma, mean, deviation in first.evaluations:
        assert 0 <= mean <= 1 and deviation == pytest.approx(abs(mean - first.base), abs=1e-15)
        assert (deviation <= first.target) == (sigma <= first.sigma)
    assert model.training and all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_batches_give_what_the_pair_gives_and_params_choose_the_noisy_ones():
    model = relu_net()
    x, y = own_labels(model)
    pair = landscape.pac_bayes_flatness(model, (x, y), draws=3, batch_size=16)
    batches = [(x[i:i + 16], y[i:i + 16]) for i in range(0, len(y), 16)]
    assert landscape.pac_bayes_flatness(model, batches, draws=3) == pair
    first_layer = landscape.pac_bayes_flatness(model, (x, y), draws=3, params=["0.*"])
    assert first_layer.params == ("0.weight", "0.bias") and pair.params == ("0.weight", "0.bias", "2.weight", "2.bias")
    assert first_layer.evaluations != pair.evaluations


@pytest.mark.parametrize("kwargs, error, words", [
    (dict(quantity="margin"), LandscapeError, "quantity='margin'"),
    (dict(target=0), CurvatureError, "target=0"),
    (dict(target=1.5), CurvatureError, "target=1.5"),
    (dict(draws=0), CurvatureError, "draws=0"),
    (dict(tol=1.0), CurvatureError, "tol=1.0"),
    (dict(magnitude_eps=-1.0), CurvatureError, "magnitude_eps=-1.0"),
    (dict(params="some"), CurvatureError, "params='some'"),
    (dict(seed=0.5), CurvatureError, "seed=0.5"),
])
def test_bad_choices_are_refused_in_one_line(kwargs, error, words):
    with pytest.raises(error, match=words) as caught:
        landscape.pac_bayes_flatness(relu_net(), class_data(), **kwargs)
    assert "\n" not in str(caught.value)


def test_accuracy_of_a_regression_and_a_non_model_are_refused():
    model, data, _ = least_squares_linear(n=8, d=3)
    with pytest.raises(LossError, match="quantity='loss'"):
        landscape.pac_bayes_flatness(model, data, loss=mse)
    with pytest.raises(LandscapeError, match="torch.nn.Module"):
        landscape.pac_bayes_flatness(lambda x: x, class_data())
