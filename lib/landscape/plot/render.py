"""PNG/PDF plots of a results file (also run by --plot), and its page; the command line is cli/render.py.

Every plot draws a Quantity (quantities.py): unfinished points are NaN and show blank, an adaptive
run's `<name>_interp` is preferred, and the title says which and how many points are blank.
Default ranges of a loss show its basin (its minimum up to BASIN_SPAN above it) instead of
following far-away outliers; --vmin/--vmax/--vlevel/--zlim override them, in loss units also with --log.
"""
import numpy as np

from ..files.results import done_name, read_results
from .base import basin_range, near_log_levels, save_figure
from .curves import plot_1d
from .hessian import mark_unconverged, plot_eig_maps, plot_eig_ratio
from .maps import plot_contour, plot_heatmap
from .options import RenderOptions
from .quantities import chosen, find, operator_name
from .render_curvature import render_curvature
from .surface3d import plot_surface3d


def checked(opts):
    """opts itself, or the defaults for None. Anything else is refused: the library never reads a
    driver's parsed flags (landscape.cli.render.render_options turns those into RenderOptions)."""
    if opts is None:
        return RenderOptions()
    if not isinstance(opts, RenderOptions):
        raise TypeError(f"render options must be a RenderOptions or None, not {type(opts).__name__} "
                        f"(landscape.cli.render.render_options converts parsed flags)")
    return opts


def finished(results, name, kind):
    return np.where(results[done_name(kind)].astype(bool), results[name], np.nan)


def stem_of(path, name):
    return (path[:-3] if path.endswith(".h5") else path) + f"_{name}"


def plot_stem(path, name, opts):
    """--log writes <name>_log files, so a log re-plot never replaces the linear ones."""
    return stem_of(path, name + ("_log" if opts.log else ""))


def default_top(q):
    """Where the default range of a quantity ends: a loss's basin top, else None (the data's largest
    value, which the plots take themselves, widening a constant map so that it still draws)."""
    return basin_range(q.values)[1] if q.is_loss else None


def loss_levels(q, opts):
    """The user's levels (arange in loss units); else near-log levels over the loss basin."""
    if opts.vlevel is not None or not q.is_loss:
        return dict(vmin=opts.vmin, vmax=opts.vmax, vlevel=opts.vlevel)
    low, top = basin_range(q.values)
    low = max(opts.vmin if opts.vmin is not None else low, top * 1e-3)
    top = opts.vmax if opts.vmax is not None else top
    return dict(levels=near_log_levels(low, top)) if 0 < low < top else dict(vmin=opts.vmin, vmax=opts.vmax)


def range_note(q, top, user_top):
    """Says when a default range stops below the data, so a clipped plot is never mistaken for the data."""
    if user_top is not None or top is None or top >= np.nanmax(q.values):
        return ""
    return f" (basin: up to {top:.3g}, max {np.nanmax(q.values):.3g})"


def render_map(results, path, opts):
    """The four 2D plots of one quantity: contour lines, filled contours, heatmap, 3D surface."""
    q = chosen(results, opts.surf_name, path)
    g, saved = results["grid"], []
    top = opts.vmax if opts.vmax is not None else default_top(q)
    title = q.label + range_note(q, top, opts.vmax) + (f"\n{q.note}" if q.note else "")
    levels = loss_levels(q, opts)
    for filled, kind in ((False, "2dcontour"), (True, "2dcontourf")):
        fig = plot_contour(g.x, g.y, q.values, log=opts.log, filled=filled, title=title, label=q.label, **levels)
        mark_unconverged(fig.axes[0], g.x, g.y, q.unconverged)
        saved += save_figure(fig, plot_stem(path, f"{q.name}_{kind}", opts))
    fig = plot_heatmap(g.x, g.y, q.values, vmin=opts.vmin, vmax=top, log=opts.log, title=title, label=q.label)
    mark_unconverged(fig.axes[0], g.x, g.y, q.unconverged)
    saved += save_figure(fig, plot_stem(path, f"{q.name}_2dheat", opts))
    ztop = opts.zlim if opts.zlim is not None else top
    note = q.noted(marked=False)  # a 3D surface carries no marks
    fig = plot_surface3d(g.x, g.y, q.values, vmin=opts.vmin, vmax=ztop, log=opts.log, label=q.label,
                         title=q.label + range_note(q, ztop, opts.zlim) + (f"\n{note}" if note else ""))
    saved += save_figure(fig, plot_stem(path, f"{q.name}_3dsurface", opts))
    return saved


