"""What this host has room for: memory available to new allocations and free disk, in words; its CPU flags.

A shared leaf: the grid refuses what memory cannot hold, the results file what its disk cannot, and
the Lanczos basis plan needs the host's memory. Nothing here imports torch.
"""
import os


def available_memory():
    """Bytes of memory available to new allocations (Linux MemAvailable; free pages elsewhere), or None."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError):
        return None


def free_disk(path):
    """Bytes free to this user on the disk holding `path`'s folder, or None where it cannot be read."""
    try:
        st = os.statvfs(os.path.dirname(os.path.abspath(path)))
    except OSError:
        return None
    return st.f_bavail * st.f_frsize


def size_in_words(n):
    """'512 B', '3.4 MiB', '1.2 TiB'."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024


def cpu_flags(cpuinfo="/proc/cpuinfo"):
    """The CPU's feature flags as Linux lists them ('flags' on x86, 'Features' on Arm), or an empty set
    where they cannot be read (another OS): used only to suggest, never to decide numbers."""
    try:
        with open(cpuinfo) as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() in ("flags", "Features"):
                    return frozenset(value.split())
    except OSError:
        pass
    return frozenset()
