"""One self-contained interactive HTML page per results file (plotly.js inlined: no network needed).

The page holds every map of the file (quantities.quantities, minus solver diagnostics), switchable:
a 3D surface with contour lines projected below it and a 2D contour/heatmap (2D grids), or curves
(1D grids), with hover read-outs, a log/linear toggle, a z clip, and the optimizer path when a
projection file is given. Unfinished points are JSON null: gaps, never zeros. Points whose λmin/λmax
run did not converge are marked '×' and counted in the quantity's note. The page's script is
page.js next to this module.
"""
import base64
import datetime
import html
import io
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


def quantity_json(q, grid, path, clip=True):
    top = default_top(q) if clip else None
    fields = [f'"name":{json.dumps(q.name)}', f'"label":{json.dumps(q.label)}', f'"note":{json.dumps(q.note)}',
              f'"top":{json.dumps(top)}', f'"values":{json_numbers(q.values)}']
    if path is not None:
        fields.append(f'"path":{json_numbers(along_path(grid, q.values, *path))}')
    if q.unconverged_count:  # grid indices ([j, i] in 2D, [i] in 1D) that page.js marks with an '×'
        fields.append(f'"unconverged":{json.dumps(np.argwhere(q.unconverged).tolist())}')
    return "{" + ",".join(fields) + "}"


def page_data(results, title, path=None, initial=None, xlabel="x", clip=True):
    """The page's data as a JSON text: grid, quantities, optional path (xs, ys), progress, and the name
    of the quantity it opens on (shown even when it is a diagnostic); clip False: no quantity starts
    clipped at its basin's top (a path's barrier is its highest point)."""
    grid = results["grid"]
    shown = [q for q in quantities(results) if q.name not in DIAGNOSTICS or q.name == initial]
    masks = list(done_masks(results).values())
    done = sum(int(np.count_nonzero(m)) for m in masks)
    total = sum(m.size for m in masks)
    parts = [f'"title":{json.dumps(title)}', f'"x":{json_numbers(grid.x)}',
             f'"y":{json_numbers(grid.y) if grid.is_2d else "null"}',
             f'"done":{done}', f'"total":{total}', f'"xlabel":{json.dumps(xlabel)}', f'"initial":{json.dumps(initial)}',
             '"quantities":[' + ",".join(quantity_json(q, grid, path, clip) for q in shown) + "]"]
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
figure {{ margin: 12px 0; }} figure img {{ max-width: 100%; }} figcaption {{ font-size: 95%; }}
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
{figures}<style>{hidden}</style>
<script id="landscape-data" type="application/json">{data}</script>
<script>const RELOAD_SECS = {reload};</script>
<script>{script}</script>
</body></html>
"""


def page_html(data_json, title, reload_secs=None, figures=(), interactive=True):
    """The whole page as text; reload_secs makes it reload itself (the live view of a running job);
    figures: (PNG bytes, caption lines) shown below the interactive plots, embedded (the page stays offline);
    interactive False hides the plots and their controls (a grid whose maps mean nothing: a barrier matrix's)."""
    with open(SCRIPT, encoding="utf-8") as f:
        script = f.read()
    return PAGE.format(title=html.escape(title), plotly=get_plotlyjs(), data=data_json.replace("</", "<\\/"),
                       reload=json.dumps(reload_secs), script=script, figures="".join(map(figure_html, figures)),
                       hidden="" if interactive else "#plots, #controls label { display: none; }")


def figure_html(figure):
    png, caption = figure
    text = "<br>".join(html.escape(line) for line in caption)
    return (f'<figure><img alt="{html.escape(caption[0] if caption else "figure")}" '
            f'src="data:image/png;base64,{base64.b64encode(png).decode()}"><figcaption>{text}</figcaption></figure>\n')


def figure_png(fig):
    """A matplotlib Figure as PNG bytes, for a page to embed."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    return buffer.getvalue()


def read_path(proj_file):
    xs, ys, _ = read_projection(proj_file)
    return np.asarray(xs, dtype=float), np.asarray(ys, dtype=float)


def write_page(results, out, surf_file, proj_file=None, reload_secs=None, surf_name=None, figures=(), xlabel="x",
               clip=True, interactive=True):
    """Write the page for read_results' dict atomically (a reloading browser never sees half a page),
    opening on the quantity surf_name picks (quantities.chosen, the check every output makes); figures:
    (PNG bytes, caption lines) embedded below the plots; xlabel: the 1D axis's name; clip: as page_data's;
    interactive: as page_html's."""
    check_apart([("the results file", surf_file), ("the projection file", proj_file)], [("the page", out)])
    initial = chosen(results, surf_name, surf_file).name
    stamp = datetime.datetime.now().strftime("%H:%M:%S")
    title = f"{os.path.basename(surf_file)}" + (f" (live, written {stamp})" if reload_secs else "")
    data = page_data(results, title, read_path(proj_file) if proj_file else None, initial, xlabel, clip)
    return write_text(out, page_html(data, title, reload_secs, figures, interactive))
