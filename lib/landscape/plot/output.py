"""The one writer of every file the plot package makes (figures, the page, VTK exports).

A file is written under a temporary name in its own folder and renamed into place (files/atomic.py),
so a full disk or a kill leaves no partial file and never replaces a good one with a broken one; an
OSError becomes one line that names the file and the reason.
"""
from ..errors import PlotWriteError
from ..files.atomic import write_whole


def write_output(path, write):
    """Call write(tmp) and rename tmp to `path`; returns path. Raises PlotWriteError on any OSError
    (the folder cannot be made, the disk is full, the filesystem is read-only)."""
    return write_whole(path, write, PlotWriteError)


def write_text(path, text, encoding="utf-8"):
    """A whole text file through write_output."""
    def write(tmp):
        with open(tmp, "w", encoding=encoding) as f:
            f.write(text)
    return write_output(path, write)
