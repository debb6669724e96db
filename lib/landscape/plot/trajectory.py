"""Figures of an optimizer path: alone (the reference's PCA plot) and over a surface's contours.

The path plot is written as <proj_file>.png/.pdf, like the reference's; the overlay next to the
surface file as <surf_file minus .h5>_<surf_name>_2dcontour_proj.png/.pdf.
"""
import json

from ..errors import DirectionError, SurfaceFileError
from ..files.pca_record import as_text, explained_ratios
from ..files.projection import read_projection
from ..files.results import done_name, read_results
from .base import save_figure
from .curves import plot_contour_with_path, plot_trajectory
from .render import finished, stem_of


def render_trajectory(proj_file, ratios):
    """The projected path alone, as <proj_file>.png/.pdf like the reference's plot."""
    xs, ys, _ = read_projection(proj_file)
    return save_figure(plot_trajectory(xs, ys, *ratios), proj_file)


def render_path_overlay(surf_file, proj_file, surf_name="train_loss", vmin=None, vmax=None, vlevel=None, log=False):
    """Contours of a 2D surface with the projected path over them (the paper's Fig. 9 style).

    vmin, vmax, vlevel, log: the contour levels, as for the surface plots. Written next to
    the surface as <surf_file minus .h5>_<surf_name>_2dcontour_proj.png/.pdf; returns the paths.
    Refuses a projection made along other directions than the surface.
    """
    xs, ys, proj_attrs = read_projection(proj_file)
    results = read_results(surf_file)
    grid = results["grid"]
    if not grid.is_2d or done_name("surface") not in results or surf_name not in results:
        raise SurfaceFileError(f"{surf_file} holds no 2D surface with {surf_name!r}; a path overlay needs one")
    surf_dir_file = as_text(results.get("dir_file", ""))
    settings = results["attrs"].get("surface_settings")
    surf_digest = _settings_value(settings, "directions_sha256")
    proj_digest = proj_attrs.get("directions_sha256")
    if surf_digest and proj_digest and as_text(proj_digest) != surf_digest:
        raise DirectionError(
            f"projection {proj_file} was made along other directions than surface {surf_file} "
            f"(direction file {surf_dir_file}); project onto that direction file or compute the surface on it")
    ratios = path_ratios(proj_attrs, surf_dir_file)
    fig = plot_contour_with_path(grid.x, grid.y, finished(results, surf_name, "surface"), xs, ys, *ratios,
                                 vmin=vmin, vmax=vmax, vlevel=vlevel, log=log)
    return save_figure(fig, stem_of(surf_file, f"{surf_name}_2dcontour_proj"))


def path_ratios(proj_attrs, fallback_dir_file):
    """Explained-variance shares for the axis labels: the projection file's own, else its direction file's."""
    if "explained_variance_ratio" in proj_attrs:
        return tuple(float(r) for r in proj_attrs["explained_variance_ratio"][:2])
    return explained_ratios(as_text(proj_attrs.get("dir_file", fallback_dir_file)))


def _settings_value(settings, key):
    return json.loads(settings).get(key) if settings is not None else None
