"""Sharpness (curvature/sharpness.py, landscape.sharpness) against closed forms and dense Hessians."""
import copy
import math

import pytest
import torch

import landscape
from landscape.curvature.sharpness import FlatLoss, average_case, checkpoints, m_sharpness, set_norm, worst_case
from landscape.errors import DataError


def half_squares(outputs, targets, inputs):
    """½ Σ (output − target)²: with a linear model the mean loss is an exact quadratic."""
    return 0.5 * ((outputs - targets) ** 2).sum(), len(targets)


def linear_problem(n=40, d=6, seed=0, at_minimum=True):
    """(model, X, y) of least squares: L(w) = ‖Xw − y‖²/(2n), H = XᵀX/n, g = Xᵀ(Xw − y)/n."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=gen, dtype=torch.float64) * torch.linspace(0.3, 2.0, d, dtype=torch.float64)
    y = torch.randn(n, generator=gen, dtype=torch.float64)
    model = torch.nn.Linear(d, 1, bias=False).double()
    with torch.no_grad():
        w = torch.linalg.lstsq(x, y).solution if at_minimum else torch.randn(d, generator=gen, dtype=torch.float64)
        model.weight.copy_(w.view(1, d))
    return model, x, y.view(n, 1)


def quadratic_parts(model, x, y):
    w = model.weight.detach().view(-1)
    h = x.T @ x / len(x)
    g = x.T @ (x @ w - y.view(-1)) / len(x)
    return h, g


def trust_region_max(h, g, rho):
    """max over ‖δ‖ ≤ ρ of gᵀδ + ½δᵀHδ, exactly: δ = (μ − H)⁻¹ g on the sphere, μ > λmax found by bisection
    of the secular equation ‖(μ − H)⁻¹ g‖ = ρ in the eigenbasis (g ≠ 0 in the top direction here)."""
    lam, q = torch.linalg.eigh(h)
    c = q.T @ g
    lo, hi = lam[-1] + 1e-300, lam[-1] + g.norm() / rho + 1
    for _ in range(200):
        mu = (lo + hi) / 2
        lo, hi = (mu, hi) if (c / (mu - lam)).norm() > rho else (lo, mu)
    delta = q @ (c / (mu - lam))
    return float(g @ delta + 0.5 * delta @ h @ delta)


def flat(model, x, y):
    return FlatLoss(model, ["weight"], half_squares, [(x, y)])


def test_worst_case_at_a_quadratic_minimum_is_half_rho_squared_lambda_max():
    model, x, y = linear_problem()
    h, _ = quadratic_parts(model, x, y)
    lam_max = float(torch.linalg.eigvalsh(h)[-1])
    for rho in (1e-3, 0.1, 1.0):
        found = worst_case(flat(model, x, y), rho, "l2", adaptive=False, steps=50, restarts=2)
        truth = rho ** 2 * lam_max / 2
        assert found.value <= truth * (1 + 1e-12)  # nothing beats the maximum: the set is respected
        assert found.value >= truth * (1 - 1e-3)
        assert float(found.delta.norm()) <= rho * (1 + 1e-12)


def test_worst_case_off_the_minimum_matches_the_trust_region_maximum():
    model, x, y = linear_problem(at_minimum=False)
    h, g = quadratic_parts(model, x, y)
    lam_max = float(torch.linalg.eigvalsh(h)[-1])
    for rho in (0.01, 0.3):
        found = worst_case(flat(model, x, y), rho, "l2", adaptive=False, steps=50)
        truth = trust_region_max(h, g, rho)
        assert truth * (1 - 1e-4) <= found.value <= truth * (1 + 1e-10)
        assert found.value <= rho * float(g.norm()) + rho ** 2 * lam_max / 2  # a quadratic's bound


def test_worst_case_linf_on_a_quadratic_is_the_brute_force_vertex_maximum():
    """½δᵀHδ with H ⪰ 0 is convex: its maximum over the cube is at a vertex; d = 6 gives 64 to try. One run
    ends at a vertex where the gradient Hδ points out of the cube in every coordinate (a KKT point: a local
    maximum, not the global one here); ten random restarts find the global one."""
    model, x, y = linear_problem(d=6)
    h, _ = quadratic_parts(model, x, y)
    rho = 0.05
    signs = torch.tensor([[1.0 if (i >> j) & 1 else -1.0 for j in range(6)] for i in range(64)], dtype=torch.float64)
    truth = float(max(0.5 * rho ** 2 * s @ h @ s for s in signs))
    one = worst_case(flat(model, x, y), rho, "linf", adaptive=False, steps=50, restarts=1)
    assert torch.allclose(one.delta.abs(), torch.full((6,), rho, dtype=torch.float64), rtol=1e-12)
    assert torch.equal(torch.sign(h @ one.delta), torch.sign(one.delta))
    found = worst_case(flat(model, x, y), rho, "linf", adaptive=False, steps=50, restarts=10)
    assert truth * (1 - 1e-9) <= found.value <= truth * (1 + 1e-9)
    assert float(found.delta.abs().max()) <= rho * (1 + 1e-12)


def test_adaptive_worst_case_on_a_quadratic_is_lambda_max_of_the_scaled_hessian():
    """With δ = |w| ⊙ u, ‖u‖ ≤ ρ, at a minimum: ρ²/2 · λmax(diag|w| H diag|w|)."""
    model, x, y = linear_problem()
    h, _ = quadratic_parts(model, x, y)
    s = model.weight.detach().view(-1).abs()
    truth = 0.01 ** 2 / 2 * float(torch.linalg.eigvalsh(s[:, None] * h * s[None, :])[-1])
    found = worst_case(flat(model, x, y), 0.01, "l2", adaptive=True, steps=50, restarts=2)
    assert truth * (1 - 1e-3) <= found.value <= truth * (1 + 1e-10)
    assert set_norm(found.delta, flat(model, x, y).w, "l2", True) <= 0.01 * (1 + 1e-12)


def test_average_case_on_a_quadratic_is_half_sigma_squared_trace():
    """Antithetic pairs make each draw exactly ½σ²ξᵀHξ: mean σ²·tr H/2, standard deviation σ²‖H‖_F/√2 per draw."""
    model, x, y = linear_problem()
    h, _ = quadratic_parts(model, x, y)
    sigma, samples = 0.01, 400
    found = average_case(flat(model, x, y), sigma, adaptive=False, samples=samples)
    error = sigma ** 2 * float(torch.linalg.matrix_norm(h)) / math.sqrt(2 * samples)
    assert abs(found.value - sigma ** 2 * float(torch.trace(h)) / 2) <= 5 * error


def test_checkpoints_are_croce_and_heins():
    """ceil(p_j·100) as the reference computes it in floats (0.41 + 0.16 = 0.5700000000000001: 58)."""
    assert checkpoints(100) == [22, 41, 58, 70, 80, 87, 93, 99]


def test_m_equal_to_the_data_is_the_full_batch_value_and_seeds_reproduce():
    model, x, y = linear_problem(at_minimum=False)
    whole = worst_case(flat(model, x, y), 0.1, "l2", adaptive=True, steps=10, seed=3)
    grouped, parts = m_sharpness(model, ["weight"], half_squares, [[(x[:25], y[:25]), (x[25:], y[25:])]],
                                 0.1, "l2", True, steps=10, seed=3)
    assert len(parts) == 1 and grouped.value == pytest.approx(whole.value, rel=1e-12)
    again = worst_case(flat(model, x, y), 0.1, "l2", adaptive=True, steps=10, seed=3)
    assert again.value == whole.value and torch.equal(again.delta, whole.delta)


CE = torch.nn.functional.mse_loss  # a user's mean loss keeps float64 (the engine's losses are fp32)


def trained_mlp(activation=torch.nn.Tanh, n=64, seed=0, train=True):
    """A 3-4-1 MLP in float64 fit by L-BFGS to noisy regression targets (a minimum with loss > 0 and moderate
    weights: the noise cannot be fit by 21 parameters), and its data; seeded, so the same everywhere."""
    torch.manual_seed(seed)
    x = torch.randn(n, 3, dtype=torch.float64)
    y = torch.sin(x[:, :1]) + 0.3 * torch.randn(n, 1, dtype=torch.float64)
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), activation(), torch.nn.Linear(4, 1)).double()
    if train:
        opt = torch.optim.LBFGS(model.parameters(), lr=1, max_iter=1000, tolerance_grad=1e-13, tolerance_change=0,
                                history_size=50, line_search_fn="strong_wolfe")

        def closure():
            opt.zero_grad()
            out = CE(model(x), y)
            out.backward()
            return out
        opt.step(closure)
    return model, x, y


def dense_parts(model, x, y):
    """(flat gradient, dense Hessian) of the mean cross-entropy over all parameters."""
    names = [n for n, _ in model.named_parameters()]
    shapes = [p.shape for p in model.parameters()]
    w0 = torch.cat([p.detach().reshape(-1) for p in model.parameters()])

    def loss_of(w):
        parts = dict(zip(names, (t.view(s) for t, s in zip(w.split([s.numel() for s in shapes]), shapes))))
        return CE(torch.func.functional_call(model, parts, (x,)), y)
    g = torch.autograd.functional.jacobian(loss_of, w0)
    return g, torch.autograd.functional.hessian(loss_of, w0), loss_of, w0


def test_worst_case_beats_the_top_eigenvector_and_gradient_ascents_and_tends_to_the_second_order_value():
    model, x, y = trained_mlp()
    g, h, loss_of, w0 = dense_parts(model, x, y)
    lam, vecs = torch.linalg.eigh(h)
    v = vecs[:, -1]
    for rho in (0.05, 0.2):
        found = landscape.sharpness(model, (x, y), CE, rho=rho, adaptive=False, steps=40)
        eigen = max(float(loss_of(w0 + s * rho * v) - loss_of(w0)) for s in (1, -1))
        assert found.value >= eigen * (1 - 1e-9)
        assert found.delta_norm <= rho * (1 + 1e-12)
        for start in range(3):  # projected normalized gradient ascents from seeded starts
            gen = torch.Generator().manual_seed(start)
            d = torch.randn(len(w0), generator=gen, dtype=torch.float64) * rho * 0.1
            for _ in range(100):
                step = torch.autograd.functional.jacobian(loss_of, w0 + d)
                d = d + 0.1 * rho * step / step.norm()
                d = d * min(1.0, rho / float(d.norm()))
            assert found.value >= float(loss_of(w0 + d) - loss_of(w0)) - 1e-12
    for rho in (1e-3, 1e-4):  # ρ → 0: the found value approaches ρ‖g‖ + ρ²λmax/2 within what the model's own
        # odd terms allow. The max lies between its value at ±ρv (found must reach it) and ρ‖g‖ + ρ²λmax/2 +
        # the cubic term; so |found / (ρ‖g‖ + ρ²λmax/2) − 1| <= 2‖g‖/(ρλmax) (g is only ≈ 0: its direction is
        # not v's) + 2·|cubic along v| / ρ²λmax, both computed here, neither fitted.
        found = landscape.sharpness(model, (x, y), CE, rho=rho, adaptive=False, steps=40)
        second_order = rho * float(g.norm()) + rho ** 2 * float(lam[-1]) / 2
        ups = [float(loss_of(w0 + s * rho * v) - loss_of(w0)) for s in (1, -1)]
        cubic = abs((ups[0] - ups[1]) / 2 - rho * float(g @ v))
        allowed = 2 * float(g.norm()) / (rho * float(lam[-1])) + 2 * cubic / (rho ** 2 * float(lam[-1]))
        assert abs(found.value / second_order - 1) <= allowed


def test_average_case_at_small_sigma_is_half_sigma_squared_trace():
    """At a minimum, E[L(w+σξ) − L(w)] = σ²tr H/2 + O(σ⁴); antithetic pairs cancel the odd terms, and the
    Monte-Carlo error of the quadratic term is σ²‖H‖_F/√(2·samples)."""
    model, x, y = trained_mlp()
    _, h, _, _ = dense_parts(model, x, y)
    sigma, samples = 1e-3, 2000
    found = landscape.sharpness(model, (x, y), CE, rho=sigma, measure="average", adaptive=False, samples=samples)
    error = sigma ** 2 * float(torch.linalg.matrix_norm(h)) / math.sqrt(2 * samples)
    assert abs(found.value - sigma ** 2 * float(torch.trace(h)) / 2) <= 5 * error + 1e-3 * sigma ** 2


def rescaled(model, alpha):
    """The same function: the first ReLU layer times α, the next layer's weight over α."""
    twin = copy.deepcopy(model)
    with torch.no_grad():
        twin[0].weight.mul_(alpha)
        twin[0].bias.mul_(alpha)
        twin[2].weight.div_(alpha)
    return twin


