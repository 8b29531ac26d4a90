"""Finding a job's process from outside: by its whole command line in /proc (Linux only).

A job runs in the agent's sandbox, with its own /tmp and pid namespace, so it cannot hand
the bench a pid or a mark file; a command line unique to the job (`sleep 600.0007`) finds it.
"""

from __future__ import annotations

import contextlib
from pathlib import Path


def process_of(argv: list[str], other_than: int | None = None) -> int | None:
    """The host pid of a process running exactly `argv` (not `other_than`), or None."""
    want = "\0".join(argv).encode() + b"\0"
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit() and int(proc.name) != other_than:
            with contextlib.suppress(OSError):
                if (proc / "cmdline").read_bytes() == want:
                    return int(proc.name)
    return None

