"""Checks that keep a results file honest: per-point checksums and room for a new grid.

Each finished point carries a 64-bit BLAKE2b digest of its flat index and of the bytes of every
value written for it (any dataset shape, any dtype, as stored). A resume recomputes the digests of
the finished points, so a damaged value, done bit or checksum is named instead of trusted. The
digest 0 marks a point never written.
"""
import hashlib
import os

import numpy as np

DIGEST = "blake2b-64 of (flat index, each value's stored bytes) per point"
BYTES_PER_POINT_IN_MEMORY = 128  # order, done mask, the dispatcher's list of points, a value buffer


def point_digest(index, stored_values):
    """The checksum of one point; stored_values are numpy values in their dataset's dtype."""
    h = hashlib.blake2b(digest_size=8)
    h.update(np.int64(index).tobytes())
    for value in stored_values:
        h.update(np.ascontiguousarray(value).tobytes())
    return int.from_bytes(h.digest(), "little")


def check_points(done, sums, columns):
    """Classify points by their done bit, checksum and values (all flat over the grid).

    columns: one array per quantity, shaped (points, ...). Returns (damaged, cleared): damaged are
    points marked done whose values do not match their checksum, or whose done bit is neither 0
    nor 1; cleared are points not marked done whose values do match a written checksum (a commit
    cut short between the two writes, or a flipped done bit), which are simply computed again.
    """
    rows = [c.reshape(len(done), -1) for c in columns]

    def matches(i):
        return sums[i] != 0 and point_digest(i, [r[i] for r in rows]) == sums[i]
    damaged = [int(i) for i in np.flatnonzero(done > 1)]
    damaged += [int(i) for i in np.flatnonzero(done == 1) if not matches(i)]
    cleared = [int(i) for i in np.flatnonzero((done == 0) & (sums != 0)) if matches(i)]
    return sorted(damaged), cleared


def available_memory():
    """Bytes of memory available to new allocations (Linux MemAvailable), or None where unknown."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def memory_refusal(points):
    """A reason why a grid of `points` cannot be held in memory, or None."""
    needed, free = points * BYTES_PER_POINT_IN_MEMORY, available_memory()
    if free is not None and needed > free:
        return f"a grid of {points:,} points needs about {_size(needed)} of memory, {_size(free)} are available"
    return None


def disk_refusal(path, points, values_per_point):
    """A reason why the results file for `points` would not fit on its disk, or None."""
    needed = points * (8 * values_per_point + 1 + 8) + (1 << 20)
    folder = os.path.dirname(os.path.abspath(path))
    try:
        st = os.statvfs(folder)
    except OSError:
        return None
    free = st.f_bavail * st.f_frsize
    if needed > free:
        return f"{path} would need about {_size(needed)}, the disk holding {folder} has {_size(free)} free"
    return None


def _size(n):
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
