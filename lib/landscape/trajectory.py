"""Optimizer trajectories (Li et al. 2018, Sec. 7): checkpoint series, PCA direction file, projection file.

The path matrix has one row per checkpoint: its difference from the final model over the
entries of a `dir_type` direction ('weights': named_parameters; 'states': the state_dict, with
integer buffers such as num_batches_tracked always zero), with every 1-D entry zeroed under
ignore='biasbn'. As in the reference code the final model is one of the rows (an all-zero
row), so the path ends at the origin of the plane; a --model_file outside the series is
appended as the last row for the same reason.

Memory, with n checkpoints and P entries in a direction:
    path matrix               n * P * 4 bytes (float32 rows, held whole for the PCA)
    subtracting one row       3 * P * 8 bytes (float64 final model, checkpoint, difference) + P mask bytes
    PCA (see pca.py)          2 * P * 8 bytes of components + 64 MiB of column blocks
plus one copy of the model; so about 4 * n * P + 42 * P bytes + 64 MiB. E.g. 301 checkpoints of
ResNet-56 (P = 855,770): 1.03 GB + 36 MB + 64 MB.

File names follow the reference: <model_folder>/PCA_<dir_type>[_ignore=biasbn]_save_epoch=<n>/
directions.h5 (the reference leaves the ignore part out when nothing is ignored), the
projection in <dir_file>_proj_<method>.h5 and its plot in <proj_file>.png/.pdf.
"""
import json
import os

import h5py
import numpy as np
import torch

from . import __version__
from .checkpoint import load_weights
from .dirfile import Directions, atomic_write, check_fits, directions_digest, read_directions, write_directions
from .directions import DIR_TYPES, IGNORES, check_choice, is_movable, named_entries
from .errors import CheckpointError, DirectionError, GridSpecError, SurfaceFileError
from .pca import pca_directions, project
from .plotting import plot_contour_with_path, plot_trajectory, save_figure
from .render import finished, stem_of
from .surfile import done_name, read_results

MIN_CHECKPOINTS = 3  # two PCA directions need three points (the centred rows span n - 1 dimensions)
PCA_DATASETS = ("explained_variance_ratio_", "singular_values_", "explained_variance_")
SHOWN_MISSING = 5
STRING = h5py.string_dtype()


def checkpoint_series(model_folder, prefix, suffix, start_epoch, max_epoch, save_epoch):
    """Checkpoint paths of epochs start_epoch, start_epoch + save_epoch, ... and max_epoch itself.

    The reference asks for max_epoch - start_epoch to be a multiple of save_epoch; our trainer
    also saves the last epoch when it is not, so max_epoch is always included here.
    """
    if save_epoch < 1:
        raise CheckpointError(f"--save_epoch must be at least 1, got {save_epoch}")
    if start_epoch > max_epoch:
        raise CheckpointError(f"--start_epoch {start_epoch} is after --max_epoch {max_epoch}")
    epochs = list(range(start_epoch, max_epoch + 1, save_epoch))
    if epochs[-1] != max_epoch:
        epochs.append(max_epoch)
    return [os.path.join(model_folder, f"{prefix}{e}{suffix}") for e in epochs]


def with_final(series, final_path):
    """The series plus the final model as its last row, unless it is already one of them."""
    known = {os.path.realpath(path) for path in series}
    return series if os.path.realpath(final_path) in known else series + [final_path]


def check_series(series):
    """Refuse a series with missing files (named) or too few checkpoints for two PCA directions."""
    missing = [path for path in series if not os.path.isfile(path)]
    if missing:
        shown = ", ".join(missing[:SHOWN_MISSING]) + (f", ... ({len(missing) - SHOWN_MISSING} more)"
                                                        if len(missing) > SHOWN_MISSING else "")
        raise CheckpointError(
            f"{len(missing)} of {len(series)} checkpoints of the series are missing: {shown}. Check "
            "--model_folder, --prefix, --suffix, --start_epoch, --max_epoch and --save_epoch")
    if len(series) < MIN_CHECKPOINTS:
        raise CheckpointError(
            f"PCA of a trajectory needs at least {MIN_CHECKPOINTS} checkpoints (the final model included); "
            f"the series has {len(series)}: {', '.join(series)}. "
            "Lower --save_epoch or --start_epoch, or save checkpoints more often")


