"""Dashboard figures in a real headless Chromium (the system binary), one run on this machine:

- first paint of the jobs page and of a run page (First Contentful Paint, and the time until
  the data is on screen: the jobs table, the plot with every record), by history size;
- `ow.run.log` -> its point on the plot: from the call (then `flush`) until the page's plot
  holds the record (target < 500 ms), p50 / p95 / max over N_LIVE records.

A private nats-server, a real agent running a real job (the run), the dashboard served as
the read service hosts it (live in-memory Projector, `serve_app`).

    PYTHONPATH=$PWD python bench/bench_dashboard.py
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

import anyio
from pydantic import BaseModel

from ow import AsyncOpenWeights, Jobs, register
from ow.agent import Agent, Hardware
from ow.core import bus as bus_mod
from ow.core.config import from_env
from ow.core.server import NatsServer
from ow.projections import Projector
from ow.web import create_app, serve_app

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
HISTORY = (0, 1_000, 10_000)  # records already logged when the run page opens
N_JOBS = 300
N_LIVE = 40


class _Params(BaseModel):
    command: str


@register("bench_shell")
class _Shell(Jobs):
    params = _Params
    requires_vram_gb = 0

    def get_entrypoint(self, p: _Params) -> str:
        return p.command


async def _paint(page, url: str, ready: str) -> tuple[float, float]:
    t = time.perf_counter()
    await page.goto(url)
    await page.wait_for_function(ready, timeout=60_000)
    shown = time.perf_counter() - t
    fcp = await page.evaluate(
        "performance.getEntriesByName('first-contentful-paint')[0]?.startTime ?? -1")
    return fcp / 1000, shown


async def _api_ms(url: str, run_id: str) -> float:
    import httpx

    async with httpx.AsyncClient(base_url=url, timeout=60) as http:
        t = time.perf_counter()
        r = await http.get(f"/api/orgs/default/runs/{run_id}")
        r.raise_for_status()
        return (time.perf_counter() - t) * 1000


async def _live(page, me, logged: int, rows: list[tuple[str, str]]) -> int:
    """Log N_LIVE records one by one; each: time until the page's plot holds it."""
    await page.wait_for_selector("#conn.live")
    lat, sent = [], []
    for i in range(N_LIVE):
        want = logged + i + 1
        t = time.perf_counter()
        await me.run.log({"step": logged + i, "loss": 0.01})
        await me.run.flush()
        sent.append(time.perf_counter() - t)
        await page.wait_for_function(
            f"Number(document.querySelector('#plot').dataset.records) >= {want}",
            polling="raf")
        lat.append(time.perf_counter() - t)
    q = statistics.quantiles(lat, n=20)
    rows.append((f"ow.run.log -> its point on the plot, {logged} records before: p50/p95/max",
                 f"{statistics.median(lat) * 1000:.0f} / {q[-1] * 1000:.0f} / "
                 f"{max(lat) * 1000:.0f} ms (target < 500 ms)"))
    rows.append(("  of which ow.run.log + flush (stored, acked): p50",
                 f"{statistics.median(sent) * 1000:.0f} ms"))
    return logged + N_LIVE


async def bench(tmp: Path) -> None:
    from playwright.async_api import async_playwright

    server = NatsServer(tmp / "nats", name="bench").start()
    rows: list[tuple[str, str]] = []
    try:
        bus = await bus_mod.connect(server.url, org="default", actor="bench")
        await bus.provision()
        c = AsyncOpenWeights(url=server.url, org="default", env={})
        for i in range(N_JOBS):
            await c.bench_shell.create(command=f"true {i}")
        agent = Agent(from_env({}, url=server.url, org="default", heartbeat_s=1.0),
                      Hardware(image="*"), workdir=tmp / "agent")
        async with anyio.create_task_group() as tg:
            p = Projector(bus, memory=True)
            await tg.start(p.run)

            async def projector_for(org: str) -> Projector:
                return p

            async def bus_for(org: str) -> bus_mod.Bus:
                return bus

            app = create_app(projector_for=projector_for, bus_for=bus_for, home=tmp / "home")
            port = await tg.start(serve_app, app)
            url = f"http://127.0.0.1:{port}"
            await tg.start(agent.run)
            job = await c.bench_shell.create(command="while true; do echo tick; sleep 1; done")
            while (j := await c.jobs.retrieve(job.id)).status != "in_progress":
                await anyio.sleep(0.05)
            run_id = j.runs[-1].id
            me = AsyncOpenWeights(url=server.url, org="default", env={}, run_id=run_id,
                                  job_id=job.id)
            async with async_playwright() as pw:
                browser = await pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
                page = await browser.new_page(viewport={"width": 1280, "height": 900})
                fcp, shown = await _paint(page, f"{url}/o/default/jobs",
                                          "document.querySelectorAll('#jobs tr').length > 1")
                rows.append((f"jobs page ({N_JOBS + 1} jobs, 50 shown): FCP / table shown",
                             f"{fcp * 1000:.0f} ms / {shown * 1000:.0f} ms"))
                logged = 0
                for n in HISTORY:
                    for step in range(logged, n):
                        await me.run.log({"step": step, "loss": 1 / (step + 1), "lr": 1e-4})
                    await me.run.flush()
                    logged = max(logged, n)
                    while (await p.query("SELECT count(DISTINCT (seq, idx)) AS n FROM metrics"
                                         ))[0]["n"] < logged:
                        await anyio.sleep(0.05)
                    fcp, shown = await _paint(
                        page, f"{url}/o/default/runs/{run_id}",
                        f"Number(document.querySelector('#plot')?.dataset.records) === {logged}"
                        if logged else "document.querySelector('#plot')?.dataset.records")
                    rows.append((f"run page, {logged} records: FCP / plot drawn",
                                 f"{fcp * 1000:.0f} ms / {shown * 1000:.0f} ms"))
                    rows.append(("  of which GET /api/.../runs/{id} (the points)",
                                 f"{await _api_ms(url, run_id):.0f} ms"))
                    if n in (0, HISTORY[-1]):
                        logged = await _live(page, me, logged, rows)
                await browser.close()
            await me.close()
            await c.jobs.cancel(job.id)
            agent.shutdown()
            tg.cancel_scope.cancel()
        await c.close()
        await bus.close()
    finally:
        server.stop(kill=True)
    width = max(len(r[0]) for r in rows)
    print(f"{'dashboard (headless chromium, this machine)':<{width}}  figure")
    for name, value in rows:
        print(f"{name:<{width}}  {value}")


def main() -> None:
    if not Path(CHROMIUM).exists():
        sys.exit(f"{CHROMIUM} is missing: `make sysdeps` installs it")
    with tempfile.TemporaryDirectory() as tmp:
        anyio.run(bench, Path(tmp))


if __name__ == "__main__":
    main()
