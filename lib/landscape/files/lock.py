"""One writer per results file, whatever path leads to it: an OS lock on '<real path>.lock'.

The lock file is named after the results file's real path (symlinks and '..' resolved) and lives in
that file's own directory, so two jobs that reach one file through different names (a symlink, a
'..' path, a bind-mounted directory: one directory inode) meet at one lock file. Hard links and
bind mounts of the file itself are not detectable this way. The OS drops the lock when its holder
dies; a lock file left by a killed job is harmless and is reused. The lock file is opened and removed
through a handle on its folder taken at lock time, so a run whose folder is moved or renamed meanwhile
still removes its own lock file, wherever the folder now is.
"""
import fcntl
import os
import platform
import time

from ..errors import SurfaceFileError

READER_GRACE_SECS = 0.5  # how long a job retries a lock that a reader may be looking at (held_by_writer)


def lock_path(path):
    return os.path.realpath(path) + ".lock"


class FileLock:
    """Exclusive lock held for a whole run; the lock file is removed when the run ends."""

    def __init__(self, path):
        self.target, self.path, self.fd, self.folder_fd = path, lock_path(path), None, None
        self.name = os.path.basename(self.path)

    def __enter__(self):
        folder = os.path.dirname(self.path)
        try:
            os.makedirs(folder, exist_ok=True)
        except OSError as e:
            raise SurfaceFileError(f"cannot create the folder {folder} for {self.target}: {e.strerror}") from None
        try:  # O_PATH (Linux) needs no read permission on the folder
            self.folder_fd = os.open(folder, getattr(os, "O_PATH", os.O_RDONLY) | os.O_DIRECTORY)
        except OSError as e:
            raise SurfaceFileError(f"cannot open the folder {folder} of {self.target}: {e.strerror}") from None
        try:
            return self._acquire()
        except BaseException:
            os.close(self.folder_fd)
            raise

    def _acquire(self):
        while self.fd is None:
            fd = self._open()
            if not _lock_within(fd, READER_GRACE_SECS):
                holder = _read_holder(fd)
                os.close(fd)
                raise SurfaceFileError(
                    f"another job is writing to {self.target} ({holder}; it holds {self.path}); wait for it "
                    f"to end, or write to another --surf_file") from None
            if _still_linked(fd, self.name, self.folder_fd):
                self.fd = fd
            else:  # its last holder removed it between our open and our lock: open the current one
                os.close(fd)
        _write_holder(self.fd)
        return self

    def _open(self):
        try:
            return os.open(self.name, os.O_RDWR | os.O_CREAT, 0o644, dir_fd=self.folder_fd)
        except OSError as e:
            raise SurfaceFileError(f"cannot create the lock file {self.path} ({e.strerror}); the folder of "
                                   f"--surf_file must be writable") from None

    def __exit__(self, *exc):
        # unlink while still holding it, so a waiting job re-opens the new file (see _still_linked); by
        # name in the folder held open, so a moved folder loses its lock file too
        if _still_linked(self.fd, self.name, self.folder_fd):
            try:
                os.unlink(self.name, dir_fd=self.folder_fd)
            except FileNotFoundError:
                pass
        os.close(self.fd)  # releases the lock
        os.close(self.folder_fd)
        self.fd = self.folder_fd = None


def _still_linked(fd, name, folder_fd):
    try:
        st, held = os.stat(name, dir_fd=folder_fd), os.fstat(fd)
    except FileNotFoundError:
        return False
    return (st.st_dev, st.st_ino) == (held.st_dev, held.st_ino)


def _write_holder(fd):
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} on {platform.node()} since {time.strftime('%Y-%m-%dT%H:%M:%S')}"
                  .encode(), 0)
    except OSError:  # the name of the holder is a courtesy; a full disk must not stop the job here
        pass


def _read_holder(fd):
    try:
        text = os.pread(fd, 200, 0).decode(errors="replace").strip()
    except OSError:
        text = ""
    return text or "holder unknown"


def _lock_within(fd, secs):
    """Take the exclusive lock, retrying for `secs`: a reader's look (held_by_writer) holds it for
    microseconds and must not get a job refused; another job holds it for its whole run."""
    deadline = time.monotonic() + secs
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except OSError:
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.01)


def held_by_writer(path):
    """Whether a job holds the lock of results file `path` now: a look for readers such as the live
    view, which neither creates nor removes the lock file. It takes a shared lock without waiting and
    drops it at once; a job that starts within those microseconds waits them out (_lock_within).
    A lock file that exists but cannot be opened counts as held: a reader that cannot tell keeps waiting."""
    try:
        fd = os.open(lock_path(path), os.O_RDONLY)
    except (FileNotFoundError, NotADirectoryError):
        return False
    except OSError:
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError:  # EWOULDBLOCK: a writer holds it
        return True
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)
