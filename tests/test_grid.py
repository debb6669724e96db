import numpy as np
import pytest

from landscape.errors import GridSpecError
from landscape.space.grid import Grid, coarse_to_fine, make_grid, parse_axis


def test_parse_axis_accepts_negative_and_zero_bounds():
    assert parse_axis("-2:0:5") == (-2.0, 0.0, 5)
    assert parse_axis("0:0:1") == (0.0, 0.0, 1)
    assert parse_axis("-1.5:-0.5:3") == (-1.5, -0.5, 3)


@pytest.mark.parametrize("spec", ["1:2", "a:1:3", "0:1:x", "0:1:0", "1:0:5", "0:1:1", "0:1:2.5", "nan:1:3", ""])
def test_malformed_specs_raise_clearly(spec):
    with pytest.raises(GridSpecError, match="--x"):
        parse_axis(spec, "x")


def test_non_square_grid_layout_is_y_by_x():
    g = make_grid("-1:1:5", "0:2:3")
    assert g.shape == (3, 5)
    # flat index j * nx + i is the point (x[i], y[j])
    assert g.coords(1 * 5 + 4) == (1.0, 1.0)
    assert g.coords(2 * 5 + 0) == (-1.0, 2.0)
    assert make_grid("-1:1:5").shape == (5,)


def test_tuples_equal_specs_and_a_grid_too_large_to_hold_is_refused_before_any_linspace():
    assert np.array_equal(make_grid((-1, 1, 5), (0, 2, 3)).y, make_grid("-1:1:5", "0:2:3").y)
    assert make_grid("-1:1:5", "").shape == (5,)
    with pytest.raises(GridSpecError, match="num must be a whole number"):
        make_grid((-1, 1, 2.5))
    with pytest.raises(GridSpecError, match="use fewer points"):
        make_grid("0:1:1000000000", "0:1:1000000000")  # 1e18 points: np.linspace alone would not fit
    with pytest.raises(GridSpecError, match="use fewer points"):
        make_grid("0:1:10000000000", "0:1:10000000000")  # 1e20: past int64, must not wrap around


@pytest.mark.parametrize("shape", [(7,), (1,), (5, 9), (4, 4), (3, 1)])
def test_coarse_to_fine_is_a_permutation_whose_prefix_is_a_coarse_lattice(shape):
    order = coarse_to_fine(shape)
    size = int(np.prod(shape))
    assert sorted(order.tolist()) == list(range(size))
    coords = np.stack(np.unravel_index(order, shape), axis=-1)  # (size, ndim) grid indices in hand-out order
    stride = 2
    while stride < 2 * max(shape):  # every power-of-two lattice, up to one that holds only the origin
        on_lattice = (coords % stride == 0).all(axis=1)
        count = int(on_lattice.sum())
        assert count and on_lattice[:count].all(), f"the stride-{stride} lattice is not a prefix: {order}"
        stride *= 2
    if len(shape) == 2 and shape == (5, 9):
        first = [np.unravel_index(k, shape) for k in order[:6]]
        # stride 4 lattice: rows 0, 4 and columns 0, 4, 8 come first
        assert all(j % 4 == 0 and i % 4 == 0 for j, i in first)


def test_a_grid_made_elsewhere_is_held_to_what_make_grid_makes():
    grid = make_grid("-1:1:5", "0:1:3")
    assert make_grid(grid) is grid  # the drivers' Grid, parsed once, passes through the API as it is
    for bad in (Grid(np.array([0.0, 2.0, 1.0])), Grid(np.array([0.0, 1.0, 3.0])), Grid(np.array([0.0, np.inf])),
                Grid(np.linspace(-1, 1, 3), np.array([1.0, 0.0]))):
        with pytest.raises(GridSpecError, match="make it with landscape.make_grid"):
            make_grid(bad)
    with pytest.raises(GridSpecError, match="not both"):
        make_grid(grid, "0:1:3")
