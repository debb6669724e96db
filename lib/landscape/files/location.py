"""Where a results file is now, when its folder was moved or the file renamed while a run wrote to it.

A run keeps the file open while it computes, so its points go into the file wherever it is moved. What
it does by name afterwards (the final read, a refinement's interpolations, the plots) must find the
file again: a handle on the folder, taken when the run starts, and the file's inode lead back to it.
Linux names a folder held open in /proc/self/fd; elsewhere a moved folder is reported, not followed.
"""
import os

from ..errors import ResultsMovedError


class FollowedFile:
    """A results file followed from the start of a run (a context manager: it holds its folder open)."""

    def __init__(self, path):
        self.path = str(path)
        self.real = os.path.realpath(self.path)
        try:  # O_PATH (Linux) needs no read permission on the folder
            self.folder_fd = os.open(os.path.dirname(self.real), getattr(os, "O_PATH", os.O_RDONLY) | os.O_DIRECTORY)
        except OSError as e:
            raise ResultsMovedError(f"cannot hold the folder of {self.path} ({e.strerror or e})") from None
        try:
            self.file_fd = os.open(self.real, getattr(os, "O_PATH", os.O_RDONLY))  # its name follows the file
            self.identity = _identity(os.fstat(self.file_fd))
        except OSError as e:
            os.close(self.folder_fd)
            raise ResultsMovedError(f"the results file {self.path} is gone just after it was prepared "
                                    f"({e.strerror or e}); was its folder moved?") from None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        os.close(self.file_fd)
        os.close(self.folder_fd)

    def now(self):
        """The path the file has now: its own while it is still there, else the moved file's; a
        ResultsMovedError when it cannot be found (removed or replaced, or moved where this OS cannot say)."""
        if self._is_ours(self.path):
            return self.path
        linked = _linked_name(self.file_fd)
        if linked is not None and linked.endswith(" (deleted)"):
            raise ResultsMovedError(f"the results file {self.path} was replaced or removed during the run: the "
                                    f"points computed after that went to the removed file and are lost (rerun to "
                                    f"compute them again)")
        if linked is not None and self._is_ours(linked):  # moved anywhere on its filesystem
            return linked
        folder = self._folder_now()
        found = folder and self._find_in(folder)
        if not found:
            raise ResultsMovedError(f"the results folder of {self.path} was moved or removed during the run and the "
                                    f"file cannot be found there; the points written so far are in the moved file, "
                                    f"if it still exists (a rerun with its new path resumes it)")
        return found

    def _is_ours(self, path):
        try:
            return _identity(os.stat(path)) == self.identity
        except OSError:
            return False

    def _folder_now(self):
        """The folder's current name: its old one while it is still that folder, else where /proc says."""
        held = _identity(os.fstat(self.folder_fd))
        old = os.path.dirname(self.real)
        try:
            if _identity(os.stat(old)) == held:
                return old
        except OSError:
            pass
        now = _linked_name(self.folder_fd)
        try:
            return now if now is not None and _identity(os.stat(now)) == held else None  # removed: '... (deleted)'
        except OSError:
            return None

    def _find_in(self, folder):
        """The file in `folder` by its old name, or under any name (renamed in place)."""
        candidate = os.path.join(folder, os.path.basename(self.real))
        if self._is_ours(candidate):
            return candidate
        try:
            with os.scandir(folder) as entries:
                return next((e.path for e in entries if e.is_file(follow_symlinks=False)
                             and _identity(e.stat(follow_symlinks=False)) == self.identity), None)
        except OSError:
            return None


def _identity(st):
    return st.st_dev, st.st_ino


def _linked_name(fd):
    """The name Linux gives an open file now (with ' (deleted)' once unlinked), or None elsewhere."""
    try:
        return os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return None
