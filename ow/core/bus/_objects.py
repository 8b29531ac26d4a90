"""Objects in a NATS object store stream (ADR-20 layout), through API subjects that name
what is read, so that the server can restrict them (a run's credential reads only its job's
files, `ow.core.permissions.run_permissions`):

- `object_info`: the metadata, by a direct get of the last message on its subject;
- `object_chunks`: the chunks, through a consumer whose filter (the object's chunk subject)
  is in its API subject, pulled one chunk at a time (memory stays at one chunk);
- `object_put`: the chunks, then the metadata as a rollup of its subject (as nats-py writes
  them), without nats-py's stat before and purge after (a run may do neither).

Imports: stdlib, nats (through the base) and `ow.core`.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any

import anyio

from ow.core import defaults, subjects
from ow.core.bus._errors import mapped
from ow.core.bus._read import ReadMixin
from ow.core.errors import StoreError

__all__ = ["ObjectsMixin"]

_NEXT = b'{"batch": 1, "expires": 5000000000}'  # one chunk; a pull waits up to 5 s


class ObjectsMixin(ReadMixin):
    """`object_info`, `object_chunks`, `object_put` on the files' object store."""

    async def object_info(self, key: str, bucket: str = subjects.FILES_BUCKET) -> dict[str, Any]:
        """An object's metadata ({} if it has none); `StoreError` if it is unreadable."""
        subject = subjects.object_meta_subject(key, bucket)
        with mapped("blob", key):
            msg = await self.last_raw(f"OBJ_{bucket}", subject)
        try:
            return json.loads(msg) if msg else {}
        except ValueError as exc:
            raise StoreError(f"NATS object {key!r} has unreadable metadata; upload it again") \
                from exc

    async def object_chunks(
        self, key: str, nuid: str, chunks: int, bucket: str = subjects.FILES_BUCKET
    ) -> AsyncIterator[bytes]:
        """The `chunks` chunks of object `key` (chunk subject named by `nuid`), in order."""
        stream, name = f"OBJ_{bucket}", uuid.uuid4().hex
        chunk_subject = subjects.object_chunks_subject(nuid, bucket)
        cfg = {"name": name, "filter_subject": chunk_subject, "deliver_policy": "all",
               "ack_policy": "none", "mem_storage": True, "num_replicas": 1,
               "inactive_threshold": 30_000_000_000}
        with mapped("blob", key):
            reply = await self.nc.request(
                f"$JS.API.CONSUMER.CREATE.{stream}.{name}.{chunk_subject}",
                json.dumps({"stream_name": stream, "config": cfg}).encode(),
                timeout=defaults.REQUEST_TIMEOUT_S)
        if error := json.loads(reply.data or b"{}").get("error"):
            raise StoreError(f"NATS object {key!r}: could not read its chunks "
                             f"({error.get('description', error)})")
        inbox = self.nc.new_inbox()  # pulled messages arrive under their own subject there
        sub = await self.nc.subscribe(inbox)
        try:
            for _ in range(chunks):
                with mapped("blob", key):
                    await self.nc.publish(f"$JS.API.CONSUMER.MSG.NEXT.{stream}.{name}", _NEXT,
                                          reply=inbox)
                    msg = await sub.next_msg(timeout=defaults.REQUEST_TIMEOUT_S)
                if msg.headers and msg.headers.get("Status"):
                    raise StoreError(f"NATS object {key!r} lost a chunk ({msg.headers}); "
                                     "upload it again")
                yield msg.data
        finally:
            with contextlib.suppress(Exception), anyio.CancelScope(shield=True):
                await sub.unsubscribe()
                await self.nc.publish(f"$JS.API.CONSUMER.DELETE.{stream}.{name}", b"")

    async def object_put(
        self, key: str, read: Callable[[], bytes], chunk_bytes: int,
        bucket: str = subjects.FILES_BUCKET,
    ) -> None:
        """Write object `key` from `read()` (called in a thread until it returns b"")."""
        nuid, h, size, chunks = uuid.uuid4().hex, hashlib.sha256(), 0, 0
        subject = subjects.object_chunks_subject(nuid, bucket)
        while chunk := await anyio.to_thread.run_sync(read):
            h.update(chunk)
            size, chunks = size + len(chunk), chunks + 1
            with mapped("blob", key):
                await self.js.publish(subject, chunk)
        meta = {"name": key, "bucket": bucket, "nuid": nuid, "size": size, "chunks": chunks,
                "mtime": datetime.now(UTC).isoformat(),
                "digest": "SHA-256=" + base64.urlsafe_b64encode(h.digest()).decode(),
                "options": {"max_chunk_size": chunk_bytes}}
        with mapped("blob", key):
            await self.js.publish(subjects.object_meta_subject(key, bucket),
                                  json.dumps(meta).encode(), headers={"Nats-Rollup": "sub"})
