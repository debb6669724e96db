"""Where drawn things would cover each other: segments against boxes, in display space; a legend placed on the
spot that covers the fewest curves of every axes sharing the plot (matplotlib's 'best' sees one axes only)."""

import numpy as np

LEGEND_SPOTS = ("upper right", "upper left", "lower left", "lower right", "center right", "center left",
                "upper center", "lower center", "center")


def segments_crossing(starts, ends, low, high):
    """Which segments (starts[k] to ends[k], each (n, 2)) meet the box low <= (x, y) <= high (Liang-Barsky, all at
    once); a segment with a non-finite end (a gap in a curve) meets nothing."""
    starts, ends = np.asarray(starts, dtype=float).reshape(-1, 2), np.asarray(ends, dtype=float).reshape(-1, 2)
    d = ends - starts
    p = np.stack([-d[:, 0], d[:, 0], -d[:, 1], d[:, 1]], axis=1)
    q = np.stack([starts[:, 0] - low[0], high[0] - starts[:, 0], starts[:, 1] - low[1], high[1] - starts[:, 1]],
                 axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = q / p
    outside_parallel = ((p == 0) & (q < 0)).any(axis=1)
    enter = np.where(p < 0, ratio, -np.inf).max(axis=1, initial=0.0)
    leave = np.where(p > 0, ratio, np.inf).min(axis=1, initial=1.0)
    finite = np.isfinite(starts).all(axis=1) & np.isfinite(ends).all(axis=1)
    return (enter <= leave) & ~outside_parallel & finite


def curve_segments(axes):
    """(starts, ends) in display space of every line drawn on the given axes (and of its markers)."""
    starts, ends = [np.zeros((0, 2))], [np.zeros((0, 2))]
    for ax in axes:
        ax.get_xlim(), ax.get_ylim()  # settles autoscaled limits, which the display transform uses
        for line in ax.get_lines():
            xy = line.get_transform().transform(np.ma.filled(np.ma.column_stack(line.get_data()).astype(float),
                                                             np.nan))
            starts.append(xy[:-1])
            ends.append(xy[1:])
            if line.get_marker() not in (None, "None", "", " "):  # each marker as a segment of length 0
                starts.append(xy)
                ends.append(xy)
    return np.concatenate(starts), np.concatenate(ends)


def free_legend(ax, axes, **kwargs):
    """A legend on ax at the first of LEGEND_SPOTS that crosses no curve of `axes` (all that share the plot),
    else at the one crossing the fewest segments; kwargs go to ax.legend."""
    renderer = ax.figure.canvas.get_renderer()
    starts, ends = curve_segments(axes)
    best = None
    for spot in LEGEND_SPOTS:
        legend = ax.legend(loc=spot, **kwargs)
        box = legend.get_window_extent(renderer)
        crossed = int(segments_crossing(starts, ends, box.p0, box.p1).sum())
        if best is None or crossed < best[0]:
            best = (crossed, spot)
        if crossed == 0:
            return legend
    return ax.legend(loc=best[1], **kwargs)
