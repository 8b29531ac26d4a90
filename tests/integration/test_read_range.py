"""The bulk reader under `Bus.read` (catch-up reads over `ow.core.bus._wire`), against a
real server.

It must give exactly what the ordered consumer gives (same messages, order, times), stop at
`stop_at`, end when the rest of the range is gone, survive flow control on a large read,
work with tenancy credentials, and leave the fallback to nats-py when it cannot run.
"""

from __future__ import annotations

import pytest

from ow.core import bus as bus_mod
from ow.core import subjects
from ow.core import tenancy as tn
from ow.core.bus import WireError
from ow.core.bus._read import bulk

from .test_tenancy import ORGS, admin_bus, tenants  # noqa: F401 - the fixture

pytestmark = pytest.mark.anyio


async def _publish(bus, n: int, size: int = 40) -> tuple[str, str]:
    """n messages alternating between two subjects of the metrics stream."""
    a, b = subjects.metric_subject(bus.org, "ra"), subjects.metric_subject(bus.org, "rb")
    futures = [
        await bus.publish_raw(a if i % 2 else b, b'{"i":%d,"pad":"%s"}' % (i, b"x" * size),
                              wait=False)
        for i in range(n)
    ]
    for f in futures:
        await f
    return a, b


async def _ordered(bus, subject: str, start: int, stop: int) -> list[tuple]:
    out = []
    async for seq, subj, data in bus.subscribe(subject, stream=subjects.METRICS_STREAM,
                                               start_seq=start, stop_at=stop, raw=True):
        out.append((seq, subj, bytes(data)))
    return out


async def _ranged(bus, subject: str, start: int, stop: int) -> list[tuple]:
    out = []
    async for part in bulk(bus, subjects.METRICS_STREAM, subject, start, stop):
        out += part
    return out


async def test_gives_what_the_ordered_consumer_gives_and_stops_at_stop(bus):
    a, _ = await _publish(bus, 400)
    last = await bus.last_seq(subjects.METRICS_STREAM, a)
    first = (await _ordered(bus, a, 1, last))[0][0]
    start, stop = first + 20, last - 30  # a window inside the subject's messages
    want = await _ordered(bus, a, start, stop)
    got = await _ranged(bus, a, start, stop)
    assert [(s, subj, d) for s, subj, d, _ in got] == want
    assert all(start <= s <= stop for s, *_ in got)
    assert len(got) == len(want) > 100
    times = [t for *_, t in got]
    assert times == sorted(times)
    assert times[0] > 1_600_000_000 * 10**9


async def test_a_stop_between_the_subjects_messages_is_not_passed(bus):
    """`stop_at` need not be a message of the filter (a replay's cut on another org's
    event): the first message after it must not be read."""
    a, _ = await _publish(bus, 100)
    last = await bus.last_seq(subjects.METRICS_STREAM, a)
    got = await _ranged(bus, a, 1, last - 31)  # the other subject's message
    assert got[-1][0] == last - 32
    assert len(got) == 34


async def test_ends_when_the_rest_of_the_range_is_gone(bus):
    a, _ = await _publish(bus, 50)
    last = await bus.last_seq(subjects.METRICS_STREAM, a)
    got = await _ranged(bus, a, 1, last + 1000)  # nothing after `last` exists
    assert got[-1][0] == last
    assert len(got) == 25


async def test_an_empty_range_ends_after_an_idle_heartbeat(bus):
    a, _ = await _publish(bus, 4)
    last = await bus.last_seq(subjects.METRICS_STREAM, a)
    assert await _ranged(bus, a, last + 1, last + 10) == []


async def test_a_large_read_goes_through_flow_control(bus):
    a, _ = await _publish(bus, 3000, size=16_000)  # ~48 MB on the wire, 24 MB on `a`
    last = await bus.last_seq(subjects.METRICS_STREAM, a)
    got = await _ranged(bus, a, 1, last)
    assert len(got) == 1500
    assert got[-1][0] == last
    assert [int(d.split(b",")[0][5:]) for _, _, d, _ in got] == list(range(1, 3000, 2))


async def test_read_falls_back_to_nats_py_where_wire_cannot_run(bus):
    a, _ = await _publish(bus, 200)
    last = await bus.last_seq(subjects.METRICS_STREAM, a)
    bus.wire_auth = None  # as with a credentials file: the bulk reader refuses
    bus.bulk_from = 1  # a span this short would not try it
    with pytest.raises(WireError):
        await _ranged(bus, a, 1, last)
    got = [m async for batch in bus.read(subjects.METRICS_STREAM, a, stop_at=last)
           for m in batch]
    assert len(got) == 100
    assert got[-1].seq == last


async def test_works_with_a_token_of_the_org_and_sees_only_its_org(tenants):  # noqa: F811
    t = tenants
    admin = await admin_bus(t, "orga")
    a, _ = await _publish(admin, 30)
    reader = await bus_mod.connect(t.url, org="orga", token=t.tokens[("orga", "read")])
    last = await admin.last_seq(subjects.METRICS_STREAM, a)
    got = await _ranged(reader, a, 1, last)
    assert len(got) == 15
    assert reader.wire_auth
    other = await bus_mod.connect(t.url, org="orgb", token=t.tokens[("orgb", "read")])
    try:
        seen = await _ranged(other, a, 1, last)
    except Exception:  # refused: as good as seeing nothing  # noqa: BLE001
        seen = []
    assert seen == []
    for b in (admin, reader, other):
        await b.close()
    assert ORGS
    assert tn.SCOPES
