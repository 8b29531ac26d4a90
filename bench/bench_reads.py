"""Reads through the read service (`ow serve`) against the private fold they replace.

Publishes `--jobs` jobs (4 control events each: submitted, started, artifact, finished)
and `--metric-rows` metric values (messages of 100 records x 3 keys, as `ow.run.log` sends
them) to an embedded nats-server, then measures:

- `ow ls --limit 20` and `ow show <job>` end to end (subprocesses, median of 5): first
  with no service (the private fold: start, connect, fold the control stream, query,
  render), then with `python -m ow.cli.serve --no-web` running (start, connect, ask,
  render). Target with the service: <= 250 ms (the old path measured 988 ms);
- query latency p50/p99 with 50 concurrent readers (list_jobs, job_detail,
  metrics_summary, each asking for "latest") while 2 jobs log metrics;
- the service's resident memory (VmRSS) after catching up and after the load.

The issue's figure is 100k jobs and 10M metric rows: `--jobs 100000 --metric-rows
10000000` (several minutes of publishing and folding on 2 cores); the default is scaled
down and the table says what was measured. Run: `.venv/bin/python bench/bench_reads.py`.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import anyio

from ow.core import bus as bus_mod
from ow.core import codec, subjects
from ow.core import events as ev
from ow.core.errors import OWError
from ow.core.ids import uuid7
from ow.core.server import NatsServer
from ow.projections.client import Reader

ORG = "bench"
PER_MSG = 100  # records per metrics message
KEYS = 3  # metric values per record (loss, lr, tokens)
READERS, ROUNDS = 50, 20
errors: list[str] = []  # failed asks of the load phase


async def _publish(bus, jobs: int, metric_rows: int) -> None:
    t = ev.now()
    batch: list[ev.Event] = []
    for i in range(jobs):
        jid, rid = f"job-{i:06d}", f"run-{i:06d}"
        batch += [
            ev.JobSubmitted(job_id=jid, job_type="custom" if i % 3 else "fine-tuning",
                            model="m", params={"i": i}, ts=t),
            ev.RunStarted(run_id=rid, job_id=jid, gen=0, worker_id=f"w{i % 8}", ts=t),
            ev.ArtifactUploaded(run_id=rid, job_id=jid, file_id=f"f{i}", path="out.txt", ts=t),
            ev.RunFinished(run_id=rid, job_id=jid, status="completed", exit_code=0, ts=t),
        ]
        if len(batch) >= 10_000:
            await bus.publish_batch(batch)
            batch = []
    await bus.publish_batch(batch)
    futures = []
    for m in range(metric_rows // (PER_MSG * KEYS)):
        rid = f"run-{m % max(1, jobs):06d}"
        await_list = _records(bus, rid, m * PER_MSG)
        futures.append(await bus.publish_raw(subjects.metric_subject(ORG, rid),
                                             codec.encode_metrics(await_list, uuid7()), wait=False))
        if len(futures) >= 1000:
            for f in futures:
                await f
            futures = []
    for f in futures:
        await f


def _records(bus, rid: str, step0: int) -> list[ev.Event]:
    return [bus.stamp(ev.MetricLogged(run_id=rid, job_id=rid.replace("run", "job"), data={
        "step": s, "loss": 1.0 / (s + 1), "lr": 1e-4, "tokens": s * 512}))
        for s in range(step0, step0 + PER_MSG)]


def _timed(cmd: list[str], env: dict, repeat: int = 5) -> tuple[float, str]:
    times, err = [], ""
    for _ in range(repeat):
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, env=env, capture_output=True, check=True)
        times.append(time.perf_counter() - t0)
        err = proc.stderr.decode().strip()
    return statistics.median(times), err


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def _load(url: str) -> tuple[list[float], int]:
    """50 readers asking while 2 jobs log metrics; their latencies (s) and rows logged."""
    buses = [await bus_mod.connect(url, org=ORG, actor="bench") for _ in range(5)]
    latencies: list[float] = []
    logged = [0]
    errors.clear()
    queries = [("list_jobs", {"limit": 20}), ("job_detail", {"job_id": "job-000001"}),
               ("metrics_summary", {"run_id": "live-0"})]

    async def reader(i: int) -> None:
        r = Reader(buses[i % len(buses)], fallback=False)
        for k in range(ROUNDS):
            name, params = queries[(i + k) % len(queries)]
            t0 = time.perf_counter()
            try:
                await r.ask(name, params)
            except OWError as exc:  # counted and shown: a timeout is a result too
                errors.append(str(exc))
            latencies.append(time.perf_counter() - t0)

    async def logger(j: int, stop: anyio.Event) -> None:
        bus, step = buses[j], 0
        while not stop.is_set():
            records = [bus.stamp(ev.MetricLogged(run_id=f"live-{j}", job_id=f"live-{j}",
                                                 data={"step": step + s, "loss": 1.0}))
                       for s in range(10)]
            await bus.publish_raw(subjects.metric_subject(ORG, f"live-{j}"),
                                  codec.encode_metrics(records, uuid7()))
            step += 10
            logged[0] += 10
            await anyio.sleep(0.02)  # ~500 records/s per job, as a training loop logs

    stop = anyio.Event()
    async with anyio.create_task_group() as tg:
        for j in range(2):
            tg.start_soon(logger, j, stop)
        async with anyio.create_task_group() as readers:
            for i in range(READERS):
                readers.start_soon(reader, i)
        stop.set()
    for b in buses:
        await b.close()
    return latencies, logged[0]


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--jobs", type=int, default=20_000)
    ap.add_argument("--metric-rows", type=int, default=1_500_000)
    args = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="ow-bench-reads-"))
    server = NatsServer(root / "nats", name="bench").start()
    svc = None
    try:
        bus = await bus_mod.connect(server.url, org=ORG, actor="bench")
        await bus.provision()
        t0 = time.perf_counter()
        await _publish(bus, args.jobs, args.metric_rows)
        publish_s = time.perf_counter() - t0
        await bus.close()
        home = root / "home"
        home.mkdir()
        env = {**os.environ, "OW_URL": server.url, "OW_ORG": ORG, "OW_HOME": str(home)}
        cli = str(Path(sys.executable).parent / "ow")
        ls, show = [cli, "ls", "--limit", "20"], [cli, "show", "job-000001"]
        ls_private, notice = await anyio.to_thread.run_sync(_timed, ls, env)
        show_private, _ = await anyio.to_thread.run_sync(_timed, show, env)
        t0 = time.perf_counter()
        svc = subprocess.Popen([sys.executable, "-m", "ow.cli.serve", "--no-web"], env=env,
                               stdout=open(root / "serve.log", "wb"),  # noqa: SIM115
                               stderr=subprocess.STDOUT)
        while not (home / "serve.json").exists():
            if svc.poll() is not None:
                raise SystemExit((root / "serve.log").read_text())
            await anyio.sleep(0.05)
        catch_up_s = time.perf_counter() - t0
        rss_caught_up = _rss_mb(svc.pid)
        ls_served, err = await anyio.to_thread.run_sync(_timed, ls, env)
        assert "no read service" not in err, err
        show_served, _ = await anyio.to_thread.run_sync(_timed, show, env)
        t0 = time.perf_counter()
        latencies, logged = await _load(server.url)
        load_s = time.perf_counter() - t0
        rss_loaded = _rss_mb(svc.pid)
        _table(args, publish_s, notice, ls_private, show_private, catch_up_s, ls_served,
               show_served, latencies, logged, load_s, rss_caught_up, rss_loaded)
    finally:
        if svc is not None and svc.poll() is None:
            svc.terminate()
            svc.wait(10)
        server.stop(kill=True)


def _table(args, publish_s, notice, ls_private, show_private, catch_up_s, ls_served,
           show_served, latencies, logged, load_s, rss_caught_up, rss_loaded) -> None:
    lat = sorted(latencies)
    p50, p99 = lat[len(lat) // 2], lat[min(len(lat) - 1, int(len(lat) * 0.99))]
    lines = [
        ("log", f"{args.jobs:,} jobs", f"{args.jobs * 4:,} control events, "
         f"{args.metric_rows:,} metric rows; published in {publish_s:.1f} s"),
        ("`ow ls` private fold", f"{ls_private * 1000:.0f} ms",
         f"median of 5, no service ({'notice printed' if notice else 'NO notice'})"),
        ("`ow show` private fold", f"{show_private * 1000:.0f} ms", "median of 5"),
        ("service start + catch-up", f"{catch_up_s:.1f} s", "until serve.json"),
        ("`ow ls` with the service", f"{ls_served * 1000:.0f} ms",
         f"median of 5; target <= 250 ms; {ls_private / ls_served:.1f}x faster"),
        ("`ow show` with the service", f"{show_served * 1000:.0f} ms",
         f"median of 5; {show_private / show_served:.1f}x faster"),
        ("query p50 (50 readers)", f"{p50 * 1000:.1f} ms",
         f"{len(lat)} asks for 'latest' in {load_s:.1f} s; 2 jobs logged {logged:,} rows"),
        ("query p99 (50 readers)", f"{p99 * 1000:.1f} ms",
         f"{len(errors)} failed" + (f" (first: {errors[0][:60]})" if errors else "")),
        ("service RSS caught up", f"{rss_caught_up:.0f} MB", "VmRSS"),
        ("service RSS after load", f"{rss_loaded:.0f} MB", ""),
    ]
    w = max(len(a) for a, _, _ in lines)
    v = max(len(b) for _, b, _ in lines)
    print(f"{'measure':<{w}}  {'value':>{v}}  note")
    for a, b, c in lines:
        print(f"{a:<{w}}  {b:>{v}}  {c}")
    print(json.dumps({"ls_served_ms": round(ls_served * 1000), "p99_ms": round(p99 * 1000, 1)}))


if __name__ == "__main__":
    anyio.run(main)
