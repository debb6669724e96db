"""Adaptive refinement: estimates, selected points and interpolation errors against closed forms."""
import numpy as np
import pytest

from landscape.space.refine import Refinement, base_stride, cell_estimates, lattice, to_scale


def surface(f, shape):
    ny, nx = shape
    yy, xx = np.meshgrid(np.linspace(-1, 1, ny), np.linspace(-1, 1, nx), indexing="ij")
    return f(xx, yy)


def quadratic(x, y):
    """log10 of this 'loss' is a quadratic: its second differences are exact, and the interpolant reproduces it."""
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


def refined_stride(n, curvature, tol):
    """Closed form for a quadratic in log10: every cell's estimate at stride s is the same,
    curvature * (2 s / (n - 1))^2 / 10 (the second difference of a quadratic is exact), so every cell is
    split down to the first stride, from the base's, where that is at most tol."""
    s = base_stride((n, n))
    while s > 1 and curvature * (2.0 * s / (n - 1)) ** 2 / 10.0 > tol:
        s //= 2
    return s


@pytest.mark.parametrize("n, stride, per_axis", [(16, 1, 16), (17, 2, 9), (33, 4, 9), (41, 4, 11), (51, 4, 14),
                                                 (65, 8, 9)])
def test_base_lattice_keeps_8_cells_per_axis(n, stride, per_axis):
    """By hand: 15 // 2 < 8 (computed fully); 16 / 2 = 8 cells; 32 / 4 = 8; 40 / 4 = 10; 50 / 4: 12 cells
    and a short one (0, 4, ..., 48, 50); 64 / 8 = 8."""
    r = Refinement((n, n), 0.02)
    assert r.base == stride and len(r.base_points()) == per_axis ** 2


def test_estimate_of_a_quadratic_is_its_second_difference_over_ten():
    """51 points: the last cell is short, so the divided differences are checked on uneven spacing too."""
    n = 51
    truth = surface(quadratic, (n, n))
    r = Refinement((n, n), tol=1e-9)
    done = np.zeros((n, n), bool)
    done.flat[r.base_points()] = True
    (y0, y1), (x0, x1), est, corners_done = cell_estimates(done, to_scale(truth, "log10"), r.base)
    assert corners_done.all() and est.shape == (13, 13)
    # log10 of the surface is 0.9 x^2 - 0.4 y^2 + 0.7 x y + 0.2 x; f'' along x is 1.8, along y -0.8
    np.testing.assert_allclose(est, 1.8 * (2.0 * r.base / (n - 1)) ** 2 / 10.0, rtol=1e-9)


@pytest.mark.parametrize("tol", [0.01, 2e-3, 5e-4])
def test_a_quadratic_is_refined_to_the_predicted_stride_and_interpolated_exactly(tol):
    n = 65
    truth = surface(quadratic, (n, n))
    r = Refinement((n, n), tol)
    done, values = refine_fully(r, truth)
    s = refined_stride(n, 1.8, tol)
    expected = np.zeros((n, n), bool)
    expected[np.ix_(lattice(n, s), lattice(n, s))] = True
    np.testing.assert_array_equal(done, expected)
    assert s < r.base  # the tolerances do refine
    # linear interpolation plus the curvature correction reproduces a quadratic (to rounding)
    err = np.abs(np.log10(r.interpolate(done, values, "log10")) - np.log10(truth))
    assert err.max() < 1e-9


@pytest.mark.parametrize("tol", [0.03, 0.01, 0.003])
def test_a_kink_is_refined_where_it_is_and_nowhere_else(tol):
    """1D, log10 loss = m |x - x0|. A second difference is nonzero only within one stride of the kink, so
    points beyond the base lattice lie within two base strides of it. An unsplit cell [0, s] with the kink
    at a inside has m max(a, s - a) <= 10 tol (the split rule), and its linear interpolant errs by at most
    m a (s - a) / s <= 5 tol; the curvature correction pulls towards the kink, not past it."""
    n = 257
    xs = np.linspace(-1, 1, n)
    for x0 in np.linspace(-0.43, 0.47, 19):
        for m in (1.0, 5.0, 20.0):
            truth = 10.0 ** (m * np.abs(xs - x0))
            r = Refinement((n,), tol)
            done, values = refine_fully(r, truth)
            above = np.log10(r.interpolate(done, values, "log10")) - np.log10(truth)
            assert above.max() <= 5 * tol
            assert above.min() > -1e-9  # no overshoot below the kink (an unlimited correction dips 0.6 tol)
            far = np.abs(xs - x0) > 2 * r.base * (xs[1] - xs[0])
            base = np.isin(np.arange(n), r.base_points())
            assert not (done & far & ~base).any()
            if m * r.base * (xs[1] - xs[0]) / 20 > tol:  # a kink's base cell sees m max(a, s - a) >= m s / 2
                assert done.sum() > base.sum()


def test_interpolation_keeps_computed_values_and_fills_every_point():
    shape = (37, 51)
    truth = surface(bump, shape)
    r = Refinement(shape, 0.01)
    done, values = refine_fully(r, truth)
    full = r.interpolate(done, values, "log10")
    assert np.isfinite(full).all()
    np.testing.assert_array_equal(full[done], truth[done])
    assert np.isnan(values[~done]).all()  # the stored values are never guessed


def test_the_edge_of_a_diverged_region_is_computed_to_the_finest_stride():
    """NaN beyond x = 0.3 (a diverged loss): cells with some corners finite are always split, cells with
    none never are, so the two columns around the edge are computed and the far inside stays at the base."""
    n = 65
    truth = surface(bump, (n, n))
    xs = np.linspace(-1, 1, n)
    truth[:, xs > 0.3] = np.nan
    r = Refinement((n, n), 0.05)
    done, values = refine_fully(r, truth)
    edge = np.flatnonzero(xs > 0.3)[0]
    assert done[:, edge - 1:edge + 1].all()
    inside = xs > 0.3 + 2 * r.base * (xs[1] - xs[0])
    base = np.zeros((n, n), bool)
    base.flat[r.base_points()] = True
    np.testing.assert_array_equal(done[:, inside], base[:, inside])
    full = r.interpolate(done, values, "log10")
    assert np.isfinite(full[:, :edge]).all() and np.isnan(full[:, edge:]).all()


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