@pytest.mark.parametrize("measure,norm", [("worst", "l2"), ("worst", "linf"), ("average", "l2")])
def test_adaptive_measures_survive_a_relu_rescaling_and_plain_ones_do_not(measure, norm):
    model, x, y = trained_mlp(torch.nn.ReLU, train=False)
    twin = rescaled(model, 4.0)
    assert torch.allclose(model(x), twin(x), rtol=1e-12, atol=1e-12)
    kwargs = dict(rho=0.05, measure=measure, norm=norm, steps=20, samples=50)
    a, b = landscape.sharpness(model, (x, y), CE, **kwargs), landscape.sharpness(twin, (x, y), CE, **kwargs)
    assert a.value == pytest.approx(b.value, rel=1e-8, abs=1e-14)
    a, b = (landscape.sharpness(m, (x, y), CE, adaptive=False, **kwargs) for m in (model, twin))
    assert abs(a.value - b.value) > 0.05 * max(a.value, b.value)


def test_worst_is_at_least_average_is_at_least_zero_and_m_and_seeds():
    model, x, y = trained_mlp()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    model.train()
    worst = landscape.sharpness(model, (x, y), CE, rho=0.1, steps=20)
    dim = sum(p.numel() for p in model.parameters())  # the average's ρ per coordinate: E‖δ/s‖² = ρ², the same
    average = landscape.sharpness(model, (x, y), CE, rho=0.1 / math.sqrt(dim), measure="average", samples=50)
    assert worst.value >= average.value >= 0
    assert model.training and all(torch.equal(v, model.state_dict()[k]) for k, v in state.items())
    whole = landscape.sharpness(model, (x, y), CE, rho=0.1, steps=20, m=len(y))
    assert whole.value == worst.value and torch.equal(whole.delta, worst.delta)
    per_eight = landscape.sharpness(model, (x, y), CE, rho=0.1, steps=20, m=8)
    assert len(per_eight.batch_values) == len(y) // 8 and per_eight.delta is None
    assert per_eight.value == pytest.approx(sum(per_eight.batch_values) / (len(y) // 8), rel=1e-12)
    assert per_eight.value >= worst.value * (1 - 1e-9)  # each batch's own δ does at least as well as the shared one
    again = landscape.sharpness(model, (x, y), CE, rho=0.1 / math.sqrt(dim), measure="average", samples=50)
    assert again.value == average.value
    other = landscape.sharpness(model, (x, y), CE, rho=0.1 / math.sqrt(dim), measure="average", samples=50, seed=1)
    assert other.value != average.value


def test_m_sharpness_on_a_dataloader_equals_the_pair_cut_into_the_same_batches():
    model, x, y = trained_mlp()
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=12)  # last batch shorter
    assert len(y) % 12 != 0
    from_pair = landscape.sharpness(model, (x, y), CE, rho=0.1, steps=5, m=12)
    from_loader = landscape.sharpness(model, loader, CE, rho=0.1, steps=5, m=12)
    # each batch of 12 is one forward pass either way (CHUNK > 12): the same sums, the same δ, bit for bit
    assert from_loader.batch_values == from_pair.batch_values and from_loader.value == from_pair.value
    odd = [(x[:12], y[:12]), (x[12:20], y[12:20]), (x[20:32], y[20:32])]  # a short batch that is not the last
    with pytest.raises(DataError, match="batch 1 holds a different count.*batch_size=12"):
        landscape.sharpness(model, odd, CE, rho=0.1, steps=5, m=12)
    with pytest.raises(DataError, match="batch 0 holds a different count"):
        landscape.sharpness(model, loader, CE, rho=0.1, steps=5, m=8)


def test_sharpness_and_flatness_compute_in_strict_fp32_even_when_the_user_left_tf32_on():
    from landscape.space.precision import read_tf32_flags, set_tf32_flags, tf32_flags_for
    model, x, y = trained_mlp()
    seen = []

    def recording_loss(outputs, targets):
        seen.append(read_tf32_flags())
        return torch.nn.functional.mse_loss(outputs, targets)
    saved = read_tf32_flags()
    set_tf32_flags(tf32_flags_for(True))
    try:
        landscape.sharpness(model, (x, y), recording_loss, rho=0.1, steps=2)
        landscape.pac_bayes_flatness(model, (x, y), recording_loss, quantity="loss", draws=2, tol=0.5)
        assert read_tf32_flags() == tf32_flags_for(True)  # the user's switches come back
    finally:
        set_tf32_flags(saved)
    assert len(seen) > 4 and set(seen) == {tf32_flags_for(False)}
