"""Hessian extremes checked against independent truths: dense Hessians, scipy's ARPACK,
finite differences of gradients, and matrices with a known spectrum."""
import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from scipy.sparse.linalg import LinearOperator, eigsh
from torch.func import functional_call

from landscape.curvature.hvp import hessian_param_names, mean_loss_hvp
from landscape.curvature.lanczos import lanczos_extremes
from landscape.errors import DataError

NUM_SAMPLES = 30  # not a multiple of 4 or 16, so batch weights n_b / N are uneven


def tiny_mlp():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(12, 8), nn.Tanh(), nn.Linear(8, 3)).double()


def tiny_cnn():
    torch.manual_seed(1)
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2),
                          nn.Flatten(), nn.Linear(4 * 2 * 2, 3)).double()
    model.train()
    with torch.no_grad():  # give BN running statistics that differ from the batch statistics
        for _ in range(3):
            model(torch.randn(16, 3, 6, 6, dtype=torch.float64) * 2 + 0.5)
    return model.eval()


def data_for(model):
    gen = torch.Generator().manual_seed(2)
    shape = (NUM_SAMPLES, 12) if isinstance(model[0], nn.Linear) else (NUM_SAMPLES, 3, 6, 6)
    return torch.randn(shape, generator=gen, dtype=torch.float64), torch.randint(0, 3, (NUM_SAMPLES,), generator=gen)


def batched(x, y, size):
    return [(x[i:i + size], y[i:i + size]) for i in range(0, len(y), size)]


def named_subset(model, names):
    params = dict(model.named_parameters())
    return [params[n] for n in names]


def dense_hessian(model, names, x, y):
    """Hessian of the mean loss over all samples at once, over the flattened named params."""
    model.eval()
    params = named_subset(model, names)
    shapes, numels = [p.shape for p in params], [p.numel() for p in params]
    flat0 = torch.cat([p.detach().reshape(-1) for p in params])

    def loss_of_flat(flat):
        unflat = {n: c.view(s) for n, c, s in zip(names, flat.split(numels), shapes)}
        return F.cross_entropy(functional_call(model, unflat, (x,)), y)

    return torch.autograd.functional.hessian(loss_of_flat, flat0).numpy()


def mean_grad(model, names, x, y):
    params = named_subset(model, names)
    loss = F.cross_entropy(model(x), y)
    return torch.cat([g.reshape(-1) for g in torch.autograd.grad(loss, params)])


@pytest.mark.parametrize('make_model', [tiny_mlp, tiny_cnn])
@pytest.mark.parametrize('which', ['reference', 'all'])
def test_extremes_match_dense_hessian(make_model, which):
    model = make_model()
    x, y = data_for(model)
    names = hessian_param_names(model, which)
    truth = np.linalg.eigvalsh(dense_hessian(model, names, x, y))
    op = mean_loss_hvp(model, names, F.cross_entropy, batched(x, y, 8))
    result = lanczos_extremes(op, op.dim, tol=1e-3)
    assert result.converged and result.iters < op.dim  # stopped by its residual test, not by exhaustion
    assert result.lam_max == pytest.approx(truth[-1], rel=1e-3)
    assert result.lam_min == pytest.approx(truth[0], rel=1e-3)
    assert result.hvps == op.calls == result.iters


def test_indefinite_point_gives_negative_lambda_min():
    model = tiny_mlp()  # random init: a non-convex point
    x, y = data_for(model)
    names = hessian_param_names(model, 'all')
    truth = np.linalg.eigvalsh(dense_hessian(model, names, x, y))
    assert truth[0] < -1e-3 * truth[-1]  # the point really is indefinite
    op = mean_loss_hvp(model, names, F.cross_entropy, batched(x, y, 16))
    result = lanczos_extremes(op, op.dim, tol=1e-3)
    assert result.lam_min < 0
    assert result.lam_min == pytest.approx(truth[0], rel=1e-3)


