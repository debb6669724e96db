"""Both Hessian extremes at the default flags where they are hard: trained minima (a large bulk
near 0 with a small negative outlier below it) checked against dense Hessians, and operators with
a known spectrum of that shape. Required (issue 10): lambda_max within 1e-3 * max|lambda| and
lambda_min within 2e-3 * max|lambda| of the truth."""
import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from landscape.hessian import hessian_param_names, mean_loss_hvp
from landscape.lanczos import lanczos_extremes, lanczos_steps, log_christoffel_sum, start_vector
from test_hessian import dense_hessian, known_spectrum_operator

MAX_ERR, MIN_ERR = 1e-3, 2e-3
SAMPLES, CLASSES = 36, 4


def mlp():
    return nn.Sequential(nn.Linear(10, 16), nn.Tanh(), nn.Linear(16, 16), nn.Tanh(), nn.Linear(16, CLASSES))


def cnn():
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.Tanh(), nn.Conv2d(4, 6, 3, stride=2), nn.Tanh(),
                         nn.Flatten(), nn.Linear(6 * 2 * 2, CLASSES))


def trained(make, seed, steps=600):
    """A float64 net trained by full-batch Adam to a loss of ~3e-4 on SAMPLES random points."""
    torch.manual_seed(seed)
    model = make().double()
    shape = (SAMPLES, 10) if isinstance(model[0], nn.Linear) else (SAMPLES, 3, 7, 7)
    x = torch.randn(shape, dtype=torch.float64)
    y = torch.arange(SAMPLES) % CLASSES
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(steps):
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()
    return model.eval(), x, y


def assert_extremes(result, lam_min, lam_max):
    scale = max(abs(lam_min), abs(lam_max))
    assert abs(result.lam_max - lam_max) <= MAX_ERR * scale, (result, lam_max)
    assert abs(result.lam_min - lam_min) <= MIN_ERR * scale, (result, lam_min)


@pytest.mark.parametrize('make, train_seed', [(mlp, 0), (mlp, 1), (cnn, 0), (cnn, 1)])
def test_extremes_at_trained_minima_match_dense_hessian(make, train_seed):
    model, x, y = trained(make, train_seed)
    assert F.cross_entropy(model(x), y).item() < 1e-3  # a trained minimum
    names = hessian_param_names(model, 'all')
    truth = np.linalg.eigvalsh(dense_hessian(model, names, x, y))
    assert 300 <= len(truth) <= 2000
    assert -0.1 * truth[-1] < truth[0] < 0  # a small negative tail below the bulk: the hard case
    op = mean_loss_hvp(model, names, F.cross_entropy, [(x[:20], y[:20]), (x[20:], y[20:])])
    for seed in range(3):
        result = lanczos_extremes(op, op.dim, seed=seed)  # the driver's defaults
        assert result.converged and result.iters < op.dim
        assert_extremes(result, truth[0], truth[-1])


def bulk_spectrum(dim, outliers, seed):
    """A trained net's shape: 98% of the eigenvalues at ~0, a narrow bulk, a few large positive ones
    up to 1.3, and the given small negative outliers."""
    rng = np.random.default_rng(seed)
    null = int(0.98 * dim)
    top = np.append(1.3 * rng.uniform(0.02, 0.6, 19), 1.3)
    bulk = rng.normal(0, 1e-3, dim - null - len(top) - len(outliers))
    return np.concatenate([rng.normal(0, 1e-7, null), bulk, outliers, top])


def residual_rule_stop(matvec, dim, tol, seed):
    """The earlier rule, both extreme residuals <= tol * max|theta|: where it stops, and theta_min."""
    for state in lanczos_steps(matvec, start_vector(dim, seed), 100):
        theta, vecs = state.ritz()
        res = state.ritz_residuals(vecs)
        if max(res[0], res[-1]) <= tol * max(abs(theta[0]), abs(theta[-1])):
            return state.steps, theta[0].item()


@pytest.mark.parametrize('outliers', [[-0.0184], [-0.01, -0.005, -0.002]])
@pytest.mark.parametrize('seed', [0, 1, 2])
def test_known_spectrum_small_negative_outliers_below_a_bulk(outliers, seed):
    spectrum = bulk_spectrum(1500, outliers, seed)
    result = lanczos_extremes(known_spectrum_operator(spectrum, seed), len(spectrum), seed=seed)
    assert result.converged and result.iters <= 40
    assert_extremes(result, spectrum.min(), spectrum.max())


def test_the_known_spectrum_is_a_trap_for_a_residual_test():
    """The operator above really catches the residual rule: it stops early with lambda_min in the bulk."""
    spectrum = bulk_spectrum(1500, [-0.0184], 2)
    steps, theta_min = residual_rule_stop(known_spectrum_operator(spectrum, 2), len(spectrum), 1e-3, 2)
    assert steps < 12 and abs(theta_min - spectrum.min()) > 0.01


def test_christoffel_sum_bounds_the_weight_of_any_eigenvalue():
    """sum_j p_j(lambda)^2 <= 1 / (weight of lambda's eigenvector in the start): checked exactly."""
    spectrum = np.concatenate([[-0.5], np.linspace(0, 1, 199)])
    matvec = known_spectrum_operator(spectrum, 3)
    dim = len(spectrum)
    v0 = start_vector(dim, 4)
    matrix = torch.stack([matvec(e) for e in torch.eye(dim, dtype=torch.float64)], 1)
    lam, vecs = torch.linalg.eigh(matrix)
    weights = (vecs.T @ (v0 / v0.norm())) ** 2
    for state in lanczos_steps(matvec, v0, 30):
        for i in (0, dim // 2, dim - 1):
            # equal once converged; 1e-3 in the log (0.1 %) leaves room for the rounding of a converged recurrence,
            # which depends on the BLAS threads (2.4e-4 seen in the full suite)
            assert log_christoffel_sum(state.alphas, state.betas, lam[i].item()) <= -np.log(weights[i].item()) + 1e-3


def test_bad_miss_prob_raises():
    with pytest.raises(ValueError, match='miss_prob'):
        lanczos_extremes(lambda v: v, 4, miss_prob=1.0)
