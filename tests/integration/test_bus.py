"""The bus against a real nats-server: provisioning, dedupe, optimistic writes, reads, KV CAS."""

from __future__ import annotations

import anyio
import pytest

from ow.core import bus as bus_mod
from ow.core import events as ev
from ow.core import subjects
from ow.core.errors import BusUnavailableError, ConflictError
from ow.core.server import free_port

pytestmark = pytest.mark.anyio


def artifact(job: str, i: int, event_id: str = "") -> ev.ArtifactUploaded:
    return ev.ArtifactUploaded(
        event_id=event_id, job_id=job, run_id="run-1", file_id=f"result:file-{i:04d}",
        path=f"out-{i}.jsonl",
    )


async def test_provisioning_twice_is_idempotent(bus):
    before = await bus.js.stream_info(subjects.EVENTS_STREAM)
    seq = await bus.publish(artifact("custom-1", 0))
    await bus.provision()
    await bus.provision()
    after = await bus.js.stream_info(subjects.EVENTS_STREAM)
    assert after.config.subjects == before.config.subjects
    assert after.config.duplicate_window == before.config.duplicate_window
    assert after.state.last_seq >= seq  # nothing was dropped or recreated
    claims = await bus.kv(subjects.CLAIMS_BUCKET)
    assert (await claims.status()).history == 5


async def test_a_retried_publish_is_stored_once(bus):
    event = artifact("custom-dup", 1, event_id="evt-fixed-1")
    first = await bus.publish(event)
    again = await bus.publish(event)
    batch = await bus.publish_batch([event, event])
    assert again == first
    assert batch == [first, first]
    history, last = await bus.history(subjects.job_subject(bus.org, "custom-dup"))
    assert [d.event.event_id for d in history] == ["evt-fixed-1"]
    assert last == first


async def test_an_expected_sequence_conflict_raises(bus):
    job = "custom-cas"
    first = await bus.publish(artifact(job, 1), expected_seq=0)
    with pytest.raises(ConflictError):
        await bus.publish(artifact(job, 2), expected_seq=0)
    second = await bus.publish(artifact(job, 3), expected_seq=first)
    with pytest.raises(ConflictError):
        await bus.publish(artifact(job, 4), expected_seq=first)
    # another aggregate's writes do not move this one's sequence
    await bus.publish(artifact("custom-other", 5))
    await bus.publish(artifact(job, 6), expected_seq=second)


async def test_history_reads_one_subject_in_order(bus):
    for i in range(6):
        await bus.publish(artifact("custom-a" if i % 2 else "custom-b", i))
    history, last = await bus.history(subjects.job_subject(bus.org, "custom-a"))
    assert [d.event.path for d in history] == ["out-1.jsonl", "out-3.jsonl", "out-5.jsonl"]
    assert last == history[-1].seq
    assert [d.seq for d in history] == sorted(d.seq for d in history)
    assert await bus.history(subjects.job_subject(bus.org, "custom-none")) == ([], 0)


async def read(bus, start_seq: int, count: int) -> list[int]:
    seqs: list[int] = []
    with anyio.fail_after(10):
        async for d in bus.subscribe(subjects.events_filter(bus.org), start_seq=start_seq):
            seqs.append(d.seq)
            if len(seqs) == count:
                return seqs
    return seqs


async def test_a_subscription_resumes_without_gap_or_duplicate(bus):
    seqs = [await bus.publish(artifact("custom-r", i)) for i in range(10)]
    head = await read(bus, seqs[0], 4)
    tail = await read(bus, head[-1] + 1, 6)
    assert head + tail == seqs


async def test_a_subscription_sees_events_published_after_it_started(bus):
    seqs: list[int] = []
    async with anyio.create_task_group() as tg:
        async def consume():
            seqs.extend(await read(bus, 1, 5))

        tg.start_soon(consume)
        published = [await bus.publish(artifact("custom-live", i)) for i in range(5)]
    assert seqs == published


