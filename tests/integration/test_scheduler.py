"""The scheduler against a real nats-server, with FakeRunPod standing in for RunPod."""

from __future__ import annotations

from contextlib import asynccontextmanager

import anyio
import pytest

from ow.core import bus as bus_mod
from ow.core import claims, subjects
from ow.core import events as ev
from ow.core.state import fold_all
from ow.scheduler import FakeRunPod, Limits, Scheduler
from ow.scheduler.hardware import CPU
from ow.scheduler.providers.fake_runpod import NO_CAPACITY, FakeRunPodAPI
from tests.integration.conftest import eventually

pytestmark = pytest.mark.anyio

FAST = Limits(tick_s=0.2, debounce_s=0.01, lease_ttl_s=2, claim_grace_s=2)


@asynccontextmanager
async def scheduler(url, org, provider, limits=FAST, worker_env=None):
    b = await bus_mod.connect(url, org=org, actor="scheduler")
    s = Scheduler(b, provider, limits, worker_env=worker_env)
    try:
        async with anyio.create_task_group() as tg:
            await tg.start(s.run)
            yield s
            s.shutdown()
    finally:
        await b.close()


async def events_of(bus, kind=None):
    history, _ = await bus.history(subjects.events_filter(bus.org))
    return [d.event for d in history if kind is None or isinstance(d.event, kind)]


async def job_state(bus, job_id):
    history, _ = await bus.history(subjects.job_subject(bus.org, job_id))
    return fold_all(d.event for d in history)


async def test_a_pending_job_gets_one_worker_even_with_two_schedulers(nats_server, bus):
    api = FakeRunPodAPI()
    await bus.publish(ev.JobSubmitted(job_id="j1", requires_vram_gb=24, image="img"))
    async with (
        scheduler(nats_server.url, bus.org, FakeRunPod(api)) as a,
        scheduler(nats_server.url, bus.org, FakeRunPod(api)) as b,
    ):
        (p,) = await eventually(lambda: events_of(bus, ev.WorkerProvisioned))
        assert p.job_ids == ["j1"]
        assert p.hardware == "1x A6000"
        assert p.price_per_hour > 0
        assert p.pod_id in api.pods
        assert [a.is_leader, b.is_leader].count(True) == 1
        leader = a if a.is_leader else b
        await eventually(lambda: leader.cluster.workers.get(p.worker_id))
        for _ in range(3):  # more planning changes nothing: the starting worker serves j1
            await leader.step()
    assert len(await events_of(bus, ev.WorkerProvisioned)) == 1
    assert len(api.pods) == 1


async def test_a_worker_without_heartbeats_is_reaped_and_its_job_requeued(nats_server, bus):
    fake = FakeRunPod()
    pod_id, _ = await fake.provision("w1", CPU, "img", {})
    await bus.publish(ev.WorkerProvisioned(worker_id="w1", provider=fake.name, pod_id=pod_id,
                                           hardware="cpu", image="img"))
    await bus.publish(ev.WorkerRegistered(worker_id="w1", hardware="cpu", image="img"))
    await bus.publish(ev.JobSubmitted(job_id="j1", image="img"))
    rev = await claims.take(bus, "j1", claims.Claim(gen=0, worker_id="w1", run_id="r1"))
    await bus.publish(ev.RunStarted(run_id="r1", job_id="j1", gen=0, worker_id="w1",
                                    claim_rev=rev))
    await bus.publish(ev.WorkerPinged(worker_id="w1", run_id="r1"))  # ... and no more
    limits = Limits(**{**{f: getattr(FAST, f) for f in FAST.__struct_fields__},
                       "lost_after_s": 1})
    async with scheduler(nats_server.url, bus.org, fake, limits):
        (requeued,) = await eventually(lambda: events_of(bus, ev.JobRequeued))
        assert requeued.run_id == "r1"
        assert requeued.evidence["rule"] == "lost_after_s"
        assert requeued.evidence["last_ping_age_s"] > 1
        assert "last_ping_at" in requeued.evidence
        assert await claims.current(bus, "j1") is None
        (gone,) = await eventually(lambda: events_of(bus, ev.WorkerTerminated))
        assert gone.worker_id == "w1"
        assert gone.evidence["pod_terminated"] is True
        assert fake.api.pods[pod_id]["desiredStatus"] == "TERMINATED"
        assert all(p["desiredStatus"] == "RUNNING" for p in fake.api.foreign.values())
    state = await job_state(bus, "j1")
    assert state.status == "pending"
    assert state.gen == 1


