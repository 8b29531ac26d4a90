"""What the workers, costs, audit and paging endpoints answer over a real agent's run."""

from __future__ import annotations

import httpx
import pytest

from ow.core import events as ev
from tests.integration.agents import client
from tests.integration.conftest import eventually

from .conftest import running_dashboard, running_job

pytestmark = pytest.mark.anyio

PRICE = 36.0  # $/hour: 1 cent a second


async def test_workers_and_the_cost_ledger_price_a_real_run(bus, home, tmp_path):
    worker_id = "worker-priced0001"
    # what a provider publishes before it starts the worker (scheduler/service.py)
    await bus.publish(ev.WorkerProvisioned(worker_id=worker_id, provider="local",
                                           hardware="cpu", price_per_hour=PRICE))
    async with running_dashboard({"default": bus}, home) as d, running_job(
        bus.url, d, tmp_path, "priced", worker_id=worker_id
    ) as (job, run_id, c), httpx.AsyncClient(base_url=d.url) as http:
        async def running_worker():  # its next heartbeat names the run it took
            workers = (await http.get("/api/orgs/default/workers")).json()["workers"]
            return next((w for w in workers if w["worker_id"] == worker_id
                         and w["run_id"] == run_id), None)

        w = await eventually(running_worker)
        assert w["price_per_hour"] == PRICE
        assert w["isolation"] in ("bwrap", "user", "none")  # what the agent registered with
        assert w["cost_usd"] > 0
        assert 0 <= w["heartbeat_age_s"] < 30
        await c.jobs.cancel(job.id)
        await eventually(lambda: _run_done(http, job.id))
        ledger = (await http.get("/api/orgs/default/costs")).json()
        (row,) = ledger["jobs"]
        assert row["job_id"] == job.id
        assert row["runs"] == 1
        assert row["seconds"] > 0
        assert row["cost_usd"] == pytest.approx(PRICE * row["seconds"] / 3600, abs=1e-3)
        assert ledger["org_cost_usd"] >= row["cost_usd"]  # the worker also idled

        # a result from a run that no longer holds the claim: kept, rejected, reported
        await bus.publish(ev.RunFinished(run_id=run_id, job_id=job.id, status="completed"))
        found = await eventually(lambda: _anomalies(http))
        assert found[0]["aggregate_id"] == job.id
        assert found[0]["type"] == "RunFinished"
        assert found[0]["rule"]


async def _run_done(http: httpx.AsyncClient, job_id: str) -> bool:
    body = (await http.get(f"/api/orgs/default/jobs/{job_id}")).json()
    return bool(body["runs_detail"]) and body["runs_detail"][0]["finished_at"] is not None


async def _anomalies(http: httpx.AsyncClient) -> list:
    return (await http.get("/api/orgs/default/anomalies")).json()["anomalies"]


async def test_jobs_pages_and_filters(bus, home):
    c = client(bus.url, "default")
    ids = [(await c.shell.create(command="true", tag=f"page{i}")).id for i in range(3)]
    async with running_dashboard({"default": bus}, home) as d, httpx.AsyncClient(
        base_url=d.url
    ) as http:
        first = (await http.get("/api/orgs/default/jobs",
                                params={"limit": 2, "at_least": 3})).json()
        assert first["total"] == 3
        assert len(first["jobs"]) == 2
        rest = (await http.get("/api/orgs/default/jobs", params={"limit": 2, "offset": 2})).json()
        assert len(rest["jobs"]) == 1
        seen = {j["job_id"] for j in first["jobs"] + rest["jobs"]}
        assert seen == set(ids)
        typed = (await http.get("/api/orgs/default/jobs", params={"type": "other"})).json()
        assert typed["jobs"] == []
        pending = (await http.get("/api/orgs/default/jobs", params={"status": "pending"})).json()
        assert pending["total"] == 3
    await c.close()


async def test_a_runs_artifacts_and_log_download(bus, home, tmp_path):
    from tests.integration.agents import running_agents

    c = client(bus.url, "default")
    async with running_dashboard({"default": bus}, home) as d, running_agents(
        bus.url, "default", 1, tmp_path
    ), httpx.AsyncClient(base_url=d.url) as http:
        job = await c.shell.create(command="echo hi > uploads/result.txt; echo done")

        async def finished():
            body = (await http.get(f"/api/orgs/default/jobs/{job.id}")).json()
            runs = body["runs_detail"]
            return runs[0] if body["status"] == "completed" and runs[0]["log_file"] else None

        run = await eventually(finished, timeout=20)
        (path, file_id), = run["artifacts"].items()
        assert path == "result.txt"
        r = await http.get(f"/api/orgs/default/files/{file_id}")
        assert r.status_code == 200
        assert r.content == b"hi\n"
        assert "attachment" in r.headers["content-disposition"]
        log = await http.get(f"/api/orgs/default/files/{run['log_file']}")
        first, rest = log.text.split("\n", 1)  # the agent's line: which isolation the job got
        assert first.startswith("[ow] isolation")
        assert rest == "done\n"
    await c.close()