def test_agrees_with_scipy_eigsh_on_same_operator():
    model = tiny_cnn()
    x, y = data_for(model)
    op = mean_loss_hvp(model, hessian_param_names(model, 'all'), F.cross_entropy, batched(x, y, 8))
    scipy_op = LinearOperator((op.dim, op.dim), dtype=np.float64,
                              matvec=lambda v: op(torch.from_numpy(np.ravel(v))).numpy())
    largest = eigsh(scipy_op, k=1, which='LA', tol=1e-8)[0][0]
    smallest = eigsh(scipy_op, k=1, which='SA', tol=1e-8)[0][0]
    result = lanczos_extremes(op, op.dim, tol=1e-3)
    assert result.lam_max == pytest.approx(largest, rel=1e-3)
    assert result.lam_min == pytest.approx(smallest, rel=1e-3)


@pytest.mark.parametrize('method', ['fwd_rev', 'double_backward'])
def test_hvp_matches_central_difference_of_gradients(method):
    model = tiny_cnn()
    x, y = data_for(model)
    names = hessian_param_names(model, 'all')
    op = mean_loss_hvp(model, names, F.cross_entropy, batched(x, y, 8), method=method)
    v = torch.randn(op.dim, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    params = named_subset(model, names)
    theta = [p.detach().clone() for p in params]
    eps = 1e-5

    def grad_at(scale):
        with torch.no_grad():
            for p, t, dv in zip(params, theta, v.split([p.numel() for p in params])):
                p.copy_(t + scale * dv.view(p.shape))
        return mean_grad(model, names, x, y)

    finite_diff = (grad_at(eps) - grad_at(-eps)) / (2 * eps)
    grad_at(0.0)
    torch.testing.assert_close(op(v), finite_diff, rtol=1e-6, atol=1e-8)


def test_mean_scaling_makes_results_batch_size_invariant():
    model = tiny_cnn()
    x, y = data_for(model)
    names = hessian_param_names(model, 'all')
    v = torch.randn(sum(p.numel() for p in named_subset(model, names)), dtype=torch.float64)
    products, extremes = [], []
    for size in (4, 16, NUM_SAMPLES):
        op = mean_loss_hvp(model, names, F.cross_entropy, batched(x, y, size))
        products.append(op(v))
        result = lanczos_extremes(op, op.dim, tol=1e-3)  # same seed: same iterates if same operator
        extremes.append((result.lam_min, result.lam_max))
    for product, pair in zip(products[:-1], extremes[:-1]):
        torch.testing.assert_close(product, products[-1], rtol=1e-9, atol=1e-12)
        assert pair == pytest.approx(extremes[-1], rel=1e-6)


def test_param_subsets_have_the_right_dims():
    model = tiny_cnn()
    ref_names = hessian_param_names(model)
    assert ref_names == ['0.weight', '5.weight']
    assert hessian_param_names(model, 'all') == [n for n, _ in model.named_parameters()]
    x, y = data_for(model)
    ref_op = mean_loss_hvp(model, ref_names, F.cross_entropy, [(x, y)])
    all_op = mean_loss_hvp(model, hessian_param_names(model, 'all'), F.cross_entropy, [(x, y)])
    assert ref_op.dim == 4 * 3 * 3 * 3 + 3 * 16
    assert all_op.dim == ref_op.dim + 4 + 4 + 4 + 3  # conv bias, BN weight and bias, fc bias
    assert ref_op(torch.ones(ref_op.dim, dtype=torch.float64)).shape == (ref_op.dim,)


def test_bad_choices_raise():
    model = tiny_mlp()
    with pytest.raises(ValueError, match='subset'):
        hessian_param_names(model, 'weights')
    with pytest.raises(ValueError, match='method'):
        mean_loss_hvp(model, ['0.weight'], F.cross_entropy, [], method='finite_diff')
    with pytest.raises(ValueError, match='unknown'):
        mean_loss_hvp(model, ['0.nope'], F.cross_entropy, [])
    with pytest.raises(DataError, match='no samples'):
        mean_loss_hvp(model, ['0.weight'], F.cross_entropy, [])(torch.zeros(96, dtype=torch.float64))


def known_spectrum_operator(eigenvalues, seed=0):
    """x -> Q diag(eigenvalues) Q^T x with a random orthogonal Q; counts its calls."""
    dim = len(eigenvalues)
    q, _ = torch.linalg.qr(torch.randn(dim, dim, generator=torch.Generator().manual_seed(seed), dtype=torch.float64))
    matrix = q @ torch.diag(torch.as_tensor(eigenvalues, dtype=torch.float64)) @ q.T

    def matvec(v):
        matvec.calls += 1
        return matrix @ v

    matvec.calls = 0
    return matvec


def test_known_spectrum_both_extremes_and_bound():
    spectrum = np.concatenate([[-3.0, -2.5], np.linspace(-1, 1, 196), [8.0, 10.0]])
    matvec = known_spectrum_operator(spectrum)
    result = lanczos_extremes(matvec, len(spectrum), tol=1e-3, max_iter=100)
    assert result.converged and result.iters <= 100 and result.hvps == matvec.calls == result.iters
    assert max(result.res_min, result.res_max) <= 1e-3 * 10.0
    assert abs(result.lam_max - 10.0) <= result.res_max + 1e-12  # the residual bounds the error
    assert abs(result.lam_min + 3.0) <= result.res_min + 1e-12
    assert result.lam_max == pytest.approx(10.0, rel=1e-3) and result.lam_min == pytest.approx(-3.0, rel=1e-3)


def test_too_few_iterations_is_reported_unconverged():
    spectrum = np.concatenate([[-3.0], np.linspace(-1, 1, 198), [10.0]])
    matvec = known_spectrum_operator(spectrum)
    result = lanczos_extremes(matvec, len(spectrum), tol=1e-6, max_iter=4)
    assert result.iters == 4 and matvec.calls == 4 and not result.converged
    assert max(result.res_min, result.res_max) > 1e-6 * 10.0


def test_breakdown_on_few_distinct_eigenvalues_is_exact():
    spectrum = np.repeat([-2.0, 0.5, 7.0], 20)  # the Krylov space has dimension 3
    result = lanczos_extremes(known_spectrum_operator(spectrum), len(spectrum), tol=1e-12)
    assert result.converged and result.iters == 3
    assert result.lam_min == pytest.approx(-2.0, rel=1e-10) and result.lam_max == pytest.approx(7.0, rel=1e-10)


def test_small_dim_stops_at_dim_and_is_deterministic():
    spectrum = [-1.0, 0.25, 2.0, 3.0, 4.5]
    first = lanczos_extremes(known_spectrum_operator(spectrum), 5, tol=1e-14, max_iter=100, seed=7)
    again = lanczos_extremes(known_spectrum_operator(spectrum), 5, tol=1e-14, max_iter=100, seed=7)
    assert first.iters <= 5 and first.converged
    assert first[:-1] == again[:-1]  # all but the Krylov state
    assert first.krylov.steps == first.iters
    assert first.lam_min == pytest.approx(-1.0, rel=1e-10) and first.lam_max == pytest.approx(4.5, rel=1e-10)


def test_hessian_samples_default_is_a_5000_subset_and_all_is_every_sample():
    from landscape.cli.hessian import parser
    from landscape.curvature.plan import sample_subset
    from landscape.space.evaluate import tensor_batches
    assert parser().parse_args([]).hessian_samples == 5000
    assert parser().parse_args(["--hessian_samples", "all"]).hessian_samples is None
    with pytest.raises(SystemExit):
        parser().parse_args(["--hessian_samples", "0"])

    x, y = torch.arange(12.0).reshape(12, 1), torch.arange(12)
    kept = tensor_batches(*sample_subset(x, y, 5, seed=0), 2)
    assert sum(len(yb) for _, yb in kept) == 5 and len(set(torch.cat([yb for _, yb in kept]).tolist())) == 5
    assert sum(len(yb) for _, yb in tensor_batches(*sample_subset(x, y, None, seed=0), 5)) == 12
