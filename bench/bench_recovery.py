"""Time to recover from kill -9 under `ow up`: an agent mid-job, the scheduler, the server.

One `ow up --detach` on a temporary home. Each round kills one process that `ow up` started
(found as its child by /proc) and measures, on this machine's clock:

- agent: kill of the agent running a job (`ow up`'s own, or one its scheduler started)
  -> `JobRequeued` of its run (the job is handed on) and kill -> job completed;
- scheduler: kill -> `ServiceRestarted` on the log;
- nats-server: kill -> a client connects again.

Baseline for the agent: without the exit evidence a dead worker is noticed by the heartbeat
rule only, after `LOST_AFTER_S` (120 s; measured 139.8 s to completion in the issue's run).
`BENCH_N` rounds of each (default 3).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from statistics import median

import anyio

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _procs import process_of  # noqa: E402

from ow import AsyncOpenWeights  # noqa: E402
from ow.core import bus as bus_mod  # noqa: E402
from ow.core import defaults, subjects  # noqa: E402
from ow.core import events as ev  # noqa: E402
from tests.integration.test_supervision import children_of  # noqa: E402

N = int(os.environ.get("BENCH_N", "3"))
OW = str(Path(sys.executable).parent / "ow")


async def until(check, limit_s: float = 120.0, interval: float = 0.02):
    with anyio.fail_after(limit_s):
        while not (result := await check()):
            await anyio.sleep(interval)
        return result


async def events_of(bus, kind) -> list:
    history, _ = await bus.history(subjects.events_filter(bus.org))
    return [d.event for d in history if isinstance(d.event, kind)]


async def agent_round(ow, bus, i: int) -> tuple[float, float]:
    # the job's `sleep` is found by its command line (a sandboxed job cannot tell us, _procs);
    # its second run, after the requeue, ends (exit 0) as soon as the bench stops its sleep
    argv = ["sleep", f"600.{i:04d}"]
    job = await ow.shell.create(command=f"{' '.join(argv)}; exit 0", tag=str(i))
    first = await until(lambda: _process(argv))
    running = await ow.jobs.retrieve(job.id)
    agent = await _pid_of(bus, running.runs[-1].worker_id)  # ow up's agent, or one it started
    killed = ev.now()
    os.kill(agent, signal.SIGKILL)
    requeued = await until(lambda: _requeue_of(bus, job.id))
    os.kill(await until(lambda: _process(argv, other_than=first)), signal.SIGKILL)
    await ow.jobs.wait(job.id, timeout=120)
    done = await ow.jobs.retrieve(job.id)
    return ((requeued.ts - killed).total_seconds(),
            (done.runs[-1].finished_at - killed).total_seconds())


async def _pid_of(bus, worker_id: str) -> int:
    found = [e for e in await events_of(bus, ev.WorkerRegistered) if e.worker_id == worker_id]
    return found[-1].pid


async def _process(argv: list[str], other_than: int | None = None) -> int | None:
    return process_of(argv, other_than)


async def _requeue_of(bus, job_id):
    return next((e for e in await events_of(bus, ev.JobRequeued) if e.job_id == job_id), None)


async def scheduler_round(bus, home: Path) -> float:
    up = json.loads((home / "up.json").read_text())["pid"]
    (sched,) = await until(lambda: anyio.to_thread.run_sync(children_of, up, "ow.scheduler"))
    before = len(await events_of(bus, ev.ServiceRestarted))
    killed = ev.now()
    os.kill(sched, signal.SIGKILL)
    restarted = await until(lambda: _nth_restart(bus, before))
    return (restarted.ts - killed).total_seconds()


async def _nth_restart(bus, before):
    found = await events_of(bus, ev.ServiceRestarted)
    return found[before] if len(found) > before else None


async def server_round(url: str, home: Path) -> float:
    pid = json.loads((home / "up.json").read_text())["nats_pid"]
    t0 = time.monotonic()
    os.kill(pid, signal.SIGKILL)
    await until(lambda: _new_server(home, pid))
    await until(lambda: _reachable(url))
    return time.monotonic() - t0


async def _new_server(home: Path, old: int) -> bool:
    return json.loads((home / "up.json").read_text())["nats_pid"] != old


async def _reachable(url: str) -> bool:
    try:
        b = await bus_mod.connect(url, org="default", actor="bench", reconnect=False)
    except Exception:
        return False
    await b.close()
    return True


async def main() -> None:
    import tests.integration.agents  # noqa: F401 - registers the `shell` job type

    tmp = Path(tempfile.mkdtemp(prefix="ow-bench-recovery-"))
    home = tmp / "home"
    env = {k: v for k, v in os.environ.items() if not k.startswith("OW_")} | {
        "OW_HOME": str(home)}
    out = subprocess.run([OW, "up", "--detach", "--port", "-1"], env=env, check=True,
                         capture_output=True, text=True).stdout
    url = out.split("NATS at ")[1].split()[0]
    rows = []
    try:
        async with AsyncOpenWeights(url=url, org="default", env={}) as ow:
            bus = await ow.bus()
            agent = [await agent_round(ow, bus, i) for i in range(N)]
            sched = [await scheduler_round(bus, home) for _ in range(N)]
        server = [await server_round(url, home) for _ in range(N)]
        rows = [
            ("agent kill -9 -> run requeued", [a for a, _ in agent],
             f">= {defaults.LOST_AFTER_S:g} (heartbeat rule)"),
            ("agent kill -9 -> job completed", [b for _, b in agent], "139.8 (the issue's run)"),
            ("scheduler kill -9 -> ServiceRestarted", sched, "never (not supervised)"),
            ("nats-server kill -9 -> clients connect", server, "never (not supervised)"),
        ]
    finally:
        subprocess.run([OW, "down"], env=env, check=False, capture_output=True)
    print(f"\nrecovery under `ow up` (seconds, {N} rounds each, 2-core machine)\n")
    print(f"{'fault':42} {'median':>8} {'max':>8}   before this change")
    for name, xs, base in rows:
        print(f"{name:42} {median(xs):8.2f} {max(xs):8.2f}   {base}")


if __name__ == "__main__":
    anyio.run(main)
