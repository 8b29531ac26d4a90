"""What the bus hands out instead of its JetStream context: KV buckets (made only when
asked), and the one reader's choice between its two ways to read."""

from __future__ import annotations

import logging

import pytest

from ow.core import subjects
from ow.core.errors import NotFoundError

pytestmark = pytest.mark.anyio


async def test_a_kv_bucket_is_made_only_when_asked(bus):
    name = f"ow_test_kv_{bus.org}"
    with pytest.raises(NotFoundError, match=name):
        await bus.kv(name)
    made = await bus.kv(name, create=True, history=1)
    await made.put("k", b"v")
    assert (await bus.kv_get(name, "k")).value == b"v"
    assert await bus.kv(name, create=True) is not None  # made twice: the same bucket
    assert (await bus.kv_get(name, "k")).value == b"v"


async def test_the_bulk_reader_is_tried_for_long_bounded_reads_only(bus, caplog):
    subject = subjects.metric_subject(bus.org, "span")
    for i in range(30):
        await bus.publish_raw(subject, b'{"i":%d}' % i)
    last = await bus.last_seq(subjects.METRICS_STREAM, subject)
    bus.wire_auth = None  # a bulk read fails at once, and says so in the log
    caplog.set_level(logging.INFO, logger="ow.core.bus._read")

    async def read(**kw) -> list[int]:
        return [m.seq async for batch in bus.read(subjects.METRICS_STREAM, subject,
                                                   stop_at=last, **kw) for m in batch]

    bus.bulk_from = last + 1  # a span shorter than that: nats-py only
    short = await read()
    assert not [r for r in caplog.records if "bulk read" in r.getMessage()]
    bus.bulk_from = 1
    long = await read()
    assert [r for r in caplog.records if "bulk read" in r.getMessage()]  # tried, fell back
    caplog.clear()
    assert await read(bulk_ok=False) == long == short  # `subscribe`'s way: never tried
    assert not [r for r in caplog.records if "bulk read" in r.getMessage()]
    assert len(short) == 30
    assert short[-1] == last
