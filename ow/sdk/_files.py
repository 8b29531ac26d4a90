"""`client.files`: upload, create, retrieve, content and download files.

A file id is a content hash (`ids.file_id(purpose, sha256, org)`), so uploading the same bytes
for the same purpose twice is a no-op that returns the same file. Datasets (conversations,
preference, inference) are validated before anything is stored: a bad file raises
`ValidationError` listing every problem, and nothing is uploaded or published. The bytes go
to the configured blob store (`client.blobs`) and one `FileUploaded` event announces them
(`ow.core.files.store_file`, shared with the agent).

Imports: stdlib, anyio and `ow.core`.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, fields
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio

from ow.core import events as ev
from ow.core import subjects
from ow.core.errors import ConfigError, NotFoundError, Problem, ValidationError
from ow.core.files import announced, check_digest, fetch_file, inside, relative_path, store_file
from ow.core.ids import encode_token
from ow.core.validate import VALIDATED_PURPOSES, validate
from ow.sdk._resource import AsyncResource

if TYPE_CHECKING:
    pass

__all__ = ["AsyncFiles", "FileObject"]


@dataclass(frozen=True, eq=False)
class FileObject(Mapping[str, Any]):
    """A stored file: `obj.id`, `obj["id"]` and `dict(obj)` all work (openweights gave dicts)."""

    id: str
    purpose: str
    filename: str = ""
    size_bytes: int = 0
    sha256: str = ""
    store: str = "nats"
    key: str = ""
    created_at: datetime | None = None

    @classmethod
    def from_event(cls, e: ev.FileUploaded) -> FileObject:
        return cls(
            id=e.file_id, purpose=e.purpose, filename=e.filename, size_bytes=e.size_bytes,
            sha256=e.sha256, store=e.store, key=e.key, created_at=e.ts,
        )

    def __getitem__(self, name: str) -> Any:
        if name not in _FIELDS:
            raise KeyError(name)
        return getattr(self, name)

    def __iter__(self) -> Iterator[str]:
        return iter(_FIELDS)

    def __len__(self) -> int:
        return len(_FIELDS)


_FIELDS = tuple(f.name for f in fields(FileObject))


def _scan(path: Path, purpose: str, label: str) -> tuple[str, int, list[Problem]]:
    """Read a file once: its sha256, its size, and (for datasets) every validation problem."""
    from ow.core.blobs import CHUNK_BYTES  # blobs imports the bus (nats): not at `import ow`

    h = hashlib.sha256()
    size = 0
    with open(path, "rb") as f:
        if purpose not in VALIDATED_PURPOSES:
            while chunk := f.read(CHUNK_BYTES):
                h.update(chunk)
                size += len(chunk)
            return h.hexdigest(), size, []

        def lines() -> Iterator[bytes]:
            nonlocal size
            for line in f:
                h.update(line)
                size += len(line)
                yield line

        problems = validate(purpose, lines(), label)
    return h.hexdigest(), size, problems


def _check_local(path: Path) -> None:
    if not path.exists():
        raise NotFoundError("local file", str(path), hint="upload takes the path of a file")
    if not path.is_file():
        raise ValidationError(
            f"{str(path)!r} is not a regular file: upload takes one file at a time"
        )


def _real_path(file: Any) -> Path | None:
    """The on-disk path of an open, unread file object (so it need not be copied), else None."""
    raw = getattr(file, "buffer", file)
    name = getattr(raw, "name", None)
    if not isinstance(raw, io.BufferedReader | io.FileIO) or not isinstance(name, str):
        return None
    try:
        if raw.readable() and raw.tell() == 0 and os.path.isfile(name):
            return Path(name)
    except (OSError, ValueError):
        return None
    return None


def _spool(content: Any) -> Path:
    """Copy bytes or a readable object to a temporary file in 1 MiB chunks; return its path."""
    from ow.core.blobs import CHUNK_BYTES

    fd, tmp = tempfile.mkstemp(prefix="ow-upload-")
    with os.fdopen(fd, "wb") as out:
        if isinstance(content, bytes | bytearray | memoryview):
            out.write(content)
            return Path(tmp)
        if isinstance(content, str):
            out.write(content.encode())
            return Path(tmp)
        if not hasattr(content, "read"):
            os.unlink(tmp)
            raise TypeError(f"cannot upload a {type(content).__name__}: pass bytes or a file")
        while chunk := content.read(CHUNK_BYTES):
            out.write(chunk.encode() if isinstance(chunk, str) else chunk)
    return Path(tmp)


class AsyncFiles(AsyncResource):
    """Files of the client's org: `upload`, `create`, `retrieve`, `content`, `download`."""

    async def upload(self, path: str | os.PathLike[str], purpose: str) -> FileObject:
        """Upload one file from disk (validated first for dataset purposes)."""
        path = Path(path)
        await anyio.to_thread.run_sync(_check_local, path)
        return await self._store(path, purpose, path.name, str(path))

    async def create(self, file: Any, purpose: str) -> FileObject:
        """Upload an open binary file, bytes, or `(filename, file_or_bytes)` (openweights API).

        A file object that is not a plain file on disk (a pipe, `BytesIO`, a partly read
        file) is first copied to a temporary file, so it is read once and never held whole.
        """
        name = ""
        if isinstance(file, tuple):
            name, file = file[0], file[1]
        if isinstance(file, str | os.PathLike):  # a path, as in `upload`
            return await self.upload(file, purpose)
        real = _real_path(file)
        name = name or os.path.basename(str(getattr(file, "name", "") or "")) or "upload"
        if real is not None:
            return await self._store(real, purpose, name, str(real))
        tmp = await anyio.to_thread.run_sync(_spool, file)
        try:
            return await self._store(tmp, purpose, name, name)
        finally:
            with contextlib.suppress(OSError):
                tmp.unlink()

    async def _store(self, path: Path, purpose: str, filename: str, label: str) -> FileObject:
        """Validate, then store and announce (idempotent); the `FileObject` that results."""
        if not purpose:
            raise ValidationError([Problem(label, 0, "a file needs a purpose")])
        filename = relative_path(filename, "file name")  # it names the file at download
        sha, size, problems = await anyio.to_thread.run_sync(_scan, path, purpose, label)
        if problems:
            raise ValidationError(problems)
        bus = await self.client.bus()
        file_id = await store_file(
            bus, self.client.blobs, path, purpose, filename, digest=(sha, size)
        )
        return await self.retrieve(file_id)

    async def retrieve(self, file_id: str) -> FileObject:
        """The file's metadata (from its `FileUploaded` event); `NotFoundError` if unknown."""
        if not file_id:
            raise NotFoundError("file", file_id)
        event = await announced(await self.client.bus(), file_id)
        if event is not None:
            return FileObject.from_event(event)
        raise NotFoundError("file", file_id)

    async def content(self, file_id: str) -> bytes:
        """The file's bytes (held in memory: use `download` for large files)."""
        obj = await self.retrieve(file_id)
        with self._missing_bytes(obj):
            data = await self._blobs_of(obj).get_bytes(self._key_of(obj))
        check_digest(obj.id, obj.store, obj.sha256, hashlib.sha256(data).hexdigest())
        return data

    async def download(self, file_id: str, dest: str | os.PathLike[str]) -> Path:
        """Stream the file to `dest` (into it, under its filename, if `dest` is a directory)."""
        obj = await self.retrieve(file_id)
        target = Path(dest)
        if await anyio.to_thread.run_sync(target.is_dir):  # the name is the uploader's
            target = inside(target, obj.filename or encode_token(obj.id), "file name")
        with self._missing_bytes(obj):
            return await fetch_file(self._blobs_of(obj), self._key_of(obj), target,
                                    file_id=obj.id, announced_sha=obj.sha256)

    def _key_of(self, obj: FileObject) -> str:
        return obj.key or subjects.file_key(self.client.org, obj.id)

    def _blobs_of(self, obj: FileObject) -> Any:
        """The store holding this file: the client's, or NATS for files stored there earlier."""
        blobs = self.client.blobs
        if obj.store == blobs.name:
            return blobs
        if obj.store == "nats":
            from ow.core.blobs import NatsObjectStore

            return NatsObjectStore(self.client.bus)
        raise ConfigError(
            f"file {obj.id} is stored in {obj.store!r} but this client uses {blobs.name!r}: "
            "set OW_S3_BUCKET (and OW_S3_ENDPOINT) to the bucket it was uploaded to"
        )

    @contextlib.contextmanager
    def _missing_bytes(self, obj: FileObject) -> Iterator[None]:
        try:
            yield
        except NotFoundError as exc:
            raise NotFoundError(
                "file", obj.id, hint=f"it was announced but its bytes are missing from {obj.store}"
            ) from exc

