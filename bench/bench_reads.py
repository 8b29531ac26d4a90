"""Reads through the read service (`ow serve`) against the private fold they replace.

Publishes `--jobs` jobs (4 control events each: submitted, started, artifact, finished)
and `--metric-rows` metric values (messages of 100 records x 3 keys, as `ow.run.log` sends
them; `_history.py`) to an embedded nats-server, then measures:

- `ow ls --limit 20` and `ow show <job>` end to end (subprocesses): first with no
  service (the private fold: start, connect, fold the control stream, query, render;
  median of 5), then with `python -m ow.cli.serve --no-web` running (start, connect, ask,
  render; median of 9, run in turn with `python -c pass` and `ow --help`, so all four
  see the same load of a shared machine). Target with the service: <= 250 ms. And one
  in-process ask, the request alone;
- the service's rebuild: start, fold every stream from sequence 1, first answer;
- query latency p50/p99 with 50 concurrent readers (list_jobs, job_detail,
  metrics_summary, each asking for "latest") while 2 jobs log metrics;
- the service's memory (VmRSS now, VmHWM its peak) after catching up and after the load.

The issue's figure is 100k jobs and 10M metric rows: `--full` (minutes of publishing and
folding on 2 cores); the default (`make bench`) is scaled down and the table says what was
measured. Run: `.venv/bin/python bench/bench_reads.py [--full | --jobs N --metric-rows N]`.
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

sys.path.insert(0, str(Path(__file__).parent))

from _history import KEYS, PER_MSG, publish_history  # noqa: E402

from ow.core import bus as bus_mod
from ow.core import codec, subjects
from ow.core import events as ev
from ow.core.errors import OWError, ServiceBehindError
from ow.core.ids import uuid7
from ow.core.server import NatsServer
from ow.projections.client import Reader

ORG = "bench"
READERS, ROUNDS = 50, 20
ROUNDS_CLI = 9  # rounds of the served `ow ls` / `ow show` and their baselines
FULL = {"jobs": 100_000, "metric_rows": 10_000_000}  # the figure (`--full`)
errors: list[str] = []  # failed asks of the load phase


def _timed(cmd: list[str], env: dict, repeat: int = 5) -> tuple[float, str]:
    times, err = [], ""
    for _ in range(repeat):
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, env=env, capture_output=True, check=True)
        times.append(time.perf_counter() - t0)
        err = proc.stderr.decode().strip()
    return statistics.median(times), err


def _timed_together(cmds: dict[str, list[str]], env: dict, rounds: int = ROUNDS_CLI
                    ) -> tuple[dict[str, float], str]:
    """Median seconds of each command, run in turn round after round: on a machine whose
    load drifts, each sees the same load, so they compare (and the stderr of the last)."""
    times: dict[str, list[float]] = {name: [] for name in cmds}
    err = ""
    for _ in range(rounds):
        for name, cmd in cmds.items():
            t0 = time.perf_counter()
            proc = subprocess.run(cmd, env=env, capture_output=True, check=True)
            times[name].append(time.perf_counter() - t0)
            err = proc.stderr.decode().strip()
    return {name: statistics.median(ts) for name, ts in times.items()}, err


def _memory_mb(pid: int) -> dict[str, float]:
    """The process's resident memory now (VmRSS) and at its peak (VmHWM), in MB."""
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = int(value.split()[0]) / 1024
    return out


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


async def _first_answer(url: str) -> float:
    """Seconds until the service answers a query reflecting every stored event."""
    t0 = time.perf_counter()
    bus = await bus_mod.connect(url, org=ORG, actor="bench")
    try:
        r = Reader(bus, fallback=False, timeout=60)
        while True:
            try:
                await r.ask("list_jobs", {"limit": 20})
                break
            except ServiceBehindError:  # it answers once it has folded what was stored
                await anyio.sleep(0.2)
        t1 = time.perf_counter()
        asks = []
        for _ in range(20):
            t = time.perf_counter()
            await r.ask("list_jobs", {"limit": 20})
            asks.append(time.perf_counter() - t)
    finally:
        await bus.close()
    return t1 - t0, statistics.median(asks)


def _args() -> argparse.Namespace:
    ap = argparse.ArgumentParser()
    ap.add_argument("--jobs", type=int, default=20_000)
    ap.add_argument("--metric-rows", type=int, default=1_500_000)
    ap.add_argument("--full", action="store_true",
                    help=f"the issue's size: {FULL['jobs']:,} jobs, {FULL['metric_rows']:,} rows")
    args = ap.parse_args()
    if args.full:
        args.jobs, args.metric_rows = FULL["jobs"], FULL["metric_rows"]
    return args


