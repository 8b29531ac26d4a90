"""The dashboard in a real headless Chromium, as a user sees it: jobs appear live, the run
page plots every logged step and follows new ones, the log tail follows the job's output,
cancel from the page kills a real job, the stream comes back after the server drops it.
Every page is saved as a screenshot under the test's tmp dir."""

from __future__ import annotations

import json
import re

import pytest

from tests.integration.conftest import eventually

from .conftest import browser_page, run_client, running_dashboard, running_job, screenshot

pytestmark = pytest.mark.anyio


async def points(page) -> dict:
    """What the plot holds: points per series, and records received (duplicates count)."""
    el = page.locator("#plot")
    raw = await el.get_attribute("data-points")
    return {"points": json.loads(raw or "{}"),
            "records": int(await el.get_attribute("data-records") or 0)}


async def test_jobs_page_lists_a_job_submitted_through_the_sdk_within_a_second(
    bus, home, tmp_path
):
    from tests.integration.agents import client

    c = client(bus.url, "default")
    async with running_dashboard({"default": bus}, home) as d, browser_page(tmp_path) as page:
        await page.goto(f"{d.url}/o/default/jobs")
        await page.wait_for_selector("text=no jobs match")
        await page.wait_for_selector("#conn.live")
        # the projector's first fold after it started pays DuckDB's warm-up (about 1 s on a
        # loaded machine); a running read service has paid it long before
        first = await c.shell.create(command="true", tag="warm-up")
        await page.wait_for_selector(f"#jobs >> text={first.id}")
        job = await c.shell.create(command="true", tag="listed")
        await page.wait_for_selector(f"#jobs >> text={job.id}", timeout=1000)
        await screenshot(page, tmp_path, "jobs")
        await page.select_option("select[name=status]", "completed")
        await page.click("button[type=submit]")
        await page.wait_for_selector("text=no jobs match")
        assert "status=completed" in page.url
    await c.close()


async def test_run_page_plots_every_step_live_and_tails_the_log(bus, home, tmp_path):
    async with running_dashboard({"default": bus}, home) as d, running_job(
        bus.url, d, tmp_path, "plot"
    ) as (job, run_id, _c), browser_page(tmp_path) as page:
        me = run_client(bus.url, job.id, run_id)
        for step in range(10):
            await me.run.log({"step": step, "loss": 2.0 / (step + 1), "lr": 1e-4})
        await me.run.log({"step": 9, "type": "logp", "dataset": "eval", "tag": "a", "logp": -1.5})
        await me.run.flush()
        await page.goto(f"{d.url}/o/default/runs/{run_id}")
        got = await eventually(lambda: _with(page, "loss", 10))
        assert got["points"]["logp/eval/a"] == 1  # a log-prob tag is a series of its own
        assert got["records"] == 11
        await page.wait_for_selector("#log >> text=tick 2")
        for step in range(10, 15):
            await me.run.log({"step": step, "loss": 2.0 / (step + 1)})
        await me.run.flush()
        got = await eventually(lambda: _with(page, "loss", 15))
        assert got["records"] == 16
        # the uPlot legend shows loss and hides the others until clicked
        shown = await page.evaluate("owPlot.series.slice(1).map(s => [s.label, s.show])")
        assert dict(shown) == {"loss": True, "lr": False, "logp/eval/a": False}
        seen = await page.locator("#log").inner_text()
        last = int(seen.strip().rsplit("tick ", 1)[1])
        await page.wait_for_selector(f"#log >> text=tick {last + 3}")  # new lines, live
        await me.close()
        await screenshot(page, tmp_path, "run", docs=True)
        await page.goto(f"{d.url}/o/default/jobs/{job.id}")
        await page.wait_for_selector("#timeline >> text=RunStarted")
        await screenshot(page, tmp_path, "job")
        for name in ("workers", "events", "anomalies", "costs"):
            await page.goto(f"{d.url}/o/default/{name}")
            await page.wait_for_selector("main h1")
            await screenshot(page, tmp_path, name)


async def _with(page, series: str, n: int) -> dict | None:
    got = await points(page)
    return got if got["points"].get(series) == n else None


async def test_cancel_from_the_page_kills_the_running_job(bus, home, tmp_path):
    async with running_dashboard({"default": bus}, home) as d, running_job(
        bus.url, d, tmp_path, "cancel"
    ) as (job, run_id, c), browser_page(tmp_path) as page:
        await page.goto(f"{d.url}/o/default/jobs/{job.id}")
        await page.wait_for_selector(f"text={run_id}")
        await page.click("#cancel-button")
        done = await eventually(lambda: _finished(c, job.id), timeout=15)
        assert done.status == "canceled"
        await page.wait_for_selector("h1 >> text=canceled")  # the page followed, live
        await page.wait_for_selector("#timeline >> text=RunFinished")
        assert await page.locator("#cancel-button").count() == 0
        await screenshot(page, tmp_path, "job-canceled")
        href = await page.get_attribute("text=download", "href")  # the run's full log
        log = await page.evaluate("(u) => fetch(u).then(r => r.text())", href)
        assert log.split("\n", 1)[1].startswith("started\ntick 1\n")  # after the isolation line
        await page.click("#restart-button")  # a new generation, run again by the agent
        await page.wait_for_selector("h1 >> text=in_progress")
        assert await page.locator("#runs tbody tr").count() == 2


