"""The bus: the only module that talks to NATS. Connect, provision, publish, read, subscribe, KV.

Every nats-py exception is mapped here (`_mapped`) into `ow.core.errors`; none crosses this
module. Publishing sets `Nats-Msg-Id = event_id`, so a retried publish is stored once.

Imports: stdlib, msgspec, anyio, nats, and `ow.core`.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import anyio
import msgspec
import nats
import nats.errors
import nats.js.errors
from nats.js import api

from ow.core import codec, credentials, defaults, subjects, wire
from ow.core import events as ev
from ow.core.errors import (
    BusError,
    BusUnavailableError,
    ConflictError,
    NoServiceError,
    NotFoundError,
    OWError,
    PermissionDeniedError,
)
from ow.core.ids import uuid7

__all__ = ["Bus", "Delivery", "Dispatch", "KvEntry", "Offer", "Reply", "ServiceFault",
           "connect", "mapped"]

log = logging.getLogger(__name__)
logging.getLogger("nats.js.kv").setLevel(logging.ERROR)  # warns on every keys() call

_WRONG_LAST_SEQ = (10071, 10164)
_CAS_RETRIES = 3  # a KV CAS write that timed out is checked and retried this often
_CONFIG_MISMATCH = 10058


class _Gap(Exception):
    """A bulk read's consumer skipped a delivery: read on with a new consumer."""


@dataclass(frozen=True, slots=True)
class Delivery:
    """One stored message: its stream sequence, time and decoded event(s)."""

    seq: int
    subject: str
    event: ev.Event


@dataclass(frozen=True, slots=True)
class KvEntry:
    value: bytes
    revision: int


@dataclass(frozen=True, slots=True)
class Reply:
    """A service's answer: its bytes, or an error code and description (`code` "" if none)."""

    data: bytes
    code: str = ""
    error: str = ""


#: handle(endpoint name, request bytes) -> reply bytes; raising `ServiceFault` (or any
#: exception) answers an error instead
Handler = Any


@contextlib.contextmanager
def mapped(what: str, key: str = "") -> Iterator[None]:
    """Map nats-py errors raised inside into `OWError`s that say what to do."""
    try:
        yield
    except OWError:
        raise
    except nats.js.errors.KeyWrongLastSequenceError as exc:
        raise ConflictError(key, None, str(exc.description or "")) from exc
    except nats.js.errors.NotFoundError as exc:
        raise NotFoundError(what, key) from exc
    except nats.js.errors.ServiceUnavailableError as exc:
        raise BusUnavailableError(f"{what}: JetStream is not available yet ({exc})") from exc
    except nats.js.errors.APIError as exc:
        if exc.err_code in _WRONG_LAST_SEQ:
            raise ConflictError(key, None, str(exc.description or "")) from exc
        raise BusError(f"{what} failed: {exc.description} (code {exc.err_code})") from exc
    except (
        nats.errors.NoServersError, nats.errors.ConnectionClosedError,
        nats.errors.NoRespondersError, nats.js.errors.NoStreamResponseError,
        nats.errors.OutboundBufferLimitError,
    ) as exc:
        raise BusUnavailableError(f"{what}: lost the NATS connection ({exc})") from exc
    except (nats.errors.TimeoutError, TimeoutError) as exc:
        raise BusUnavailableError(f"{what}: NATS did not answer in time") from exc


def _check_version(version: str, url: str) -> None:
    parts = tuple(int(p) for p in version.split("-")[0].split(".")[:3])
    if parts < defaults.MIN_SERVER_VERSION:
        need = ".".join(map(str, defaults.MIN_SERVER_VERSION))
        raise BusUnavailableError(
            f"nats-server {version} at {url} is too old: ow needs ≥ {need}, because older "
            "servers lost acknowledged JetStream writes (Jepsen, 2025). Upgrade the server."
        )