async def main() -> None:
    args = _args()
    root = Path(tempfile.mkdtemp(prefix="ow-bench-reads-"))
    server = NatsServer(root / "nats", name="bench").start()
    svc = None
    m: dict[str, object] = {"args": args}
    try:
        bus = await bus_mod.connect(server.url, org=ORG, actor="bench")
        await bus.provision()
        t0 = time.perf_counter()
        await publish_history(bus, args.jobs, args.metric_rows // (PER_MSG * KEYS))
        m["publish_s"] = time.perf_counter() - t0
        await bus.close()
        home = root / "home"
        home.mkdir()
        env = {**os.environ, "OW_URL": server.url, "OW_ORG": ORG, "OW_HOME": str(home)}
        cli = str(Path(sys.executable).parent / "ow")
        ls, show = [cli, "ls", "--limit", "20"], [cli, "show", "job-000001"]
        m["ls_private"], m["notice"] = await anyio.to_thread.run_sync(_timed, ls, env)
        m["show_private"], _ = await anyio.to_thread.run_sync(_timed, show, env)
        t0 = time.perf_counter()
        svc = subprocess.Popen([sys.executable, "-m", "ow.cli.serve", "--no-web"], env=env,
                               stdout=open(root / "serve.log", "wb"),  # noqa: SIM115
                               stderr=subprocess.STDOUT)
        while not (home / "serve.json").exists():
            if svc.poll() is not None:
                raise SystemExit((root / "serve.log").read_text())
            await anyio.sleep(0.05)
        m["started_s"] = time.perf_counter() - t0
        first_s, m["ask_s"] = await _first_answer(server.url)
        m["caught_up_s"] = m["started_s"] + first_s
        m["mem_caught_up"] = _memory_mb(svc.pid)
        served, err = await anyio.to_thread.run_sync(_timed_together, {
            "pass": [sys.executable, "-c", "pass"], "help": [cli, "--help"],
            "ls_served": ls, "show_served": show}, env)
        assert "no read service" not in err, err
        m.update(served)
        t0 = time.perf_counter()
        m["latencies"], m["logged"] = await _load(server.url)
        m["load_s"] = time.perf_counter() - t0
        m["mem_loaded"] = _memory_mb(svc.pid)
        _table(m)
    finally:
        if svc is not None and svc.poll() is None:
            svc.terminate()
            svc.wait(10)
        server.stop(kill=True)


def _table(m: dict) -> None:
    args, ms = m["args"], lambda key: f"{m[key] * 1000:.0f} ms"
    lat = sorted(m["latencies"])
    p50, p99 = lat[len(lat) // 2], lat[min(len(lat) - 1, int(len(lat) * 0.99))]
    mem0, mem1 = m["mem_caught_up"], m["mem_loaded"]
    lines = [
        ("log", f"{args.jobs:,} jobs", f"{args.jobs * 4:,} control events, "
         f"{args.metric_rows:,} metric rows; published in {m['publish_s']:.1f} s"),
        ("`python -c pass`", ms("pass"), f"the interpreter's start; median of {ROUNDS_CLI}, "
         "in turn with the 3 below"),
        ("`ow --help`", ms("help"), "the CLI's start (every command module)"),
        ("`ow ls` private fold", ms("ls_private"),
         f"median of 5, no service ({'notice printed' if m['notice'] else 'NO notice'})"),
        ("`ow show` private fold", ms("show_private"), "median of 5"),
        ("service start", f"{m['started_s']:.1f} s", "until serve.json (orgs caught up)"),
        ("service rebuild (first answer)", f"{m['caught_up_s']:.1f} s",
         "start + fold every stream from seq 1 + answer 'latest'"),
        ("service RSS / peak caught up", f"{mem0['VmRSS']:.0f} / {mem0['VmHWM']:.0f} MB",
         "VmRSS / VmHWM"),
        ("query `list_jobs` in process", f"{m['ask_s'] * 1000:.1f} ms",
         "one Reader.ask('latest'), median of 20: the request alone"),
        ("`ow ls` with the service", ms("ls_served"),
         f"target <= 250 ms; {m['ls_private'] / m['ls_served']:.1f}x faster"),
        ("`ow show` with the service", ms("show_served"),
         f"{m['show_private'] / m['show_served']:.1f}x faster"),
        ("query p50 (50 readers)", f"{p50 * 1000:.1f} ms",
         f"{len(lat)} asks for 'latest' in {m['load_s']:.1f} s; 2 jobs logged "
         f"{m['logged']:,} rows"),
        ("query p99 (50 readers)", f"{p99 * 1000:.1f} ms",
         f"{len(errors)} failed" + (f" (first: {errors[0][:60]})" if errors else "")),
        ("service RSS / peak after load", f"{mem1['VmRSS']:.0f} / {mem1['VmHWM']:.0f} MB", ""),
    ]
    w = max(len(a) for a, _, _ in lines)
    v = max(len(b) for _, b, _ in lines)
    print(f"{'measure':<{w}}  {'value':>{v}}  note")
    for a, b, c in lines:
        print(f"{a:<{w}}  {b:>{v}}  {c}")
    print(json.dumps({"ls_served_ms": round(m["ls_served"] * 1000), "p99_ms": round(p99 * 1000, 1),
                      "rss_mb": round(mem1["VmRSS"]), "peak_mb": round(mem1["VmHWM"])}))


if __name__ == "__main__":
    anyio.run(main)
