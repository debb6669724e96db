"""plot_trajectory.py: the optimizer's path projected on its top-2 PCA directions (Li et al. 2018, Sec. 7).

    python plot_trajectory.py --model resnet56 --model_folder trained_nets/r56 --max_epoch 300 --save_epoch 10
    mpirun -n 4 python plot_trajectory.py ... --surface --dataset cifar10 [--x=a:b:n --y=c:d:m]

Writes the PCA direction file (<model_folder>/PCA_<dir_type>[_ignore=biasbn]_save_epoch=<n>/
directions.h5 unless --dir_file), the projection <dir_file>_proj_<method>.h5 and its plot
(.png/.pdf). An existing direction file is reused (one of ours only if made from the same
checkpoints and settings); the projection is recomputed every run. With --surface the loss
surface along the two directions follows (plot_surface.py on every rank, default range: the path
padded by --path_margin), then the path drawn over its contours next to the surface file.
Flags this driver does not know (--synthetic_size, --batch_size, --surf_file, --plot, ...) are the
surface driver's: they need --surface and are parsed by its parser. Its own grid and plot flags
(--x, --y, --grid_points, --path_margin, --vmin, --vmax, --vlevel, --log) need --surface too.
"""
import argparse
import os
import sys

import numpy as np

from ..errors import DirectionError, GridSpecError, ModelError
from ..files.paths import check_apart
from ..files.pca_record import check_reusable, explained_ratios, load_plane, write_pca_directions
from ..files.projection import projection_file_name, write_projection
from ..imports import spec_files
from ..inputs.checkpoint import file_sha256
from ..inputs.cifar import LAYOUTS
from ..inputs.data import data_files
from ..inputs.models import build_model
from ..inputs.series import check_series, checkpoint_series, difference_matrix, with_final
from ..job.mpi import rank0_first
from ..plot.trajectory import render_path_overlay, render_trajectory
from ..space.directions import DIR_TYPES, IGNORES
from ..space.grid import make_grid, parse_axis
from ..space.pca import PROJECTION_METHODS, pca_directions, project
from . import surface
from .args import json_flag, levels_of, positive_int
from .exits import EXIT_OK
from .run import guarded_main, plot_unless_stopped

# this parser's flags that only the --surface stage reads
SURFACE_ONLY = ("x", "y", "grid_points", "path_margin", "vmin", "vmax", "vlevel", "log")


def parser():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0], allow_abbrev=False,
                                epilog="Other flags are passed to plot_surface.py with --surface.")
    g = p.add_argument_group("model and checkpoints (the reference's flags)")
    g.add_argument("--model", default="resnet56", help="zoo name or 'package.module:factory'")
    g.add_argument("--model_kwargs", default="{}", help="JSON keyword arguments for a custom factory")
    g.add_argument("--dataset", default="cifar10",
                   help="the reference's flag: sets a zoo model's classes and goes to the surface driver")
    g.add_argument("--num_classes", type=positive_int,
                   help="output classes of a zoo model (default: 100 for --dataset cifar100, else 10)")
    g.add_argument("--model_folder", required=True, help="folder holding the checkpoints")
    g.add_argument("--prefix", default="model_", help="checkpoint name before the epoch")
    g.add_argument("--suffix", default=".t7", help="checkpoint name after the epoch")
    g.add_argument("--start_epoch", type=int, default=0)
    g.add_argument("--max_epoch", type=int, default=300, help="epoch of the final model")
    g.add_argument("--save_epoch", type=positive_int, default=1, help="epochs between checkpoints")
    g.add_argument("--model_file", help="final model (default: <model_folder>/<prefix><max_epoch><suffix>)")
    g = p.add_argument_group("directions and projection")
    g.add_argument("--dir_type", default="weights", choices=DIR_TYPES)
    g.add_argument("--ignore", default="none", choices=IGNORES, help="biasbn: zero biases and BN entries")
    g.add_argument("--dir_file", help="direction file to use, or where to write the PCA directions")
    g.add_argument("--proj_method", default="cos", choices=PROJECTION_METHODS)
    g.add_argument("--overwrite", action="store_true", help="recompute the direction file (and the surface)")
    g = p.add_argument_group("loss surface along the PCA directions")
    g.add_argument("--surface", action="store_true", help="compute the loss surface and draw the path over it")
    g.add_argument("--x", help="min:max:num along PC1 (default: the path padded by --path_margin)")
    g.add_argument("--y", help="min:max:num along PC2 (default: the path padded by --path_margin)")
    g.add_argument("--grid_points", type=positive_int, default=21, help="points per axis of a default range")
    g.add_argument("--path_margin", type=float, default=0.2, help="padding of a default range, x its span")
    g = p.add_argument_group("plots")
    g.add_argument("--vmin", type=float)
    g.add_argument("--vmax", type=float)
    g.add_argument("--vlevel", type=float)
    g.add_argument("--log", action="store_true")
    return p


