"""Trace, spectral density and per-layer curvature checked against dense Hessians of tiny nets
(trained to a minimum, and at their random init) and against operators with a known spectrum."""
import math
import re

import h5py
import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.func import functional_call

from landscape.cli.curvature_args import curvature_choices
from landscape.curvature.density import continue_lanczos, negative_mass, resolved_width, slq, smoothed_density
from landscape.curvature.hvp import mean_loss_hvp
from landscape.curvature.lanczos import lanczos_extremes, start_vector
from landscape.curvature.plan import TRACE_SAMPLES, make_plan
from landscape.curvature.point import CurvaturePlan, curvature_shapes, layer_blocks, point_curvature
from landscape.curvature.trace import deflated_hutchinson, hutchpp
from landscape.errors import CurvatureError
from landscape.files.results import hessian_layout, open_for_writing, read_results, write_points
from landscape.files.resume import prepare
from landscape.space.grid import make_grid

SEEDS = range(100)


def mlp():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(10, 8), nn.Tanh(), nn.Linear(8, 6), nn.Tanh(), nn.Linear(6, 3)).double()


def cnn():
    torch.manual_seed(1)
    return nn.Sequential(nn.Conv2d(2, 4, 3), nn.Tanh(), nn.Conv2d(4, 4, 3), nn.Tanh(), nn.Flatten(),
                         nn.Linear(4 * 2 * 2, 3)).double()


def data_for(model, n=40):
    gen = torch.Generator().manual_seed(5)
    shape = (n, 10) if isinstance(model[0], nn.Linear) else (n, 2, 6, 6)
    return torch.randn(shape, generator=gen, dtype=torch.float64), torch.randint(0, 3, (n,), generator=gen)


def train(model, x, y, steps=400):
    opt = torch.optim.Adam(model.parameters(), lr=0.02)
    for _ in range(steps):
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()
    return model


def dense_hessian(model, x, y):
    names = [n for n, _ in model.named_parameters()]
    params = [p.detach() for p in model.parameters()]
    shapes, numels = [p.shape for p in params], [p.numel() for p in params]

    def loss(flat):
        unflat = {n: c.view(s) for n, c, s in zip(names, flat.split(numels), shapes)}
        return F.cross_entropy(functional_call(model, unflat, (x,)), y)
    return torch.autograd.functional.hessian(loss, torch.cat([p.reshape(-1) for p in params]))


class Case:
    """A model, its data, the dense Hessian over all its parameters and the HVP operator."""

    def __init__(self, model, x, y):
        self.model, self.x, self.y = model, x, y
        self.names = [n for n, _ in model.named_parameters()]
        self.h = dense_hessian(model, x, y)
        self.eig = torch.linalg.eigvalsh(self.h)
        self.hvp = mean_loss_hvp(model, self.names, F.cross_entropy, [(x, y)])
        self.dim = self.h.shape[0]
        self.blocks = layer_blocks(self.names, [p.numel() for p in model.parameters()])

    def matvec(self, v):
        return self.h @ v


@pytest.fixture(scope="module")
def cases():
    out = {}
    for make in (mlp, cnn):
        model = make()
        x, y = data_for(model)
        out[f"{make.__name__}-init"] = Case(model, x, y)
        trained = train(make(), x, y)
        out[f"{make.__name__}-trained"] = Case(trained, x, y)
    return out


def test_trained_minimum_has_the_spectrum_of_a_minimum(cases):
    for name in ("mlp-trained", "cnn-trained"):
        c = cases[name]
        loss = F.cross_entropy(c.model(c.x), c.y).item()
        assert loss < 0.05, (name, loss)
        assert c.eig[-1] > 0 and abs(c.eig[0]) < 0.05 * c.eig[-1]  # a bulk near 0 below a few outliers


