"""The agent against a real nats-server: run, fail, cancel, fence, race, drain."""

from __future__ import annotations

import os
import time
from pathlib import Path

import anyio
import pytest

from ow.core import claims, subjects
from ow.core import events as ev
from ow.core.errors import JobCanceledError, JobFailedError
from ow.core.server import pid_alive
from ow.core.state import check, fold_all

from .agents import client, running_agents
from .conftest import eventually

pytestmark = pytest.mark.anyio

#: for tests whose job shares files or host pids with the test (a sandboxed job sees neither;
#: tests/security/test_sandbox.py checks the same rules for sandboxed jobs)
OFF = "off"
EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "custom_job"


async def test_addition_job_completes_with_its_logged_result(nats_server, org, tmp_path):
    import importlib.util

    spec = importlib.util.spec_from_file_location("client_side", EXAMPLES / "client_side.py")
    os.environ.setdefault("OW_URL", nats_server.url)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # registers `addition` (its sync client stays unused)
    module.ow.close()
    url = nats_server.url
    async with client(url, org) as ow, running_agents(url, org, 1, tmp_path):
        job = await ow.addition.create(a=5, b=9)
        done = await ow.jobs.wait(job.id, timeout=30)
        assert done.status == "completed"
        assert done.outputs == {"result": 14.0}
        events = await ow.events.list(job_id=job.id)
        assert [e["data"] for e in events][-1] == {"result": 14.0}
        assert len(events) == 4
        log = (await ow.files.content(done.runs[-1].log_file)).decode()
        assert "5.0 + 9.0 = 14.0" in log


async def test_failing_job_reports_its_log_tail(nats_server, org, tmp_path):
    url = nats_server.url
    async with client(url, org) as ow, running_agents(url, org, 1, tmp_path):
        job = await ow.shell.create(command="echo about to fail; echo boom >&2; exit 3")
        with pytest.raises(JobFailedError) as info:
            await ow.jobs.wait(job.id, timeout=30)
        assert "exit code 3" in info.value.error
        assert "boom" in info.value.error
        assert (await ow.jobs.retrieve(job.id)).runs[-1].exit_code == 3


async def test_missing_entrypoint_fails_with_that_message(nats_server, org, tmp_path):
    url = nats_server.url
    async with client(url, org) as ow, running_agents(url, org, 1, tmp_path):
        job = await ow.shell.create(command="no-such-program-xyz --flag")
        with pytest.raises(JobFailedError) as info:
            await ow.jobs.wait(job.id, timeout=30)
        assert "no-such-program-xyz" in info.value.error
        assert "not found" in info.value.error


async def test_cancel_kills_the_process_group_within_a_second(nats_server, org, tmp_path):
    url = nats_server.url
    async with client(url, org) as ow, running_agents(url, org, 1, tmp_path, sandbox=OFF):
        job, pid = await _with_child(ow, tmp_path, "wait")
        t0 = time.monotonic()
        await ow.jobs.cancel(job.id)
        with pytest.raises(JobCanceledError):
            await ow.jobs.wait(job.id, timeout=5)
        elapsed = time.monotonic() - t0
        assert not pid_alive(pid), "the job's child process survived the cancel"
        assert elapsed < 1.0, f"cancel took {elapsed:.2f}s"


async def test_cancel_sends_the_job_sigterm_first(nats_server, org, tmp_path):
    """A job may clean up on SIGTERM (its group gets it before SIGKILL), background children
    included: they do not inherit an ignored SIGTERM from the group leader."""
    url = nats_server.url
    async with client(url, org) as ow, running_agents(url, org, 1, tmp_path, sandbox=OFF):
        job, pid = await _with_child(
            ow, tmp_path, "trap 'echo got-term; exit 0' TERM; while true; do sleep 0.02; done"
        )
        t0 = time.monotonic()
        await ow.jobs.cancel(job.id)
        while pid_alive(pid) and time.monotonic() - t0 < 5:
            await anyio.sleep(0.005)
        gone_after = time.monotonic() - t0
        with pytest.raises(JobCanceledError):
            await ow.jobs.wait(job.id, timeout=5)
        done = await ow.jobs.retrieve(job.id)
        log = (await ow.files.content(done.runs[-1].log_file)).decode()
    assert "got-term" in log
    assert gone_after < 0.4, f"the background child lived {gone_after:.2f}s: no SIGTERM for it"


