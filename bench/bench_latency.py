"""Submit -> RunStarted and cancel -> process-gone latencies, p50/p99, vs a 5 s polling loop.

ow: one warm local agent process on an embedded server; jobs submitted through the SDK one
after another. Submit latency = RunStarted.ts - JobSubmitted.ts (both stamped on this
machine). Cancel latency = from `jobs.cancel()` to the job's child process being gone.

Baseline: the openweights loop, a worker that polls the job table every 5 s (for new
jobs and for cancel flags); the same number of jobs arrive at random moments and are picked
up / noticed at the next poll. It runs in the same process, in real time.
"""

from __future__ import annotations

import contextlib
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from statistics import quantiles

import anyio

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "integration"))

from _procs import process_of  # noqa: E402

from ow import AsyncOpenWeights  # noqa: E402
from ow.core import subjects  # noqa: E402
from ow.core.server import NatsServer, pid_alive  # noqa: E402

N = int(os.environ.get("BENCH_N", "100"))
POLL_S = 5.0


def pct(xs: list[float]) -> tuple[float, float]:
    q = quantiles(xs, n=100, method="inclusive")
    return q[49], q[98]


async def ow_latencies(url: str, tmp: Path) -> tuple[list[float], list[float]]:
    import agents  # noqa: F401 - registers the `shell` job type

    proc = subprocess.Popen(
        [sys.executable, "-m", "ow.agent", "--image", "*", "--workdir", str(tmp / "w")],
        env={**os.environ, "OW_URL": url, "OW_ORG": "bench"},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )
    submit, cancel = [], []
    try:
        async with AsyncOpenWeights(url=url, org="bench", env={}) as ow:
            bus = await ow.bus()
            for i in range(N + 5):  # the first 5 warm up
                job = await ow.shell.create(command="true", tag=f"s{i}")
                await ow.jobs.wait(job.id, timeout=30)
                history, _ = await bus.history(subjects.job_subject("bench", job.id))
                ts = {type(d.event).__name__: d.event.ts for d in history}
                if i >= 5:
                    submit.append((ts["RunStarted"] - ts["JobSubmitted"]).total_seconds())
            for i in range(N):
                # found by its command line: a sandboxed job cannot hand us its pid (_procs)
                argv = ["sleep", f"600.{i:04d}"]
                job = await ow.shell.create(command=" ".join(argv), tag=f"c{i}")
                while (pid := process_of(argv)) is None:
                    await anyio.sleep(0.002)
                t0 = time.perf_counter()
                await ow.jobs.cancel(job.id)
                while pid_alive(pid):
                    await anyio.sleep(0.001)
                cancel.append(time.perf_counter() - t0)
                await _until_canceled(ow, job.id)
    finally:
        proc.terminate()
        proc.wait(10)
    return submit, cancel


async def _until_canceled(ow, job_id: str) -> None:
    with contextlib.suppress(Exception):
        await ow.jobs.wait(job_id, timeout=10)


def polling_baseline() -> tuple[list[float], list[float]]:
    """Jobs arrive at random moments; a worker polls every POLL_S (openweights' loop)."""
    rng = random.Random(7)
    window = 2 * POLL_S
    lock = threading.Lock()
    table: dict[int, dict[str, float]] = {}
    stop = threading.Event()

    def worker() -> None:
        while not stop.wait(POLL_S):
            now = time.perf_counter()
            with lock:
                for row in table.values():
                    row.setdefault("seen", now)

    th = threading.Thread(target=worker, daemon=True)
    th.start()
    start = time.perf_counter()
    arrivals = sorted(rng.uniform(0, window) for _ in range(N))
    for i, at in enumerate(arrivals):
        time.sleep(max(0.0, start + at - time.perf_counter()))
        with lock:
            table[i] = {"at": time.perf_counter()}
    while True:
        with lock:
            if all("seen" in r for r in table.values()):
                break
        time.sleep(0.05)
    stop.set()
    lat = [r["seen"] - r["at"] for r in table.values()]
    return lat, lat  # new jobs and cancel flags are noticed by the same poll


async def main() -> None:
    tmp = Path(tempfile.mkdtemp(prefix="ow-bench-lat-"))
    with NatsServer(tmp / "nats") as server:
        submit, cancel = await ow_latencies(server.url, tmp)
    base_submit, base_cancel = await anyio.to_thread.run_sync(polling_baseline)
    rows = [
        ("submit -> RunStarted", pct(submit), pct(base_submit)),
        ("cancel -> process gone", pct(cancel), pct(base_cancel)),
    ]
    print(f"{N} jobs each; one warm local agent; baseline polls every {POLL_S:g} s")
    print(f"{'latency (ms)':<24}{'ow p50':>10}{'ow p99':>10}{'poll p50':>10}{'poll p99':>10}"
          f"{'p50 ratio':>11}")
    for name, (o50, o99), (b50, b99) in rows:
        print(f"{name:<24}{o50 * 1e3:>10.1f}{o99 * 1e3:>10.1f}{b50 * 1e3:>10.0f}"
              f"{b99 * 1e3:>10.0f}{b50 / o50:>10.0f}x")
    print("targets: submit p50 < 100 ms; cancel p99 < 1000 ms")


if __name__ == "__main__":
    anyio.run(main)
