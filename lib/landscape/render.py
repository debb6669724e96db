"""Plots from a results file alone: `python -m landscape.render FILE [--vmin ...]` (also used by --plot).

Unfinished points (done mask 0) are NaN here, so every plot shows them blank.
"""
import argparse
import sys

import numpy as np

from .plotting import (plot_1d, plot_contour, plot_eig_maps, plot_eig_ratio, plot_heatmap, plot_surface3d,
                       save_figure)
from .errors import LandscapeError, SurfaceFileError
from .render_curvature import render_curvature
from .surfile import KINDS, done_name, read_results


def finished(results, name, kind):
    return np.where(results[done_name(kind)].astype(bool), results[name], np.nan)


def stem_of(path, name):
    return (path[:-3] if path.endswith(".h5") else path) + f"_{name}"


REFERENCE_LOSS_LEVELS = dict(vmin=0.1, vmax=10.0, vlevel=0.5)  # plot_2D.py's defaults, familiar to users


def contour_defaults(z, surf_name, opts):
    """The user's levels; else the reference's for a loss that overlaps them; else the data's range."""
    given = dict(vmin=opts.vmin, vmax=opts.vmax, vlevel=opts.vlevel)
    if any(v is not None for v in given.values()) or opts.log or not surf_name.endswith("loss"):
        return given
    lo, hi = np.nanmin(z), np.nanmax(z)
    ref = REFERENCE_LOSS_LEVELS
    return ref if lo < ref["vmax"] and hi > ref["vmin"] else given


def render_surface(path, opts, surf_name="train_loss"):
    r = read_results(path)
    if done_name("surface") not in r:
        return []
    g, saved = r["grid"], []
    if not g.is_2d:
        test = "test_loss" in r
        fig = plot_1d(g.x, finished(r, "train_loss", "surface"), finished(r, "train_acc", "surface"),
                      finished(r, "test_loss", "surface") if test else None,
                      finished(r, "test_acc", "surface") if test else None, log=opts.log)
        return save_figure(fig, stem_of(path, "1d_loss_acc"))
    if surf_name not in r:
        raise SurfaceFileError(f"{path} has no {surf_name!r}; it has {', '.join(sorted(KINDS['surface']))}"
                               + (" and test values" if "test_loss" in r else ""))
    z = finished(r, surf_name, "surface")
    levels = dict(contour_defaults(z, surf_name, opts), log=opts.log)
    saved += save_figure(plot_contour(g.x, g.y, z, **levels), stem_of(path, f"{surf_name}_2dcontour"))
    saved += save_figure(plot_contour(g.x, g.y, z, filled=True, **levels), stem_of(path, f"{surf_name}_2dcontourf"))
    saved += save_figure(plot_heatmap(g.x, g.y, z, vmin=opts.vmin, vmax=opts.vmax, log=opts.log, label=surf_name),
                         stem_of(path, f"{surf_name}_2dheat"))
    saved += save_figure(plot_surface3d(g.x, g.y, z, vmin=opts.vmin, vmax=opts.vmax, log=opts.log),
                         stem_of(path, f"{surf_name}_3dsurface"))
    return saved


def render_hessian(path, opts):
    r = read_results(path)
    if done_name("hessian") not in r:
        return []
    g = r["grid"]
    lo, hi = finished(r, "min_eig", "hessian"), finished(r, "max_eig", "hessian")
    saved = save_figure(plot_eig_maps(g.x, g.y, lo, hi), stem_of(path, "eig_maps"))
    if g.is_2d:
        contour = finished(r, "train_loss", "surface") if done_name("surface") in r else None
        fig = plot_eig_ratio(g.x, g.y, lo, hi, vmax=opts.vmax, contour=contour)
        saved += save_figure(fig, stem_of(path, "eig_ratio"))
    surface = done_name("surface") in r and g.is_2d
    saved += render_curvature(r, lambda name: stem_of(path, name), finished(r, "train_loss", "surface") if surface else None)
    return saved


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("surf_file")
    p.add_argument("--surf_name", default="train_loss", help="which 2D value to draw (train_loss, test_acc, ...)")
    p.add_argument("--vmin", type=float)
    p.add_argument("--vmax", type=float)
    p.add_argument("--vlevel", type=float)
    p.add_argument("--log", action="store_true")
    p.add_argument("--eig_vmax", type=float, default=None, help="colour limit of the |min/max| eigenvalue map")
    args = p.parse_args(argv)
    try:
        saved = render_surface(args.surf_file, args, args.surf_name)
        saved += render_hessian(args.surf_file, argparse.Namespace(vmax=args.eig_vmax))
    except LandscapeError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    for out in saved:
        print(out)
    if not saved:
        print(f"{args.surf_file} holds no surface or Hessian values", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