#: what `Bus.read_range` raises when its own connection cannot be made or breaks: the caller
#: then reads on through `Bus.subscribe` from where it stopped
READ_RANGE_ERRORS = (wire.WireError, OSError, anyio.EndOfStream, anyio.BrokenResourceError)


async def connect(
    url: str = defaults.DEFAULT_URL,
    *,
    org: str = defaults.DEFAULT_ORG,
    actor: str = "",
    name: str = "ow",
    token: str = "",
    user_credentials: str | None = None,
    reconnect: bool = True,
) -> Bus:
    """Connect to NATS, check its version, and return a `Bus` bound to `org`."""
    opts: dict[str, Any] = {
        "servers": url.split(","),
        "name": name,
        "connect_timeout": defaults.CONNECT_TIMEOUT_S,
        "allow_reconnect": reconnect,
        "max_reconnect_attempts": -1 if reconnect else 0,
        "reconnect_time_wait": 0.25,
        "error_cb": _quiet_error,
    }
    if user_credentials:
        opts["user_credentials"] = user_credentials
    else:  # an ow_ token is user <id> / password <secret> in the org's account (tenancy.py)
        from ow.core import tenancy

        opts.update(tenancy.connect_options(token, org))
    refused: list[Exception] = []
    denials: list[tuple[float, str]] = []  # (when, the server's text) of refused operations

    async def on_error(exc: Exception) -> None:  # nats-py would retry a refusal forever
        if "authorization violation" in str(exc).lower() and not refused:
            refused.append(exc)
            scope.cancel()
        elif "permissions violation" in str(exc).lower():
            denials.append((anyio.current_time(), str(exc).removeprefix("nats: ")))
            del denials[:-16]
        await _quiet_error(exc)

    opts["error_cb"] = on_error
    nc = None
    try:
        with anyio.fail_after(defaults.CONNECT_TIMEOUT_S * 2) as scope:
            nc = await nats.connect(**opts)
    except Exception as exc:  # nats raises many kinds here; all mean "not reachable"
        if refused or "authorization violation" in str(exc).lower():
            from ow.core import tenancy

            raise tenancy.refused(token, org) from exc
        raise BusUnavailableError(
            f"No NATS at {url} — run `ow up` or set OW_URL ({type(exc).__name__}: {exc})"
        ) from exc
    if nc is None:  # the server refused the credentials (on_error ended the attempt)
        from ow.core import tenancy

        raise tenancy.refused(token, org) from refused[0]
    try:
        _check_version(str(nc._server_info.get("version", "0.0.0")), url)
    except BusUnavailableError:
        await nc.close()
        raise
    bus = Bus(nc, org=org, actor=actor, url=url)
    bus.denials = denials
    bus.sender = credentials.sender_of(token)  # what the server lets it publish bound events as
    bus.run = credentials.run_of(token)  # a run's credential: what it may read (blobs, files)
    if not user_credentials:
        bus.wire_auth = {k: opts[k] for k in ("user", "password", "token", "inbox_prefix")
                         if k in opts}
    return bus


async def _quiet_error(exc: Exception) -> None:
    log.debug("nats: %s", exc)