@pytest.mark.parametrize("name", ["mlp-trained", "cnn-trained", "mlp-init", "cnn-init"])
def test_trace_error_bar_is_honest_over_many_seeds(cases, name):
    """True trace within 4 trace_err at every seed, and within 1 trace_err at a Gaussian-like share."""
    c = cases[name]
    truth = torch.trace(c.h).item()
    z = []
    for seed in SEEDS:
        v = point_curvature(c.matvec, c.dim, CurvaturePlan(1e-3, 100, seed, trace_samples=TRACE_SAMPLES))
        assert v["trace_err"] > 0
        z.append((v["trace"] - truth) / v["trace_err"])
    z = np.abs(z)
    assert z.max() < 4, (name, z.max())
    assert 0.5 < np.mean(z < 1) < 0.95, (name, np.mean(z < 1))  # not a vastly inflated bar either


def test_default_trace_is_accurate_at_a_trained_minimum(cases):
    """The stated accuracy (README): relative error of the default budget at trained minima."""
    for name in ("mlp-trained", "cnn-trained"):
        c = cases[name]
        truth = torch.trace(c.h).item()
        errors = [abs(point_curvature(c.matvec, c.dim, CurvaturePlan(1e-3, 100, s, trace_samples=TRACE_SAMPLES))
                      ["trace"] - truth) / abs(truth) for s in range(20)]
        assert np.sqrt(np.mean(np.square(errors))) < 0.02, (name, errors)


def test_deflation_beats_hutchpp_at_equal_extra_products(cases):
    """Hutch++ with the same number of extra products (its sketch is not free) does worse."""
    c = cases["cnn-trained"]
    truth = torch.trace(c.h).item()
    ours, theirs = [], []
    for seed in range(20):
        v = point_curvature(c.matvec, c.dim, CurvaturePlan(1e-3, 100, seed, trace_samples=TRACE_SAMPLES))
        ours.append(v["trace"] - truth)
        theirs.append(hutchpp(c.matvec, c.dim, TRACE_SAMPLES, seed=seed) - truth)
    assert np.sqrt(np.mean(np.square(ours))) < 0.5 * np.sqrt(np.mean(np.square(theirs)))


def test_trace_is_exact_when_the_basis_spans_everything(cases):
    c = cases["mlp-init"]
    q, _ = torch.linalg.qr(torch.randn(c.dim, c.dim, dtype=torch.float64))
    basis = list(q.T)
    est = deflated_hutchinson(c.matvec, c.dim, 3, basis=basis, products=[c.matvec(b) for b in basis])
    assert est.trace == pytest.approx(torch.trace(c.h).item(), rel=1e-10) and est.err < 1e-10


def test_layer_traces_match_dense_blocks_and_sum_to_the_trace(cases):
    c = cases["cnn-trained"]
    v = point_curvature(c.matvec, c.dim, CurvaturePlan(1e-3, 100, 0, trace_samples=TRACE_SAMPLES, layers=c.blocks),
                        layer_ops=[block_operator(c, b) for b in c.blocks])
    truth = np.array([torch.trace(c.h[a:b, a:b]).item() for _, a, b, _ in c.blocks])
    assert v["layer_trace"].sum() == pytest.approx(v["trace"], rel=1e-9)
    assert np.all(np.abs(v["layer_trace"] - truth) < 4 * v["layer_trace_err"] + 1e-12 * abs(truth).max())
    for i, (_, a, b, _) in enumerate(c.blocks):
        eig = torch.linalg.eigvalsh(c.h[a:b, a:b])
        scale = eig.abs().max().item()
        assert v["layer_max_eig"][i] == pytest.approx(eig[-1].item(), abs=1e-3 * scale)
        assert v["layer_min_eig"][i] == pytest.approx(eig[0].item(), abs=2e-3 * scale)


def block_operator(case, block):
    _, a, b, names = block
    op = mean_loss_hvp(case.model, list(names), F.cross_entropy, [(case.x, case.y)])
    assert op.dim == b - a
    return op


