"""The one writer of every file the plot package makes (figures, the page, VTK exports).

A file is written under a temporary name in its own folder and renamed into place (files/atomic.py),
so a full disk or a kill leaves no partial file and never replaces a good one with a broken one; an
OSError becomes one line that names the file and the reason.
"""
import os

from ..errors import PlotWriteError
from ..files.atomic import atomic_write


def write_output(path, write):
    """Call write(tmp) and rename tmp to `path`; returns path. Raises PlotWriteError on any OSError
    (the folder cannot be made, the disk is full, the filesystem is read-only)."""
    try:
        atomic_write(path, write)
    except FileExistsError:  # only the folder's creation meets one: a file stands where the folder should be
        raise PlotWriteError(f"cannot write {path}: {os.path.dirname(path)} is a file, not a folder") from None
    except OSError as e:
        raise PlotWriteError(f"cannot write {path}: {e.strerror or e}") from None
    return path


def write_text(path, text, encoding="utf-8"):
    """A whole text file through write_output."""
    def write(tmp):
        with open(tmp, "w", encoding=encoding) as f:
            f.write(text)
    return write_output(path, write)