def default_dir_file(args):
    ignore = "" if args.ignore == "none" else f"_ignore={args.ignore}"
    folder = f"PCA_{args.dir_type}{ignore}_save_epoch={args.save_epoch}"
    return os.path.join(args.model_folder, folder, "directions.h5")


def build_path_model(args):
    kwargs = json_flag(args.model_kwargs, "--model_kwargs", ModelError)
    num_classes = args.num_classes or (LAYOUTS[args.dataset].num_classes if args.dataset in LAYOUTS else 10)
    return build_model(args.model, kwargs, num_classes=num_classes)


def ensure_directions(dir_file, matrix, shapes, attrs, checkpoints, overwrite):
    """Reuse a fitting direction file, else write the PCA of the path there."""
    if os.path.exists(dir_file) and not overwrite:
        check_reusable(dir_file, attrs, [sha for _, sha in checkpoints])
        print(f"using the existing direction file {dir_file}", flush=True)
        return
    pca = pca_of_path(matrix)
    write_pca_directions(dir_file, pca, shapes, attrs, checkpoints)
    shares = ", ".join(f"PC{i + 1} {100 * r:.2f} %" for i, r in enumerate(pca.explained_variance_ratio.tolist()))
    print(f"PCA directions ({shares} of the variance) saved in {dir_file}", flush=True)


def trajectory_stage(args):
    """Rank 0's work: series, matrix, direction file and projection file; returns a summary."""
    series = checkpoint_series(args.model_folder, args.prefix, args.suffix, args.start_epoch,
                                  args.max_epoch, args.save_epoch)
    final = args.model_file or series[-1]
    paths = with_final(series, final)
    check_series(paths)
    dir_file = args.dir_file or default_dir_file(args)
    check_trajectory_paths(args, paths, dir_file)
    matrix, names, shapes = difference_matrix(build_path_model(args), paths, final, args.dir_type, args.ignore)
    checkpoints = [(path, file_sha256(path)) for path in paths]
    attrs = dict(names=names, dir_type=args.dir_type, ignore=args.ignore, model=args.model,
                 model_kwargs=json_flag(args.model_kwargs, "--model_kwargs", ModelError), final_model=final, final_sha256=file_sha256(final),
                 start_epoch=args.start_epoch, max_epoch=args.max_epoch, save_epoch=args.save_epoch)
    ensure_directions(dir_file, matrix, shapes, attrs, checkpoints, args.overwrite)
    dx, dy, digest = load_plane(dir_file, names, shapes)
    xs, ys = project_path(matrix, dx, dy, args.proj_method)
    proj_file = save_projection(args, dir_file, digest, checkpoints, xs.numpy(), ys.numpy())
    return dict(dir_file=dir_file, proj_file=proj_file, final=final, xs=xs.tolist(), ys=ys.tolist())


def check_trajectory_paths(args, checkpoints, dir_file):
    """The direction, projection and results files are none of the run's inputs (files/paths.py): the
    checkpoints, the module of a --model spec, and the surface stage's data and loss."""
    surface_flags = getattr(args, "surface_options", None)
    inputs = [("--model_folder's checkpoint", path) for path in checkpoints]
    specs = [("--model", args.model)]
    if surface_flags is not None:
        inputs += [("--dataset", path) for path in data_files(args.dataset, surface_flags.datapath)]
        specs += [("--dataset", args.dataset), ("--loss", surface_flags.loss)]
    inputs += spec_files(specs)
    check_apart(inputs, [("--dir_file", dir_file),
                         ("the projection file", projection_file_name(dir_file, args.proj_method)),
                         ("--surf_file", surface_flags and surface_flags.surf_file)])


def save_projection(args, dir_file, digest, checkpoints, xs, ys):
    """The projection file (with the PCA shares when the directions are PCA's)."""
    ratios = explained_ratios(dir_file)
    proj_file = projection_file_name(dir_file, args.proj_method)
    proj_attrs = dict(dir_file=dir_file, proj_method=args.proj_method, dir_type=args.dir_type,
                      ignore=args.ignore, directions_sha256=digest)
    if ratios[0] is not None:
        proj_attrs["explained_variance_ratio"] = list(ratios)
    write_projection(proj_file, xs, ys, checkpoints, proj_attrs)
    for (path, _), x, y in zip(checkpoints, xs, ys):
        print(f"{path}  ({x:.4f}, {y:.4f})", flush=True)
    print(f"projection saved in {proj_file}", flush=True)
    return proj_file


def draw_trajectory(summary):
    """Rank 0: the plot of the projected path (after its files exist: a failure here keeps them)."""
    for out in render_trajectory(summary["proj_file"], explained_ratios(summary["dir_file"])):
        print(f"plot: {out}", flush=True)


