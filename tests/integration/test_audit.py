"""`ow audit`: histories with one anomaly injected each (crafted events published straight
through the bus); audit must find each one, and a clean history gives a clean report."""

from __future__ import annotations

import duckdb
import pytest

from ow.core import events as ev
from ow.projections import Projector
from ow.projections.audit import audit
from tests.integration.test_projections_helpers import completed_job, pending_job

pytestmark = pytest.mark.anyio


def _rules(report) -> dict[str, list]:
    out: dict[str, list] = {}
    for v in report.violations:
        out.setdefault(v.rule, []).append(v)
    return out


async def _started(bus, job="j", run="r1", gen=0):
    await bus.publish(ev.RunStarted(run_id=run, job_id=job, gen=gen, worker_id="w", claim_rev=1))


async def test_clean_history_gives_a_clean_report(bus, tmp_path):
    await completed_job(bus)
    await pending_job(bus)
    report = await audit(bus, tmp_path / "p.duckdb")
    assert report.clean, report.violations
    assert report.positions["OW_EVENTS"] > 0


async def test_two_runs_started_for_one_generation(bus, tmp_path):
    await pending_job(bus, "j")
    await _started(bus, run="r1")
    await _started(bus, run="r2")
    rules = _rules(await audit(bus, tmp_path / "p.duckdb"))
    assert [v.detail for v in rules["double-start"]] == [
        "run r2 is run #2 started for generation 0 (first: r1)"]
    assert rules["rejected-event"][0].event_type == "RunStarted"


async def test_a_run_that_never_ended_once_the_job_moved_on(bus, tmp_path):
    await pending_job(bus, "j")
    await _started(bus, run="r1", gen=0)
    await _started(bus, run="r2", gen=1)
    rules = _rules(await audit(bus, tmp_path / "p.duckdb"))
    assert [v.event_type for v in rules["unterminated-run"]] == ["RunStarted"]
    assert "r1" in rules["unterminated-run"][0].detail


async def test_a_run_that_ended_twice(bus, tmp_path):
    await pending_job(bus, "j")
    await _started(bus, run="r1")
    await bus.publish(ev.RunFinished(run_id="r1", job_id="j", status="completed"))
    second = await bus.publish(ev.JobFailed(run_id="r1", job_id="j", error="late"))
    rules = _rules(await audit(bus, tmp_path / "p.duckdb"))
    assert [(v.seq, v.event_type) for v in rules["double-termination"]] == [(second, "JobFailed")]


async def test_a_result_from_a_run_without_the_claim(bus, tmp_path):
    await pending_job(bus, "j")
    await _started(bus, run="r1")
    await bus.publish(ev.JobRequeued(run_id="r1", job_id="j", reason="lost worker"))
    await _started(bus, run="r2", gen=1)
    stale = await bus.publish(ev.RunFinished(run_id="r1", job_id="j", status="completed"))
    rules = _rules(await audit(bus, tmp_path / "p.duckdb"))
    rejected = rules["rejected-event"]
    assert [(v.seq, v.event_type) for v in rejected] == [(stale, "RunFinished")]
    assert "r2 holds it" in rejected[0].detail


async def test_a_projection_that_lost_a_job_differs_from_a_replay(bus, tmp_path):
    path = tmp_path / "p.duckdb"
    await completed_job(bus)
    async with Projector(bus, path) as p:
        await p.catch_up()
    with duckdb.connect(str(path)) as con:
        con.execute("DELETE FROM jobs WHERE job_id = 'j1'")
    rules = _rules(await audit(bus, path))
    assert [v.aggregate_id for v in rules["missing-job"]] == ["j1"]
    assert rules["projection-drift"][0].detail.startswith("jobs: row only in the fresh replay")