async def test_no_server_names_the_url_and_ow_up():
    url = f"nats://127.0.0.1:{free_port()}"
    with pytest.raises(BusUnavailableError) as info:
        await bus_mod.connect(url, reconnect=False)
    assert url in str(info.value)
    assert "ow up" in str(info.value)


async def test_kv_cas_helpers_lose_races_quietly(bus):
    bucket, key = subjects.CLAIMS_BUCKET, subjects.claim_key(bus.org, "custom-kv")
    rev = await bus.kv_create(bucket, key, b"gen0")
    assert rev is not None
    assert await bus.kv_create(bucket, key, b"other") is None
    rev2 = await bus.kv_update(bucket, key, b"gen0-renewed", last=rev)
    assert rev2 is not None
    assert await bus.kv_update(bucket, key, b"stale", last=rev) is None
    assert await bus.kv_delete(bucket, key, last=rev) is False
    assert (await bus.kv_get(bucket, key)) == bus_mod.KvEntry(b"gen0-renewed", rev2)
    assert await bus.kv_delete(bucket, key, last=rev2) is True
    assert await bus.kv_get(bucket, key) is None
    assert await bus.kv_create(bucket, key, b"gen1") is not None


async def test_only_one_of_many_concurrent_creates_wins(bus):
    key = subjects.claim_key(bus.org, "custom-race")
    results: list[int | None] = []

    async def claim(i: int) -> None:
        results.append(await bus.kv_create(subjects.CLAIMS_BUCKET, key, f"w{i}".encode()))

    async with anyio.create_task_group() as tg:
        for i in range(8):
            tg.start_soon(claim, i)
    assert sum(r is not None for r in results) == 1


async def test_kv_keys_lists_live_keys_of_a_pattern_and_never_misses_one(bus):
    bucket, org = subjects.CLAIMS_BUCKET, bus.org
    assert await bus.kv_keys(bucket, f"{org}.>") == []  # nothing yet: at once, not a timeout
    revs = {}
    for i in range(30):
        key = subjects.claim_key(org, f"keys-{i:02d}")
        revs[key] = await bus.kv_create(bucket, key, b"v")
    await bus.kv_update(bucket, subjects.claim_key(org, "keys-03"), b"v2",
                        last=revs[subjects.claim_key(org, "keys-03")])
    assert await bus.kv_delete(bucket, subjects.claim_key(org, "keys-05"),
                               last=revs[subjects.claim_key(org, "keys-05")])
    store = await bus.kv(bucket)
    await store.purge(subjects.claim_key(org, "keys-07"))
    other = subjects.claim_key("someone-else", "keys-00")
    await bus.kv_create(bucket, other, b"v")
    want = sorted(subjects.claim_key(org, f"keys-{i:02d}") for i in range(30) if i not in (5, 7))
    # the listing once came back empty when the server was busy: it must not, ever
    for _ in range(20):
        got: list[list[str]] = []

        async def listing(out: list[list[str]] = got) -> None:
            out.append(await bus.kv_keys(bucket, f"{org}.>"))

        async with anyio.create_task_group() as tg:
            for _ in range(5):
                tg.start_soon(listing)
        assert [sorted(g) for g in got] == [want] * 5
    assert other in await bus.kv_keys(bucket)


async def test_a_dispatch_consumer_of_an_earlier_ow_gets_todays_filters(bus):
    """A home made before bound subjects has a dispatch consumer without the filter of a
    worker's bound JobRequeued: the agent's subscription updates it (the job is offered
    again after its worker gave it back)."""
    from nats.js import api

    old = [f for f in subjects.dispatch_filters(bus.org) if not f.endswith(".*")]
    durable = subjects.dispatch_consumer(bus.org)
    await bus.js.add_consumer(subjects.EVENTS_STREAM, api.ConsumerConfig(
        durable_name=durable, filter_subjects=old, ack_policy=api.AckPolicy.EXPLICIT))
    await bus.dispatch_subscription(bus.org)
    info = await bus.js.consumer_info(subjects.EVENTS_STREAM, durable)
    assert sorted(info.config.filter_subjects) == sorted(subjects.dispatch_filters(bus.org))