async def test_a_job_ends_with_its_entrypoint_and_its_leftovers_die(nats_server, org, tmp_path):
    """A background process still holding the output pipe neither keeps the job running nor
    outlives it."""
    pidfile = tmp_path / "pid"
    command = f"sleep 60 & echo $! > {pidfile}; echo started"
    url = nats_server.url
    async with client(url, org) as ow, running_agents(url, org, 1, tmp_path, sandbox=OFF):
        t0 = time.monotonic()
        job = await ow.shell.create(command=command)
        done = await ow.jobs.wait(job.id, timeout=20)
        assert done.status == "completed"
        assert time.monotonic() - t0 < 10
        assert not pid_alive(int(pidfile.read_text()))
        log = (await ow.files.content(done.runs[-1].log_file)).decode()
        assert "started" in log


async def test_fenced_out_run_publishes_no_result(nats_server, org, tmp_path):
    """The scheduler takes the claim away mid-run: the late result is never published."""
    flag = tmp_path / "go"
    command = f"while [ ! -e {flag} ]; do sleep 0.05; done; echo done"
    url = nats_server.url
    async with client(url, org) as ow, running_agents(url, org, 1, tmp_path, sandbox=OFF):
        job = await ow.shell.create(command=command)
        running = await eventually(lambda: _in_progress(ow, job.id), timeout=20)
        bus = await ow.bus()
        assert await claims.release(bus, job.id, running.runs[-1].id, "test: worker lost")
        flag.touch()
        # the agent finishes, fails its CAS, and publishes nothing; the job was requeued
        # and the same agent may run it again as a new generation, which completes
        done = await ow.jobs.wait(job.id, timeout=30)
        history, _ = await bus.history(subjects.job_subject(org, job.id))
        finished = [d.event for d in history if isinstance(d.event, ev.RunFinished)]
        assert [f.run_id for f in finished] == [done.runs[-1].id]
        assert running.runs[-1].id != done.runs[-1].id


async def test_late_result_from_fenced_run_is_rejected_by_the_fold(nats_server, org):
    async with client(nats_server.url, org) as ow:
        job = await ow.shell.create(command="true")
        bus = await ow.bus()
        await bus.publish(ev.RunStarted(run_id="r1", job_id=job.id, gen=0, worker_id="w1"))
        await bus.publish(ev.JobRequeued(job_id=job.id, run_id="r1", reason="lost"))
        late = ev.RunFinished(run_id="r1", job_id=job.id, status="completed")
        await bus.publish(late)
        history, _ = await bus.history(subjects.job_subject(org, job.id))
        state = fold_all(d.event for d in history[:-1])
        assert check(state, history[-1].event) is not None
        assert (await ow.jobs.retrieve(job.id)).status == "pending"


async def test_16_agents_200_jobs_one_run_each(nats_server, org, tmp_path):
    async with client(nats_server.url, org) as ow, running_agents(
        nats_server.url, org, 16, tmp_path, heartbeat_s=5.0
    ):
        jobs = [await ow.shell.create(command="true", tag=str(i)) for i in range(200)]
        with anyio.fail_after(50):
            for job in jobs:
                await ow.jobs.wait(job.id)
        bus = await ow.bus()
        filt = subjects.events_filter(org, "job")
        last = await bus.last_seq(subjects.EVENTS_STREAM, filt)
        started: dict[tuple[str, int], int] = {}
        async for d in bus.subscribe(filt, start_seq=1, stop_at=last):
            if isinstance(d.event, ev.RunStarted):
                key = (d.event.job_id, d.event.gen)
                started[key] = started.get(key, 0) + 1
        assert len(started) == 200
        assert set(started.values()) == {1}


