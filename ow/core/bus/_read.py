"""The one reader of the log: `Bus.read(stream, filter, start, stop) -> batches`.

Everything that reads a stream goes through `read`: the projections (catch-up, rebuild,
following live), the SDK's job fold, `history`, and `subscribe` (one message at a time, for
the live commands and the dashboard). Two ways to read sit inside it, and it picks:

- bounded and long (`stop_at` given, a span of at least `bus.bulk_from` sequences; not for
  `subscribe`, whose reads are mostly one aggregate's few events): the bulk reader, a
  connection of its own (`_wire.py`) and a flow-controlled push consumer without acks
  (~3 µs a message). If that connection is not possible (a credentials file, TLS) or
  breaks, it reads on through the ordered consumer from where it stopped;
- otherwise: nats-py's ordered consumer with a callback that appends into a list (`follow`,
  ~100k messages/s; its per-message iterator does ~35k/s), from a sequence, a time or now,
  resubscribed from the last sequence seen if subscribing fails (a server restart).

Batches are lists of `Msg(seq, subject, data, time_ns)`, in order, without gap or duplicate.
With `stop_at`, a batch is held until it has `max_batch` messages or `max_bytes` of data or
reaches `stop_at` (a projection commits per batch); following live, whatever has arrived is
handed out at once.

Imports: stdlib, anyio, nats and `ow.core`.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

import anyio
import nats.errors
from nats.aio.msg import Msg as NatsMsg
from nats.js import api

from ow.core import codec, subjects
from ow.core import events as ev
from ow.core.bus import _wire
from ow.core.bus._base import BusBase
from ow.core.bus._errors import mapped
from ow.core.errors import BusUnavailableError, NotFoundError, WireError

__all__ = ["Delivery", "Msg", "ReadMixin", "bulk", "follow", "take_batch"]

log = logging.getLogger(__name__)

#: what `bulk` raises when its own connection cannot be made or breaks: `read` then reads
#: on through `follow` from where it stopped
BULK_ERRORS = (WireError, OSError, anyio.EndOfStream, anyio.BrokenResourceError)

_MAX_BATCH = 10_000
_MAX_BYTES = 16 << 20


class Msg(NamedTuple):
    """One stored message as read: stream sequence, subject, bytes, when the server stored it."""

    seq: int
    subject: str
    data: bytes
    time_ns: int


@dataclass(frozen=True, slots=True)
class Delivery:
    """One stored message: its stream sequence, subject and decoded event."""

    seq: int
    subject: str
    event: ev.Event


class _Gap(Exception):
    """A bulk read's consumer skipped a delivery: read on with a new consumer."""


class ReadMixin(BusBase):
    """`read` (the one reader), and what is built on it: `history`, `subscribe`; plus the
    direct gets `last_seq`, `last_raw` and `next_raw`."""

    async def read(
        self,
        stream: str,
        subject_filter: str,
        *,
        start_seq: int | None = 1,
        start_time: datetime | None = None,
        stop_at: int | None = None,
        max_batch: int = _MAX_BATCH,
        max_bytes: int = _MAX_BYTES,
        bulk_ok: bool = True,
    ) -> AsyncIterator[list[Msg]]:
        """Batches of messages from `start_seq` (or, if it is None, from `start_time`, or
        from now) on, in order; ends after `stop_at` if given, else follows live.

        `bulk_ok=False` never opens the bulk reader's connection (`subscribe`, so `history`:
        mostly one aggregate's few events, where the span of sequences says nothing)."""
        if stop_at is not None and start_seq is not None and stop_at < start_seq:
            return
        if (bulk_ok and stop_at is not None and start_seq is not None
                and stop_at - start_seq >= self.bulk_from):
            held, complete = _Held(max_batch, max_bytes), False
            parts = bulk(self, stream, subject_filter, start_seq, stop_at)
            try:
                async with contextlib.aclosing(parts):  # its consumer goes when we stop
                    async for part in parts:
                        start_seq = part[-1].seq + 1
                        for batch in held.add(part):
                            yield batch
                complete = True
            except BULK_ERRORS as exc:
                log.info("bulk read of %s stopped (%s); reading on through nats-py", stream, exc)
            if held.buf:
                yield held.buf
            if complete or start_seq > stop_at:
                return
        batches = follow(self, stream, subject_filter, start_seq=start_seq,
                         start_time=start_time, stop_at=stop_at,
                         max_batch=max_batch, max_bytes=max_bytes)
        async with contextlib.aclosing(batches):  # its subscription goes when we stop
            async for batch in batches:
                yield batch

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
        """Ordered, gap-free delivery of a subject filter from a sequence or a time (or from
        now), one message at a time: `read` unbatched.

        Yields `Delivery` (or `(seq, subject, bytes)` with `raw`). Stops after `stop_at` if
        given. Undecodable messages are logged and skipped.
        """
        batches = self.read(stream, subject, start_seq=start_seq, start_time=start_time,
                            stop_at=stop_at, bulk_ok=False)
        async with contextlib.aclosing(batches):
            async for batch in batches:
                for seq, subj, data, _ in batch:
                    if raw:
                        yield seq, subj, data
                    else:
                        for event in codec.decode_or_skip(data, seq, subj):
                            yield Delivery(seq, subj, event)

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

    async def stream_last_seq(self, stream: str) -> int:
        """The stream's last sequence, whatever its subject: one cheap request (0.3 ms),
        where `last_seq` of a wildcard makes the server walk every subject (45 ms at 100k
        jobs)."""
        info = await self.retrying("read", stream, self.js.stream_info, stream)
        return int(info.state.last_seq)

    async def last_raw(self, stream: str, subject: str) -> bytes | None:
        msg = await self._last(stream, subject)
        return None if msg is None else bytes(msg.data)


