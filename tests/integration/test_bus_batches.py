"""`follow`, the batched ordered consumer under `Bus.read` (live reads, and bounded ones
too short for the bulk reader), against a real server.

It must give exactly what the bulk reader gives (same messages, order), from a start
sequence, in batches no larger than asked, end at `stop_at`, and follow live without one.
"""

from __future__ import annotations

import anyio
import pytest

from ow.core import subjects
from ow.core.bus._read import bulk, follow, take_batch

pytestmark = pytest.mark.anyio


async def _publish(bus, n: int, start: int = 0) -> str:
    subject = subjects.metric_subject(bus.org, "rb")
    futures = [await bus.publish_raw(subject, b'{"i":%d}' % i, wait=False)
               for i in range(start, start + n)]
    for f in futures:
        await f
    return subject


async def _batches(bus, subject: str, **kw) -> list[list[tuple]]:
    return [b async for b in follow(bus, subjects.METRICS_STREAM, subject, **kw)]


async def test_gives_what_subscribe_gives_in_batches_no_larger_than_asked(bus):
    subject = await _publish(bus, 250)
    last = await bus.last_seq(subjects.METRICS_STREAM, subject)
    want = [(s, subj, bytes(d)) async for part in bulk(bus, subjects.METRICS_STREAM, subject,
                                                       1, last) for s, subj, d, _ in part]
    batches = await _batches(bus, subject, stop_at=last, max_batch=40)
    assert all(0 < len(b) <= 40 for b in batches)
    got = [(s, subj, bytes(d)) for b in batches for s, subj, d, _ in b]
    assert got == want
    assert all(ns > 0 for b in batches for *_, ns in b)  # the store time, from the ack


async def test_starts_at_a_sequence_and_stops_at_stop_at(bus):
    subject = await _publish(bus, 30)
    seqs = [s async for s, _, _ in bus.subscribe(
        subject, stream=subjects.METRICS_STREAM, start_seq=1,
        stop_at=await bus.last_seq(subjects.METRICS_STREAM, subject), raw=True)]
    got = [m[0] for b in await _batches(bus, subject, start_seq=seqs[10], stop_at=seqs[19])
           for m in b]
    assert got == seqs[10:20]
    assert await _batches(bus, subject, start_seq=seqs[5], stop_at=seqs[4]) == []


async def test_a_byte_limit_splits_batches_but_never_drops_a_large_message(bus):
    subject = subjects.metric_subject(bus.org, "big")
    for size in (10, 5000, 10, 10):
        await bus.publish_raw(subject, b"x" * size)
    last = await bus.last_seq(subjects.METRICS_STREAM, subject)
    batches = await _batches(bus, subject, stop_at=last, max_bytes=100)
    assert [len(m[2]) for b in batches for m in b] == [10, 5000, 10, 10]
    assert all(sum(len(m[2]) for m in b) <= 100 or len(b) == 1 for b in batches)


async def test_follows_live_without_stop_at(bus):
    subject = await _publish(bus, 3)
    seen: list[bytes] = []
    done = anyio.Event()

    async def live() -> None:
        async for batch in follow(bus, subjects.METRICS_STREAM, subject):
            seen.extend(bytes(m[2]) for m in batch)
            if len(seen) >= 8:
                done.set()
                return

    with anyio.fail_after(20):
        async with anyio.create_task_group() as tg:
            tg.start_soon(live)
            await _publish(bus, 5, start=3)
            await done.wait()
    assert seen == [b'{"i":%d}' % i for i in range(8)]


def test_take_batch_cuts_by_count_and_bytes():
    buf = [(i, "s", b"x" * n, 0) for i, n in enumerate([3, 3, 3, 9, 1])]
    assert [m[0] for m in take_batch(buf, 2, 100)] == [0, 1]
    assert [m[0] for m in take_batch(buf, 10, 5)] == [2]
    assert [m[0] for m in take_batch(buf, 10, 5)] == [3]  # larger than the limit: alone
    assert [m[0] for m in take_batch(buf, 10, 5)] == [4]
    assert buf == []