async def test_five_consecutive_failures_drain_the_worker(nats_server, org, tmp_path):
    async with client(nats_server.url, org) as ow, running_agents(
        nats_server.url, org, 1, tmp_path, max_failures=2
    ) as (agent,):
        for i in range(2):
            job = await ow.shell.create(command="exit 1", tag=str(i))
            with pytest.raises(JobFailedError):
                await ow.jobs.wait(job.id, timeout=20)
        bus = await ow.bus()

        async def drained():
            history, _ = await bus.history(subjects.worker_subject(org, agent.worker_id))
            return any(isinstance(d.event, ev.WorkerDraining) for d in history)

        await eventually(drained, timeout=15)


async def _in_progress(ow, job_id):
    job = await ow.jobs.retrieve(job_id)
    return job if job.status == "in_progress" else None


async def _with_child(ow, tmp_path: Path, then: str):
    """A running shell job with a `sleep 60` child in the background, then `then`; (job, pid)."""
    pidfile = tmp_path / "pid"
    job = await ow.shell.create(command=f"sleep 60 & echo $! > {pidfile}; {then}")
    await eventually(lambda: pidfile.exists() and pidfile.read_text().strip(), timeout=20)
    return job, int(pidfile.read_text())


async def test_redelivered_dispatch_of_a_running_job_is_dropped(nats_server, org, tmp_path):
    """A JobSubmitted handed out again (its first taker died before acking) is acked, not
    bounced forever, once the job has left `pending`."""
    async with client(nats_server.url, org) as ow:
        job = await ow.shell.create(command="true")
        bus = await ow.bus()
        sub = await bus.dispatch_subscription(org)
        (msg,) = await sub.fetch(1, timeout=5)  # a taker that claims, starts, and dies
        await bus.publish(ev.RunStarted(run_id="r-dead", job_id=job.id, gen=0, worker_id="w"))
        await claims.take(bus, job.id, claims.Claim(gen=0, worker_id="w", run_id="r-dead"))
        await msg.nak()
        async with running_agents(nats_server.url, org, 1, tmp_path):
            async def drained():
                info = await sub.consumer_info()
                return info.num_ack_pending == 0 and info.num_pending == 0

            await eventually(drained, timeout=10)
        assert (await ow.jobs.retrieve(job.id)).status == "in_progress"


async def test_an_agent_refuses_the_id_of_a_terminated_worker(nats_server, org, tmp_path):
    """Its registration would be rejected by the fold and its runs requeued: a clear error."""
    from ow.agent import Agent, Hardware
    from ow.core.config import from_env
    from ow.core.errors import ConfigError

    async with running_agents(nats_server.url, org, 1, tmp_path) as (agent,):
        wid = agent.worker_id
    config = from_env({}, url=nats_server.url, org=org)
    again = Agent(config, Hardware(image="*"), worker_id=wid, workdir=tmp_path / "again")
    with pytest.raises(ConfigError, match=f"worker id '{wid}' was terminated \\(stopped"):
        await again.run()


async def test_a_shutdown_while_the_run_is_being_prepared_requeues_it(
    nats_server, org, tmp_path, monkeypatch
):
    """Between RunStarted and the job's process (credentials, secrets, files) the agent holds
    the claim too: a SIGTERM there must requeue the run, not leave it claimed by nobody."""
    from ow.core import secrets

    preparing = anyio.Event()

    async def slow_job_env(*args, **kwargs):
        preparing.set()
        await anyio.sleep_forever()

    monkeypatch.setattr(secrets, "job_env", slow_job_env)
    async with client(nats_server.url, org) as ow:
        async with running_agents(nats_server.url, org, 1, tmp_path, sandbox=OFF) as (agent,):
            job = await ow.shell.create(command="echo never")
            with anyio.fail_after(20):
                await preparing.wait()
        bus = await ow.bus()
        history, _ = await bus.history(subjects.job_subject(org, job.id))
        kinds = [type(d.event).__name__ for d in history]
        assert kinds[-2:] == ["RunStarted", "JobRequeued"], kinds
        assert await claims.current(bus, job.id) is None
        assert (await ow.jobs.retrieve(job.id)).status == "pending"
