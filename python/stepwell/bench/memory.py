"""Memory of the running process: resident set and its peak (Linux /proc, else getrusage)."""

from __future__ import annotations

import gc


def status_kib(field_name: str) -> int | None:
    """A field of /proc/self/status in KiB (VmRSS, VmHWM), or None where there is none."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field_name + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def reset_hwm() -> bool:
    """Reset the process's peak RSS (VmHWM) to its current RSS; False where it cannot."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def peak_memory_mib(fn) -> tuple[float | None, str]:
    """(MiB the resident set grew by during ``fn()``, how it was measured)."""
    gc.collect()
    rss = status_kib("VmRSS")
    if rss is not None and reset_hwm():
        fn()
        hwm = status_kib("VmHWM")
        return max(0.0, (hwm - rss) / 1024), "VmHWM-VmRSS"
    import resource
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    fn()
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return (after - before) / 1024, "ru_maxrss growth"