class Bus:
    """A NATS connection bound to one org, with the operations `ow` needs."""

    def __init__(self, nc: Any, *, org: str, actor: str, url: str):
        self.nc = nc
        self.js = nc.jetstream(timeout=defaults.REQUEST_TIMEOUT_S)
        self.org = org
        self.actor = actor
        self.url = url
        self._kv: dict[str, Any] = {}
        #: credentials for `read_range`'s own connection; None: it is not possible here
        self.wire_auth: dict[str, Any] | None = None
        #: operations the server refused to these credentials: (time, text), newest last
        self.denials: list[tuple[float, str]] = []
        #: the identity its bound events go out under (`ow.core.credentials.sender_of`)
        self.sender = ""
        #: the claims of its run credential, None for any other token (`credentials.run_of`)
        self.run: credentials.Credential | None = None

    async def close(self) -> None:
        """Flush what was published and close (not drain: a pending pull would hold it 30 s)."""
        with contextlib.suppress(Exception):
            await self.nc.flush(timeout=2)
        with contextlib.suppress(Exception):
            await self.nc.close()

    async def __aenter__(self) -> Bus:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # --- provisioning --------------------------------------------------------------

    async def provision(self, replicas: int = 1) -> None:
        """Create (or bring up to date) every stream, bucket and object store. Idempotent."""
        dup = defaults.DUPLICATE_WINDOW_S
        streams = [
            api.StreamConfig(
                name=subjects.EVENTS_STREAM, subjects=["ow.ev.>"], duplicate_window=dup,
                storage=api.StorageType.FILE, num_replicas=replicas, allow_direct=True,
            ),
            api.StreamConfig(
                name=subjects.METRICS_STREAM, subjects=["ow.mx.>"], duplicate_window=dup,
                storage=api.StorageType.FILE, num_replicas=replicas, allow_direct=True,
            ),
            api.StreamConfig(
                name=subjects.LOGS_STREAM, subjects=["ow.log.>"], duplicate_window=dup,
                storage=api.StorageType.FILE, num_replicas=replicas, allow_direct=True,
                max_msgs_per_subject=defaults.LOGS_MAX_MSGS_PER_SUBJECT,
            ),
            api.StreamConfig(
                name=subjects.HEARTBEATS_STREAM, subjects=["ow.hb.>"], duplicate_window=dup,
                storage=api.StorageType.FILE, num_replicas=replicas, allow_direct=True,
                max_msgs_per_subject=defaults.HEARTBEATS_MAX_MSGS_PER_SUBJECT,
            ),
        ]
        with mapped("provisioning streams"):
            for cfg in streams:
                await self._ensure_stream(cfg)
            self._kv[subjects.CLAIMS_BUCKET] = await self.js.create_key_value(
                bucket=subjects.CLAIMS_BUCKET, history=defaults.CLAIMS_HISTORY,
                replicas=replicas, storage=api.StorageType.FILE,
            )
            self._kv[subjects.LEASES_BUCKET] = await self.js.create_key_value(
                bucket=subjects.LEASES_BUCKET, history=1, replicas=replicas,
                storage=api.StorageType.FILE,
            )
            await self.js.create_object_store(
                bucket=subjects.FILES_BUCKET, replicas=replicas, storage=api.StorageType.FILE
            )

    async def _ensure_stream(self, cfg: api.StreamConfig) -> None:
        try:
            await self.js.add_stream(cfg)
        except nats.js.errors.APIError as exc:
            if exc.err_code != _CONFIG_MISMATCH:
                raise
            await self.js.update_stream(cfg)

    async def retrying(self, what: str, key: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        """Run an idempotent operation, retrying while the server is briefly unavailable.

        A restart or a leader election makes requests time out for a few seconds; reads and
        publishes carrying a message id are safe to repeat, so they wait it out (up to
        `defaults.RETRY_S`) instead of failing the caller.
        """
        started = anyio.current_time()
        deadline = started + defaults.RETRY_S
        while True:
            try:
                with mapped(what, key):
                    return await fn(*args, **kwargs)
            except BusUnavailableError as exc:
                self.raise_if_denied(started, what, key, exc)
                if self.nc.is_closed or anyio.current_time() > deadline:
                    raise
                log.debug("%s %s: server unavailable, retrying", what, key)
                await anyio.sleep(0.1)

    def raise_if_denied(self, since: float, what: str, key: str, cause: Exception) -> None:
        """Raise `PermissionDeniedError` if the server refused something since `since`: a
        refused request is never answered, so without this it would look like a timeout."""
        texts = [text for when, text in self.denials if when >= since]
        if texts:
            raise PermissionDeniedError(
                f"{what} {key}: the server refused it to this connection's credentials "
                f"({texts[-1]}). A token's scope limits what it may do: see `ow token check`."
            ) from cause

    # --- publishing ----------------------------------------------------------------

    def stamp(self, event: ev.Event) -> ev.Event:
        """Fill in the envelope: event id, time, org and actor where they are empty."""
        return msgspec.structs.replace(
            event,
            event_id=event.event_id or uuid7(),
            ts=event.ts or ev.now(),
            org=event.org or self.org,
            actor=event.actor or self.actor,
            sender=self.sender if type(event).__name__ in subjects.BOUND_EVENTS else "",
        )

    async def publish(self, event: ev.Event, *, expected_seq: int | None = None) -> int:
        """Publish one event (deduplicated by its id) and return its stream sequence.

        With `expected_seq`, the write succeeds only if the event's subject is still at that
        sequence (0: the subject must be empty); otherwise `ConflictError`.
        """
        event = self.stamp(event)
        subject = subjects.subject_of(event)
        headers = {"Nats-Msg-Id": event.event_id}
        if expected_seq is not None:
            headers["Nats-Expected-Last-Subject-Sequence"] = str(expected_seq)
            headers["Nats-Expected-Last-Subject-Sequence-Subject"] = subjects.aggregate_of(subject)
        ack = await self.retrying(
            "publish", subject, self.js.publish, subject, codec.encode(event), headers=headers
        )
        return ack.seq

    async def publish_batch(self, events: list[ev.Event]) -> list[int]:
        """Publish many events pipelined (publish_async) and wait for every ack."""
        futures = []
        with mapped("publish"):
            for event in events:
                event = self.stamp(event)
                futures.append(
                    await self.js.publish_async(
                        subjects.subject_of(event), codec.encode(event),
                        headers={"Nats-Msg-Id": event.event_id},
                    )
                )
            return [(await f).seq for f in futures]

    async def publish_raw(
        self, subject: str, data: bytes, msg_id: str = "", wait: bool = True
    ) -> Any:
        """Publish bytes (a metrics batch, a log chunk); returns the ack or its future."""
        headers = {"Nats-Msg-Id": msg_id} if msg_id else None
        with mapped("publish", subject):
            if wait:
                return await self.js.publish(subject, data, headers=headers)
            return await self.js.publish_async(subject, data, headers=headers)

    # --- reading -------------------------------------------------------------------

    async def _last(self, stream: str, subject: str) -> Any:
        try:
            return await self.retrying(
                "read", subject, self.js.get_last_msg, stream, subject, direct=True
            )
        except NotFoundError:
            return None

    async def last_seq(self, stream: str, subject: str) -> int:
        """Sequence of the last message on a subject (0 if it has none)."""
        msg = await self._last(stream, subject)
        return 0 if msg is None else int(msg.seq)

    async def last_raw(self, stream: str, subject: str) -> bytes | None:
        msg = await self._last(stream, subject)
        return None if msg is None else bytes(msg.data)

    async def history(
        self, subject: str, stream: str = subjects.EVENTS_STREAM
    ) -> tuple[list[Delivery], int]:
        """Every event on one subject, in order, and the last sequence read (0 if empty)."""
        last = await self.last_seq(stream, subject)
        out: list[Delivery] = []
        if last == 0:
            return out, 0
        async for d in self.subscribe(subject, stream=stream, start_seq=1, stop_at=last):
            out.append(d)
        return out, last

    async def subscribe(
        self,
        subject: str,
        *,
        stream: str = subjects.EVENTS_STREAM,
        start_seq: int | None = None,
        start_time: datetime | None = None,
        stop_at: int | None = None,
        raw: bool = False,
    ) -> AsyncIterator[Any]:
        """Ordered, gap-free delivery of a subject filter from a sequence or a time.

        Yields `Delivery` (or `(seq, subject, bytes)` with `raw`). Resumes from the last
        sequence seen if the consumer is lost (server restart), so nothing is skipped or
        repeated. Stops after `stop_at` if given. Undecodable messages are logged and skipped.
        """
        next_seq = start_seq
        while True:
            cfg = api.ConsumerConfig(deliver_policy=api.DeliverPolicy.NEW)
            if next_seq is not None:
                cfg.deliver_policy = api.DeliverPolicy.BY_START_SEQUENCE
                cfg.opt_start_seq = max(1, next_seq)
            elif start_time is not None:
                cfg.deliver_policy = api.DeliverPolicy.BY_START_TIME
                cfg.opt_start_time = start_time
            try:
                sub = await self.js.subscribe(
                    subject, stream=stream, ordered_consumer=True, config=cfg,
                    idle_heartbeat=2.0, pending_msgs_limit=-1, pending_bytes_limit=-1,
                )
            except (nats.errors.Error, TimeoutError) as exc:
                log.debug("subscribe %s failed (%s); retrying", subject, exc)
                await self._wait_connected()
                continue
            try:
                async for msg in sub.messages:
                    seq = msg.metadata.sequence.stream
                    if next_seq is not None and seq < next_seq:
                        continue
                    next_seq = seq + 1
                    if raw:
                        yield seq, msg.subject, msg.data
                    else:
                        for event in codec.decode_or_skip(msg.data, seq, msg.subject):
                            yield Delivery(seq, msg.subject, event)
                    if stop_at is not None and seq >= stop_at:
                        return
            finally:
                with contextlib.suppress(Exception):
                    await sub.unsubscribe()

    async def subscribe_batches(
        self,
        stream: str,
        subject: str,
        *,
        start_seq: int = 1,
        stop_at: int | None = None,
        max_batch: int = 10_000,
        max_bytes: int = 16 << 20,
    ) -> AsyncIterator[list[tuple[int, str, bytes, int]]]:
        """Ordered, gap-free messages of a subject filter from `start_seq`, in batches of
        `(seq, subject, data, stored_ns)`; ends after `stop_at` if given, else follows live.

        `subscribe` yields one message per `await` (an asyncio task per message in nats-py's
        iterator: about 35k messages/s); this takes the same ordered consumer with a callback
        that appends into a list (about 100k messages/s) and hands out whatever has arrived,
        at most `max_batch` messages and `max_bytes` of data (`take_batch`). With `stop_at`,
        a batch is held until it is full or reaches `stop_at`."""
        if stop_at is not None and stop_at < start_seq:
            return
        buf: list[tuple[int, str, bytes, int]] = []
        last = [start_seq - 1]
        size = [0]  # bytes in buf
        wake = [anyio.Event()]

        def full() -> bool:
            return (stop_at is None or last[0] >= stop_at or len(buf) >= max_batch
                    or size[0] >= max_bytes)

        async def on_msg(msg: Any) -> None:
            seq, ts = self._ack_meta(msg.reply)
            if seq <= last[0]:
                return  # redelivered after a consumer reset
            last[0] = seq
            buf.append((seq, msg.subject, msg.data, ts))
            size[0] += len(msg.data)
            if full():
                wake[0].set()

        cfg = api.ConsumerConfig(
            deliver_policy=api.DeliverPolicy.BY_START_SEQUENCE, opt_start_seq=max(1, start_seq)
        )
        with mapped("subscribe", subject):
            sub = await self.js.subscribe(
                subject, stream=stream, ordered_consumer=True, config=cfg, cb=on_msg,
                idle_heartbeat=2.0, pending_msgs_limit=-1, pending_bytes_limit=-1,
            )
        try:
            while True:
                await wake[0].wait()
                wake[0] = anyio.Event()
                batch = self.take_batch(buf, max_batch, max_bytes)
                size[0] = sum(len(m[2]) for m in buf)
                if buf and full():
                    wake[0].set()
                if stop_at is not None and batch and batch[-1][0] >= stop_at:
                    yield [m for m in batch if m[0] <= stop_at]
                    return
                if batch:
                    yield batch
        finally:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()

    @staticmethod
    def take_batch(buf: list[Any], max_batch: int, max_bytes: int) -> list[Any]:
        """Remove and return the first messages (`(seq, subject, data, ...)` tuples) of
        `buf`: at most `max_batch`, and at most `max_bytes` of data unless a single message
        is larger."""
        n, total = 0, 0
        for m in buf[:max_batch]:
            total += len(m[2])
            if n and total > max_bytes:
                break
            n += 1
        batch = buf[:n]
        del buf[:n]
        return batch

    @staticmethod
    def _ack_meta(reply: str) -> tuple[int, int]:
        """(stream sequence, store time in ns) from a JetStream ack subject."""
        tokens = reply.split(".")
        if len(tokens) == 9:  # $JS.ACK.<stream>.<consumer>.<dlv>.<sseq>.<cseq>.<ts>.<pending>
            return int(tokens[5]), int(tokens[7])
        # $JS.ACK.<domain>.<account>.<stream>.<consumer>.<dlv>.<sseq>.<cseq>.<ts>.<pending>...
        return int(tokens[7]), int(tokens[9])

    async def read_range(
        self, stream: str, subject: str, start_seq: int, stop_at: int
    ) -> AsyncIterator[list[tuple[int, str, bytes, int]]]:
        """Every message of a subject filter in `[start_seq, stop_at]`, in order, in lists as
        they arrive: `(seq, subject, data, stored_ns)`. Bulk catch-up (rebuilds): a
        connection of its own (`ow.core.wire`) and a flow-controlled push consumer without
        acks. Raises `wire.WireError` or `OSError` if that connection is not possible or
        breaks; the caller then reads on with `subscribe` from where this stopped."""
        url = self.nc.connected_url
        if self.wire_auth is None or url is None or url.scheme not in ("nats", ""):
            raise wire.WireError("no plain nats:// connection to reuse the credentials of")
        auth = dict(self.wire_auth)
        if url.username:
            auth = {"user": url.username, "password": url.password or ""}
        reader = await wire.WireReader.connect(url.hostname or "127.0.0.1", url.port or 4222,
                                               auth, name="ow-read-range")
        try:
            next_seq = start_seq
            while next_seq <= stop_at:
                inbox = await reader.subscribe()
                cfg = api.ConsumerConfig(
                    deliver_subject=inbox, filter_subject=subject, ack_policy=api.AckPolicy.NONE,
                    deliver_policy=api.DeliverPolicy.BY_START_SEQUENCE, opt_start_seq=next_seq,
                    flow_control=True, idle_heartbeat=2.0, mem_storage=True,
                    inactive_threshold=30.0, num_replicas=1,
                )
                with mapped("read", subject):
                    name = (await self.js.add_consumer(stream, cfg)).name
                try:
                    async for batch in self._range(reader, stream, name, stop_at):
                        next_seq = batch[-1][0] + 1
                        yield batch
                    return
                except _Gap:
                    log.debug("read_range %s: gap after seq %s; new consumer", subject, next_seq)
                finally:
                    with contextlib.suppress(Exception):
                        await self.js.delete_consumer(stream, name)
        finally:
            await reader.aclose()

    async def _range(
        self, reader: wire.WireReader, stream: str, name: str, stop_at: int
    ) -> AsyncIterator[list[tuple[int, str, bytes, int]]]:
        """One consumer's deliveries up to `stop_at`; raises _Gap if one went missing."""
        cseq = 0
        while True:
            frame = await reader.receive()
            out: list[tuple[int, str, bytes, int]] = []
            done = False
            for subj, reply, data in frame.data:
                t = reply.split(b".")
                i = 5 if len(t) == 9 else 7  # $JS.ACK.[<domain>.<hash>.]<stream>.<consumer>.<n>
                if int(t[i + 1]) != cseq + 1:
                    if out:
                        yield out
                    raise _Gap
                cseq, seq = cseq + 1, int(t[i])
                if seq > stop_at:  # `stop_at` need not be a message of the filter
                    done = True
                    break
                out.append((seq, subj, data, int(t[i + 2])))
                if seq == stop_at or t[i + 3] == b"0":  # nothing after it exists any more
                    done = True
                    break
            if out:
                yield out
            if done:
                return
            for header in frame.status:
                last = wire.header_int(header, b"Nats-Last-Consumer")
                if last > cseq:
                    raise _Gap
                if b"Idle Heartbeat" in header.split(b"\r\n", 1)[0]:
                    with mapped("read", name):
                        info = await self.js.consumer_info(stream, name)
                    if not info.num_pending:
                        return  # idle with nothing pending: the rest of the range is gone

    async def _wait_connected(self) -> None:
        with anyio.move_on_after(30):
            while not self.nc.is_connected:
                if self.nc.is_closed:
                    raise BusUnavailableError("the NATS connection is closed")
                await anyio.sleep(0.05)

    # --- key/value -----------------------------------------------------------------

    async def kv(self, bucket: str) -> Any:
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
        await self._wait_connected()
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

    # --- dispatch ------------------------------------------------------------------

    async def dispatch_subscription(self, org: str) -> Any:
        """The org's shared pull consumer over job events: each is handed to one agent."""
        durable = subjects.dispatch_consumer(org)
        cfg = api.ConsumerConfig(
            durable_name=durable,
            filter_subjects=subjects.dispatch_filters(org),
            ack_policy=api.AckPolicy.EXPLICIT,
            ack_wait=defaults.DISPATCH_ACK_WAIT_S,
            max_ack_pending=10_000,
            deliver_policy=api.DeliverPolicy.ALL,
        )
        with mapped("dispatch consumer", durable):
            return await self.js.pull_subscribe(
                "", durable=durable, stream=subjects.EVENTS_STREAM, config=cfg
            )

    async def dispatch(self, org: str) -> Dispatch:
        """The org's dispatch consumer as typed `Offer`s (see `Dispatch`)."""
        return Dispatch(self, org, await self.dispatch_subscription(org))


    # --- services (request/reply) ------------------------------------------------
    # A `nats.micro` service whose endpoints answer requests, and the request door. Kept
    # together and apart from the rest: nothing else of the bus depends on it.

    async def serve(
        self,
        name: str,
        endpoints: dict[str, str],
        handle: Handler,
        *,
        concurrency: int = defaults.QUERY_CONCURRENCY,
        task_status: Any = anyio.TASK_STATUS_IGNORED,
    ) -> None:
        """Answer requests on `endpoints` ({endpoint name: subject}) until cancelled.

        `await handle(endpoint, data) -> bytes` runs in a task of its own per request (up to
        `concurrency` at once), so one slow answer does not hold up the others. A handler
        that raises answers an error: `ServiceFault(code, text)` as given, anything else
        as code 500 with the exception's text; the service goes on either way."""
        import nats.micro

        sem = anyio.Semaphore(concurrency)
        send, receive = anyio.create_memory_object_stream[tuple[str, Any]](10_000)

        def endpoint(ep: str) -> Any:
            async def on_request(req: Any) -> None:
                await send.send((ep, req))  # answered by the task group below
            return on_request

        async def answer(ep: str, req: Any) -> None:
            async with sem:
                try:
                    data = await handle(ep, req.data)
                except ServiceFault as exc:
                    await _respond_error(req, exc.code, exc.text, exc.data)
                except Exception as exc:  # a handler error never stops the service
                    log.exception("service %s: %s failed", name, ep)
                    await _respond_error(req, "500", f"{type(exc).__name__}: {exc}", b"")
                else:
                    with contextlib.suppress(Exception):
                        await req.respond(data)

        with mapped("start service", name):
            svc = await nats.micro.add_service(self.nc, name=name, version="1.0.0")
            for ep, subject in endpoints.items():
                await svc.add_endpoint(name=ep, subject=subject, handler=endpoint(ep))
            await self.nc.flush()  # the server knows every endpoint before `started`
        try:
            async with anyio.create_task_group() as tg, receive:
                task_status.started()
                async for ep, req in receive:
                    tg.start_soon(answer, ep, req)
        finally:
            with anyio.CancelScope(shield=True), contextlib.suppress(Exception):
                await svc.stop()

    async def request(
        self, subject: str, data: bytes, timeout: float = defaults.QUERY_TIMEOUT_S  # noqa: ASYNC109
    ) -> Reply:
        """Ask a service; `NoServiceError` if none listens on the subject."""
        started = anyio.current_time()
        with mapped("request", subject):
            try:
                msg = await self.nc.request(subject, data, timeout=timeout)
            except nats.errors.NoRespondersError as exc:
                raise NoServiceError(f"no service answers {subject}") from exc
            except (nats.errors.TimeoutError, TimeoutError) as exc:
                self.raise_if_denied(started, "request", subject, exc)
                raise BusUnavailableError(
                    f"request {subject}: no answer in {timeout}s (the service is busy or stuck)"
                ) from exc
        headers = msg.headers or {}
        code = headers.get("Nats-Service-Error-Code", "")
        return Reply(msg.data, code, headers.get("Nats-Service-Error", "") if code else "")



@dataclass(frozen=True, slots=True)
class Offer:
    """One dispatched job event: `take()` acknowledges it (the job needs this event no more),
    `give_back(delay_s)` hands it back to be offered again (to any agent) after a delay."""

    events: list[ev.Event]  # [] when undecodable
    seq: int
    delivered: int  # 1 on the first delivery
    _msg: Any

    async def take(self) -> None:
        with contextlib.suppress(nats.errors.Error, TimeoutError):  # redelivered: dropped then
            await self._msg.ack()

    async def give_back(self, delay_s: float) -> None:
        with contextlib.suppress(nats.errors.Error, TimeoutError):  # redelivered after ack_wait
            await self._msg.nak(delay=delay_s)


class Dispatch:
    """A pull loop over the org's dispatch consumer that survives a server restart: a fetch
    that times out is no offer, and any other failure waits for the connection and pulls
    through a new subscription of the (durable, unchanged) consumer."""

    def __init__(self, bus: Bus, org: str, sub: Any):
        self._bus, self._org, self._sub = bus, org, sub

    async def next(self, timeout_s: float = 5.0) -> list[Offer]:
        """The next offers (at most one), or [] after `timeout_s` or a failure."""
        try:
            msgs = await self._sub.fetch(1, timeout=timeout_s)
        except (nats.errors.TimeoutError, TimeoutError):
            return []
        except nats.errors.Error as exc:
            log.warning("dispatch fetch failed (%s); pulling again", exc)
            await self._renew()
            return []
        return [
            Offer(codec.decode_or_skip(m.data, m.metadata.sequence.stream, m.subject),
                  m.metadata.sequence.stream, m.metadata.num_delivered, m)
            for m in msgs
        ]

    async def _renew(self) -> None:
        with contextlib.suppress(Exception):
            await self._sub.unsubscribe()
        while True:
            await self._bus._wait_connected()
            try:
                self._sub = await self._bus.dispatch_subscription(self._org)
                return
            except (OWError, nats.errors.Error, TimeoutError) as exc:
                log.warning("dispatch consumer not available yet (%s); retrying", exc)
                await anyio.sleep(0.5)


class ServiceFault(Exception):
    """Raised by a service handler: answer with this error code, text and body."""

    def __init__(self, code: str, text: str, data: bytes = b""):
        super().__init__(text)
        self.code, self.text, self.data = code, text, data


async def _respond_error(req: Any, code: str, text: str, data: bytes) -> None:
    with contextlib.suppress(Exception):  # the asker may be gone
        await req.respond_error(code, " ".join(text.split())[:500], data)
