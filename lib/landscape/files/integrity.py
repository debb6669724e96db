"""Checks that keep a results file honest: per-point checksums and room for a new grid.

Each finished point carries a 64-bit BLAKE2b digest of its flat index and of the bytes of every
value written for it (any dataset shape, any dtype, as stored). A resume recomputes the digests of
the finished points, so a damaged value, done bit or checksum is named instead of trusted. The
digest 0 marks a point never written.
"""
import hashlib
import os

import numpy as np

from ..host import free_disk, size_in_words

DIGEST = "blake2b-64 of (flat index, each value's stored bytes) per point"


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


def disk_refusal(path, points, values_per_point):
    """A reason why the results file for `points` would not fit on its disk, or None."""
    needed, free = points * (8 * values_per_point + 1 + 8) + (1 << 20), free_disk(path)
    if free is not None and needed > free:
        folder = os.path.dirname(os.path.abspath(path))
        return f"{path} would need about {size_in_words(needed)}, the disk holding {folder} has " \
               f"{size_in_words(free)} free"
    return None
