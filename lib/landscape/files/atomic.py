"""Whole files or none: a file is written under a temporary name beside its target, then renamed."""
import io
import os

import h5py


def atomic_write(path, write, make_folder=True):
    """Call write(tmp) on a temporary name in `path`'s folder (created if needed and make_folder), then
    rename it to `path`: a kill leaves the whole file or none, never half of one."""
    folder = os.path.dirname(path)
    if folder and make_folder:
        os.makedirs(folder, exist_ok=True)
    partial = f"{path}.partial-{os.getpid()}"
    try:
        write(partial)
        os.replace(partial, path)
    finally:
        if os.path.exists(partial):
            os.remove(partial)


def write_whole(path, write, error, what=""):
    """atomic_write, with any OSError (full disk, read-only filesystem, a file where the folder should
    be) turned into one line: error(f"cannot write {what}{path}: reason"), `error` a LandscapeError."""
    try:
        atomic_write(path, write)
    except FileExistsError:  # only the folder's creation meets one: a file stands where the folder should be
        raise error(f"cannot write {what}{path}: {os.path.dirname(path)} is a file, not a folder") from None
    except OSError as e:
        raise error(f"cannot write {what}{path}: {e.strerror or e}") from None
    return path


def write_hdf5(path, fill, error, what=""):
    """An HDF5 file made by fill(f) in memory, then written whole (write_whole): a full disk is then one
    plain write error, never an HDF5 file left half-closed, which can crash the interpreter at exit."""
    image = io.BytesIO()
    with h5py.File(image, "w") as f:
        fill(f)

    def write(tmp):
        with open(tmp, "wb") as out:
            out.write(image.getbuffer())
    return write_whole(path, write, error, what)
