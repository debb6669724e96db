"""One self-contained interactive HTML page per results file (plotly.js inlined: no network needed).

The page holds every map of the file (quantities.quantities, minus solver diagnostics), switchable:
a 3D surface with contour lines projected below it and a 2D contour/heatmap (2D grids), or curves
(1D grids), with hover read-outs, a log/linear toggle, a z clip, and the optimizer path when a
projection file is given. Unfinished points are JSON null: gaps, never zeros. Points whose λmin/λmax
run did not converge are marked '×' and counted in the quantity's note. The page's script is
page.js next to this module.
"""
import datetime
import html
import json
import os

import numpy as np
from plotly.offline import get_plotlyjs
from scipy.interpolate import RegularGridInterpolator

from ..files.paths import check_apart
from ..files.projection import read_projection
from ..files.results import done_masks
from .base import basin_range
from .output import write_text
from .quantities import chosen, quantities

DIAGNOSTICS = {"eig_iters", "eig_res_max", "eig_res_min"}  # solver bookkeeping, not landscapes
SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "page.js")
SIGNIFICANT = 6  # digits kept per value: the hover shows them, and a 101x101 page stays under 6 MB


def json_numbers(values):
    """A (nested) JSON array of the values with SIGNIFICANT digits, null where not finite."""
    values = np.asarray(values, dtype=float)
    if values.ndim > 1:
        return "[" + ",".join(json_numbers(row) for row in values) + "]"
    return "[" + ",".join(f"{v:.{SIGNIFICANT}g}" if np.isfinite(v) else "null" for v in values) + "]"


def default_top(q):
    """The initial z clip: a loss's basin top; None (no clip) for other quantities or an empty map."""
    if not q.is_loss or not np.isfinite(q.values).any():
        return None
    return basin_range(q.values)[1]


def along_path(grid, values, xs, ys):
    """The map's values at the path's points (linear between grid points; NaN off the grid or in a gap)."""
    if not grid.is_2d:
        return np.full(len(xs), np.nan)
    return RegularGridInterpolator((grid.y, grid.x), values, bounds_error=False)(np.column_stack([ys, xs]))


def quantity_json(q, grid, path):
    top = default_top(q)
    fields = [f'"name":{json.dumps(q.name)}', f'"label":{json.dumps(q.label)}', f'"note":{json.dumps(q.note)}',
              f'"top":{json.dumps(top)}', f'"values":{json_numbers(q.values)}']
    if path is not None:
        fields.append(f'"path":{json_numbers(along_path(grid, q.values, *path))}')
    if q.unconverged_count:  # grid indices ([j, i] in 2D, [i] in 1D) that page.js marks with an '×'
        fields.append(f'"unconverged":{json.dumps(np.argwhere(q.unconverged).tolist())}')
    return "{" + ",".join(fields) + "}"


def page_data(results, title, path=None, initial=None):
    """The page's data as a JSON text: grid, quantities, optional path (xs, ys), progress, and the name
    of the quantity it opens on (shown even when it is a diagnostic)."""
    grid = results["grid"]
    shown = [q for q in quantities(results) if q.name not in DIAGNOSTICS or q.name == initial]
    masks = list(done_masks(results).values())
    done = sum(int(np.count_nonzero(m)) for m in masks)
    total = sum(m.size for m in masks)
    parts = [f'"title":{json.dumps(title)}', f'"x":{json_numbers(grid.x)}',
             f'"y":{json_numbers(grid.y) if grid.is_2d else "null"}',
             f'"done":{done}', f'"total":{total}', f'"initial":{json.dumps(initial)}',
             '"quantities":[' + ",".join(quantity_json(q, grid, path) for q in shown) + "]"]
    if path is not None:
        parts.append(f'"path":{{"x":{json_numbers(path[0])},"y":{json_numbers(path[1])}}}')
    return "{" + ",".join(parts) + "}"


PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title><link rel="icon" href="data:,">
<style>
body {{ font-family: sans-serif; margin: 8px; }}
#controls {{ display: flex; gap: 1.2em; align-items: center; flex-wrap: wrap; }}
#plots {{ display: flex; flex-wrap: wrap; }}
#surface3d, #map2d {{ width: 50%; min-width: 420px; height: 620px; flex: 1 1 420px; }}
#note, #live {{ color: #555; font-size: 90%; }}
</style>
<script>{plotly}</script>
</head><body>
<div id="controls">
<b>{title}</b>
<label>quantity <select id="quantity"></select></label>
<label><input type="checkbox" id="log"> log scale</label>
<label>clip z at <input type="number" id="zmax" step="any" size="8"></label>
<span id="note"></span><span id="live"></span>
</div>
<div id="plots"><div id="surface3d"></div><div id="map2d"></div></div>
<script id="landscape-data" type="application/json">{data}</script>
<script>const RELOAD_SECS = {reload};</script>
<script>{script}</script>
</body></html>
"""


def page_html(data_json, title, reload_secs=None):
    """The whole page as text; reload_secs makes it reload itself (the live view of a running job)."""
    with open(SCRIPT, encoding="utf-8") as f:
        script = f.read()
    return PAGE.format(title=html.escape(title), plotly=get_plotlyjs(), data=data_json.replace("</", "<\\/"),
                       reload=json.dumps(reload_secs), script=script)


def read_path(proj_file):
    xs, ys, _ = read_projection(proj_file)
    return np.asarray(xs, dtype=float), np.asarray(ys, dtype=float)


def write_page(results, out, surf_file, proj_file=None, reload_secs=None, surf_name=None):
    """Write the page for read_results' dict atomically (a reloading browser never sees half a page),
    opening on the quantity surf_name picks (quantities.chosen, the check every output makes)."""
    check_apart([("the results file", surf_file), ("the projection file", proj_file)], [("the page", out)])
    initial = chosen(results, surf_name, surf_file).name
    stamp = datetime.datetime.now().strftime("%H:%M:%S")
    title = f"{os.path.basename(surf_file)}" + (f" (live, written {stamp})" if reload_secs else "")
    data = page_data(results, title, read_path(proj_file) if proj_file else None, initial)
    return write_text(out, page_html(data, title, reload_secs))
