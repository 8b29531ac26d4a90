"""Finding 1 of issue 15, run as a real job on a real agent: a job read the agent's
environment from /proc, found OW_HOME, and read every org's tokens and the master key. A
sandboxed job sees none of it, and nothing it leaves behind outlives it."""

from __future__ import annotations

import os
import shlex
import sys
import time
from pathlib import Path

import anyio
import pytest

from ow import AsyncOpenWeights
from ow.agent import Agent, Hardware
from ow.core import events as ev
from ow.core import secrets as sec
from ow.core import subjects
from ow.core import tenancy as tn
from ow.core.config import from_env
from ow.core.errors import JobCanceledError
from tests.integration.agents import ShellJob, kill9, start_agent_process  # noqa: F401

from .conftest import eventually

pytestmark = [pytest.mark.anyio,
              pytest.mark.skipif(not os.access("/usr/bin/bwrap", os.X_OK),
                                 reason="needs bubblewrap (make sysdeps)")]

ATTACK = """
import os, sys
home, agent_pid, others = sys.argv[1], sys.argv[2], sys.argv[3:]
def attempt(what, fn):
    try:
        data = fn()
        print("READ", what, repr(data[:60]))
    except Exception as exc:
        print("DENIED", what, type(exc).__name__)
attempt("environ", lambda: open(f"/proc/{agent_pid}/environ", "rb").read())
attempt("cmdline", lambda: open(f"/proc/{agent_pid}/cmdline", "rb").read())
attempt("tenancy", lambda: open(os.path.join(home, "tenancy.json"), "rb").read())
attempt("secret.key", lambda: open(os.path.join(home, "secret.key"), "rb").read())
attempt("home", lambda: os.listdir(home) or 1/0)
for other in others:
    attempt("workdir " + other, lambda: os.listdir(other) or 1/0)
print("AGENT_SECRET" in os.environ and "LEAKED env" or "env clean", os.environ.get("HOME"))
print("pids", sorted(int(p) for p in os.listdir("/proc") if p.isdigit())[:5])
"""


def _procs(marker: str) -> list[int]:
    """Host pids whose command line holds `marker`."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and marker.encode() in (entry / "cmdline").read_bytes():
                found.append(int(entry.name))
        except OSError:
            continue
    return found


def _agent(t, tmp_path: Path, org: str = "orga", **kw) -> Agent:
    config = from_env({}, url=t.url, org=org, home=str(t.home), heartbeat_s=1.0,
                      token=tn.worker_token(tn.load(t.home), org), **kw)
    environ = {"PATH": os.environ["PATH"], "PYTHONPATH": os.environ.get("PYTHONPATH", ""),
               "OW_HOME": str(t.home), "AGENT_SECRET": "agent-only"}
    return Agent(config, Hardware(image="*"), workdir=tmp_path / f"work-{org}", environ=environ)


async def _run(t, agent: Agent, command: str) -> tuple[object, str]:
    async with anyio.create_task_group() as tg:
        await tg.start(agent.run)
        async with AsyncOpenWeights(url=t.url, org=agent.config.org, env={},
                                    token=t.tokens[(agent.config.org, "submit")]) as ow:
            job = await ow.shell.create(command=command)
            done = await ow.jobs.wait(job.id, timeout=60)
            log = (await ow.files.content(done.runs[-1].log_file)).decode()
        agent.shutdown()
    return done, log


async def test_a_job_reads_nothing_of_the_home_other_work_dirs_or_the_agent(tenants, tmp_path):
    t = tenants
    sec.ensure_key(from_env({}, home=str(t.home)))  # the master key is in the home
    assert (t.home / "secret.key").exists()
    other_run = tmp_path / "work-orga" / "run-other"  # another run of this agent
    other_org = tmp_path / "work-orgb" / "run-b"  # another org's agent's run
    for d in (other_run, other_org):
        d.mkdir(parents=True)
        (d / "data.txt").write_text("private")
    agent = _agent(t, tmp_path)
    args = shlex.join([t.home.as_posix(), str(os.getpid()), str(other_run), str(other_org)])
    done, log = await _run(t, agent, f"{sys.executable} -c {shlex.quote(ATTACK)} {args}")
    assert done.status == "completed", log
    assert log.startswith("[ow] isolation: bwrap"), log
    assert "READ" not in log, log
    assert log.count("DENIED") == 7, log
    assert "env clean" in log
    assert f"env clean {tmp_path / 'work-orga'}" in log  # HOME is the run's own work dir


async def test_a_setsid_daemon_dies_with_its_sandbox(tenants, tmp_path):
    marker = f"1000.{os.getpid()}1"
    done, log = await _run(tenants, _agent(tenants, tmp_path),
                           f"setsid sleep {marker} & echo started")
    assert "started" in log
    await eventually(lambda: not _procs(marker), timeout=5)


async def test_cancel_ends_a_sandboxed_job_within_a_second(tenants, tmp_path):
    t = tenants
    marker = f"1000.{os.getpid()}2"
    agent = _agent(t, tmp_path)
    async with anyio.create_task_group() as tg:
        await tg.start(agent.run)
        async with AsyncOpenWeights(url=t.url, org="orga", env={},
                                    token=t.tokens[("orga", "submit")]) as ow:
            job = await ow.shell.create(command=f"setsid sleep {marker} & sleep {marker}")
            await eventually(lambda: len(_procs(marker)) >= 2, timeout=30)
            t0 = time.monotonic()
            await ow.jobs.cancel(job.id)
            with pytest.raises(JobCanceledError):
                await ow.jobs.wait(job.id, timeout=5)
            elapsed = time.monotonic() - t0
            assert not _procs(marker), "a process of the canceled job survived"
            assert elapsed < 1.0, f"cancel took {elapsed:.2f}s"
        agent.shutdown()


async def test_a_sandboxed_job_dies_with_its_agent_on_kill9(fresh_nats, org, tmp_path):
    marker = f"1000.{os.getpid()}3"
    proc = start_agent_process(fresh_nats.url, org, "doomed", tmp_path)
    async with AsyncOpenWeights(url=fresh_nats.url, org=org, env={}) as ow:
        await ow.shell.create(command=f"setsid sleep {marker} & sleep {marker}")
        await eventually(lambda: len(_procs(marker)) >= 2, timeout=30)
        kill9(proc)
        await eventually(lambda: not _procs(marker), timeout=5)


async def test_the_worker_and_the_log_say_which_isolation(tenants, tmp_path):
    t = tenants
    agent = _agent(t, tmp_path, sandbox="off")
    done, log = await _run(t, agent, "echo hi")
    assert log.startswith("[ow] isolation: none (NO isolation"), log
    async with await t.admin("orga") as b:
        history, _ = await b.history(subjects.worker_subject("orga", agent.worker_id))
    registered = [d.event for d in history if isinstance(d.event, ev.WorkerRegistered)]
    assert registered[-1].isolation == "none"
    done, log = await _run(t, _agent(t, tmp_path), "echo hi again")  # another job
    assert log.startswith("[ow] isolation: bwrap"), log


@pytest.mark.skipif(os.geteuid() != 0, reason="a separate user needs root")
async def test_without_bwrap_a_root_agent_runs_jobs_as_nobody(tenants, tmp_path):
    t = tenants
    agent = _agent(t, tmp_path, sandbox="user")
    done, log = await _run(t, agent, f"id -u; cat {t.home}/tenancy.json && echo READ; true")
    assert log.startswith("[ow] isolation: user"), log
    assert "\n65534\n" in log
    assert "READ" not in log
