"""Adaptive refinement: estimates against brute-force interpolation errors of closed-form surfaces."""
import numpy as np
import pytest

from landscape.space.refine import Refinement, cell_estimates, hierarchy, lattice, to_scale


def surface(f, shape):
    ny, nx = shape
    yy, xx = np.meshgrid(np.linspace(-1, 1, ny), np.linspace(-1, 1, nx), indexing="ij")
    return f(xx, yy)


def quadratic(x, y):
    """log10 of this 'loss' is a quadratic, for which the estimate is exact."""
    return 10.0 ** (0.9 * x ** 2 - 0.4 * y ** 2 + 0.7 * x * y + 0.2 * x)


def bump(x, y):
    return 0.05 + x ** 2 + y ** 2 + 2.0 * np.exp(-((x - 0.3) ** 2 + (y + 0.2) ** 2) / 0.005)


def refine_fully(r, truth, order_seed=None):
    """Plan/compute rounds until the planner stops; with order_seed, each round is only partly computed
    (in random order) before planning again, as after kills and resumes."""
    rng = np.random.default_rng(order_seed)
    done, values = np.zeros(truth.shape, bool), np.full(truth.shape, np.nan)
    while len(todo := r.next_points(done, values)):
        if order_seed is not None:
            todo = rng.permutation(todo)[:max(1, len(todo) // 3)]
        done.flat[todo] = True
        values.flat[todo] = truth.flat[todo]
    return done, values


def bilinear_cell_error(truth_scaled, y0, y1, x0, x1):
    """Brute force: the largest |bilinear interpolant of the corners - truth| over the cell's grid points."""
    c = truth_scaled
    ty = (np.arange(y0, y1 + 1) - y0) / (y1 - y0)
    tx = (np.arange(x0, x1 + 1) - x0) / (x1 - x0)
    interp = ((1 - ty)[:, None] * ((1 - tx) * c[y0, x0] + tx * c[y0, x1])
              + ty[:, None] * ((1 - tx) * c[y1, x0] + tx * c[y1, x1]))
    return np.abs(interp - c[y0:y1 + 1, x0:x1 + 1]).max()


def test_cell_estimate_equals_the_true_interpolation_error_of_a_quadratic():
    shape = (33, 33)
    r = Refinement(shape, tol=1e-9)
    truth = surface(quadratic, shape)
    done = np.zeros(shape, bool)
    done.flat[r.base_points()] = True
    scaled = to_scale(np.where(done, truth, np.nan), "log10")
    _, surplus, new_at = hierarchy(done, scaled, 2 * r.base)
    (y0, y1), (x0, x1), est, corners_done = cell_estimates(done, scaled, surplus, new_at, r.base)
    assert corners_done.all() and est.shape == (8, 8)
    exact = np.log10(truth)
    brute = np.array([[bilinear_cell_error(exact, a, b, c, d) for c, d in zip(x0, x1)] for a, b in zip(y0, y1)])
    assert brute.max() > 1e-3  # the check is not vacuous
    np.testing.assert_allclose(est, brute, rtol=1e-9, atol=1e-12)


def test_quadratic_is_refined_to_within_the_tolerance_and_no_further():
    shape = (65, 65)
    truth = surface(quadratic, shape)
    for tol in (1e-2, 3e-3):
        r = Refinement(shape, tol)
        done, values = refine_fully(r, truth)
        err = np.abs(np.log10(r.interpolate(done, values, "log10")) - np.log10(truth))
        assert err.max() <= tol
        assert 0.01 < done.mean() < 0.6
        # one level coarser would exceed it: the refinement did not overspend on a smooth surface. Cells
        # are split while their estimate, the exact error for this quadratic, exceeds tol, and halving a
        # cell quarters a quadratic's bilinear error, so the coarser level's 4 * err.max() exceeded tol
        assert err.max() > tol / 4


def test_interpolation_keeps_computed_values_and_fills_every_point():
    shape = (37, 51)
    truth = surface(bump, shape)
    r = Refinement(shape, 0.01)
    done, values = refine_fully(r, truth)
    full = r.interpolate(done, values, "log10")
    assert np.isfinite(full).all()
    np.testing.assert_array_equal(full[done], truth[done])
    assert np.isnan(values[~done]).all()  # the stored values are never guessed


def test_detail_is_spent_where_the_surface_changes():
    shape = (65, 65)
    truth = surface(bump, shape)
    done, _ = refine_fully(Refinement(shape, 0.01), truth)
    yy, xx = np.meshgrid(np.linspace(-1, 1, 65), np.linspace(-1, 1, 65), indexing="ij")
    near = (xx - 0.3) ** 2 + (yy + 0.2) ** 2 < 0.1 ** 2
    far = (xx + 0.6) ** 2 + (yy - 0.6) ** 2 < 0.2 ** 2
    assert done[near].mean() > 0.9 and done[far].mean() < 0.3


@pytest.mark.parametrize("shape", [(65, 65), (51, 37), (65,)])
def test_decisions_do_not_depend_on_the_order_points_finish_in(shape):
    """Partial rounds in random order (kills, resumes, other rank counts) reach the same points."""
    truth = surface(bump, (1, shape[0]) if len(shape) == 1 else shape).reshape(shape)
    r = Refinement(shape, 0.005)
    straight, _ = refine_fully(r, truth)
    for seed in range(3):
        shuffled, _ = refine_fully(r, truth, order_seed=seed)
        np.testing.assert_array_equal(shuffled, straight)


def test_a_smaller_tolerance_adds_points_and_recomputes_none():
    shape = (65, 65)
    truth = surface(bump, shape)
    coarse, values = refine_fully(Refinement(shape, 0.02), truth)
    finer = Refinement(shape, 0.005)
    todo = finer.next_points(coarse, values)
    assert len(todo) and not coarse.flat[todo].any()
    fresh, _ = refine_fully(finer, truth)
    assert fresh[coarse].all()


def test_budget_caps_the_points_and_spends_them_on_the_largest_estimates():
    shape = (65, 65)
    truth = surface(bump, shape)
    unlimited = Refinement(shape, 1e-4)
    done, values = np.zeros(shape, bool), np.full(shape, np.nan)
    base = unlimited.base_points()
    done.flat[base], values.flat[base] = True, truth.flat[base]
    ranked = unlimited.next_points(done, values)
    capped = Refinement(shape, 1e-4, budget=len(base) + 10)
    np.testing.assert_array_equal(capped.next_points(done, values), ranked[:10])
    final, _ = refine_fully(capped, truth)
    assert final.sum() == len(base) + 10


def test_nothing_is_interpolated_before_the_coarsest_lattice_exists():
    r = Refinement((33, 33), 0.01)
    done = np.zeros((33, 33), bool)
    np.testing.assert_array_equal(np.sort(r.next_points(done, np.full((33, 33), np.nan))), np.sort(r.base_points()))
    with pytest.raises(ValueError, match="coarsest lattice"):
        r.interpolate(done, np.full((33, 33), np.nan), "log10")


def test_lattice_always_holds_both_ends():
    np.testing.assert_array_equal(lattice(51, 8), [0, 8, 16, 24, 32, 40, 48, 50])
    np.testing.assert_array_equal(lattice(1, 4), [0])
