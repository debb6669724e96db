"""Whole files or none: a file is written under a temporary name beside its target, then renamed."""
import os


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
