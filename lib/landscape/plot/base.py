"""Shared pieces of the plotting modules: input checks, NaN masking, contour levels, figures, saving.

Conventions: x has len nx, y has len ny, a 2D array z is shaped (ny, nx) and z[j, i] lies at
(x[i], y[j]). NaN marks a cell that is not computed yet; it is masked so it shows blank.
log=True draws z on a log10 colour or height scale: values <= 0 are masked too, while
vmin/vmax/levels stay in z's own units (a loss of 0.1 is 0.1, not -1).
"""

import os

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from ..errors import PlotOptionError
from .output import write_output

MAX_CONTOUR_LEVELS = 500  # more levels than this is a typo in vlevel, and would take minutes to draw
DEFAULT_LEVEL_COUNT = 20
SAVE_DPI = 300  # the reference saves its figures at 300 dpi


def new_figure(**kwargs):
    """A Figure on the Agg canvas, outside pyplot, so it is never kept alive by global state."""
    fig = Figure(**kwargs)
    FigureCanvasAgg(fig)
    return fig


def as_axis(values, name):
    axis = np.asarray(values, dtype=float)
    if axis.ndim != 1 or axis.size < 1:
        raise PlotOptionError(f"{name} must be a 1D array of coordinates, got shape {axis.shape}")
    if not np.all(np.isfinite(axis)):
        raise PlotOptionError(f"{name} holds non-finite coordinates: {axis}")
    if axis.size > 1 and not np.all(np.diff(axis) > 0):
        raise PlotOptionError(f"{name} must be strictly increasing, got {axis}")
    return axis


def as_grid(x, y, z, name="z"):
    """Checked float copies of a 2D grid: x (nx,), y (ny,), z (ny, nx)."""
    x, y = as_axis(x, "x"), as_axis(y, "y")
    if x.size < 2 or y.size < 2:
        raise PlotOptionError(
            f"a 2D plot needs at least 2 coordinates along each axis, got len(x)={x.size}, len(y)={y.size}")
    z = np.asarray(z, dtype=float)
    if z.shape != (y.size, x.size):
        raise PlotOptionError(
            f"{name} has shape {z.shape}, but len(x)={x.size} and len(y)={y.size} need "
            f"(len(y), len(x)) = {(y.size, x.size)}; transpose arrays stored as [ix, iy]")
    return x, y, z


def as_curve(x, values, name):
    """A 1D array matching x, or None when not given."""
    if values is None:
        return None
    values = np.asarray(values, dtype=float)
    if values.shape != x.shape:
        raise PlotOptionError(f"{name} has shape {values.shape}, but x has shape {x.shape}")
    return values


def masked(values, log=False):
    """NaN/inf (unfinished cells) masked; with log, log10 of the values with values <= 0 masked."""
    values = np.ma.masked_invalid(np.asarray(values, dtype=float))
    if not log:
        return values
    positive = np.ma.masked_less_equal(values, 0.0)
    return np.ma.log10(positive)


def log_label(label, log):
    return f"log10({label})" if log else label


def log_bound(bound, name):
    """log10 of a bound given in z units; a log scale has no place for a bound <= 0."""
    if bound is None:
        return None
    if not bound > 0:
        raise PlotOptionError(f"{name}={bound} cannot bound a log scale; give a value > 0 (in z units, not log10)")
    return float(np.log10(bound))


# Steps of a near-logarithmic level ladder: six levels per decade, evenly spaced in log10 to within 20%.
NEAR_LOG_STEPS = (1.0, 1.5, 2.0, 3.0, 5.0, 7.0)


def near_log_levels(low, high, min_count=6):
    """Round levels 1, 1.5, 2, 3, 5, 7 x 10^k from just above `low` up to `high` (low > 0).

    Dense near a minimum and sparse far away, as a loss basin needs; linear steps over a range
    reaching into the hundreds would put no contour near the minimum. A range too narrow for
    min_count such levels gets min_count log-spaced ones, rounded to 3 digits.
    """
    if not 0 < low < high:
        raise PlotOptionError(f"near-log levels need 0 < low < high, got low={low}, high={high}")
    decades = range(int(np.floor(np.log10(low))), int(np.ceil(np.log10(high))) + 1)
    ladder = np.array([step * 10.0 ** k for k in decades for step in NEAR_LOG_STEPS])
    levels = ladder[(ladder > low) & (ladder <= high * (1 + 1e-9))]
    if len(levels) >= min_count:
        return levels
    spaced = np.geomspace(low, high, min_count + 1)[1:]
    return np.unique([float(f"{v:.3g}") for v in spaced])