def test_layer_blocks_group_parameters_by_module():
    blocks = layer_blocks(["0.weight", "0.bias", "2.weight", "bn.weight", "bn.bias", "head"], [6, 2, 4, 3, 3, 5])
    assert blocks == (("0", 0, 8, ("0.weight", "0.bias")), ("2", 8, 12, ("2.weight",)),
                      ("bn", 12, 18, ("bn.weight", "bn.bias")), ("head", 18, 23, ("head",)))


@pytest.mark.parametrize("name", ["mlp-trained", "cnn-init"])
def test_density_moments_and_nodes_against_dense(cases, name):
    """Weights sum to 1; nodes in [λmin, λmax]; Σwλ and Σwλ² are the probes' v'Hv and |Hv|² exactly,
    and tr(H)/n, |H|_F²/n within 4 standard deviations of a unit Gaussian probe's quadratic form."""
    c = cases[name]
    probes, steps = 8, 12
    nodes, weights, _ = slq(c.matvec, c.dim, probes, steps, seed=3)
    lam = c.eig.numpy()
    assert nodes.shape == weights.shape == (probes * steps,) and np.all(np.diff(nodes) >= 0)
    assert weights.sum() == pytest.approx(1.0, abs=1e-12) and weights.min() >= 0
    scale = np.abs(lam).max()
    assert nodes.min() >= lam[0] - 1e-10 * scale and nodes.max() <= lam[-1] + 1e-10 * scale
    vs = [start_vector(c.dim, 3 + p) for p in range(probes)]
    vs = [v / v.norm() for v in vs]
    assert np.dot(weights, nodes) == pytest.approx(np.mean([(v @ c.matvec(v)).item() for v in vs]), abs=1e-10 * scale)
    assert np.dot(weights, nodes ** 2) == pytest.approx(np.mean([c.matvec(v).norm().item() ** 2 for v in vs]),
                                                        abs=1e-10 * scale ** 2)
    n = c.dim
    for power in (1, 2):  # var of v'Av for a unit Gaussian v: 2 (mean(a²) - mean(a)²) / (n + 2), a = λ^power
        a = lam ** power
        sd = math.sqrt(2 * (np.mean(a ** 2) - np.mean(a) ** 2) / (n + 2) / probes)
        assert abs(np.dot(weights, nodes ** power) - np.mean(a)) < 4 * sd


@pytest.mark.parametrize("extremes_tol", [1e-1, 1e-8])  # a run shorter, then longer, than the probe
def test_first_probe_continues_the_extremes_run_exactly(cases, extremes_tol):
    c = cases["cnn-trained"]
    steps = 20
    products = []
    def recorded(v):
        products.append(c.matvec(v))
        return products[-1].clone()
    r = lanczos_extremes(recorded, c.dim, tol=extremes_tol, max_iter=60, seed=4)
    assert (r.iters < steps) == (extremes_tol > 1e-2)
    spent = continue_lanczos(recorded, r.krylov, products[r.iters - 1], steps)
    assert spent == max(0, steps - r.iters) and len(products) == r.iters + spent
    shared, _, extra = slq(c.matvec, c.dim, 1, steps, seed=4, first=r.krylov)
    fresh, _, fresh_cost = slq(c.matvec, c.dim, 1, steps, seed=4)
    assert extra == 0 and fresh_cost == steps
    np.testing.assert_allclose(shared, fresh, rtol=1e-9, atol=1e-12 * c.eig.abs().max().item())


def known_spectrum(eigenvalues, seed=0):
    dim = len(eigenvalues)
    q, _ = torch.linalg.qr(torch.randn(dim, dim, generator=torch.Generator().manual_seed(seed), dtype=torch.float64))
    return q @ torch.diag(torch.as_tensor(eigenvalues, dtype=torch.float64)) @ q.T


