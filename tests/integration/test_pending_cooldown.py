"""Issue 17.5: a cooldown per hardware type after provider failures, longer after each failure
in a row, as a `SchedulerNoticed` with its evidence; other types are tried meanwhile."""

from __future__ import annotations

from datetime import timedelta

import anyio
import pytest

from ow.core import bus as bus_mod
from ow.core import events as ev
from ow.scheduler import FakeRunPod, Limits, Scheduler
from ow.scheduler.providers.fake_runpod import NO_CAPACITY, QUOTA
from tests.integration.conftest import eventually
from tests.integration.test_scheduler import events_of

pytestmark = pytest.mark.anyio

# no act loop ticking on its own: every step is the test's (tick and debounce far away)
MANUAL = Limits(tick_s=3600, debounce_s=3600, lease_ttl_s=30, claim_grace_s=3600)


class Clock:
    def __init__(self) -> None:
        self.t = ev.now()

    def __call__(self):
        return self.t


async def stepper(bus, provider, clock):
    b = await bus_mod.connect(bus.url, org=bus.org, actor="scheduler")
    s = Scheduler(b, provider, MANUAL, clock=clock)
    return b, s


async def errors(bus):
    return [n for n in await events_of(bus, ev.SchedulerNoticed) if n.rule == "provider_error"]


async def caught_up(s, bus, n):
    """Wait until `n` provider_error notices are in the log."""
    async def enough():
        return len(await errors(bus)) >= n

    await eventually(enough)


async def one_failure_then_a_step(bus, error):
    """A job needing 80 GB; the provider's next create fails with `error`; the scheduler steps
    until that failure is noticed, then once more. Returns the stand-in provider."""
    fake, clock = FakeRunPod(), Clock()
    fake.fail_next(error, times=1)
    await bus.publish(ev.JobSubmitted(job_id="j1", requires_vram_gb=80, image="img"))
    b, s = await stepper(bus, fake, clock)
    try:
        async with anyio.create_task_group() as tg:
            await tg.start(s._consume, f"ow.ev.{bus.org}.>", "OW_EVENTS")
            await s.step()
            await caught_up(s, bus, 1)
            await s.step()
            tg.cancel_scope.cancel()
    finally:
        await b.close()
    return fake


async def test_one_hardware_type_climbs_the_ladder(nats_server, bus):
    fake, clock = FakeRunPod(), Clock()
    fake.fail_next(NO_CAPACITY, times=3)
    await bus.publish(ev.JobSubmitted(job_id="j1", requires_vram_gb=80, image="img",
                                      allowed_hardware=["1x A100"]))
    b, s = await stepper(bus, fake, clock)
    try:
        async with anyio.create_task_group() as tg:
            await tg.start(s._consume, f"ow.ev.{bus.org}.>", "OW_EVENTS")
            await s.step()
            await caught_up(s, bus, 1)
            await s.step()  # within the cooldown: no second call
            assert fake.api.calls.count("create_pod") == 1
            clock.t += timedelta(seconds=61)
            await s.step()
            await caught_up(s, bus, 2)
            clock.t += timedelta(seconds=61)  # the second rung is 240 s: still resting
            await s.step()
            assert fake.api.calls.count("create_pod") == 2
            clock.t += timedelta(seconds=180)
            await s.step()
            await caught_up(s, bus, 3)
            tg.cancel_scope.cancel()
    finally:
        await b.close()
    first, second, third = await errors(bus)
    assert [n.evidence["failures"] for n in (first, second, third)] == [1, 2, 3]
    assert [n.evidence["cooldown_s"] for n in (first, second, third)] == [60, 240, 960]
    assert {n.evidence["cooldown_key"] for n in (first, second, third)} == {"1x A100"}
    assert third.evidence["hardware"] == "1x A100"
    assert third.message == NO_CAPACITY
    assert third.evidence["cooldown_until"] == (clock.t + timedelta(seconds=960)).isoformat()


async def test_while_one_type_cools_down_the_next_cheapest_is_started(nats_server, bus):
    await one_failure_then_a_step(bus, NO_CAPACITY)
    (failed,) = await errors(bus)
    assert failed.evidence["hardware"] == "1x A100"
    (p,) = await events_of(bus, ev.WorkerProvisioned)
    assert p.hardware == "1x A100S"  # the next cheapest single GPU with 80 GB


async def test_a_quota_error_rests_the_whole_provider(nats_server, bus):
    fake = await one_failure_then_a_step(bus, QUOTA)
    (failed,) = await errors(bus)
    assert failed.evidence["cooldown_key"] == "*"
    assert fake.api.calls.count("create_pod") == 1
    waiting = [n for n in await events_of(bus, ev.SchedulerNoticed)
               if n.rule == "provider_cooldown"]
    assert waiting
    assert waiting[-1].evidence["cooldown_until"] == failed.evidence["cooldown_until"]
