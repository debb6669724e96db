"""No run writes over a file it reads: the paths a command reads and writes, compared before anything
is opened for writing.

Two names are one file when they resolve to one real path (symlinks, '..'), or, where both exist, to
one inode (hard links, bind mounts). Outputs must also differ from each other, and the side files a
results file brings (its lock and its pending points, named after its real path) count as outputs.
"""
import os

from ..errors import PathClashError


def same_file(a, b):
    """Whether the names a and b lead to one file (an existing file's inode, or one real path)."""
    if os.path.exists(a) and os.path.exists(b):
        return os.path.samefile(a, b)
    return os.path.realpath(a) == os.path.realpath(b)


def results_outputs(label, path, ranks=1):
    """(label, name) of a results file and the side files written beside it: its lock, and each rank's
    pending points (files/lock.py, files/pending.py)."""
    real = os.path.realpath(path)
    return [(label, path), (f"{label} (its lock file)", real + ".lock"),
            *((f"{label} (its pending points)", real + f".pending-{rank}") for rank in range(ranks))]


def check_apart(reads, writes):
    """Refuse a command whose outputs are its inputs or each other.

    reads, writes: (label, path) pairs, labels as the user knows them ('--model_file'); None paths are
    skipped. Raises PathClashError naming the first output that is one of the inputs (or an earlier output)."""
    reads = [(label, os.fspath(p)) for label, p in reads if p is not None]
    writes = [(label, os.fspath(p)) for label, p in writes if p is not None]
    for n, (out_label, out) in enumerate(writes):
        for in_label, source in reads:
            if same_file(out, source):
                raise PathClashError(_clash(out_label, out, "reads", in_label, source))
        for other_label, other in writes[:n]:
            if same_file(out, other):
                raise PathClashError(_clash(out_label, out, "also writes", other_label, other))


def _clash(out_label, out, verb, in_label, source):
    spelled = "" if source == out else f" (as {source})"
    flag = out_label.split(" (")[0]  # a side file is renamed with its results file
    return (f"{out_label} {out} is the file this run {verb} as {in_label}{spelled}; a run never writes over "
            f"a file it reads, nor writes one file twice: give {flag} another name")