def test_negative_mass_of_a_known_spectrum():
    """A bulk at 0 (± rounding), 20% of the spectrum at -1 and outliers at +10: mass 0.2, share 0.2·1/(0.2+Σ+)."""
    lam = np.concatenate([np.full(40, -1.0), np.zeros(150) + 1e-9 * np.linspace(-1, 1, 150), [10.0] * 10])
    h = known_spectrum(lam)
    nodes, weights, _ = slq(lambda v: h @ v, len(lam), 40, 20, seed=0)
    mass, share = negative_mass(nodes, weights, cutoff=1e-3 * np.abs(nodes).max())
    assert mass == pytest.approx(0.2, abs=0.05)
    assert share == pytest.approx(40 / (40 + 100), abs=0.05)
    assert negative_mass([1.0, 2.0], [0.5, 0.5], 0.0) == (0.0, 0.0)


def gauss_legendre_uniform(m):
    """The m-point Gauss quadrature of the uniform measure on [0, 1]: what m Lanczos steps give for a spectrum
    spread evenly over [0, 1], in the limit of many eigenvalues."""
    t, w = np.polynomial.legendre.leggauss(m)
    return (t + 1) / 2, w / 2


def smoothed_uniform(t, sigma):
    """The uniform density on [0, 1] convolved with a Gaussian of standard deviation sigma, in closed form."""
    phi = np.vectorize(lambda z: 0.5 * (1.0 + math.erf(z / math.sqrt(2.0))))
    return phi((1.0 - t) / sigma) - phi(-t / sigma)


@pytest.mark.parametrize("m", [10, 20, 40])
def test_smoothing_at_the_resolved_width_recovers_an_even_spectrum(m):
    nodes, weights = gauss_legendre_uniform(m)
    sigma = resolved_width(nodes.min(), nodes.max(), m)
    assert sigma == pytest.approx((nodes.max() - nodes.min()) / m)
    t = np.linspace(-0.3, 1.3, 801)
    exact = smoothed_uniform(t, sigma)
    # resolved_width's bound: the smoothed quadrature is the smoothed spectrum to within 2% of the kernel's
    # peak 1 / (sigma sqrt(2 pi)). A kernel 16 times narrower draws the comb and misses it by far.
    peak = 1.0 / (sigma * np.sqrt(2 * np.pi))
    assert np.abs(smoothed_density(nodes, weights, t, sigma) - exact).max() <= 0.02 * peak
    assert np.abs(smoothed_density(nodes, weights, t, sigma / 16) - exact).max() > 0.5 * peak


def test_smoothed_density_holds_the_weights_mass_with_each_node_spread_by_sigma():
    nodes, weights, sigma = np.array([-1.0, 0.0, 5.0]), np.array([0.2, 0.3, 0.2]), 0.05
    grid = np.linspace(-2.0, 6.0, 16001)  # step 5e-4 = sigma / 100: the Riemann sums are the integrals
    rho = smoothed_density(nodes, weights, grid, sigma)
    step = grid[1] - grid[0]
    assert rho.sum() * step == pytest.approx(0.7, rel=1e-12)  # the weights' total, not renormalised to 1
    for node, weight in zip(nodes, weights):
        near = np.abs(grid - node) < 0.5  # 10 sigma: each bump whole to 2e-23, a neighbour's tail below 1e-21
        assert rho[near].sum() * step == pytest.approx(weight, rel=1e-12)
        spread = np.sum(rho[near] * (grid[near] - node) ** 2) * step / weight
        assert spread == pytest.approx(sigma ** 2, rel=1e-9)
    with pytest.raises(ValueError, match="> 0"):
        smoothed_density(nodes, weights, grid, 0.0)
    many = np.linspace(-1.0, 1.0, 4096)  # 1024 grid points per kernel block: the 3000 below take three blocks
    t = np.linspace(-1.5, 1.5, 3000)
    direct = np.exp(-0.5 * ((t[:, None] - many) / 0.1) ** 2).sum(axis=1) / (4096 * 0.1 * np.sqrt(2 * np.pi))
    np.testing.assert_allclose(smoothed_density(many, np.full(4096, 1 / 4096), t, 0.1), direct, rtol=1e-12)