async def _finished(c, job_id: str):
    job = await c.jobs.retrieve(job_id)
    runs = [r for r in job.runs if r.status != "in_progress"]
    return job if job.status == "canceled" and runs else None


async def test_reconnecting_shown_and_the_plot_resumes_without_gap_or_duplicate(
    bus, home, tmp_path
):
    async with running_dashboard({"default": bus}, home) as d, running_job(
        bus.url, d, tmp_path, "reconnect"
    ) as (job, run_id, _c), browser_page(tmp_path) as page:
        me = run_client(bus.url, job.id, run_id)
        for step in range(5):
            await me.run.log({"step": step, "loss": 1.0 / (step + 1)})
        await me.run.flush()
        await page.goto(f"{d.url}/o/default/runs/{run_id}")
        await eventually(lambda: _with(page, "loss", 5))
        await page.wait_for_selector("#conn.live")
        await d.stop_server()
        await page.wait_for_selector("#conn >> text=reconnecting…")
        await screenshot(page, tmp_path, "run-reconnecting")
        for step in range(5, 12):  # logged while the page cannot hear
            await me.run.log({"step": step, "loss": 1.0 / (step + 1)})
        await me.run.flush()
        await d.start_server()
        await page.wait_for_selector("#conn.live", timeout=15_000)
        got = await eventually(lambda: _with(page, "loss", 12))
        assert got["records"] == 12  # every record once: none lost, none repeated
        for step in range(12, 14):
            await me.run.log({"step": step, "loss": 1.0 / (step + 1)})
        await me.run.flush()
        got = await eventually(lambda: _with(page, "loss", 14))
        assert got["records"] == 14
        # the log tail too: every line the job printed, across the drop, once and in order
        seen = await page.wait_for_selector("#log >> text=tick 30", timeout=20_000)
        ticks = [int(n) for n in re.findall(r"tick (\d+)", await seen.inner_text())]
        assert ticks == list(range(1, len(ticks) + 1))
        await screenshot(page, tmp_path, "run-resumed")
        await me.close()


async def test_job_page_shows_a_decisions_evidence_live(bus, home, tmp_path):
    from ow.core import events as ev
    from tests.integration.agents import client

    c = client(bus.url, "default")
    job = await c.shell.create(command="true", tag="evidence")
    async with running_dashboard({"default": bus}, home) as d, browser_page(tmp_path) as page:
        await page.goto(f"{d.url}/o/default/jobs/{job.id}")
        await page.wait_for_selector("#timeline >> text=JobSubmitted")
        await page.wait_for_selector("#conn.live")
        # what the scheduler publishes when no worker can take the job (scheduler/service.py)
        await bus.publish(ev.SchedulerNoticed(
            subject_id=job.id, rule="no_hardware_fits", message="needs 80 GB of VRAM",
            evidence={"requires_vram_gb": 80, "largest_gb": 24},
        ))
        item = page.locator("#timeline li", has_text="SchedulerNoticed")
        await item.wait_for()
        text = await item.inner_text()
        assert "no_hardware_fits" in text
        assert "needs 80 GB of VRAM" in text
        assert "requires_vram_gb" in text
        assert "largest_gb" in text
        await screenshot(page, tmp_path, "job-evidence")
    await c.close()


async def test_leaving_a_page_unsubscribes_its_streams(bus, home, tmp_path):
    async with running_dashboard({"default": bus}, home) as d, running_job(
        bus.url, d, tmp_path, "leave"
    ) as (_job, run_id, _c), browser_page(tmp_path) as page:
        before = len(bus.nc._subs)  # nats-py's own table: what this connection subscribes to
        await page.goto(f"{d.url}/o/default/runs/{run_id}")
        await page.wait_for_selector("#conn.live")
        await page.wait_for_selector("#log >> text=tick 1")
        assert len(bus.nc._subs) == before + 2  # the metrics and the log stream
        await page.goto("about:blank")
        await eventually(lambda: len(bus.nc._subs) == before)


async def test_workers_page_follows_heartbeats(bus, home, tmp_path):
    async with running_dashboard({"default": bus}, home) as d, running_job(
        bus.url, d, tmp_path, "beat"
    ) as (_job, run_id, _c), browser_page(tmp_path) as page:
        await page.goto(f"{d.url}/o/default/workers")
        row = page.locator("tbody tr", has_text=run_id)
        await row.wait_for()
        assert "isolation" in await page.locator("thead").inner_text()
        age = row.locator("td").nth(7)
        first = await age.inner_text()
        # no worker event happens meanwhile: only the heartbeats can move the age
        await eventually(lambda: _changed(age, first))
        await screenshot(page, tmp_path, "workers")


async def _changed(locator, before: str) -> bool:
    return (await locator.inner_text()) not in (before, "")
