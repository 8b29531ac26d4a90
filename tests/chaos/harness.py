"""The chaos harness: a real `ow up` stack, a seeded schedule of faults, short jobs, and the
checks that nothing was lost or done twice. `tests/chaos/test_chaos.py` runs a short schedule
in `make test`; `bench/bench_chaos.py` runs a long one and prints a table.

Faults (each chosen by the seeded generator, applied to the processes `ow up` started):
kill -9 and SIGSTOP/SIGCONT of an agent, of the scheduler and of the nats-server, and
`ow down` / `ow up` of the whole stack. Jobs: quick commands, commands that log metrics
through `ow.run.log`, commands that fail, and long commands that the harness cancels.

Afterwards (`verify`): every job terminal with the status its kind expects, at most one result
per generation, every event id seen during the run still in the log and none stored twice,
and `ow audit` clean (which also compares the projection with a fresh replay).

Imports: stdlib, anyio, `ow`.
"""

from __future__ import annotations

import collections
import contextlib
import json
import os
import random
import signal
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio

from ow import AsyncOpenWeights, Jobs, register
from ow.core import events as ev
from ow.core import subjects
from ow.core.server import free_port, pid_alive

OW = str(Path(sys.executable).parent / "ow")

FAULTS = ("kill_agent", "stop_agent", "kill_scheduler", "stop_scheduler", "kill_nats",
          "stop_nats", "down_up")
KINDS = {"ok": 4, "metrics": 3, "fail": 2, "cancel": 1}  # relative weights
EXPECTED = {"ok": "completed", "metrics": "completed", "fail": "failed", "cancel": "canceled"}


@register("chaos")
class ChaosJob(Jobs):
    """One shell command; `tag` makes each job's id its own."""

    requires_vram_gb = 0

    def get_entrypoint(self, params: Any) -> str:
        return params["command"]


def command(kind: str, i: int) -> str:
    if kind == "ok":
        return f"echo job {i}"
    if kind == "metrics":
        return ("python -c \"from ow import OpenWeights; o = OpenWeights(); "
                "[o.run.log({'step': s, 'loss': 1 / (s + 1)}) for s in range(8)]\"")
    if kind == "fail":
        return f"echo failing {i}; exit 3"
    return "sleep 60"  # canceled by the harness


@dataclass
class Fault:
    at: float  # seconds after the start
    kind: str
    pid: int = 0
    recovered_after: float | None = None  # seconds until the next run finished


@dataclass
class Run:
    seed: int
    jobs: dict[str, str] = field(default_factory=dict)  # job_id -> kind
    faults: list[Fault] = field(default_factory=list)
    seen: dict[str, int] = field(default_factory=dict)  # event_id -> seq, from a live tail
    finished_at: list[float] = field(default_factory=list)  # monotonic times of RunFinished


class Stack:
    """`ow up --detach` on a fixed port in its own home (restarts keep the URL)."""

    def __init__(self, home: Path, env: dict[str, str] | None = None):
        self.home = home
        self.port = free_port()
        self.url = f"nats://127.0.0.1:{self.port}"
        base = {k: v for k, v in os.environ.items() if not k.startswith("OW_")}
        self.env = {**base, "OW_HOME": str(home), "OW_URL": self.url, "COLUMNS": "200",
                    **(env or {})}

    async def ow(self, *args: str, check: bool = True) -> str:
        proc = await anyio.run_process([OW, *args], env=self.env, check=False)
        if check and proc.returncode != 0:
            raise AssertionError(f"ow {' '.join(args)} exited {proc.returncode}:\n"
                                 f"{proc.stdout.decode()}\n{proc.stderr.decode()}")
        return proc.stdout.decode()

    async def up(self) -> None:
        await self.ow("up", "--detach", "--port", str(self.port))

    async def down(self) -> None:
        await self.ow("down", check=False)

    def processes(self) -> dict[str, list[int]]:
        """The live processes of the stack by role: nats, scheduler, agent."""
        try:
            root = json.loads((self.home / "up.json").read_text())["pid"]
        except (OSError, ValueError, KeyError):
            return {}
        out: dict[str, list[int]] = collections.defaultdict(list)
        for pid in _descendants(root):
            cmd = _cmdline(pid)
            if cmd and cmd[0].endswith("nats-server"):
                out["nats"].append(pid)
            elif "ow.scheduler" in cmd:
                out["scheduler"].append(pid)
            elif "ow.agent" in cmd:
                out["agent"].append(pid)
        return dict(out)