def _flat64(entries):
    return torch.cat([t.detach().reshape(-1).to(torch.float64) for t in entries])


def kept_positions(entries, ignore):
    """Boolean mask over the flat direction: float entries, minus 1-D ones under ignore='biasbn'."""
    check_choice(ignore, IGNORES, "--ignore")
    return torch.cat([torch.full((t.numel(),), is_movable(t) and not (ignore == "biasbn" and t.dim() <= 1))
                      for t in entries])


def difference_matrix(model, paths, final_path, dir_type, ignore):
    """(matrix, names, shapes): row i = checkpoint i minus the final model, float32 (len(paths), P).

    Each checkpoint is loaded into `model` (which it must fit: load_weights names the file and
    the keys or shapes that differ); `model` ends up holding the last checkpoint.
    """
    check_choice(dir_type, DIR_TYPES, "--dir_type")
    load_weights(model, final_path)
    names, entries = zip(*named_entries(model, dir_type))
    final = _flat64(entries)
    kept = kept_positions(entries, ignore)
    matrix = torch.empty(len(paths), final.numel(), dtype=torch.float32)
    for row, path in enumerate(paths):
        load_weights(model, path)
        diff = _flat64(t for _, t in named_entries(model, dir_type)) - final
        matrix[row] = torch.where(kept, diff, torch.zeros((), dtype=torch.float64))
    return matrix, list(names), [tuple(t.shape) for t in entries]


def split_entries(vector, shapes):
    """A flat vector cut back into one array per entry, with the entries' shapes."""
    sizes = [int(np.prod(shape)) for shape in shapes]
    return [chunk.reshape(shape).cpu().numpy() for chunk, shape in zip(torch.split(vector, sizes), shapes)]


def pca_of_path(matrix):
    """Top-2 PCA of the path, with a path that spans no plane reported as a DirectionError."""
    try:
        return pca_directions(matrix, k=2)
    except ValueError as err:
        raise DirectionError(f"cannot take PCA directions of this trajectory: {err}") from None


def write_pca_directions(path, pca, shapes, attrs, checkpoints):
    """Write the reference's PCA direction file atomically; `checkpoints` is [(path, sha256)].

    Per-checkpoint lists are datasets, not attributes: HDF5 attributes are limited to 64 KiB.
    """
    dirs = Directions(split_entries(pca.components[0], shapes), split_entries(pca.components[1], shapes),
                      dict(attrs, kind="pca", landscape_version=__version__))
    extra = {name: value.cpu().numpy() for name, value in
             zip(PCA_DATASETS, (pca.explained_variance_ratio, pca.singular_values, pca.explained_variance))}
    extra.update(checkpoint_datasets(checkpoints))
    write_directions(path, dirs, extra)


def checkpoint_datasets(checkpoints):
    paths, hashes = zip(*checkpoints)
    return {"checkpoint_files": np.array(paths, dtype=STRING), "checkpoint_sha256": np.array(hashes, dtype=STRING)}


def read_pca_record(path):
    """The PCA datasets, checkpoint hashes and settings of a direction file; {} for what it lacks."""
    try:
        with h5py.File(path, "r") as f:
            record = {name: f[name][()] for name in PCA_DATASETS if name in f}
            if "checkpoint_sha256" in f:
                record["checkpoint_sha256"] = [h.decode() for h in f["checkpoint_sha256"][()]]
            record.update({key: _as_text(f.attrs[key]) for key in ("dir_type", "ignore") if key in f.attrs})
    except OSError as err:
        raise DirectionError(f"cannot read direction file {path}: {err}") from None
    return record