class _Held:
    """Parts of a bounded read held into batches of `max_batch` messages / `max_bytes`."""

    def __init__(self, max_batch: int, max_bytes: int):
        self.buf: list[Msg] = []
        self.size = 0
        self.max_batch, self.max_bytes = max_batch, max_bytes

    def add(self, part: list[Msg]) -> list[list[Msg]]:
        self.buf += part
        self.size += sum(len(m.data) for m in part)
        out = []
        while self.buf and (len(self.buf) >= self.max_batch or self.size >= self.max_bytes):
            batch = take_batch(self.buf, self.max_batch, self.max_bytes)
            self.size -= sum(len(m.data) for m in batch)
            out.append(batch)
        return out


def take_batch(buf: list[Any], max_batch: int, max_bytes: int) -> list[Any]:
    """Remove and return the first messages (`(seq, subject, data, ...)` tuples) of `buf`:
    at most `max_batch`, and at most `max_bytes` of data unless a single message is larger."""
    n, total = 0, 0
    for m in buf[:max_batch]:
        total += len(m[2])
        if n and total > max_bytes:
            break
        n += 1
    batch = buf[:n]
    del buf[:n]
    return batch


def _ack_meta(reply: str) -> tuple[int, int]:
    """(stream sequence, store time in ns) from a JetStream ack subject."""
    tokens = reply.split(".")
    if len(tokens) == 9:  # $JS.ACK.<stream>.<consumer>.<dlv>.<sseq>.<cseq>.<ts>.<pending>
        return int(tokens[5]), int(tokens[7])
    # $JS.ACK.<domain>.<account>.<stream>.<consumer>.<dlv>.<sseq>.<cseq>.<ts>.<pending>...
    return int(tokens[7]), int(tokens[9])


class _Follower:
    """The state of one `follow`: what has arrived, and when a batch is due."""

    def __init__(self, last: int, stop_at: int | None, max_batch: int, max_bytes: int):
        self.buf: list[Msg] = []
        self.last = last  # the last sequence received
        self.size = 0  # bytes in buf
        self.wake = anyio.Event()
        self.stop_at, self.max_batch, self.max_bytes = stop_at, max_batch, max_bytes

    def full(self) -> bool:
        return (self.stop_at is None or self.last >= self.stop_at
                or len(self.buf) >= self.max_batch or self.size >= self.max_bytes)

    async def on_msg(self, msg: NatsMsg) -> None:
        seq, ts = _ack_meta(msg.reply)
        if seq <= self.last:
            return  # redelivered after a consumer reset
        self.last = seq
        self.buf.append(Msg(seq, msg.subject, msg.data, ts))
        self.size += len(msg.data)
        if self.full():
            self.wake.set()

    def take(self) -> list[Msg]:
        self.wake = anyio.Event()
        batch = take_batch(self.buf, self.max_batch, self.max_bytes)
        self.size = sum(len(m.data) for m in self.buf)
        if self.buf and self.full():
            self.wake.set()
        return batch

    def config(self, start_seq: int | None, start_time: datetime | None) -> api.ConsumerConfig:
        """Where the (next) consumer starts: after what has arrived, else as asked."""
        if self.last or start_seq is not None:
            return api.ConsumerConfig(deliver_policy=api.DeliverPolicy.BY_START_SEQUENCE,
                                      opt_start_seq=max(1, self.last + 1))
        if start_time is not None:
            return api.ConsumerConfig(deliver_policy=api.DeliverPolicy.BY_START_TIME,
                                      opt_start_time=start_time)
        return api.ConsumerConfig(deliver_policy=api.DeliverPolicy.NEW)


