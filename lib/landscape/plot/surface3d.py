"""The 3D surface of a 2D map, coloured by height and cut at the top of its range.

Matplotlib paints each polygon of a 3D collection in one flat colour. A grid quad on a steep wall can
span half the colour range, and a quad cut at the clip becomes a long sliver: one colour each, they
show as stripes. So every quad is sliced into pieces lying within one height band (COLOUR_BANDS per
range) and each piece is coloured by its own mean height: no piece's colour is more than one band
from the height of any of its points, and the parts above the clip are cut off, never flattened.
"""

import numpy as np
from matplotlib.ticker import MaxNLocator
from mpl_toolkits.mplot3d.art3d import Poly3DCollection

from .base import as_grid, log_bound, log_label, new_figure, set_title, value_range
from .maps import positive_if

COLOUR_BANDS = 64  # height bands per colour range: a colour step of 1/64 of the colormap is not seen
TICKS_PER_AXIS = 4  # intervals at most on a floor axis: more labels run into each other where x and y meet


def grid_quads(x, y, values):
    """(Q, 4, 3) corners of the grid quads whose four corners are all finished.

    A quad touching an unfinished cell is dropped whole: drawing it would invent the missing value.
    """
    xx, yy = np.meshgrid(x, y)
    heights = np.ma.filled(values, np.nan)
    corner_slices = [(slice(None, -1), slice(None, -1)), (slice(None, -1), slice(1, None)),
                     (slice(1, None), slice(1, None)), (slice(1, None), slice(None, -1))]
    corners = np.stack([np.stack([xx[s], yy[s], heights[s]], axis=-1) for s in corner_slices], axis=-2)
    return corners[np.isfinite(corners[..., 2]).all(axis=-1)].reshape(-1, 4, 3)


def clip_polygons(polygons, level, keep_below):
    """Clip each polygon of (P, k, 3) to z <= level[p] (keep_below) or z >= level[p], all at once.

    Sutherland-Hodgman against one plane: each edge gives its start if kept and its crossing point if it
    crosses. Returns (clipped (P', k', 3), count (P',), which of the P survive): each polygon's count
    vertices come first, the rest repeat its last vertex (a padded polygon draws the same).
    """
    z = polygons[..., 2]
    kept = z <= level[:, None] if keep_below else z >= level[:, None]
    ahead, ahead_kept = np.roll(polygons, -1, axis=1), np.roll(kept, -1, axis=1)
    crosses = kept != ahead_kept
    rise = ahead[..., 2] - z
    t = np.where(crosses, (level[:, None] - z) / np.where(crosses, rise, 1.0), 0.0)
    crossing = polygons + t[..., None] * (ahead - polygons)
    crossing[..., 2] = np.where(crosses, level[:, None], crossing[..., 2])  # exactly on the plane
    slots = np.stack([polygons, crossing], axis=2).reshape(len(polygons), -1, 3)
    valid = np.stack([kept, crosses], axis=2).reshape(len(polygons), -1)
    count = valid.sum(axis=1)
    survive = count >= 3
    order = np.argsort(~valid[survive], axis=1, kind="stable")[:, :max(count.max(initial=0), 3)]
    order = np.take_along_axis(order, np.minimum(np.arange(order.shape[1]), count[survive, None] - 1), axis=1)
    return np.take_along_axis(slots[survive], order[..., None], axis=1), count[survive], survive


def band_pieces(quads, low, high, bands=COLOUR_BANDS):
    """Slice quads into pieces within one of `bands` equal height bands over [low, high]; drop what lies
    above high. Returns (pieces (P, k, 3), colour (P,)): each piece's mean height over its own vertices."""
    edges = np.linspace(low, high, bands + 1)  # its ends exactly low and high
    step = (high - low) / bands
    first = np.clip(np.floor((quads[..., 2].min(axis=1) - low) / step), 0, bands - 1).astype(int)
    last = np.clip(np.floor((quads[..., 2].max(axis=1) - low) / step), 0, bands - 1).astype(int)
    first = np.where(quads[..., 2].min(axis=1) > high, bands, first)  # wholly above the clip: no band
    spans = np.maximum(last - first + 1, 0)
    owner = np.repeat(np.arange(len(quads)), spans)
    band = first[owner] + np.arange(len(owner)) - np.repeat(np.cumsum(spans) - spans, spans)
    pieces, _, kept = clip_polygons(quads[owner], edges[band + 1], keep_below=True)
    pieces, count, kept_too = clip_polygons(pieces, edges[band[kept]], keep_below=False)
    quad_area = xy_area(quads)[owner[kept][kept_too]]
    solid = xy_area(pieces) > 1e-9 * quad_area  # a piece only touching a band's plane has no area: not drawn
    own = np.arange(pieces.shape[1]) < count[solid, None]
    return pieces[solid], (pieces[solid, :, 2] * own).sum(axis=1) / count[solid]


def xy_area(polygons):
    """Area of each polygon (P, k, 3) seen from above (the shoelace formula on x and y)."""
    x, y = polygons[..., 0], polygons[..., 1]
    return 0.5 * np.abs((x * np.roll(y, -1, axis=1) - np.roll(x, -1, axis=1) * y).sum(axis=1))


def plot_surface3d(x, y, z, vmin=None, vmax=None, log=False, title=None, label="z"):
    """3D surface coloured by height, cut off at vmax (no flat lid) and raised to vmin below it.

    With log the heights are log10(z) (vmin/vmax still in z units).
    """
    x, y, z = as_grid(x, y, z)
    values = positive_if(z, log)
    if log:
        values, vmin, vmax = np.ma.log10(values), log_bound(vmin, "vmin"), log_bound(vmax, "vmax")
    low, high = value_range(values, vmin, vmax)
    pieces, colours = band_pieces(grid_quads(x, y, np.ma.maximum(values, low)), low, high)
    fig = new_figure(figsize=(7, 5.5))
    ax = fig.add_subplot(projection="3d")
    surface = Poly3DCollection(pieces, cmap="coolwarm", linewidth=0, antialiased=False)
    surface.set_array(colours)
    surface.set_clim(low, high)
    ax.add_collection3d(surface)
    ax.set_xlim(x[0], x[-1])
    ax.set_ylim(y[0], y[-1])
    ax.set_zlim(low, high)
    # x's last and y's first tick meet at the front corner of the default view: y leaves its first out.
    ax.xaxis.set_major_locator(MaxNLocator(TICKS_PER_AXIS))
    ax.yaxis.set_major_locator(MaxNLocator(TICKS_PER_AXIS, prune="lower"))
    ax.set_xlabel("x")
    ax.set_ylabel("y")
    # The colourbar sits left of the axes: on the right it covers the z ticks.
    fig.colorbar(surface, ax=ax, shrink=0.55, aspect=12, pad=0.02, location="left", label=log_label(label, log))
    set_title(ax, title)
    return fig
