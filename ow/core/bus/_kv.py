"""Key/value buckets and object stores: opening them, and the KV operations `ow` needs
(get, create-if-absent, compare-and-set update and delete, put, live keys).

A CAS write whose answer is lost in an outage may still have landed: `kv_create` and
`kv_update` look at what is there once the server answers again (`_after_outage`).

Imports: stdlib, nats and `ow.core`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from nats.js import api
from nats.js.kv import KeyValue

from ow.core import defaults
from ow.core.bus._base import BusBase
from ow.core.bus._errors import mapped
from ow.core.errors import BusUnavailableError, ConflictError, NotFoundError

__all__ = ["KvBucket", "KvEntry", "KvMixin"]

#: what `Bus.kv` returns (nats-py's own type, named by the bus)
KvBucket = KeyValue

log = logging.getLogger(__name__)
logging.getLogger("nats.js.kv").setLevel(logging.ERROR)  # warns on every keys() call

_CAS_RETRIES = 3  # a KV CAS write that timed out is checked and retried this often


@dataclass(frozen=True, slots=True)
class KvEntry:
    """A key's current value and revision."""

    value: bytes
    revision: int


class KvMixin(BusBase):
    """`kv` and the `kv_*` operations."""

    async def kv(self, bucket: str, *, create: bool = False, history: int = 1) -> KvBucket:
        """The bucket `bucket` (opened once per bus); with `create`, made (with `history`
        values per key) if it does not exist yet."""
        if create:
            with mapped("create bucket", bucket):
                self._kv[bucket] = await self.js.create_key_value(bucket=bucket, history=history)
        if bucket not in self._kv:
            with mapped("open bucket", bucket):
                self._kv[bucket] = await self.js.key_value(bucket)
        return self._kv[bucket]

    async def kv_get(self, bucket: str, key: str) -> KvEntry | None:
        """The current value and revision of a key, or None if absent or deleted."""
        store = await self.kv(bucket)
        try:
            entry = await self.retrying("kv get", key, store.get, key)
        except NotFoundError:  # absent or deleted (KeyNotFoundError is a NotFoundError)
            return None
        return KvEntry(entry.value or b"", entry.revision)

    async def kv_create(
        self, bucket: str, key: str, value: bytes, ttl_s: float | None = None
    ) -> int | None:
        """Create a key if absent: its revision, or None if someone else holds it."""
        store = await self.kv(bucket)
        for _ in range(_CAS_RETRIES):
            try:
                with mapped("kv create", key):  # a timeout (server restarting): see below
                    return await store.create(key, value, msg_ttl=ttl_s)
            except ConflictError:
                log.debug("kv create lost: %s", key)
                return None
            except BusUnavailableError:  # did it land before the answer was lost?
                log.info("kv create %s: no answer from the server; checking what landed", key)
                entry = await self._after_outage(bucket, key)
                if entry is not None:
                    return entry.revision if entry.value == value else None
        raise BusUnavailableError(f"kv create {key}: the server stayed unavailable")

    async def kv_update(
        self, bucket: str, key: str, value: bytes, last: int, ttl_s: float | None = None
    ) -> int | None:
        """Compare-and-set: the new revision, or None if the key moved past `last`."""
        store = await self.kv(bucket)
        for _ in range(_CAS_RETRIES):
            try:
                with mapped("kv update", key):  # a timeout (server restarting): see below
                    if ttl_s is None:
                        return await store.update(key, value, last=last)
                    # the public update() takes no TTL; a renewed lease must keep expiring
                    return await store._update(key, value, last=last, msg_ttl=ttl_s)
            except ConflictError:
                log.debug("kv update lost: %s at %s", key, last)
                return None
            except BusUnavailableError:  # did it land before the answer was lost?
                log.info("kv update %s: no answer from the server; checking what landed", key)
                entry = await self._after_outage(bucket, key)
                if entry is None or entry.revision != last:
                    landed = entry is not None and entry.value == value
                    return entry.revision if landed and entry else None
        raise BusUnavailableError(f"kv update {key}: the server stayed unavailable")

    async def _after_outage(self, bucket: str, key: str) -> KvEntry | None:
        """A key's entry once the server answers again (a CAS write whose answer was lost
        may have landed: the caller compares values)."""
        await self.wait_connected()
        return await self.kv_get(bucket, key)

    async def kv_delete(self, bucket: str, key: str, last: int) -> bool:
        """Delete with CAS: False if the key moved past `last`."""
        store = await self.kv(bucket)
        try:
            with mapped("kv delete", key):  # a timeout (server restarting) is unavailability
                await store.delete(key, last=last)
        except ConflictError:
            log.debug("kv delete lost: %s at %s", key, last)
            return False
        return True

    async def kv_put(self, bucket: str, key: str, value: bytes) -> int:
        store = await self.kv(bucket)
        with mapped("kv put", key):
            return await store.put(key, value)

    async def kv_keys(self, bucket: str, pattern: str = ">") -> list[str]:
        """Live keys matching a subject pattern (`org.>`), in stream order.

        The last message of each key, headers only, from an ordered consumer, read until
        the server says nothing is pending. (nats-py's `keys()` matches filters as
        substrings, and its watcher may signal "no initial values" before delivering one
        that is already on its way, so a busy moment returned no keys at all.)
        """
        stream, prefix = f"KV_{bucket}", f"$KV.{bucket}."
        try:  # any message at all? (a direct get cannot take a wildcard subject)
            await self.retrying("read", pattern, self.js.get_last_msg, stream,
                                prefix + pattern, direct=False)
        except NotFoundError:
            return []
        live: dict[str, bool] = {}
        cfg = api.ConsumerConfig(deliver_policy=api.DeliverPolicy.LAST_PER_SUBJECT,
                                 headers_only=True)
        with mapped("kv keys", pattern):
            sub = await self.js.subscribe(prefix + pattern, stream=stream, ordered_consumer=True,
                                          config=cfg)
            try:
                while True:
                    msg = await sub.next_msg(timeout=defaults.REQUEST_TIMEOUT_S)
                    op = (msg.headers or {}).get("KV-Operation", "")
                    live[msg.subject[len(prefix):]] = op not in ("DEL", "PURGE")
                    if msg.metadata.num_pending == 0:
                        break
            finally:
                await sub.unsubscribe()
        return [key for key, alive in live.items() if alive]
