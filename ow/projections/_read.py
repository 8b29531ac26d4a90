"""Batched, gap-free reading of one stream filter, for folding into DuckDB.

`bus.subscribe` yields one message per `await` (an asyncio task per message in nats-py's
iterator: about 35k messages/s). A projection needs batches, so this reader takes the same
ordered consumer with a callback that appends into a list (about 100k messages/s) and hands
out whatever has arrived as one batch. It only uses `Bus.js` and `ow.core.bus.mapped`; if
another reader needs the same speed it belongs in `ow.core.bus`.

Imports: anyio, nats (through the bus's JetStream context) and `ow.core`.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any, NamedTuple

import anyio

from ow.core.bus import READ_RANGE_ERRORS, Bus, mapped

__all__ = ["Msg", "read_batches"]

log = logging.getLogger(__name__)


class Msg(NamedTuple):
    seq: int
    subject: str
    data: bytes
    time_ns: int  # when the server stored it


def _meta(reply: str) -> tuple[int, int]:
    """(stream sequence, store time in ns) from a JetStream ack subject."""
    tokens = reply.split(".")
    if len(tokens) == 9:  # $JS.ACK.<stream>.<consumer>.<dlv>.<sseq>.<cseq>.<ts>.<pending>
        return int(tokens[5]), int(tokens[7])
    # $JS.ACK.<domain>.<account>.<stream>.<consumer>.<dlv>.<sseq>.<cseq>.<ts>.<pending>...
    return int(tokens[7]), int(tokens[9])


def _take(buf: list[Msg], max_batch: int, max_bytes: int) -> list[Msg]:
    """Remove and return the first messages of `buf`: at most `max_batch`, and at most
    `max_bytes` of data unless a single message is larger."""
    n, total = 0, 0
    for m in buf[:max_batch]:
        total += len(m.data)
        if n and total > max_bytes:
            break
        n += 1
    batch = buf[:n]
    del buf[:n]
    return batch


async def read_batches(
    bus: Bus,
    stream: str,
    subject_filter: str,
    *,
    start_seq: int = 1,
    stop_at: int | None = None,
    max_batch: int = 10_000,
    max_bytes: int = 16 << 20,
) -> AsyncIterator[list[Msg]]:
    """Batches of messages from `start_seq` on, in order; ends after `stop_at` if given.

    With `stop_at` (catching up), a batch is held until it has `max_batch` messages or
    `max_bytes` of data or reaches `stop_at`: a commit per few messages would cost more than
    the messages. Catching up reads through `bus.read_range` (bulk, its own connection)
    where it can; following live, whatever has arrived is handed out at once."""
    if stop_at is not None and stop_at < start_seq:
        return
    if stop_at is not None:
        buf: list[Msg] = []
        size = 0
        try:
            async for part in bus.read_range(stream, subject_filter, start_seq, stop_at):
                buf += map(Msg._make, part)
                size += sum(len(m[2]) for m in part)
                start_seq = part[-1][0] + 1
                while buf and (len(buf) >= max_batch or size >= max_bytes):
                    batch = _take(buf, max_batch, max_bytes)
                    size -= sum(len(m.data) for m in batch)
                    yield batch
        except READ_RANGE_ERRORS as exc:
            log.info("bulk read of %s stopped (%s); reading on through nats-py", stream, exc)
        else:
            if buf:
                yield buf
            return
        if buf:
            yield buf
        if start_seq > stop_at:
            return
    async for batch in _subscribed(bus, stream, subject_filter, start_seq=start_seq,
                                   stop_at=stop_at, max_batch=max_batch, max_bytes=max_bytes):
        yield batch


async def _subscribed(
    bus: Bus,
    stream: str,
    subject_filter: str,
    *,
    start_seq: int,
    stop_at: int | None,
    max_batch: int,
    max_bytes: int,
) -> AsyncIterator[list[Msg]]:
    """`read_batches` through a nats-py ordered consumer (following live, or a fallback)."""
    from nats.js import api

    if stop_at is not None and stop_at < start_seq:
        return
    buf: list[Msg] = []
    last = [start_seq - 1]
    size = [0]  # bytes in buf
    wake = [anyio.Event()]

    def full() -> bool:
        return (stop_at is None or last[0] >= stop_at or len(buf) >= max_batch
                or size[0] >= max_bytes)

    async def on_msg(msg: Any) -> None:
        seq, ts = _meta(msg.reply)
        if seq <= last[0]:
            return  # redelivered after a consumer reset
        last[0] = seq
        buf.append(Msg(seq, msg.subject, msg.data, ts))
        size[0] += len(msg.data)
        if full():
            wake[0].set()

    cfg = api.ConsumerConfig(
        deliver_policy=api.DeliverPolicy.BY_START_SEQUENCE, opt_start_seq=max(1, start_seq)
    )
    with mapped("subscribe", subject_filter):
        sub = await bus.js.subscribe(
            subject_filter, stream=stream, ordered_consumer=True, config=cfg, cb=on_msg,
            idle_heartbeat=2.0, pending_msgs_limit=-1, pending_bytes_limit=-1,
        )
    try:
        while True:
            await wake[0].wait()
            wake[0] = anyio.Event()
            batch, size[0] = _take(buf, max_batch, max_bytes), sum(len(m.data) for m in buf)
            if buf and full():
                wake[0].set()
            if stop_at is not None and batch and batch[-1].seq >= stop_at:
                yield [m for m in batch if m.seq <= stop_at]
                return
            if batch:
                yield batch
    finally:
        with contextlib.suppress(Exception):
            await sub.unsubscribe()
