"""Storing a file: hash it, derive its content id, put its bytes, publish `FileUploaded` once.

Shared by the SDK (uploads) and the agent (artifacts, logs). Idempotent: the same bytes of
the same purpose in the same org are one file id, stored once, announced by one event (the
event id is derived from the file id and published with an expected subject sequence of 0).

Imports: anyio and `ow.core`.
"""

from __future__ import annotations

import contextlib
import hashlib
from pathlib import Path
from typing import Any

import anyio

from ow.core import events as ev
from ow.core import ids, subjects
from ow.core.errors import ConflictError

__all__ = ["hash_file", "store_file"]

_CHUNK = 1 << 20


def hash_file(path: Path) -> tuple[str, int]:
    """(hex sha256, size in bytes) of a file, read in chunks."""
    h = hashlib.sha256()
    size = 0
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
            size += len(chunk)
    return h.hexdigest(), size


async def store_file(
    bus: Any, blobs: Any, path: Path | str, purpose: str, filename: str | None = None,
    *, digest: tuple[str, int] | None = None,
) -> str:
    """Store a file's bytes and announce them; returns the file id (no-op if known).

    `digest` is `(hex sha256, size)` when the caller already read the file (the SDK hashes
    while validating), so the file is read once before the upload.
    """
    path = Path(path)
    sha, size = digest or await anyio.to_thread.run_sync(hash_file, path)
    file_id = ids.file_id(purpose, sha, bus.org)
    subject = subjects.aggregate_subject(bus.org, "file", file_id)
    if await bus.last_seq(subjects.EVENTS_STREAM, subject):
        return file_id
    key = subjects.file_key(bus.org, file_id)
    await blobs.put_file(key, path)
    event = ev.FileUploaded(
        event_id=f"file:{file_id}", file_id=file_id, purpose=purpose,
        filename=filename or path.name, size_bytes=size, sha256=sha, store=blobs.name, key=key,
    )
    with contextlib.suppress(ConflictError):  # a concurrent upload announced it first
        await bus.publish(event, expected_seq=0)
    return file_id