def _cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [a.decode(errors="replace") for a in raw.split(b"\0") if a]


def _descendants(root: int) -> list[int]:
    children: dict[int, list[int]] = collections.defaultdict(list)
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rpartition(")")[2].split()[1])
        children[ppid].append(int(entry.name))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        for child in children.get(pid, []):
            out.append(child)
            todo.append(child)
    return out


async def inject(stack: Stack, fault: Fault, rng: random.Random) -> None:
    """Apply one fault to the stack; a process that is not there is skipped (its pid 0)."""
    if fault.kind == "down_up":
        await stack.down()
        await stack.up()
        return
    role = fault.kind.split("_", 1)[1]
    pids = stack.processes().get(role, [])
    if not pids:
        return
    fault.pid = rng.choice(pids)
    if fault.kind.startswith("kill"):
        _signal(fault.pid, signal.SIGKILL)
        return
    _signal(fault.pid, signal.SIGSTOP)
    await anyio.sleep(rng.uniform(0.5, 3.0))
    _signal(fault.pid, signal.SIGCONT)


def _signal(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


async def tail(client: AsyncOpenWeights, run: Run, t0: float) -> None:
    """Every control event of the org as it is stored (resumes across server restarts)."""
    bus = await client.bus()
    async for d in bus.subscribe(subjects.events_filter(bus.org), start_seq=1):
        run.seen.setdefault(d.event.event_id, d.seq)
        if isinstance(d.event, ev.RunFinished):
            run.finished_at.append(time.monotonic() - t0)


async def submit_all(client: AsyncOpenWeights, run: Run, n: int, duration: float,
                     rng: random.Random) -> None:
    """Submit `n` jobs spread over `duration` seconds; cancel the long ones a little later."""
    kinds = rng.choices(list(KINDS), weights=list(KINDS.values()), k=n)
    async with anyio.create_task_group() as tg:
        for i, kind in enumerate(kinds):
            job = await client.chaos.create(command=command(kind, i), tag=f"{run.seed}-{i}")
            run.jobs[job.id] = kind
            if kind == "cancel":
                tg.start_soon(_cancel_later, client, job.id, rng.uniform(0.0, 3.0))
            await anyio.sleep(duration / n)


async def _cancel_later(client: AsyncOpenWeights, job_id: str, delay: float) -> None:
    await anyio.sleep(delay)
    await client.jobs.cancel(job_id)


async def chaos(stack: Stack, run: Run, duration: float, rng: random.Random, t0: float,
                gap: tuple[float, float] = (2.0, 6.0)) -> None:
    """Faults at random gaps until `duration` seconds have passed: every kind once, in a
    random order, then kinds at random."""
    first = rng.sample(FAULTS, len(FAULTS))
    while (now := time.monotonic() - t0) < duration:
        fault = Fault(at=now, kind=first.pop() if first else rng.choice(FAULTS))
        run.faults.append(fault)
        print(f"chaos: t={now:6.1f}s {fault.kind}", flush=True)
        await inject(stack, fault, rng)
        await anyio.sleep(rng.uniform(*gap))


async def settle(client: AsyncOpenWeights, run: Run, timeout_s: float) -> dict[str, Any]:
    """Wait until every job is terminal; returns job_id -> Job."""
    deadline = time.monotonic() + timeout_s
    while True:
        jobs = {j.id: j for j in await client.jobs.list() if j.id in run.jobs}
        open_ = [j for j in run.jobs if j not in jobs or jobs[j].status not in
                 ("completed", "failed", "canceled")]
        if not open_:
            return jobs
        if time.monotonic() > deadline:
            raise AssertionError(
                f"{len(open_)} of {len(run.jobs)} jobs not terminal after {timeout_s:.0f}s, e.g. "
                + ", ".join(f"{j}={jobs[j].status if j in jobs else 'missing'}"
                            for j in open_[:5]))
        await anyio.sleep(0.5)


async def verify(stack: Stack, client: AsyncOpenWeights, run: Run,
                 jobs: dict[str, Any]) -> dict[str, Any]:
    """The post-conditions; returns figures for the bench table. Raises AssertionError."""
    wrong = {j: (run.jobs[j], jobs[j].status) for j in run.jobs
             if jobs[j].status != EXPECTED[run.jobs[j]]
             and not (run.jobs[j] == "cancel" and jobs[j].status == "canceled")}
    # a cancel may lose the race with nothing (the job sleeps 60 s), so it must be canceled
    assert not wrong, f"jobs ended in the wrong state (kind, status): {wrong}"
    bus = await client.bus()
    history, _ = await bus.history(subjects.events_filter(bus.org))
    ids = collections.Counter(d.event.event_id for d in history)
    duplicates = {i: c for i, c in ids.items() if c > 1}
    lost = sorted(set(run.seen) - set(ids))
    per_gen: collections.Counter[tuple[str, int]] = collections.Counter()
    gen_of = {d.event.run_id: d.event.gen for d in history if isinstance(d.event, ev.RunStarted)}
    for d in history:
        if isinstance(d.event, ev.RunFinished):
            per_gen[(d.event.job_id, gen_of.get(d.event.run_id, -1))] += 1
    doubled = {k: c for k, c in per_gen.items() if c > 1}
    assert not duplicates, f"event ids stored more than once: {duplicates}"
    assert not lost, f"events seen during the run are gone from the log: {lost[:10]}"
    assert not doubled, f"more than one result for a generation: {doubled}"
    audit = json.loads(await stack.ow("audit", "--json", check=False))
    assert audit["clean"], f"ow audit: {audit['violations'][:10]}"
    return {"duplicates": len(duplicates), "lost": len(lost), "doubled": len(doubled)}


def recovery(run: Run) -> list[float]:
    """Per fault: seconds until the next run finished after it (a fault with none after it
    is left out)."""
    out = []
    for f in run.faults:
        later = [t for t in run.finished_at if t > f.at]
        if later:
            f.recovered_after = min(later) - f.at
            out.append(f.recovered_after)
    return out


def table(run: Run, jobs: dict[str, Any], figures: dict[str, Any], seconds: float) -> str:
    """The bench table: faults by kind, jobs by outcome, losses, time to recover."""
    rec = recovery(run)
    rows = [("seed", str(run.seed)), ("duration (s)", f"{seconds:.0f}")]
    for kind in FAULTS:
        rows.append((f"faults: {kind}", str(sum(f.kind == kind for f in run.faults))))
    by_status = collections.Counter(j.status for j in jobs.values())
    rows += [(f"jobs {s}", str(by_status[s])) for s in ("completed", "failed", "canceled")]
    rows += [("duplicate events", str(figures["duplicates"])),
             ("lost events", str(figures["lost"])),
             ("generations with 2 results", str(figures["doubled"]))]
    if rec:
        q = statistics.quantiles(rec, n=100) if len(rec) > 1 else rec * 99
        rows += [("time to recover p50 (s)", f"{statistics.median(rec):.2f}"),
                 ("time to recover p99 (s)", f"{q[98]:.2f}")]
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{width}}  {v:>8}" for k, v in rows)


async def run_chaos(home: Path, *, seed: int, jobs: int, duration: float,
                    settle_s: float = 180.0, env: dict[str, str] | None = None
                    ) -> tuple[Run, dict[str, Any], dict[str, Any]]:
    """One whole chaos run: up, jobs + faults + tail, settle, verify, down."""
    rng = random.Random(seed)
    run = Run(seed=seed)
    stack = Stack(home, env)
    await stack.up()
    t0 = time.monotonic()
    try:
        client = AsyncOpenWeights(url=stack.url, env={})
        async with client, anyio.create_task_group() as tg:
            tg.start_soon(tail, client, run, t0)
            async with anyio.create_task_group() as work:
                work.start_soon(submit_all, client, run, jobs, duration, random.Random(seed + 1))
                work.start_soon(chaos, stack, run, duration, rng, t0)
            if not stack.processes():  # the last fault may have been mid-restart
                await stack.up()
            done = await settle(client, run, settle_s)
            figures = await verify(stack, client, run, done)
            tg.cancel_scope.cancel()
    finally:
        await stack.down()
        for pids in stack.processes().values():
            for pid in pids:
                if pid_alive(pid):
                    _signal(pid, signal.SIGKILL)
    return run, done, figures
