"""Scale-out proof: three routed servers, R3 streams, one node killed -9 under load.

Every event whose publish was acknowledged must still be readable from the survivors, once
(no duplicate from retried publishes), and a consumer reading through the failover goes on
with no gap.
"""

from __future__ import annotations

import anyio
import pytest

from ow.core import bus as bus_mod
from ow.core import events as ev
from ow.core import subjects
from ow.core.errors import BusUnavailableError, OWError

from .conftest import eventually

pytestmark = pytest.mark.anyio

N = 300
KILL_AFTER = 100


def artifact(i: int) -> ev.ArtifactUploaded:
    return ev.ArtifactUploaded(
        event_id=f"evt-{i:05d}", job_id=f"custom-{i % 11}", run_id="run-1",
        file_id=f"result:file-{i:05d}", path=f"out-{i}.jsonl",
    )


async def provision_r3(bus: bus_mod.Bus) -> None:
    """Provision once the cluster has elected its JetStream meta leader."""
    with anyio.fail_after(20):
        while True:
            try:
                return await bus.provision(replicas=3)
            except OWError:  # no meta leader yet / not enough peers: the cluster is forming
                await anyio.sleep(0.2)


async def publish_until_acked(bus: bus_mod.Bus, event: ev.Event) -> int:
    """Retry a publish through a failover; the fixed event id makes every retry a no-op."""
    with anyio.fail_after(30):
        while True:
            try:
                return await bus.publish(event)
            except (BusUnavailableError, TimeoutError):
                await anyio.sleep(0.1)


async def test_acked_events_survive_killing_a_node(nats_cluster, org):
    urls = ",".join(s.url for s in nats_cluster)
    bus = await bus_mod.connect(urls, org=org, actor="test")
    await provision_r3(bus)
    info = await bus.js.stream_info(subjects.EVENTS_STREAM)
    assert info.config.num_replicas == 3
    victim = next(s for s in nats_cluster if s.name == info.cluster.leader)  # the worst case
    survivors = ",".join(s.url for s in nats_cluster if s is not victim)
    reader = await bus_mod.connect(survivors, org=org, actor="reader")
    acked: dict[str, int] = {}
    seen: list[tuple[int, str]] = []
    halfway = anyio.Event()
    try:
        with anyio.fail_after(60):
            async with anyio.create_task_group() as tg:
                async def consume() -> None:
                    async for d in reader.subscribe(subjects.events_filter(org), start_seq=1):
                        seen.append((d.seq, d.event.event_id))

                async def produce() -> None:
                    for i in range(N):
                        acked[artifact(i).event_id] = await publish_until_acked(bus, artifact(i))
                        if i + 1 == KILL_AFTER:
                            halfway.set()

                tg.start_soon(consume)
                tg.start_soon(produce)
                await halfway.wait()
                await anyio.to_thread.run_sync(lambda: victim.stop(kill=True))
                killed_at = len(acked)
                await eventually(lambda: len(acked) == N and len(seen) >= N, timeout=50)
                tg.cancel_scope.cancel()
        assert killed_at < N - 50, "the node must die while events are still published"
        ids = [eid for _, eid in seen]
        assert ids == [artifact(i).event_id for i in range(N)]  # in order, once, no gap
        assert [seq for seq, _ in seen] == sorted(acked.values())
        history = []
        for job in range(11):
            events, _ = await reader.history(subjects.job_subject(org, f"custom-{job}"))
            history.extend(d.event.event_id for d in events)
        assert sorted(history) == sorted(acked)
    finally:
        await reader.close()
        await bus.close()