def check_reusable(path, attrs, hashes):
    """Refuse an existing PCA file of ours that was made from other checkpoints or settings."""
    record = read_pca_record(path)
    if "checkpoint_sha256" not in record:
        return  # not made by this tool (e.g. the reference's): used as it is, like the reference does
    changed = [key for key in ("dir_type", "ignore") if record.get(key) != attrs[key]]
    if record["checkpoint_sha256"] != list(hashes):
        changed.append("checkpoints (their list or their contents)")
    if changed:
        raise DirectionError(
            f"direction file {path} was made from other inputs ({', '.join(changed)} differ); "
            "delete it, pass --overwrite, or choose another --dir_file")


def load_plane(path, names, shapes):
    """The x and y directions of a direction file as flat float64 vectors, checked against the model."""
    dirs = read_directions(path)
    if not dirs.is_2d:
        raise DirectionError(f"direction file {path} holds only an x direction; a trajectory needs two")
    check_fits(dirs, names, shapes, path)
    dx, dy = (torch.cat([torch.from_numpy(np.asarray(d, dtype=np.float64)).reshape(-1) for d in direction])
              for direction in (dirs.x, dirs.y))
    return dx, dy, directions_digest(dirs)


def project_path(matrix, dx, dy, method):
    """Coordinates of each row in the plane of dx, dy; bad directions become a DirectionError."""
    try:
        return project(matrix, dx, dy, method)
    except ValueError as err:
        raise DirectionError(f"cannot project the trajectory: {err}") from None


def projection_file_name(dir_file, method):
    return f"{dir_file}_proj_{method}.h5"


def write_projection(path, xs, ys, checkpoints, attrs):
    """proj_xcoord / proj_ycoord (one value per checkpoint), the checkpoint list and our attributes."""
    def write(tmp):
        with h5py.File(tmp, "w-") as f:
            f["proj_xcoord"] = np.asarray(xs, dtype=np.float64)
            f["proj_ycoord"] = np.asarray(ys, dtype=np.float64)
            for name, value in checkpoint_datasets(checkpoints).items():
                f[name] = value
            for key, value in attrs.items():
                f.attrs[key] = value
    atomic_write(path, write)


def read_projection(path):
    try:
        with h5py.File(path, "r") as f:
            return f["proj_xcoord"][()], f["proj_ycoord"][()], dict(f.attrs)
    except (OSError, KeyError) as err:
        raise DirectionError(f"{path} is not a readable projection file with proj_xcoord and proj_ycoord "
                             f"({err})") from None


def explained_ratios(dir_file):
    """(ratio_x, ratio_y) of a PCA direction file, or (None, None) for other direction files."""
    if not dir_file or not os.path.isfile(dir_file):
        return None, None
    ratios = read_pca_record(dir_file).get("explained_variance_ratio_")
    return (None, None) if ratios is None or len(ratios) < 2 else (float(ratios[0]), float(ratios[1]))


def render_trajectory(proj_file, ratios):
    """The projected path alone, as <proj_file>.png/.pdf like the reference's plot."""
    xs, ys, _ = read_projection(proj_file)
    return save_figure(plot_trajectory(xs, ys, *ratios), proj_file)


def _as_text(value):
    return value.decode() if isinstance(value, bytes) else str(value)


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
    surf_dir_file = _as_text(results.get("dir_file", ""))
    settings = results["attrs"].get("surface_settings")
    surf_digest = _settings_value(settings, "directions_sha256")
    proj_digest = proj_attrs.get("directions_sha256")
    if surf_digest and proj_digest and _as_text(proj_digest) != surf_digest:
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
    return explained_ratios(_as_text(proj_attrs.get("dir_file", fallback_dir_file)))


def _settings_value(settings, key):
    return json.loads(settings).get(key) if settings is not None else None


def path_range(values, margin, axis):
    """'min:max' of the projected coordinates padded by `margin` of their span on each side."""
    low, high = float(np.min(values)), float(np.max(values))
    span = high - low
    if not span > 0:
        raise GridSpecError(f"the projected path has no extent along {axis} (all at {low}); give --{axis}")
    return low - margin * span, high + margin * span
