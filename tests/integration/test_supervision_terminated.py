"""A worker that sees its own `WorkerTerminated` stops at once, and its job is handed on once.

Finding 2 of the robustness issue: a worker whose process outlived its termination kept
starting runs; the scheduler requeued each one (generations 1 -> 5 in 90 s).
"""

from __future__ import annotations

import pytest

from ow.core import claims, subjects
from ow.core import events as ev
from ow.core.state import check, fold_all
from ow.scheduler import FakeRunPod, Limits

from .agents import client, running_agents
from .conftest import eventually
from .test_scheduler import scheduler

pytestmark = pytest.mark.anyio

FAST = Limits(tick_s=0.2, debounce_s=0.01, lease_ttl_s=2, claim_grace_s=2)


async def _job(bus, job_id):
    history, _ = await bus.history(subjects.job_subject(bus.org, job_id))
    return [d.event for d in history]


async def test_a_terminated_agent_kills_its_job_exits_and_the_job_runs_once_elsewhere(
    nats_server, bus, tmp_path
):
    mark = tmp_path / "first-run"
    command = f"if [ -e {mark} ]; then exit 0; fi; touch {mark}; exec sleep 60"
    url, org = nats_server.url, bus.org
    async with (
        client(url, org) as ow, running_agents(url, org, 2, tmp_path, sandbox="off") as agents,
        scheduler(url, org, FakeRunPod(), FAST),
    ):
        job = await ow.shell.create(command=command)
        running = await eventually(lambda: _running(ow, job.id), timeout=20)
        taker = next(a for a in agents if a.worker_id == running.runs[-1].worker_id)
        proc = await eventually(lambda: taker.current and taker.current.proc)
        await eventually(mark.exists)  # the first run is under way
        await bus.publish(ev.WorkerTerminated(worker_id=taker.worker_id, reason="pod TTL"))
        await eventually(lambda: taker.terminated, timeout=5)
        assert taker.terminated == "pod TTL"
        # the agent kills its job as it leaves (right after it noticed): within a few seconds
        assert await eventually(lambda: proc.returncode is not None, timeout=5), \
            "the terminated worker's job still runs"
        done = await ow.jobs.wait(job.id, timeout=30)
        assert done.status == "completed"
        events = await _job(bus, job.id)
        starts = [e for e in events if isinstance(e, ev.RunStarted)]
        assert len(starts) == 2  # handed on once
        assert starts[1].worker_id != taker.worker_id
        (requeue,) = [e for e in events if isinstance(e, ev.JobRequeued)]
        assert requeue.worker_gone
        assert fold_all(events).gen == 1
        # the terminated agent published nothing for the job after its termination
        assert not [e for e in events if isinstance(e, ev.RunFinished)
                    and e.run_id == starts[0].run_id]


async def _running(ow, job_id):
    job = await ow.jobs.retrieve(job_id)
    return job if job.status == "in_progress" else None


async def test_a_run_started_by_a_terminated_worker_never_becomes_the_jobs_run(
    nats_server, bus
):
    """A zombie (an old agent that never saw its termination) claims the job again after the
    scheduler requeued its run: the fold rejects that RunStarted, and the scheduler drops the
    zombie's claim at once so a healthy worker can take the job."""
    await bus.publish(ev.WorkerRegistered(worker_id="zombie", hardware="cpu", image="img"))
    await bus.publish(ev.JobSubmitted(job_id="j1", image="img"))
    rev = await claims.take(bus, "j1", claims.Claim(gen=0, worker_id="zombie", run_id="r1"))
    await bus.publish(ev.RunStarted(run_id="r1", job_id="j1", gen=0, worker_id="zombie",
                                    claim_rev=rev))
    await bus.publish(ev.WorkerTerminated(worker_id="zombie", reason="lost"))
    async with scheduler(nats_server.url, bus.org, FakeRunPod(), FAST):
        await eventually(lambda: _requeued(bus, "j1"))
        state = fold_all(await _job(bus, "j1"))
        assert state.gone_workers == ("zombie",)
        rev = await claims.take(bus, "j1", claims.Claim(gen=1, worker_id="zombie", run_id="r2"))
        again = ev.RunStarted(run_id="r2", job_id="j1", gen=1, worker_id="zombie",
                              claim_rev=rev)
        await bus.publish(again)
        assert "which was terminated" in check(state, again).rule
        await eventually(lambda: _no_claim(bus, "j1"), timeout=5)
    final = fold_all(await _job(bus, "j1"))
    assert (final.status, final.gen, len(final.runs)) == ("pending", 1, 1)


async def _requeued(bus, job_id):
    return [e for e in await _job(bus, job_id) if isinstance(e, ev.JobRequeued)]


async def _no_claim(bus, job_id):
    return await claims.current(bus, job_id) is None