def test_few_distinct_eigenvalues_carry_all_the_weight():
    h = known_spectrum(np.repeat([-2.0, 1.0, 3.0], 10))  # every Krylov space has dimension 3 (in exact arithmetic)
    nodes, weights, _ = slq(lambda v: h @ v, 30, 2, 8, seed=1)
    assert nodes.shape == (16,) and weights.sum() == pytest.approx(1.0)
    np.testing.assert_allclose(np.unique(np.round(nodes[weights > 1e-12], 8)), [-2.0, 1.0, 3.0])
    assert nodes.min() > -2 - 1e-9 and nodes.max() < 3 + 1e-9


def test_breakdown_probe_is_padded_with_zero_weights():
    nodes, weights, spent = slq(lambda v: 0 * v, 30, 2, 8, seed=1)  # beta = 0 after one step
    assert spent == 2 and nodes.shape == (16,) and np.all(nodes == 0)
    assert weights.sum() == pytest.approx(1.0) and np.count_nonzero(weights) == 2


def counting(matvec):
    def counted(v):
        counted.calls += 1
        return matvec(v)
    counted.calls = 0
    return counted


def test_every_quantity_is_computed_and_products_are_accounted(cases):
    c = cases["mlp-init"]
    plan = CurvaturePlan(1e-3, 100, 0, trace_samples=5, density_probes=2, density_steps=30, layers=c.blocks)
    op, layer_ops = counting(c.matvec), [counting(block_operator(c, b)) for b in c.blocks]
    for block_op, block in zip(layer_ops, c.blocks):
        block_op.dim = block[2] - block[1]
    v = point_curvature(op, c.dim, plan, layer_ops)
    shapes = curvature_shapes(plan, c.dim)
    assert set(v) == set(shapes)
    assert all(np.shape(v[name]) == shape for name, shape in shapes.items())
    assert op.calls == v["eig_iters"] + v["hvps_trace"] + v["hvps_density"]
    assert v["hvps_trace"] == 5 and v["hvps_density"] == (30 - v["eig_iters"]) + 30
    assert v["hvps_layers"] == sum(o.calls for o in layer_ops)
    assert v["max_eig"] == pytest.approx(c.eig[-1].item(), rel=1e-3)


def test_non_finite_products_give_nan_everywhere():
    plan = CurvaturePlan(1e-3, 100, 0, trace_samples=5, density_probes=2, density_steps=10,
                         layers=(("a", 0, 4, ("a.weight",)),))
    v = point_curvature(lambda x: x * float("nan"), 10, plan, layer_ops=[lambda x: x])
    assert set(v) == set(curvature_shapes(plan, 10))
    assert v.pop("eig_converged") is False  # a flag, not a number: no eigenvalue was found
    assert all(np.all(np.isnan(value)) for value in v.values())


def test_array_valued_quantities_are_stored_per_point(tmp_path):
    grid = make_grid("0:1:3", "0:1:2")
    shapes = dict(max_eig=(), esd_nodes=(4,), layer_trace=(2,))
    path = str(tmp_path / "s.h5")
    layout = hessian_layout(grid, shapes, ["conv", "fc"])
    assert layout.quantities == ("max_eig", "esd_nodes", "layer_trace")  # the storage order, whatever was given
    todo = prepare(path, layout, dict(a=1), dict(started="now"), "d.h5")
    assert sorted(todo) == list(range(6))
    with open_for_writing(path) as f:
        write_points(f, layout, [(4, (1.5, np.arange(4.0), np.array([7.0, 8.0])))])
    r = read_results(path)
    assert r["esd_nodes"].shape == (2, 3, 4) and r["layer_trace"].shape == (2, 3, 2)
    np.testing.assert_array_equal(r["esd_nodes"][1, 1], np.arange(4.0))
    assert np.isnan(r["esd_nodes"][0, 0]).all() and r["hessian_done"][1, 1] == 1 and r["hessian_done"].sum() == 1
    with h5py.File(path) as f:
        assert list(f["layer_trace"].attrs["layers"]) == ["conv", "fc"] and "layers" not in f["esd_nodes"].attrs


