"""Projection files: an optimizer path's coordinates in a plane of directions (the reference's
proj_xcoord / proj_ycoord, one value per checkpoint), with the checkpoint list and our attributes.

Named <dir_file>_proj_<method>.h5, as the reference names them.
"""
import h5py
import numpy as np

from ..errors import DirectionError
from ..space.finite import first_nonfinite
from .atomic import write_hdf5
from .pca_record import checkpoint_datasets


def projection_file_name(dir_file, method):
    return f"{dir_file}_proj_{method}.h5"


def write_projection(path, xs, ys, checkpoints, attrs):
    """proj_xcoord / proj_ycoord (one value per checkpoint), the checkpoint list and our attributes."""
    def fill(f):
        f["proj_xcoord"] = np.asarray(xs, dtype=np.float64)
        f["proj_ycoord"] = np.asarray(ys, dtype=np.float64)
        for name, value in checkpoint_datasets(checkpoints).items():
            f[name] = value
        for key, value in attrs.items():
            f.attrs[key] = value
    write_hdf5(path, fill, DirectionError, "the projection file ")


def read_projection(path):
    try:
        with h5py.File(path, "r") as f:
            xs, ys, attrs = f["proj_xcoord"][()], f["proj_ycoord"][()], dict(f.attrs)
    except (OSError, KeyError) as err:
        raise DirectionError(f"{path} is not a readable projection file with proj_xcoord and proj_ycoord "
                             f"({err})") from None
    found = first_nonfinite((("proj_xcoord", xs), ("proj_ycoord", ys)))
    if found is not None:
        raise DirectionError(f"projection file {path}: {found[0]} holds {found[1]} NaN or infinite value(s); "
                             f"the path cannot be drawn")
    return xs, ys, attrs
