"""PCA direction files: the reference's direction layout plus the PCA's shares and the checkpoints it
was made from, so a rerun can tell whether an existing file still fits (Li et al. 2018, Sec. 7).

Datasets beside xdirection/ydirection: explained_variance_ratio_, singular_values_, explained_variance_
(sklearn's names, as the reference writes them), checkpoint_files and checkpoint_sha256. Per-checkpoint
lists are datasets, not attributes: HDF5 attributes are limited to 64 KiB.
"""
import os

import h5py
import numpy as np
import torch

from ..errors import DirectionError
from ..space.flatparams import split_entries
from ..version import __version__
from .directions import Directions, check_fits, directions_digest, read_directions, write_directions

PCA_DATASETS = ("explained_variance_ratio_", "singular_values_", "explained_variance_")


STRING = h5py.string_dtype()


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
            record.update({key: as_text(f.attrs[key]) for key in ("dir_type", "ignore") if key in f.attrs})
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


def explained_ratios(dir_file):
    """(ratio_x, ratio_y) of a PCA direction file, or (None, None) for other direction files."""
    if not dir_file or not os.path.isfile(dir_file):
        return None, None
    ratios = read_pca_record(dir_file).get("explained_variance_ratio_")
    return (None, None) if ratios is None or len(ratios) < 2 else (float(ratios[0]), float(ratios[1]))


def as_text(value):
    return value.decode() if isinstance(value, bytes) else str(value)