# A loss more than BASIN_SPAN above its minimum (or BASIN_FACTOR times it) lies outside the basin:
# the reference's plots stop at a loss of 10 (plot_2D.py's levels, plot_1D.py's loss_max 5).
BASIN_SPAN = 10.0
BASIN_FACTOR = 20.0


def basin_range(values):
    """(low, top) of a loss map or curve: its minimum, and where the basin ends (never past the data)."""
    low, high = finite_range(np.ma.masked_invalid(np.asarray(values, dtype=float)), "loss")
    top = low + max(BASIN_SPAN, BASIN_FACTOR * abs(low))
    return low, min(high, top) if high > low else high


def finite_range(values, name):
    """(min, max) of the unmasked values; refuses an array with none (nothing finished yet)."""
    if values.count() == 0:
        raise PlotOptionError(f"{name} has no finite values to plot (every cell is NaN or masked)")
    return float(values.min()), float(values.max())


def value_range(values, vmin=None, vmax=None, name="z"):
    """(vmin, vmax) with a missing bound taken from the finite data; refuses vmin >= vmax.

    Data that is constant gets a small band around its value so a finished-but-flat map still
    draws instead of failing.
    """
    if vmin is None or vmax is None:
        low, high = finite_range(values, name)
        if low == high and vmin is None and vmax is None:
            half_band = abs(low) * 0.05 or 0.5
            low, high = low - half_band, high + half_band
        vmin = low if vmin is None else vmin
        vmax = high if vmax is None else vmax
    if not vmin < vmax:
        raise PlotOptionError(f"vmin must be < vmax, got vmin={vmin}, vmax={vmax} "
                              f"(a bound not given is taken from the data of {name})")
    return float(vmin), float(vmax)


def contour_levels(values, vmin=None, vmax=None, vlevel=None, name="z"):
    """arange(vmin, vmax, vlevel) as the reference does (vmax itself excluded).

    A bound not given comes from the finite data; without vlevel the range is cut into
    DEFAULT_LEVEL_COUNT steps.
    """
    if vlevel is not None and not vlevel > 0:
        raise PlotOptionError(f"vlevel must be > 0, got {vlevel}")
    vmin, vmax = value_range(values, vmin, vmax, name)
    if vlevel is None:
        vlevel = (vmax - vmin) / DEFAULT_LEVEL_COUNT
    count = int(np.ceil((vmax - vmin) / vlevel))
    if count > MAX_CONTOUR_LEVELS:
        raise PlotOptionError(f"vmin={vmin}, vmax={vmax}, vlevel={vlevel} give {count} contour levels "
                              f"(at most {MAX_CONTOUR_LEVELS}); use a larger vlevel")
    return np.arange(vmin, vmax, vlevel)


def set_title(ax, title):
    if title is not None:
        ax.set_title(title)


def save_figure(fig, stem, formats=("png", "pdf")):
    """Write fig to stem.<format> for each format (creating the folder) through write_output: whole
    files or none, PlotWriteError on a write error; returns the paths written."""
    stem = os.fspath(stem)
    if isinstance(formats, str):
        formats = (formats,)
    supported = fig.canvas.get_supported_filetypes()
    unknown = [fmt for fmt in formats if fmt not in supported]
    if unknown or not formats:
        raise PlotOptionError(f"cannot save figure formats {unknown or list(formats)}; "
                              f"choose from {sorted(supported)}")
    return [write_output(f"{stem}.{fmt}", lambda tmp, fmt=fmt: fig.savefig(tmp, format=fmt, dpi=SAVE_DPI,
                                                                          bbox_inches="tight"))
            for fmt in formats]


def plot_curves(x, curves, ylabel, title=None, ylim=None, zero_line=False):
    """Curves along a 1D grid on one axes: `curves` is [(values, matplotlib style, legend label)];
    NaN values leave gaps. ylim fixes the value axis; zero_line draws y = 0."""
    fig = new_figure()
    ax = fig.add_subplot()
    for values, style, label in curves:
        ax.plot(x, masked(values), style, linewidth=1, label=label)
    if zero_line:
        ax.axhline(0.0, color="gray", linewidth=0.5)
    ax.set_xlim(x[0], x[-1])
    if ylim is not None:
        ax.set_ylim(*ylim)
    ax.set_xlabel("x")
    ax.set_ylabel(ylabel)
    ax.legend()
    set_title(ax, title)
    return fig
