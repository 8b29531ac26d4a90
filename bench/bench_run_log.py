"""`ow.run.log` records/s from one process, side by side with the openweights way.

Rows, all in one run on this machine:
- ow.run.log (batched: one message carries up to RUN_LOG_BATCH records, each its own event)
- plain publish_async, one event per message (the naive NATS way)
- one INSERT per event into a local PostgreSQL (openweights: one row per event), if a
  server can start here; otherwise the row says unavailable.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

import anyio

sys.path.insert(0, str(Path(__file__).parent))

from _pg import postgres  # noqa: E402

from ow import AsyncOpenWeights  # noqa: E402
from ow.core import bus as bus_mod  # noqa: E402
from ow.core import codec  # noqa: E402
from ow.core import events as ev  # noqa: E402
from ow.core.server import NatsServer  # noqa: E402

N_OW = 300_000
N_ASYNC = 50_000
N_PG = 5_000


async def ow_run_log(url: str) -> float:
    async with AsyncOpenWeights(url=url, org="bench", run_id="run-bench", env={}) as ow:
        await ow.bus()
        t = time.perf_counter()
        for step in range(N_OW):
            await ow.run.log({"step": step, "loss": 1.0 / (step + 1), "lr": 1e-4})
        await ow.run.flush()
        return N_OW / (time.perf_counter() - t)


async def publish_async_each(url: str) -> float:
    bus = await bus_mod.connect(url, org="bench")
    t = time.perf_counter()
    futures = []
    for step in range(N_ASYNC):
        e = ev.MetricLogged(run_id="run-each", data={"step": step, "loss": 1.0})
        futures.append(await bus.publish_raw("ow.mx.bench.run-each", codec.encode(e), wait=False))
    for f in futures:
        await f
    rate = N_ASYNC / (time.perf_counter() - t)
    await bus.close()
    return rate


def pg_insert_each() -> float | str:
    """Inserts/s, or why PostgreSQL is unavailable here."""
    with postgres() as pg:
        if pg.dsn is None:
            return pg.row()
        import psycopg

        with psycopg.connect(pg.dsn, autocommit=True) as conn:
            conn.execute("create table events (id bigserial primary key, run_id text, data jsonb,"
                         " created_at timestamptz default now())")
            t = time.perf_counter()
            for step in range(N_PG):
                conn.execute("insert into events (run_id, data) values (%s, %s)",
                             ("run-pg", json.dumps({"step": step, "loss": 1.0})))
            return N_PG / (time.perf_counter() - t)


async def main() -> None:
    with NatsServer(tempfile.mkdtemp(prefix="ow-bench-")) as server:
        batched = await ow_run_log(server.url)
        each = await publish_async_each(server.url)
    pg = await anyio.to_thread.run_sync(pg_insert_each)
    rows = [
        ("ow.run.log (batched records)", batched),
        ("publish_async, 1 event/message", each),
        ("PostgreSQL INSERT per event", pg),
    ]
    print(f"{'method':<34}{'records/s':>14}{'vs PG INSERT':>14}")
    for name, rate in rows:
        if isinstance(rate, str):
            print(f"{name:<34}  PostgreSQL {rate}")
            continue
        ratio = f"{rate / pg:.1f}x" if not isinstance(pg, str) else "-"
        print(f"{name:<34}{rate:>14,.0f}{ratio:>14}")
    print("target: ow.run.log >= 100,000 records/s and >= 30x PostgreSQL INSERT per row")


if __name__ == "__main__":
    anyio.run(main)
