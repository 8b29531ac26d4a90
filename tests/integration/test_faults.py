"""Fault tests with real processes: server restart mid-job, SIGTERM, kill -9 of an agent."""

from __future__ import annotations

import contextlib
import os
import signal

import anyio
import pytest

from ow.core import events as ev
from ow.core import subjects
from ow.core.server import NatsServer, pid_alive

from .agents import client, kill9, running_agents, start_agent_process
from .conftest import eventually

#: these jobs share flag files and host pids with the test: unsandboxed (see tests/security)
OFF = "off"

pytestmark = pytest.mark.anyio


async def _history(ow, job_id):
    bus = await ow.bus()
    history, _ = await bus.history(subjects.job_subject(bus.org, job_id))
    return [d.event for d in history]


async def _in_progress(ow, job_id):
    job = await ow.jobs.retrieve(job_id)
    return job if job.status == "in_progress" else None


async def test_server_restart_mid_job_loses_nothing(fresh_nats, org, tmp_path):
    flag = tmp_path / "go"
    command = (
        f"while [ ! -e {flag} ]; do sleep 0.05; done; "
        "python -c \"from ow import OpenWeights; o = OpenWeights(); "
        "[o.run.log({'step': i}) for i in range(20)]\""
    )
    url, port, store = fresh_nats.url, fresh_nats.port, fresh_nats.store_dir
    restarted = None
    try:
        async with client(url, org) as ow, running_agents(url, org, 1, tmp_path, sandbox=OFF):
            job = await ow.shell.create(command=command)
            await eventually(lambda: _in_progress(ow, job.id), timeout=20)
            before = await _history(ow, job.id)
            fresh_nats.stop()
            restarted = NatsServer(store, port=port, name="fresh").start()
            flag.touch()
            done = await ow.jobs.wait(job.id, timeout=40)
            assert done.status == "completed"
            after = await _history(ow, job.id)
            assert [e.event_id for e in after[: len(before)]] == [e.event_id for e in before]
            assert [type(e).__name__ for e in after].count("RunFinished") == 1
            steps = [r["data"]["step"] for r in await ow.events.list(job_id=job.id)]
            assert steps == list(range(20))
    finally:
        if restarted is not None:
            restarted.stop()


async def test_sigterm_requeues_the_job_for_another_agent(nats_server, org, tmp_path):
    flag = tmp_path / "go"
    command = f"while [ ! -e {flag} ]; do sleep 0.05; done; echo finished"
    async with client(nats_server.url, org) as ow:
        proc = start_agent_process(nats_server.url, org, "victim", tmp_path, sandbox=OFF)
        try:
            job = await ow.shell.create(command=command)
            first = await eventually(lambda: _in_progress(ow, job.id), timeout=20)
            assert first.runs[-1].worker_id == "victim"
            os.killpg(proc.pid, signal.SIGTERM)
            assert proc.wait(15) == 0
        finally:
            if proc.poll() is None:
                kill9(proc)
        events = await _history(ow, job.id)
        assert any(isinstance(e, ev.JobRequeued) for e in events)
        async with running_agents(nats_server.url, org, 1, tmp_path, sandbox=OFF) as (other,):
            flag.touch()
            done = await ow.jobs.wait(job.id, timeout=30)
            assert done.runs[-1].worker_id == other.worker_id
            assert [r.status for r in done.runs] == ["requeued", "completed"]
        bus = await ow.bus()
        worker_events, _ = await bus.history(subjects.worker_subject(org, "victim"))
        assert isinstance(worker_events[-1].event, ev.WorkerTerminated)


async def test_kill9_agent_mid_job_is_requeued_and_completes_once(nats_server, org, tmp_path):
    """kill -9 of an agent: the scheduler sees its pings stop, requeues, another agent runs it."""
    from ow.core import bus as bus_mod
    from ow.scheduler import FakeRunPod, Limits, Scheduler

    flag, pids = tmp_path / "go", tmp_path / "pids"
    command = (f"echo $$ >> {pids}; sleep 600 >/dev/null 2>&1 & echo $! >> {pids}; "
               f"while [ ! -e {flag} ]; do sleep 0.05; done; echo finished")
    limits = Limits(lost_after_s=2.0, tick_s=0.2, debounce_s=0.05, claim_grace_s=60)
    async with client(nats_server.url, org) as ow:
        proc = start_agent_process(nats_server.url, org, "doomed", tmp_path, sandbox=OFF)
        job = await ow.shell.create(command=command)
        first = await eventually(lambda: _in_progress(ow, job.id), timeout=20)
        orphans = [int(p) for p in (await eventually(
            lambda: pids.exists() and len(pids.read_text().split()) == 2 and pids.read_text()
        )).split()]
        assert all(pid_alive(p) for p in orphans)
        kill9(proc)
        # the job's processes (its shell and a background child) die with their agent
        await eventually(lambda: not any(pid_alive(p) for p in orphans), timeout=5)
        sbus = await bus_mod.connect(nats_server.url, org=org, actor="scheduler")
        try:
            async with anyio.create_task_group() as tg, running_agents(
                nats_server.url, org, 1, tmp_path, sandbox=OFF
            ) as (other,):
                sched = Scheduler(sbus, FakeRunPod(), limits)
                await tg.start(sched.run)
                requeued = await eventually(
                    lambda: _events_of(ow, job.id, ev.JobRequeued), timeout=30
                )
                flag.touch()
                done = await ow.jobs.wait(job.id, timeout=40)
                sched.shutdown()
        finally:
            await sbus.close()
            flag.touch()
            for pid in map(int, pids.read_text().split()):  # the second run's `sleep 600`
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        assert done.runs[-1].worker_id == other.worker_id
        assert requeued[0].run_id == first.runs[-1].id
        assert requeued[0].evidence
        events = await _history(ow, job.id)
        finished = [e for e in events if isinstance(e, ev.RunFinished)]
        assert len(finished) == 1
        assert finished[0].run_id == done.runs[-1].id
        # the dead run's late result is fenced: its claim is gone, and the fold rejects it
        from ow.core.state import check, fold_all

        late = ev.RunFinished(run_id=first.runs[-1].id, job_id=job.id, status="completed")
        assert check(fold_all(events), late) is not None


async def _events_of(ow, job_id, kind):
    return [e for e in await _history(ow, job_id) if isinstance(e, kind)]
