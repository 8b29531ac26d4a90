"""The machine's busy CPU time, to show how much of it a measured run used (Linux only)."""

from __future__ import annotations

import os


def busy_s() -> float | None:
    """Seconds of CPU the whole machine has spent busy (/proc/stat), or None elsewhere."""
    try:
        with open("/proc/stat") as f:
            fields = [int(x) for x in f.readline().split()[1:]]
    except OSError:
        return None
    idle = fields[3] + fields[4]  # idle + iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def used_s(before: float | None) -> float | None:
    """Busy CPU seconds since `before` (a `busy_s()` reading), or None."""
    after = busy_s()
    return None if before is None or after is None else after - before
