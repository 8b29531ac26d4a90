"""Storing a file: hash it, derive its content id, put its bytes, publish `FileUploaded` once;
and the one rule for paths that come from a job or an upload.

Shared by the SDK (uploads) and the agent (artifacts, logs). Idempotent: the same bytes of
the same purpose in the same org are one file id, stored once, announced by one event (the
event id is derived from the file id and published with an expected subject sequence of 0).

Paths (`relative_path`, `inside`): a file name, an artifact path or a mounted file's place
comes from someone else (a job, an upload) and is written under a destination the reader
chose. It must be a relative path that stays there: not absolute, no `..`, no NUL, and no
existing symlink on the way that leads out. Refused at upload and again at download.

Imports: anyio and `ow.core`.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
from pathlib import Path
from typing import TYPE_CHECKING

import anyio

from ow.core import codec, ids, subjects
from ow.core import events as ev
from ow.core.errors import ConflictError, StoreError, UnsafePathError

if TYPE_CHECKING:  # the bus imports nats: not at `import ow`
    from ow.core.blobs import BlobStore
    from ow.core.bus import Bus

__all__ = ["UnsafePathError", "announced", "check_digest", "fetch_file", "hash_file", "inside",
           "relative_path", "store_file"]


def relative_path(path: str, what: str = "path") -> str:
    """`path` normalised to a relative POSIX path (`a/./b//c` -> `a/b/c`), or
    `ValidationError` naming `what` if it is empty, absolute, climbs out (`..`) or has NUL."""
    problem = ""
    parts = [p for p in str(path).replace("\\", "/").split("/") if p not in ("", ".")]
    if "\0" in str(path):
        problem = "contains a NUL byte"
    elif str(path).startswith(("/", "\\")) or re.match(r"^[A-Za-z]:[\\/]", str(path)):
        problem = "is absolute"
    elif ".." in parts:
        problem = "climbs out of its destination (..)"
    elif not parts:
        problem = "is empty"
    if problem:
        raise UnsafePathError(f"{what} {str(path)!r} {problem}: use a relative path inside the "
                              "destination, e.g. 'results/out.csv'")
    return "/".join(parts)


def inside(root: Path | str, path: str, what: str = "path") -> Path:
    """Where `path` (see `relative_path`) goes under `root`; `ValidationError` if an existing
    symlink on the way (or the target itself) would take it out of `root`."""
    root = Path(root)
    target = root / relative_path(path, what)
    real_root = root.resolve()
    parent = target.parent.resolve()
    if parent != real_root and real_root not in parent.parents:
        raise UnsafePathError(f"{what} {path!r} leads out of {str(root)!r} through a symlink: "
                              "remove the symlink or choose another destination")
    if target.is_symlink():
        raise UnsafePathError(f"{what} {path!r} is a symlink under {str(root)!r}: writing "
                              "would follow it; remove it first")
    return target

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
    bus: Bus, blobs: BlobStore, path: Path | str, purpose: str, filename: str | None = None,
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
    if bus.run is None and await bus.last_seq(subjects.EVENTS_STREAM, subject):
        return file_id  # (a run may not look: it stores, and announces if nobody did)
    key = subjects.file_key(bus.org, file_id)
    await blobs.put_file(key, path)
    event = ev.FileUploaded(
        event_id=f"file:{file_id}", file_id=file_id, purpose=purpose,
        filename=filename or path.name, size_bytes=size, sha256=sha, store=blobs.name, key=key,
    )
    with contextlib.suppress(ConflictError):  # a concurrent upload announced it first
        await bus.publish(event, expected_seq=0)
    return file_id


async def announced(bus: Bus, file_id: str) -> ev.FileUploaded | None:
    """The `FileUploaded` event of a file, or None if it was never announced."""
    subject = subjects.aggregate_subject(bus.org, "file", file_id)
    raw = await bus.last_raw(subjects.EVENTS_STREAM, subject)
    if raw is None:
        return None
    event = codec.decode(raw)
    if not isinstance(event, ev.FileUploaded):  # a later event on the subject
        history, _ = await bus.history(subject)
        event = next((d.event for d in history if isinstance(d.event, ev.FileUploaded)), None)
    return event if isinstance(event, ev.FileUploaded) else None



def check_digest(file_id: str, store: str, announced_sha: str, read_sha: str) -> None:
    """The bytes read are the ones announced: a file id names a content hash, and a store's
    object can be replaced behind the event by anyone who may write the store."""
    if announced_sha and read_sha != announced_sha:
        raise StoreError(
            f"file {file_id}: the bytes in {store} have SHA-256 {read_sha[:12]}…, not the "
            f"{announced_sha[:12]}… announced at upload; they were replaced after upload: "
            "upload the file again"
        )


async def fetch_file(
    blobs: BlobStore, key: str, target: Path, *, file_id: str, announced_sha: str
) -> Path:
    """Download a file's bytes to `target` and check them against the announced digest (bytes
    that are not the announced ones are removed, and `StoreError` says so)."""
    path = Path(await blobs.get_file(key, target))
    try:
        check_digest(file_id, blobs.name, announced_sha,
                     (await anyio.to_thread.run_sync(hash_file, path))[0])
    except StoreError:
        path.unlink(missing_ok=True)
        raise
    return path
