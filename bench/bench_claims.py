"""Claims/s and duplicates: 16 agents on the dispatch consumer vs PostgreSQL SKIP LOCKED.

ow: N pending jobs, 16 in-process agents taking them through the real dispatch path
(shared pull consumer -> KV create fence -> RunStarted with expected subject sequence), the
job's process itself skipped so that only claiming is measured. PostgreSQL: the same N rows,
16 connections each looping `UPDATE ... WHERE id = (SELECT ... FOR UPDATE SKIP LOCKED LIMIT
1)`. Duplicates = jobs with more than one RunStarted (or claimed twice in PostgreSQL).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import anyio

sys.path.insert(0, str(Path(__file__).parent))

from _cpu import busy_s, used_s  # noqa: E402
from _pg import postgres  # noqa: E402

from ow.agent import Agent, Hardware  # noqa: E402
from ow.core import bus as bus_mod  # noqa: E402
from ow.core import events as ev  # noqa: E402
from ow.core import subjects  # noqa: E402
from ow.core.config import from_env  # noqa: E402

N = 2000
AGENTS = 16


class ClaimOnly(Agent):
    """The real agent, minus running the job's process."""

    claimed: Counter = Counter()

    async def _execute(self, state, seq, run_id, claim, rev) -> None:
        ClaimOnly.claimed[state.job_id] += 1


PROCS = int(os.environ.get("BENCH_PROCS", "4"))  # agents are separate processes in reality


async def run_claimers(url: str, n: int) -> None:
    """One process's share of the agents; exits when the dispatch queue is drained."""
    config = from_env({}, url=url, org="bench", heartbeat_s=30)
    agents = [ClaimOnly(config, Hardware(image="*")) for _ in range(n)]
    async with anyio.create_task_group() as tg:
        for a in agents:
            await tg.start(a.run)
        await anyio.sleep_forever()


def cpu_ms(before: float | None, claims: int) -> float | None:
    used = used_s(before)
    return None if used is None else used * 1000 / claims


async def ow_claims(url: str) -> tuple[float, int, float | None]:
    org = "bench"
    bus = await bus_mod.connect(url, org=org)
    await bus.provision()
    procs = [
        subprocess.Popen([sys.executable, __file__, "--claimers", url, str(AGENTS // PROCS)])
        for _ in range(PROCS)
    ]
    try:
        registered = 0
        async for d in bus.subscribe(subjects.events_filter(org, "worker"), start_seq=1):
            registered += isinstance(d.event, ev.WorkerRegistered)
            if registered == AGENTS:
                break
        filt = subjects.events_filter(org, "job")
        while True:  # every agent is waiting on the dispatch consumer
            try:
                dispatch = await bus.js.consumer_info(
                    subjects.EVENTS_STREAM, subjects.dispatch_consumer(org)
                )
                if (dispatch.num_waiting or 0) >= AGENTS:
                    break
            except Exception:  # not created yet
                pass
            await anyio.sleep(0.02)
        t, busy = time.perf_counter(), busy_s()
        await bus.publish_batch([
            ev.JobSubmitted(event_id=f"job-{i}", job_id=f"job-{i}", requires_vram_gb=0,
                            image="x")
            for i in range(N)
        ])
        while True:  # done when the dispatch consumer has handed out and seen acked every job
            dispatch = await bus.js.consumer_info(
                subjects.EVENTS_STREAM, subjects.dispatch_consumer(org)
            )
            if dispatch.num_pending == 0 and dispatch.num_ack_pending == 0:
                break
            await anyio.sleep(0.02)
        elapsed = time.perf_counter() - t
        cpu = cpu_ms(busy, N)
        started: Counter = Counter()
        last = await bus.last_seq(subjects.EVENTS_STREAM, filt)
        async for d in bus.subscribe(filt, start_seq=1, stop_at=last):
            if isinstance(d.event, ev.RunStarted):
                started[d.event.job_id] += 1
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait()
    await bus.close()
    return N / elapsed, sum(c - 1 for c in started.values()) + (N - len(started)), cpu


def pg_claims() -> tuple[float, int, float | None] | str:
    """(claims/s, duplicates, CPU ms/claim), or why PostgreSQL is unavailable here."""
    with postgres() as pg:
        if pg.dsn is None:
            return pg.row()
        import psycopg

        dsn = pg.dsn
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("create table jobs (id text primary key, status text, worker int)")
            with conn.cursor() as cur:
                cur.executemany("insert into jobs values (%s, 'pending', null)",
                                [(f"job-{i}",) for i in range(N)])
        claimed: Counter = Counter()
        lock = threading.Lock()

        def claimer(w: int) -> None:
            with psycopg.connect(dsn, autocommit=True) as conn:
                while True:
                    row = conn.execute(
                        "update jobs set status='in_progress', worker=%s where id = ("
                        "select id from jobs where status='pending' "
                        "for update skip locked limit 1) returning id", (w,)
                    ).fetchone()
                    if row is None:
                        return
                    with lock:
                        claimed[row[0]] += 1

        threads = [threading.Thread(target=claimer, args=(w,)) for w in range(AGENTS)]
        t, busy = time.perf_counter(), busy_s()
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        elapsed = time.perf_counter() - t
        cpu = cpu_ms(busy, N)
        return (N / elapsed, sum(1 for c in claimed.values() if c > 1) + (N - len(claimed)),
                cpu)


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


async def main() -> None:
    with NatsServerCtx() as url:
        ow_rate, ow_dups, ow_cpu = await ow_claims(url)
    pg = await anyio.to_thread.run_sync(pg_claims)
    cores = os.cpu_count() or 1
    print(f"{N} jobs, {AGENTS} claimers "
          f"(ow: {AGENTS} agents in {PROCS} processes; PG: {AGENTS} connections); {cores} cores")
    print(f"{'method':<40}{'claims/s':>12}{'duplicates':>12}{'vs PG':>10}{'CPU ms/claim':>14}")
    print(f"{'ow dispatch consumer + KV create fence':<40}{ow_rate:>12,.0f}{ow_dups:>12}"
          f"{(f'{ow_rate / pg[0]:.2f}x' if not isinstance(pg, str) else '-'):>10}"
          f"{_ms(ow_cpu):>14}")
    if not isinstance(pg, str):
        print(f"{'PostgreSQL FOR UPDATE SKIP LOCKED':<40}{pg[0]:>12,.0f}{pg[1]:>12}{'1.00x':>10}"
              f"{_ms(pg[2]):>14}")
    else:
        print(f"{'PostgreSQL FOR UPDATE SKIP LOCKED':<40}  PostgreSQL {pg}")
    print("target: ow claims/s >= PostgreSQL SKIP LOCKED, 0 duplicates")
    print("CPU ms/claim: the whole machine's busy CPU during the run per claim (server and "
          f"clients); {cores} cores cap a method at {cores} * 1000 / (CPU ms/claim) claims/s")


class NatsServerCtx:
    def __enter__(self) -> str:
        from ow.core.server import NatsServer

        self.server = NatsServer(tempfile.mkdtemp(prefix="ow-bench-")).start()
        return self.server.url

    def __exit__(self, *exc: object) -> None:
        self.server.stop()


if __name__ == "__main__":
    if sys.argv[1:2] == ["--claimers"]:
        anyio.run(run_claimers, sys.argv[2], int(sys.argv[3]))
    else:
        anyio.run(main)
