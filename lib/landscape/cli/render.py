"""python -m landscape.render FILE: plots, the interactive page, ParaView files, a live view.

Re-plotting flags keep the meaning of the reference's plot_2D.py / plot_1D.py / h52vtp.py, with
bounds in the quantity's own units also under --log.

Mode-connectivity files: a line's or a curve's (landscape.interpolate / evaluate_curve with path=) draw
loss and accuracy along t with the barriers marked (<stem>_along_t; a line's <stem>_aligned.h5 beside it
drawn too), a barrier matrix's its heatmaps (<stem>_barriers); their pages embed that figure with the
barriers written out. A curve's plane is drawn as maps (its file holds no points of the curve).
"""
import argparse
import os
import sys
import webbrowser
from dataclasses import fields

from ..errors import LandscapeError, WatchedJobGone
from ..files.paths import check_apart
from ..plot.options import RenderOptions
from .exits import EXIT_BAD_INPUT, EXIT_OK, EXIT_WATCHED_JOB_GONE, one_line


def render_options(args, vmax_is_ratio=False):
    """A driver's parsed plot flags as RenderOptions: the flags its parser has, the rest default.
    vmax_is_ratio: plot_hessian_eig.py's --vmax is the |λmin/λmax| colour top (it has no --eig_vmax)."""
    values = {f.name: getattr(args, f.name) for f in fields(RenderOptions) if getattr(args, f.name, None) is not None}
    if vmax_is_ratio and "vmax" in values:
        values.setdefault("eig_vmax", values.pop("vmax"))
    return RenderOptions(**values)


def plot_hessian(path, args):
    """plot_hessian_eig.py's --plot (run_job's render): its flags as RenderOptions for render_hessian."""
    from ..plot.render import render_hessian  # matplotlib only once there is something to plot
    return render_hessian(path, render_options(args, vmax_is_ratio=True))


def parser():
    p = argparse.ArgumentParser(prog="python -m landscape.render", description=__doc__)
    p.add_argument("surf_file")
    p.add_argument("--surf_name", help="which map the plots, the VTK heights and the page show first (train_loss, "
                   "test_acc, ...; default: train_loss, or the file's first map); checked for every output")
    p.add_argument("--vmin", type=float, help="lower end of contour levels and colours (loss units)")
    p.add_argument("--vmax", type=float, help="upper end of contour levels and colours; 1D: top of the loss axis")
    p.add_argument("--vlevel", type=float, help="step between contour levels (default: near-log levels)")
    p.add_argument("--zlim", "--zmax", type=float, dest="zlim", help="top of the 3D surface and of the VTK heights")
    p.add_argument("--log", action="store_true", help="log scale; writes *_log plots beside the linear ones")
    p.add_argument("--loss_max", type=float, help="1D: top of the loss axis (plot_1D.py's)")
    p.add_argument("--acc_max", type=float, help="1D: top of the accuracy axis (default 100)")
    p.add_argument("--eig_vmax", type=float, help="top of the |λmin/λmax| colours (default 0.5)")
    p.add_argument("--show", action="store_true", help="open the interactive page in a browser (needs a display)")
    p.add_argument("--html", metavar="OUT.html",
                   help="write the interactive page there, and no PNGs unless --png (default: FILE.html, with PNGs)")
    p.add_argument("--proj_file", help="draw this projected optimizer path on the page")
    p.add_argument("--watch", type=float, metavar="SECONDS",
                   help="with --html: rewrite the page every SECONDS until the grid is complete; ends with exit "
                        f"{EXIT_WATCHED_JOB_GONE} when no job writes the file any more (start the job first)")
    p.add_argument("--vtk", metavar="OUT.vts|OUT.vtp", help="write a ParaView file (structured grid or polydata)")
    p.add_argument("--interp", type=int, default=1, help="--vtk: refine the grid this many times (h52vtp's)")
    p.add_argument("--png", action="store_true", help="also write the PNG/PDF plots with --html or --vtk")
    return p


def has_display():
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")) or sys.platform in ("darwin", "win32")


def check(args):
    check_apart([("the results file", args.surf_file), ("--proj_file", args.proj_file)],
                [("--html", args.html), ("--vtk", args.vtk)])
    if args.watch is not None and (not args.html or not args.watch > 0):
        raise LandscapeError("--watch SECONDS needs --html OUT.html and SECONDS > 0")
    if args.show and not has_display():
        raise LandscapeError("--show needs a display (DISPLAY is not set); open the PNGs this writes, or write "
                             "the interactive page with --html OUT.html and open it anywhere")


def outputs(args, opts):
    from ..api.connect_files import connectivity_figures
    from ..files.results import read_results
    from ..plot.render import page_path, render_hessian, render_page, render_surface
    from ..plot.vtk import export_vtk
    from ..plot.watch import watch
    saved = []
    # a watcher may start before its job has made the file: it waits for it, as before, and draws no path figures
    kind, figures = (None, ()) if args.watch is not None else connectivity_figures(args.surf_file)
    if kind == "plane":
        print(f"note: {args.surf_file} is a curve's plane; the file holds no points of the curve, so its maps are "
              "drawn without it (CurvePlane.plot() or `connect curve --plane` draw the curve on them)", file=sys.stderr)
    if args.png or not (args.html or args.vtk):
        saved += connectivity_pngs(args.surf_file, figures) if figures else \
            render_surface(args.surf_file, opts, page=False) + render_hessian(args.surf_file, opts, page=False)
        if not saved:
            raise LandscapeError(f"{args.surf_file} holds no surface or Hessian values")
    if args.vtk:
        saved.append(export_vtk(read_results(args.surf_file), args.vtk, opts.surf_name, opts.zlim,
                                opts.log, args.interp))
    if args.watch is not None:
        watch(args.surf_file, args.html, args.watch, proj_file=opts.proj_file, surf_name=opts.surf_name)
        saved.append(args.html)
    elif args.html or args.show or not args.vtk:  # a plain re-plot refreshes the page beside the file too
        saved += render_page(args.surf_file, opts, out=args.html or page_path(args.surf_file),
                             **connectivity_page(kind, figures))
    return saved


def connectivity_pngs(path, figures):
    """The along-t or barrier-matrix figures of a connectivity file, beside it as <stem>_<suffix>.png/.pdf."""
    from ..plot.base import save_figure
    from ..plot.render import stem_of
    return [out for suffix, fig, _ in figures for out in save_figure(fig, stem_of(path, suffix))]


def connectivity_page(kind, figures):
    """What a connectivity file's page adds: its figures embedded with their barriers as captions, the whole of
    each path shown (no clip at a basin's top), t on the 1D axis; a matrix's page shows its heatmaps alone."""
    from ..plot.page import figure_png
    extra = dict(figures=[(figure_png(fig), caption) for _, fig, caption in figures], clip=not figures)
    if kind == "matrix":  # its grid is t by line: maps across lines would join unrelated paths
        return dict(extra, interactive=False)
    return dict(extra, xlabel="t (0: model_a, 1: model_b)") if kind in ("line", "curve") else extra


def main(argv=None):
    args = parser().parse_args(argv)
    opts = render_options(args)
    try:
        check(args)
        saved = outputs(args, opts)
    except WatchedJobGone as e:  # the pages written are kept: after work
        print(f"error: {one_line(e)}", file=sys.stderr)
        return EXIT_WATCHED_JOB_GONE
    except LandscapeError as e:
        print(f"error: {one_line(e)}", file=sys.stderr)
        return EXIT_BAD_INPUT
    for out in saved:
        print(out)
    if args.show:
        webbrowser.open("file://" + os.path.abspath(saved[-1]))
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