def render_curves(results, path, opts):
    """Train (and test) loss and accuracy along the 1D grid; the loss axis shows the basin by default."""
    curves = {name: find(results, name) for name in ("train_loss", "train_acc", "test_loss", "test_acc")}
    values = {name: q.values if q is not None else None for name, q in curves.items()}
    losses = [q for q in (curves["train_loss"], curves["test_loss"]) if q is not None]
    top = opts.vmax
    if top is None and opts.loss_max is None and not opts.log:
        top = max(default_top(q) for q in losses)
    notes = unique_notes([q for q in curves.values() if q is not None])
    if top is not None and opts.vmax is None:
        notes.insert(0, "loss axis " + range_note(max(losses, key=lambda q: np.nanmax(q.values)), top, None).strip())
    fig = plot_1d(results["grid"].x, values["train_loss"], values["train_acc"], values["test_loss"],
                  values["test_acc"], log=opts.log, loss_max=opts.loss_max, vmin=opts.vmin, vmax=top,
                  acc_max=opts.acc_max, title="\n".join(n for n in notes if n != "loss axis ") or None)
    return save_figure(fig, plot_stem(path, "1d_loss_acc", opts))


def unique_notes(found):
    """Each quantity's note once; one line for all when they say the same (one done mask, one line)."""
    notes = {q.note for q in found if q.note}
    if len(notes) == 1:
        return list(notes)
    return [f"{q.label}: {q.note}" for q in found if q.note]


def render_surface(path, opts=None, page=True):
    """Plots of the surface values (2D: maps of opts.surf_name; 1D: loss/accuracy curves) and the HTML page.
    opts.surf_name is checked (quantities.chosen) before anything is drawn, also in 1D and for a file
    without surface values."""
    opts = checked(opts)
    results = read_results(path)
    chosen(results, opts.surf_name, path)
    if done_name("surface") not in results:
        return []
    saved = render_map(results, path, opts) if results["grid"].is_2d else render_curves(results, path, opts)
    return saved + (render_page(path, opts) if page else [])


def render_eig_maps(results, path, opts):
    g = results["grid"]
    low, high = find(results, "min_eig"), find(results, "max_eig")
    return save_figure(plot_eig_maps(g.x, g.y, low.values, high.values, title=low.note or None,
                                     unconverged=low.unconverged, operator=operator_name(results)),
                       stem_of(path, "eig_maps"))


def render_eig_ratio(results, path, opts):
    g = results["grid"]
    if not g.is_2d:
        return []
    low, high, loss = find(results, "min_eig"), find(results, "max_eig"), find(results, "train_loss")
    if loss is not None and not np.isfinite(loss.values).any():
        loss = None
    levels = loss_levels(loss, RenderOptions()).get("levels") if loss is not None else None
    fig = plot_eig_ratio(g.x, g.y, low.values, high.values, vmax=opts.eig_vmax, levels=levels,
                         contour=loss.values if loss is not None else None, title=low.note or None,
                         unconverged=low.unconverged)
    return save_figure(fig, stem_of(path, "eig_ratio"))


def render_curvature_maps(results, path, opts):
    """Trace, negative-mass, density and per-layer plots, where the file holds them (render_curvature.py)."""
    loss = finished(results, "train_loss", "surface") if done_name("surface") in results and results["grid"].is_2d \
        else None
    return render_curvature(results, lambda name: stem_of(path, name), loss)


# Each takes (results, path, options) and returns the paths it wrote; other Hessian plots append here.
HESSIAN_RENDERERS = [render_eig_maps, render_eig_ratio, render_curvature_maps]


def render_hessian(path, opts=None, page=True):
    """Every HESSIAN_RENDERERS plot of the file's eigenvalues, and the HTML page."""
    opts = checked(opts)
    results = read_results(path)
    chosen(results, opts.surf_name, path)  # the one check of the name, as every output makes it
    if done_name("hessian") not in results:
        return []
    saved = [out for render in HESSIAN_RENDERERS for out in render(results, path, opts)]
    return saved + (render_page(path, opts) if page else [])


def page_path(path):
    return (path[:-3] if path.endswith(".h5") else path) + ".html"


def render_page(path, opts=None, out=None, reload_secs=None, figures=(), xlabel="x", clip=True,
                interactive=True):
    """The interactive page of every quantity in the file, next to it by default, opening on
    opts.surf_name (checked by write_page), with `figures` ((PNG bytes, caption lines)) embedded below;
    returns [its path]."""
    opts = checked(opts)
    from .page import write_page  # plotly is only needed for the page
    out = out or page_path(path)
    write_page(read_results(path), out, path, proj_file=opts.proj_file, reload_secs=reload_secs,
               surf_name=opts.surf_name, figures=figures, xlabel=xlabel,
               clip=clip, interactive=interactive)
    return [out]