class Flags:
    def __init__(self, **kw):
        self.tol, self.max_iter, self.seed, self.trace, self.density, self.hessian_groups = 1e-3, 100, 0, None, None, "none"
        self.hessian_params, self.hessian_patterns, self.hvp = "reference", None, "double_backward"
        self.curvature = "hessian"
        self.__dict__.update(kw)


@pytest.mark.parametrize("flags, message", [
    (dict(trace="0"), "trace=0 (--trace 0)"), (dict(trace="1"), ">= 2"), (dict(trace="x"), "--trace 'x'"),
    (dict(density="3"), "--density '3': give PROBES/STEPS as whole numbers, e.g. --density 3/40"),
    (dict(density="0/10"), "density=(0, 10) (--density 0/10)"), (dict(density="2/1"), "density=(2, 1)"),
    (dict(hessian_groups="layers"), "--hessian_groups 'layers' is not one of none, layer")])
def test_bad_curvature_flags_are_refused(flags, message):
    with pytest.raises(CurvatureError, match=re.escape(message)):
        curvature_choices(Flags(**flags))


@pytest.mark.parametrize("choices, message", [
    (dict(trace=1), ">= 2"), (dict(trace=True), "whole number"), (dict(density=(0, 10)), "probes >= 1"),
    (dict(density=(2, 1)), "steps >= 2"), (dict(tol=0), "0 < tol < 1"), (dict(max_iter=2.5), "max_iter")])
def test_bad_curvature_choices_of_the_api_are_refused(choices, message):
    model = mlp()
    with pytest.raises(CurvatureError, match=message):
        make_plan(model, [n for n, _ in model.named_parameters()], **choices)


def test_layer_groups_imply_the_default_trace():
    model = mlp()
    choices = curvature_choices(Flags(hessian_groups="layer"))
    plan = make_plan(model, [n for n, _ in model.named_parameters()], **choices)
    assert plan.trace_samples == TRACE_SAMPLES and [b[0] for b in plan.layers] == ["0", "2", "4"]


def test_curvature_figures_for_1d_and_2d_grids():
    from landscape.plot.curvature import (
        plot_densities,
        plot_layer_curvature,
        plot_negative_mass,
        plot_trace_map,
        top_layers,
    )
    x, y = np.linspace(-1, 1, 4), np.linspace(0, 1, 3)
    maps = np.arange(12.0).reshape(3, 4)
    per_layer = np.stack([maps, 3 * maps, np.full((3, 4), np.nan), 2 * maps], axis=-1)
    assert top_layers(per_layer) == [1, 3, 0, 2]
    fig = plot_layer_curvature(x, y, ["a", "b", "c", "d"], per_layer, count=3)
    assert [ax.get_title() for ax in fig.axes if ax.get_visible() and ax.get_title()] == ["layer b", "layer d", "layer a"]
    assert plot_densities([("p", np.array([-1.0, 0.0, 4.0]), np.array([0.1, 0.6, 0.3]))]).axes[0].get_yscale() == "log"
    for fig in (plot_trace_map(x, y, maps, maps / 10, contour=maps), plot_trace_map(x, None, maps[0], maps[0] / 10),
                plot_negative_mass(x, y, maps / 12, maps / 24), plot_negative_mass(x, None, maps[0] / 12, maps[0] / 24),
                plot_layer_curvature(x, None, ["a", "b", "c", "d"], per_layer[0])):
        assert fig.axes


def test_recorded_products_are_found_by_vector_and_missing_ones_are_made():
    from landscape.curvature.point import Recorded
    h = known_spectrum(np.linspace(-1, 2, 8))
    op = Recorded(counting(lambda v: h @ v))
    a, b = torch.randn(8, dtype=torch.float64), torch.randn(8, dtype=torch.float64)
    op(a)
    got = op.products_for([b, a])
    assert op.extra == 1 and op.matvec.calls == 2
    torch.testing.assert_close(got[0], h @ b)
    torch.testing.assert_close(got[1], h @ a)
