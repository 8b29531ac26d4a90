"""`ow up` supervises what it starts; the scheduler and agents survive the server's death.

Each test runs a real `ow up --detach` on its own home and port, kills one of its processes
with SIGKILL (only pids it started: children of that `ow up`), and looks at the log.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import pytest

from ow.core import bus as bus_mod
from ow.core import events as ev
from ow.core import subjects

from .agents import client
from .conftest import eventually

pytestmark = pytest.mark.anyio

OW = str(Path(sys.executable).parent / "ow")


@asynccontextmanager
async def ow_up(tmp_path: Path):
    """`ow up --detach` on a home of its own; yields (url, home); `ow down` at the end."""
    home = tmp_path / "home"
    env = {k: v for k, v in os.environ.items() if not k.startswith("OW_")}
    # its jobs wait on flag files of the test's tmp dir: no sandbox (tests/security has it)
    env |= {"OW_HOME": str(home), "OW_SANDBOX": "off"}
    proc = await anyio.run_process([OW, "up", "--detach", "--port", "-1"], env=env, check=False)
    assert proc.returncode == 0, proc.stderr.decode()
    url = proc.stdout.decode().split("NATS at ")[1].split()[0]
    try:
        yield url, home
    finally:
        await anyio.run_process([OW, "down"], env=env, check=False)


def children_of(pid: int, module: str) -> list[int]:
    """Pids of `pid`'s child processes running `python -m <module>`."""
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            ppid = int(stat.read_text().rpartition(")")[2].split()[1])
            cmd = (stat.parent / "cmdline").read_bytes().split(b"\0")
        except (OSError, ValueError, IndexError):
            continue
        if ppid == pid and module.encode() in cmd:
            out.append(int(stat.parent.name))
    return out


def up_pid(home: Path) -> int:
    return json.loads((home / "up.json").read_text())["pid"]


async def events(url: str, kind: type) -> list:
    bus = await bus_mod.connect(url, org="default", actor="test")
    async with bus:
        history, _ = await bus.history(subjects.events_filter("default"))
    return [d.event for d in history if isinstance(d.event, kind)]


async def _in_progress(ow, job_id):
    job = await ow.jobs.retrieve(job_id)
    return job if job.status == "in_progress" else None


def _once(mark: Path) -> str:
    """A command that runs until killed the first time, and succeeds the second time."""
    return f"if [ -e {mark} ]; then exit 0; fi; touch {mark}; exec sleep 600"


@pytest.mark.timeout(180)  # `ow up`/`ow down` on a loaded 2-core machine
async def test_kill9_of_the_scheduler_under_ow_up_restarts_it_and_says_so(tmp_path):
    async with ow_up(tmp_path) as (url, home):
        (sched,) = await eventually(lambda: children_of(up_pid(home), "ow.scheduler"))
        os.kill(sched, signal.SIGKILL)
        (restarted,) = await eventually(lambda: events(url, ev.ServiceRestarted), timeout=20)
        assert (restarted.name, restarted.exit) == ("scheduler", -9)
        assert restarted.reason == "killed by SIGKILL"
        (again,) = await eventually(lambda: children_of(up_pid(home), "ow.scheduler"))
        assert again != sched
        assert "restarted scheduler (killed by SIGKILL" in (home / "up.log").read_text()
        async with client(url, "default") as ow:  # and the stack still runs jobs
            job = await ow.shell.create(command="echo fine")
            assert (await ow.jobs.wait(job.id, timeout=30)).status == "completed"


@pytest.mark.timeout(180)  # `ow up`/`ow down` on a loaded 2-core machine
async def test_kill9_of_the_local_agent_requeues_its_job_at_once(tmp_path):
    """Finding 9: the job of a killed agent waited for the 2-minute heartbeat limit."""
    mark = tmp_path / "first-run"
    async with ow_up(tmp_path) as (url, home), client(url, "default") as ow:
        job = await ow.shell.create(command=_once(mark))
        await eventually(lambda: _in_progress(ow, job.id), timeout=30)
        await eventually(mark.exists, timeout=20)
        (agent,) = children_of(up_pid(home), "ow.agent")
        os.kill(agent, signal.SIGKILL)
        done = await ow.jobs.wait(job.id, timeout=40)  # the old code: after ~140 s
        assert done.status == "completed"
        (requeued,) = await events(url, ev.JobRequeued)
        assert requeued.evidence["rule"] == "process_exited"
        assert requeued.worker_gone
        (restarted,) = await events(url, ev.ServiceRestarted)
        assert restarted.name == "agent"
        assert restarted.worker_id == done.runs[0].worker_id != done.runs[1].worker_id


