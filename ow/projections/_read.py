"""Batched, gap-free reading of one stream filter, for folding into DuckDB.

Catching up reads through `Bus.read_range` (bulk, its own connection) and holds batches
until they are worth a commit; following live, and where the bulk read cannot run, it reads
through `Bus.subscribe_batches` (a batched ordered consumer). Both are the bus's: nats is
imported only under `ow.core.bus` (a contract in pyproject).

Imports: `ow.core`.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import NamedTuple

from ow.core.bus import READ_RANGE_ERRORS, Bus

__all__ = ["Msg", "read_batches"]

log = logging.getLogger(__name__)


class Msg(NamedTuple):
    seq: int
    subject: str
    data: bytes
    time_ns: int  # when the server stored it


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
                    batch = Bus.take_batch(buf, max_batch, max_bytes)
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
    async for part in bus.subscribe_batches(stream, subject_filter, start_seq=start_seq,
                                            stop_at=stop_at, max_batch=max_batch,
                                            max_bytes=max_bytes):
        yield list(map(Msg._make, part))