async def test_a_provider_error_becomes_a_notice_and_a_cooldown(nats_server, bus):
    fake = FakeRunPod()
    fake.fail_next(NO_CAPACITY, times=5)
    await bus.publish(ev.JobSubmitted(job_id="j1", requires_vram_gb=80, image="img",
                                      allowed_hardware=["1x A100"]))  # one type: it cools down
    async with scheduler(nats_server.url, bus.org, fake) as s:
        (n,) = await eventually(lambda: notices(bus, "provider_error"))
        assert n.message == NO_CAPACITY
        assert n.evidence["kind"] == "no_capacity"
        assert n.evidence["cooldown_until"]
        for _ in range(3):
            await s.step()
    assert fake.api.calls.count("create_pod") == 1  # no retry during the cooldown
    assert await events_of(bus, ev.WorkerProvisioned) == []
    assert (await job_state(bus, "j1")).status == "pending"


async def test_a_provider_error_never_carries_the_workers_credentials(nats_server, bus):
    token, key = "ow_wrkabcdefghi_S3CRETS3CRET", "T1lLRVlPUkdLRVk="
    env = {"OW_URL": nats_server.url, "OW_ORG": bus.org, "OW_TOKEN": token,
           "OW_ORG_SECRET_KEY": key}
    fake = FakeRunPod()
    fake.fail_next(f"invalid env {{'OW_TOKEN': '{token}', 'OW_ORG_SECRET_KEY': '{key}'}}")
    await bus.publish(ev.JobSubmitted(job_id="j1", requires_vram_gb=80, image="img"))
    async with scheduler(nats_server.url, bus.org, fake, worker_env=env):
        (n,) = await eventually(lambda: notices(bus, "provider_error"))
    assert "'OW_TOKEN': '<OW_TOKEN>'" in n.message
    assert "<OW_ORG_SECRET_KEY>" in n.message
    everything = repr(await events_of(bus))
    assert token not in everything
    assert key not in everything


async def notices(bus, rule):
    return [n for n in await events_of(bus, ev.SchedulerNoticed) if n.rule == rule]


async def test_a_job_no_hardware_can_serve_gets_a_notice_and_stays_pending(nats_server, bus):
    fake = FakeRunPod()
    await bus.publish(ev.JobSubmitted(job_id="j1", requires_vram_gb=5000, image="img"))
    async with scheduler(nats_server.url, bus.org, fake) as s:
        (n,) = await eventually(lambda: events_of(bus, ev.SchedulerNoticed))
        assert n.subject_id == "j1"
        assert n.rule == "no_hardware"
        assert "5000 GB" in n.message
        for _ in range(3):
            await s.step()
    assert len(await events_of(bus, ev.SchedulerNoticed)) == 1  # said once
    assert fake.api.calls == []
    assert (await job_state(bus, "j1")).status == "pending"