@pytest.mark.timeout(180)  # `ow up`/`ow down` on a loaded 2-core machine
async def test_kill9_of_the_server_mid_job_the_scheduler_lives_and_the_job_completes(tmp_path):
    """The scheduler died with the server (an unhandled timeout while renewing its lease)."""
    flag = tmp_path / "go"
    async with ow_up(tmp_path) as (url, home), client(url, "default") as ow:
        (sched,) = await eventually(lambda: children_of(up_pid(home), "ow.scheduler"))
        job = await ow.shell.create(command=f"while [ ! -e {flag} ]; do sleep 0.05; done")
        await eventually(lambda: _in_progress(ow, job.id), timeout=30)
        nats_pid = json.loads((home / "up.json").read_text())["nats_pid"]
        for _ in range(2):  # twice, as in the finding
            os.kill(nats_pid, signal.SIGKILL)
            nats_pid = await eventually(lambda old=nats_pid: _new_nats_pid(home, old), timeout=30)
            await eventually(lambda: _reachable(url), timeout=30)
        flag.touch()
        assert (await ow.jobs.wait(job.id, timeout=60)).status == "completed"
        assert children_of(up_pid(home), "ow.scheduler") == [sched], "the scheduler died"
        # reported once the server is back (the reporter retries): wait for both
        restarts = await eventually(lambda: _restarts(url, 2), timeout=30)
        assert [e.name for e in restarts] == ["nats-server", "nats-server"]


async def _restarts(url: str, n: int) -> list | None:
    found = await events(url, ev.ServiceRestarted)
    return found if len(found) >= n else None


def _new_nats_pid(home: Path, old: int) -> int | None:
    pid = json.loads((home / "up.json").read_text())["nats_pid"]
    return pid if pid != old else None


async def _reachable(url: str) -> bool:
    try:
        bus = await bus_mod.connect(url, org="default", actor="test", reconnect=False)
    except Exception:
        return False
    await bus.close()
    return True


def test_services_restart_with_doubling_backoff_and_report_each_restart(tmp_path):
    """The supervision loop on real processes, with the clock in the test's hand."""
    from itertools import count

    from ow.cli._supervise import Child, Services

    ids = count(1)
    now = [100.0]

    def spawn(args, env, log):
        import subprocess

        return subprocess.Popen([sys.executable, "-c", "raise SystemExit(3)"])

    services = Services(spawn, clock=lambda: now[0])
    child = services.add(Child(
        "agent", lambda: ["ow.agent", "--worker-id", f"w{next(ids)}"], {"OW_ORG": "o"},
        tmp_path / "agent.log",
    ))
    reports = []
    for delay in (0.5, 1.0, 2.0):
        child.proc.wait()
        assert services.check() == []  # exit noticed, restart not due yet
        now[0] += delay
        (restarted,) = services.check()
        reports.append(restarted)
    assert [(r.name, r.exit, r.reason) for r in reports] == [("agent", 3, "exited with 3")] * 3
    assert [r.backoff_s for r in reports] == [0.5, 1.0, 2.0]
    assert [r.worker_id for r in reports] == ["w1", "w2", "w3"]  # the worker that died
    assert child.worker_id == "w4"  # each start is a new worker
    assert {r.org for r in reports} == {"o"}
    assert len({r.event_id for r in reports}) == 3
    child.proc.wait()
    now[0] += 60  # a service that ran for a minute is healthy: the first delay again
    child.started_at = now[0] - 61
    assert services.check() == []
    now[0] += 0.5
    assert services.check()[0].backoff_s == 0.5
    services.stop_all()