async def follow(
    bus: BusBase,
    stream: str,
    subject: str,
    *,
    start_seq: int | None = 1,
    start_time: datetime | None = None,
    stop_at: int | None = None,
    max_batch: int = _MAX_BATCH,
    max_bytes: int = _MAX_BYTES,
) -> AsyncIterator[list[Msg]]:
    """`read` through nats-py's ordered consumer: batches of whatever has arrived (held
    until full or at `stop_at` if given); ends after `stop_at`, else follows live.
    `BusUnavailableError` once the connection is closed for good."""
    if stop_at is not None and start_seq is not None and stop_at < start_seq:
        return
    state = _Follower((start_seq or 1) - 1, stop_at, max_batch, max_bytes)
    sub = None
    try:
        while sub is None:
            try:
                sub = await bus.js.subscribe(
                    subject, stream=stream, ordered_consumer=True, cb=state.on_msg,
                    config=state.config(start_seq, start_time), idle_heartbeat=2.0,
                    pending_msgs_limit=-1, pending_bytes_limit=-1,
                )
            except (nats.errors.Error, TimeoutError) as exc:
                log.debug("subscribe %s failed (%s); retrying", subject, exc)
                await bus.wait_connected()
        while True:
            with anyio.move_on_after(1):
                await state.wake.wait()
            if not state.wake.is_set():
                if bus.nc.is_closed:
                    raise BusUnavailableError("the NATS connection is closed")
                continue
            batch = state.take()
            if stop_at is not None and batch and batch[-1].seq >= stop_at:
                yield [m for m in batch if m.seq <= stop_at]
                return
            if batch:
                yield batch
    finally:
        if sub is not None:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()


async def bulk(
    bus: BusBase, stream: str, subject: str, start_seq: int, stop_at: int
) -> AsyncIterator[list[Msg]]:
    """Every message of a subject filter in `[start_seq, stop_at]`, in order, in lists as
    they arrive, through a connection of its own (`_wire.py`) and a flow-controlled push
    consumer without acks. Raises one of `BULK_ERRORS` if that connection is not possible
    or breaks; `read` then reads on from where this stopped."""
    url = bus.nc.connected_url
    if bus.wire_auth is None or url is None or url.scheme not in ("nats", ""):
        raise WireError("no plain nats:// connection to reuse the credentials of")
    auth = dict(bus.wire_auth)
    if url.username:
        auth = {"user": url.username, "password": url.password or ""}
    reader = await _wire.WireReader.connect(url.hostname or "127.0.0.1", url.port or 4222,
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
                name = (await bus.js.add_consumer(stream, cfg)).name
            try:
                async for batch in _range(bus, reader, stream, name, stop_at):
                    next_seq = batch[-1].seq + 1
                    yield batch
                return
            except _Gap:
                log.debug("bulk read %s: gap after seq %s; new consumer", subject, next_seq)
            finally:
                with contextlib.suppress(Exception):
                    await bus.js.delete_consumer(stream, name)
    finally:
        await reader.aclose()


async def _range(
    bus: BusBase, reader: _wire.WireReader, stream: str, name: str, stop_at: int
) -> AsyncIterator[list[Msg]]:
    """One consumer's deliveries up to `stop_at`; raises _Gap if one went missing."""
    cseq = 0
    while True:
        frame = await reader.receive()
        out: list[Msg] = []
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
            out.append(Msg(seq, subj, data, int(t[i + 2])))
            if seq == stop_at or t[i + 3] == b"0":  # nothing after it exists any more
                done = True
                break
        if out:
            yield out
        if done:
            return
        for header in frame.status:
            last = _wire.header_int(header, b"Nats-Last-Consumer")
            if last > cseq:
                raise _Gap
            if b"Idle Heartbeat" in header.split(b"\r\n", 1)[0]:
                with mapped("read", name):
                    info = await bus.js.consumer_info(stream, name)
                if not info.num_pending:
                    return  # idle with nothing pending: the rest of the range is gone
