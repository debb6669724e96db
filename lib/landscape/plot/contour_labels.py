"""Inline labels of contour lines placed where they have room: never across another line or another label.

Matplotlib puts a label on the straightest stretch of each line and does not look at the neighbours, so
where a basin's lines crowd (near a sharp minimum) its labels lie across the next lines. Here every vertex
of a labelled line is a candidate spot, tried from the one farthest from any other level's line inwards;
the first spot whose label box (turned along the line) crosses no other line, overlaps no label placed
before and stays inside the axes gets the label. A line with no such spot stays unlabelled. Matplotlib
then places the labels at those spots and cuts its line under each (inline).
"""

import numpy as np
from matplotlib.font_manager import FontProperties

from .overlap import curve_segments, segments_crossing

LABEL_STYLE = dict(fontsize=7, fmt="%.3g")
INLINE_SPACING = 3  # pixels left free on each side of an inline label
MARGIN_POINTS = 1.5  # room kept between a label's box and any other line or label
MAX_CANDIDATES = 200  # spots tried per piece of line, spread evenly along it
ANGLE_STEP = 15.0  # degrees: label angles within one step count as equally level


def components(path):
    """The connected pieces of a display-space contour path, each (k, 2); a closed one ends at its start."""
    vertices, codes = path.vertices, path.codes
    if codes is None:
        return [vertices] if len(vertices) else []
    starts = list(np.flatnonzero(codes == path.MOVETO)) + [len(vertices)]
    pieces = []
    for start, end in zip(starts[:-1], starts[1:]):
        piece = vertices[start:end].copy()
        closed = codes[start:end] == path.CLOSEPOLY
        piece[closed] = piece[0]
        pieces.append(piece)
    return pieces


def segments(pieces):
    """(starts, ends) of every segment of the pieces, each (n, 2)."""
    pairs = [(p[:-1], p[1:]) for p in pieces if len(p) > 1]
    if not pairs:
        return np.zeros((0, 2)), np.zeros((0, 2))
    return np.concatenate([a for a, _ in pairs]), np.concatenate([b for _, b in pairs])


def nearest_distance(points, targets, chunk=64):
    """Each point's distance to the nearest target point (inf without targets), in chunks to bound memory."""
    if not len(targets):
        return np.full(len(points), np.inf)
    return np.concatenate([np.sqrt(((points[i:i + chunk, None, :] - targets[None, :, :]) ** 2).sum(axis=2)).min(axis=1)
                           for i in range(0, len(points), chunk)])


def directions(piece, indices, half_width):
    """Angles (degrees, display space, text upright) of the line's chords over a label's width around vertices."""
    arc = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(piece, axis=0), axis=1))])
    before = np.clip(arc[indices] - half_width, 0.0, arc[-1])
    after = np.clip(arc[indices] + half_width, 0.0, arc[-1])
    dx = np.interp(after, arc, piece[:, 0]) - np.interp(before, arc, piece[:, 0])
    dy = np.interp(after, arc, piece[:, 1]) - np.interp(before, arc, piece[:, 1])
    return (np.degrees(np.arctan2(dy, dx)) + 90.0) % 180.0 - 90.0


def turned_extent(half_w, half_h, angle):
    """Half width and half height of the upright box around a label box turned by angle (degrees)."""
    c, s = abs(np.cos(np.radians(angle))), abs(np.sin(np.radians(angle)))
    return half_w * c + half_h * s, half_w * s + half_h * c


def spot_is_free(centre, angle, size, others, placed, inside):
    """A label of half sizes `size` at centre, turned by angle: clear of other lines, placed labels, axes edges."""
    half_w, half_h = size
    turn = np.radians(-angle)
    rotation = np.array([[np.cos(turn), -np.sin(turn)], [np.sin(turn), np.cos(turn)]])
    starts, ends = ((points - centre) @ rotation.T for points in others)
    if segments_crossing(starts, ends, (-half_w, -half_h), (half_w, half_h)).any():
        return False
    ext_w, ext_h = turned_extent(half_w, half_h, angle)
    (x0, y0), (x1, y1) = inside
    if not (x0 + ext_w <= centre[0] <= x1 - ext_w and y0 + ext_h <= centre[1] <= y1 - ext_h):
        return False
    return all(abs(centre[0] - c[0]) > ext_w + w or abs(centre[1] - c[1]) > ext_h + h for c, w, h in placed)


def label_spots(lines, levels, renderer):
    """Display positions for labels of `levels` of a ContourSet: per piece of line, the first free spot."""
    dpi = lines.axes.figure.dpi
    margin = MARGIN_POINTS * dpi / 72
    font = FontProperties(size=LABEL_STYLE["fontsize"])
    transform = lines.get_transform()
    per_level = [components(transform.transform_path(p)) for p in lines.get_paths()]
    inside = lines.axes.bbox.get_points()
    curves = curve_segments([lines.axes])  # lines already drawn on the axes (an optimizer path)
    placed, spots = [], []
    for index, level in enumerate(lines.levels):
        if level not in levels:
            continue
        width, height, _ = renderer.get_text_width_height_descent(LABEL_STYLE["fmt"] % level, font, ismath=False)
        size = (width / 2 + margin, height / 2 + margin)
        others = [np.concatenate(pair) for pair in zip(
            segments([p for i, pieces in enumerate(per_level) if i != index for p in pieces]), curves)]
        for piece in per_level[index]:
            if len(piece) < 2 or np.ptp(piece, axis=0).max() < 1.2 * width:
                continue  # too short to hold a label
            candidates = np.unique(np.linspace(0, len(piece) - 1, min(len(piece), MAX_CANDIDATES)).astype(int))
            angles = directions(piece, candidates, width / 2)
            clearance = nearest_distance(piece[candidates], others[0])
            # level text reads best: the most level spots first, the roomiest first among equally level ones
            for k in np.lexsort((-clearance, np.round(np.abs(angles) / ANGLE_STEP))):
                vertex, angle = candidates[k], angles[k]
                if spot_is_free(piece[vertex], angle, size, others, placed, inside):
                    ext_w, ext_h = turned_extent(*size, angle)
                    placed.append((piece[vertex], ext_w, ext_h))
                    spots.append(piece[vertex])
                    break
    return spots


def label_lines(lines, levels):
    """Label `levels` of a ContourSet inline, each piece of line where a label has room (see the module's doc);
    returns the label texts."""
    figure = lines.axes.figure
    if figure.get_layout_engine() is not None:  # measure in the axes' final place
        figure.get_layout_engine().execute(figure)
    spots = label_spots(lines, set(np.asarray(levels).tolist()), figure.canvas.get_renderer())
    to_data = lines.axes.transData.inverted()
    return lines.clabel(levels, inline=True, inline_spacing=INLINE_SPACING,
                        manual=[to_data.transform(xy) for xy in spots], **LABEL_STYLE)
