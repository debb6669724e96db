"""PCA directions and projections, checked against numpy's SVD and against planted coordinates."""

import numpy as np
import pytest
import torch

from landscape.space import pca
from landscape.space.pca import pca_directions, project


def _numpy_reference(matrix):
    centred = matrix - matrix.mean(axis=0)
    _, s, vt = np.linalg.svd(centred, full_matrices=False)
    variance = s**2 / (matrix.shape[0] - 1)
    return s, vt, variance, variance / variance.sum()


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_matches_numpy_svd_of_centred_matrix(dtype):
    rng = np.random.default_rng(0)
    # A drifting path (large common offset) so that centring matters.
    matrix = (rng.normal(size=(7, 40)) * np.linspace(3, 0.1, 40) + 5.0).astype(dtype)
    s, vt, variance, ratio = _numpy_reference(matrix.astype(np.float64))

    result = pca_directions(matrix, k=3)

    tol = 1e-10 if dtype == np.float64 else 1e-9
    np.testing.assert_allclose(result.singular_values.numpy(), s[:3], rtol=tol)
    np.testing.assert_allclose(result.explained_variance.numpy(), variance[:3], rtol=tol)
    np.testing.assert_allclose(result.explained_variance_ratio.numpy(), ratio[:3], rtol=tol)
    assert result.explained_variance_ratio.sum() < 1.0  # ratios are over all components, not the k kept
    for component, expected in zip(result.components.numpy(), vt[:3]):
        sign = np.sign(component @ expected)
        np.testing.assert_allclose(component, sign * expected, atol=1e-8)
    gram = result.components @ result.components.T
    np.testing.assert_allclose(gram.numpy(), np.eye(3), atol=1e-10)
    assert result.components.dtype == torch.float64


def test_small_column_blocks_give_the_same_answer(monkeypatch):
    rng = np.random.default_rng(1)
    matrix = torch.from_numpy(rng.normal(size=(5, 101)))
    whole = pca_directions(matrix)
    monkeypatch.setattr(pca, "CHUNK_BYTES", 8 * 5 * 7)  # 7 columns per block, last one ragged
    blocked = pca_directions(matrix)
    torch.testing.assert_close(blocked.components, whole.components)
    torch.testing.assert_close(blocked.singular_values, whole.singular_values)


def test_sign_rule_makes_largest_entry_positive():
    rng = np.random.default_rng(2)
    matrix = rng.normal(size=(6, 30))
    first = pca_directions(matrix).components
    flipped = pca_directions(-matrix).components
    torch.testing.assert_close(first, flipped)
    for component in first:
        assert component[component.abs().argmax()] > 0


def _planar_path(num_points=9, size=50, seed=3):
    rng = np.random.default_rng(seed)
    basis, _ = np.linalg.qr(rng.normal(size=(size, 2)))
    dx, dy = basis[:, 0], basis[:, 1]
    xs, ys = rng.normal(size=num_points) * 3.0, rng.normal(size=num_points)
    diffs = np.outer(xs, dx) + np.outer(ys, dy)
    return diffs, dx, dy, xs, ys


@pytest.mark.parametrize("method", ["cos", "lstsq"])
def test_projection_recovers_planted_coordinates(method):
    diffs, dx, dy, xs, ys = _planar_path()
    got_x, got_y = project(torch.from_numpy(diffs).float(), dx, dy, method)
    np.testing.assert_allclose(got_x.numpy(), xs, atol=1e-5)  # float32 input rounds to ~1e-7 relative
    np.testing.assert_allclose(got_y.numpy(), ys, atol=1e-5)
    assert got_x.dtype == torch.float64


def test_cos_scales_by_direction_length_like_the_reference():
    diffs, dx, dy, xs, ys = _planar_path()
    got_x, got_y = project(diffs, 2.0 * dx, 0.5 * dy, "cos")
    np.testing.assert_allclose(got_x.numpy(), xs, atol=1e-10)
    np.testing.assert_allclose(got_y.numpy(), ys, atol=1e-10)


def test_lstsq_recovers_coordinates_for_non_orthogonal_directions():
    diffs, dx, dy, xs, ys = _planar_path()
    skew_x, skew_y = 2.0 * dx, dx + 0.3 * dy  # 17 degrees apart, unequal lengths
    a = np.linalg.lstsq(np.stack([skew_x, skew_y], axis=1), diffs.T, rcond=None)[0]
    got_x, got_y = project(list(diffs), skew_x, skew_y, "lstsq")
    np.testing.assert_allclose(got_x.numpy(), a[0], atol=1e-10)
    np.testing.assert_allclose(got_y.numpy(), a[1], atol=1e-10)
    # and 'cos' is wrong here, which is why lstsq exists
    cos_x, _ = project(diffs, skew_x, skew_y, "cos")
    assert not np.allclose(cos_x.numpy(), a[0], atol=1e-3)


def test_pca_of_a_planar_path_then_projection_reconstructs_it():
    diffs, _, _, _, _ = _planar_path(num_points=12)
    components = pca_directions(diffs).components
    xs, ys = project(diffs, components[0], components[1], "cos")
    centred = diffs - diffs.mean(axis=0)
    rebuilt = np.outer(xs, components[0]) + np.outer(ys, components[1])
    # uncentred diffs lie in the plane, so the plane of the centred rows reproduces them
    np.testing.assert_allclose(rebuilt, diffs, atol=1e-10)
    assert np.abs(centred).max() > 0.1


def test_unknown_method_raises():
    diffs, dx, dy, _, _ = _planar_path()
    with pytest.raises(ValueError, match="unknown projection method 'proj'"):
        project(diffs, dx, dy, "proj")


def test_parallel_directions_raise_for_lstsq():
    diffs, dx, _, _, _ = _planar_path()
    with pytest.raises(ValueError, match="parallel"):
        project(diffs, dx, -3.0 * dx, "lstsq")


@pytest.mark.parametrize("rows,k", [(2, 2), (1, 1), (3, 3)])
def test_too_few_rows_raises(rows, k):
    with pytest.raises(ValueError, match=f"at least k\\+1 = {k + 1} checkpoints"):
        pca_directions(np.ones((rows, 10)) * np.arange(rows)[:, None], k=k)


def test_collinear_path_raises():
    line = np.outer(np.arange(5.0), np.linspace(1, 2, 20))
    with pytest.raises(ValueError, match="fewer than 2 directions"):
        pca_directions(line)
