"""Publish and consume rates of the embedded server, default `sync_interval` vs `always`.

Rows, all in one run on this machine (each setting gets its own server and temporary store):
- sequential `bus.publish` (one round trip per event: what a CLI or a scheduler does),
- `bus.publish_batch` in batches of 1000 (pipelined acks),
- one ordered consumer (`bus.subscribe`) reading everything back.

The result decides `defaults.EMBEDDED_SYNC_INTERVAL`. Run: `.venv/bin/python bench/bench_publish.py`
(BENCH_N scales the event counts).
"""

from __future__ import annotations

import os
import tempfile
import time

import anyio

from ow.core import bus as bus_mod
from ow.core import events as ev
from ow.core.server import NatsServer

N_SEQ = int(os.environ.get("BENCH_N", "3000"))
N_BATCH = N_SEQ * 10
BATCH = 1000
SETTINGS = [("default (2m)", ""), ("always", "always")]


def _event(i: int) -> ev.Event:
    return ev.ArtifactUploaded(
        run_id=f"run-{i % 50}", job_id=f"custom-{i % 50:012x}", file_id=f"result:file-{i:012x}",
        path=f"uploads/out-{i}.jsonl",
    )


async def _sequential(bus: bus_mod.Bus) -> float:
    t = time.perf_counter()
    for i in range(N_SEQ):
        await bus.publish(_event(i))
    return N_SEQ / (time.perf_counter() - t)


async def _batched(bus: bus_mod.Bus) -> float:
    t = time.perf_counter()
    for start in range(0, N_BATCH, BATCH):
        await bus.publish_batch([_event(N_SEQ + i) for i in range(start, start + BATCH)])
    return N_BATCH / (time.perf_counter() - t)


async def _consume(bus: bus_mod.Bus, total: int) -> float:
    seen = 0
    t = time.perf_counter()
    async for _ in bus.subscribe(f"ow.ev.{bus.org}.>", start_seq=1, stop_at=total):
        seen += 1
    assert seen == total, f"consumer saw {seen} of {total}"
    return total / (time.perf_counter() - t)


async def _measure(sync: str) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        server = NatsServer(tmp, name="bench", sync_interval=sync).start()
        try:
            bus = await bus_mod.connect(server.url, org="bench", actor="bench")
            await bus.provision()
            rates = {
                "sequential publish": await _sequential(bus),
                f"publish_batch ({BATCH})": await _batched(bus),
            }
            rates["ordered consumer"] = await _consume(bus, N_SEQ + N_BATCH)
            await bus.close()
            return rates
        finally:
            server.stop()


async def main() -> None:
    results = {label: await _measure(sync) for label, sync in SETTINGS}
    (a_label, a), (b_label, b) = results.items()
    print(f"events/s, embedded nats-server, {N_SEQ} sequential + {N_BATCH} batched events")
    print(f"{'':24} {a_label:>14} {b_label:>14} {'ratio':>8}")
    for row in a:
        print(f"{row:24} {a[row]:>14,.0f} {b[row]:>14,.0f} {a[row] / b[row]:>7.1f}x")


if __name__ == "__main__":
    anyio.run(main)
