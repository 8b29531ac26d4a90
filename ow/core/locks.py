"""Exclusive file locks that say who holds them: one `ow up` per home, one server per store.

`try_lock(path)` takes an exclusive `flock` on the file (created 0600) and writes this
process's pid into it; it returns the open descriptor (the lock lives as long as it stays
open: `release(fd)`, or the process's exit, even by kill -9) or None if another process (or
another descriptor of this one) holds it. `holder(path)` is the pid written by the holder,
or None when nobody holds the lock. Descriptors are not inherited by child processes unless
passed on purpose (the embedded server holds its store's lock with the process that started
it: `note_holder` names it).

Imports: stdlib only.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

__all__ = ["hold", "holder", "note_holder", "release", "try_lock", "write_state"]


def try_lock(path: str | Path) -> int | None:
    """Take the lock (writing our pid into the file), or None if it is held."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    os.ftruncate(fd, 0)
    os.pwrite(fd, str(os.getpid()).encode(), 0)
    return fd


def note_holder(fd: int, pid: int) -> None:
    """Write another pid as the holder (a child the descriptor was passed to holds it too)."""
    os.ftruncate(fd, 0)
    os.pwrite(fd, str(pid).encode(), 0)


def release(fd: int | None) -> None:
    if fd is not None:
        with contextlib.suppress(OSError):
            os.close(fd)


def holder(path: str | Path) -> int | None:
    """The pid of the process holding the lock (0 if it wrote none yet), or None if free."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            text = os.pread(fd, 32, 0).decode(errors="replace").strip()
            return int(text) if text.isdigit() else 0
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


@contextlib.contextmanager
def hold(path: str | Path) -> Iterator[bool]:
    """Hold the lock for the block; yields False (and holds nothing) if it is taken."""
    fd = try_lock(path)
    try:
        yield fd is not None
    finally:
        release(fd)


def write_state(path: str | Path, data: dict) -> None:
    """Write a small JSON state file (up.json, serve.json) atomically, owner-only: a reader
    never sees it half written."""
    import json

    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(json.dumps(data))
    os.replace(tmp, path)