async def test_the_local_provider_starts_a_real_agent_that_registers(nats_server, bus, tmp_path):
    from ow.scheduler import LocalProvider

    local = LocalProvider(log_dir=tmp_path, base_env={
        **__import__("os").environ, "OW_HOME": str(tmp_path), "OW_HEARTBEAT_S": "0.5",
    })
    await bus.publish(ev.JobSubmitted(job_id="j1", requires_vram_gb=0, image="",
                                      entrypoint="true"))
    async with scheduler(nats_server.url, bus.org, local):
        (p,) = await eventually(lambda: events_of(bus, ev.WorkerProvisioned), timeout=20)
        assert p.provider == "local"
        assert p.pod_id.startswith("local-")
        await eventually(lambda: registered(bus, p.worker_id), timeout=30)
    # leaving the scheduler stops the agents it started; they say goodbye themselves
    await eventually(lambda: terminated(bus, p.worker_id), timeout=30)


async def registered(bus, worker_id):
    return [e for e in await events_of(bus, ev.WorkerRegistered) if e.worker_id == worker_id]


async def terminated(bus, worker_id):
    return [e for e in await events_of(bus, ev.WorkerTerminated) if e.worker_id == worker_id]


async def test_a_local_agent_killed_mid_job_is_lost_at_once_by_its_exit(nats_server, bus, tmp_path):
    """Finding 9: the local provider sees its child exit; the run is requeued on that
    evidence, not after the 2-minute heartbeat limit (`lost_after_s` stays at its default)."""
    import os
    import signal

    from ow.scheduler import LocalProvider

    local = LocalProvider(log_dir=tmp_path, base_env={
        **os.environ, "OW_HOME": str(tmp_path), "OW_HEARTBEAT_S": "0.5",
        "OW_SANDBOX": "off",  # the job marks its first run in the test's tmp dir
    })
    mark = tmp_path / "first-run"
    await bus.publish(ev.JobSubmitted(
        job_id="j1", image="", entrypoint=f"test -e {mark} && exit 0; touch {mark}; sleep 600",
    ))
    async with scheduler(nats_server.url, bus.org, local) as s:
        s.pod_poll_s = 0.2
        (p,) = await eventually(lambda: events_of(bus, ev.WorkerProvisioned), timeout=20)
        await eventually(mark.exists, timeout=30)
        os.killpg(int(p.pod_id.removeprefix("local-")), signal.SIGKILL)
        (requeued,) = await eventually(lambda: events_of(bus, ev.JobRequeued), timeout=10)
        assert requeued.evidence["rule"] == "process_exited"
        assert requeued.evidence["seen"] == f"local: pod {p.pod_id} exited"
        assert requeued.worker_gone
        done = await eventually(lambda: _completed(bus, "j1"), timeout=40)
        assert done.gen == 1
        assert done.runs[0].worker_id == p.worker_id != done.runs[1].worker_id


async def _completed(bus, job_id):
    state = await job_state(bus, job_id)
    return state if state.status == "completed" else None


async def test_the_scheduler_survives_a_server_killed_under_it(fresh_nats, org, caplog):
    """kill -9 of the server while the scheduler leads: its lease renewal timed out with an
    unhandled nats TimeoutError and the scheduler died. Now it waits the outage out, leads
    again and acts on what comes after."""
    import logging

    caplog.set_level(logging.INFO, logger="ow.core.bus")
    setup = await bus_mod.connect(fresh_nats.url, org=org, actor="test")
    await setup.provision()
    await setup.close()
    async with scheduler(fresh_nats.url, org, FakeRunPod()) as s:
        await eventually(lambda: s.is_leader)
        fresh_nats.proc.kill()  # kill -9
        fresh_nats.proc.wait()
        lease = subjects.lease_key("scheduler", org)
        # the renewal that met the dead server (the old code died of its TimeoutError here)
        await eventually(lambda: f"kv update {lease}: no answer" in caplog.text, timeout=30)
        fresh_nats.start()  # the same port and store
        b = await bus_mod.connect(fresh_nats.url, org=org, actor="test")
        try:
            await b.publish(ev.JobSubmitted(job_id="after", image="img", requires_vram_gb=0))
            (p,) = await eventually(lambda: events_of(b, ev.WorkerProvisioned), timeout=30)
            assert p.job_ids == ["after"]
        finally:
            await b.close()
        assert s.is_leader