def pca_of_path(matrix):
    """Top-2 PCA of the path, with a path that spans no plane reported as a DirectionError."""
    try:
        return pca_directions(matrix, k=2)
    except ValueError as err:
        raise DirectionError(f"cannot take PCA directions of this trajectory: {err}") from None


def project_path(matrix, dx, dy, method):
    """Coordinates of each row in the plane of dx, dy; bad directions become a DirectionError."""
    try:
        return project(matrix, dx, dy, method)
    except ValueError as err:
        raise DirectionError(f"cannot project the trajectory: {err}") from None


def path_range(values, margin, axis):
    """'min:max' of the projected coordinates padded by `margin` of their span on each side."""
    low, high = float(np.min(values)), float(np.max(values))
    span = high - low
    if not span > 0:
        raise GridSpecError(f"the projected path has no extent along {axis} (all at {low}); give --{axis}")
    return low - margin * span, high + margin * span


def axis_of(given, values, args, axis):
    """(min, max, num) along one PCA direction: as given (parsed once, by check_grid_flags), else the
    path padded by --path_margin, rounded to 4 digits as before, with --grid_points points."""
    if given is not None:
        return given
    low, high = path_range(values, args.path_margin, axis)
    return float(f"{low:.4g}"), float(f"{high:.4g}"), args.grid_points


def surface_options(args, summary, axes):
    """The surface driver's options: its own flags given after --surface (already parsed), with this
    driver's model, final checkpoint, PCA directions, grid (one Grid) and plot levels set on them."""
    opts = argparse.Namespace(**vars(args.surface_options))
    opts.model, opts.model_kwargs, opts.dataset = args.model, args.model_kwargs, args.dataset
    opts.model_file, opts.dir_file, opts.dir_type = summary["final"], summary["dir_file"], args.dir_type
    opts.x, opts.y = make_grid(*(axis_of(axes[a], summary[a + "s"], args, a) for a in ("x", "y"))), None
    for name, value in levels_of(args).items():
        setattr(opts, name, value if value not in (None, False) else getattr(opts, name))
    opts.overwrite = opts.overwrite or args.overwrite
    return opts


def check_grid_flags(args):
    """A bad grid is refused before the PCA too; returns the given axes parsed, {'x': (min, max, num) or None, ...}."""
    axes = {axis: None if getattr(args, axis) is None else parse_axis(getattr(args, axis), axis) for axis in ("x", "y")}
    if args.grid_points < 2:
        raise GridSpecError(f"--grid_points must be at least 2 for a 2D surface, got {args.grid_points}")
    if not args.path_margin >= 0:
        raise GridSpecError(f"--path_margin must be >= 0, got {args.path_margin}")
    return axes


def run(args, world, control):
    axes = check_grid_flags(args)
    summary = rank0_first(world, lambda: trajectory_stage(args))
    control.written.append(summary["proj_file"])  # from now on an error keeps these results (exit 3)
    rank0_first(world, lambda: draw_trajectory(summary))
    if not args.surface:
        return EXIT_OK
    code, surf_file = surface.run_surface(surface_options(args, summary, axes), world, control)  # same ranks, stop
    if code != EXIT_OK:
        return code

    def overlay():  # rank 0
        for out in render_path_overlay(surf_file, summary["proj_file"], **levels_of(args)):
            print(f"plot: {out}", flush=True)
        return EXIT_OK
    # rank 0 decides for all (every rank returns its code); a stop abandons the overlay to the rerun
    return rank0_first(world, lambda: plot_unless_stopped(overlay, "trajectory", surf_file))


def surface_only_flags(p, args):
    """This driver's own flags that only shape the surface (grid, plot levels) and were given: without
    --surface they would do nothing. A flag given at its default cannot be told apart, and does nothing."""
    return [f"--{name}" for name in SURFACE_ONLY if getattr(args, name) != p.get_default(name)]


def main(argv=None):
    p = parser()
    args, rest = p.parse_known_args(argv)
    unused = [] if args.surface else rest + surface_only_flags(p, args)
    if unused:
        p.error(f"unrecognized arguments: {' '.join(unused)} (surface flags need --surface)")
    # the surface driver's parser refuses its bad flags now, before the (long) PCA, not after it
    args.surface_options = surface.parser().parse_args(rest)
    if args.surface_options.dir_params is not None:  # the surface is drawn along the PCA directions
        p.error("--params limits random directions; plot_trajectory.py's directions are the PCA of the path")
    if args.surface_options.eig_directions is not None or "eig_samples" in args.surface_options.given:
        p.error("--eig_directions draws the surface along eigenvectors; plot_trajectory.py's directions are the PCA "
                "of the path")
    return guarded_main(run, args)


if __name__ == "__main__":
    sys.exit(main())
