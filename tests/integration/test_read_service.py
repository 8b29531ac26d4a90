"""The read service in process: answers with positions, read-your-writes, bad input, the
query table, the SDK's lists through it (a real nats-server and real DuckDB files)."""

from __future__ import annotations

import anyio
import pytest

from ow.core import events as ev
from ow.core import subjects
from ow.core.bus import Bus, connect
from ow.core.errors import NotFoundError
from ow.projections import _db
from ow.projections.client import Reader
from ow.projections.queries import QUERIES, Query, QueryError, ServiceBehindError
from ow.projections.service import running, service_path
from tests.integration.agents import ShellJob, client
from tests.integration.test_projections_helpers import completed_job, pending_job

pytestmark = pytest.mark.anyio


@pytest.fixture
def served(nats_server, org, tmp_path):
    """`async with served() as svc`: a read service following the test's org."""
    return lambda **kw: running(tmp_path, nats_server.url, orgs=(org,), **kw)


async def test_answers_carry_the_positions_they_reflect(bus, served, tmp_path):
    async with served() as svc:
        await completed_job(bus)
        seq = await bus.publish(ev.JobSubmitted(job_id="j2", job_type="ft", model="m2"))
        reader = Reader(bus)
        answer = await reader.ask("list_jobs")  # latest: every message stored before the ask
        assert reader.served
        assert {j["job_id"] for j in answer.result} == {"j1", "j2"}
        assert answer.positions[subjects.EVENTS_STREAM] >= seq
        assert service_path(tmp_path, bus.org).exists()
        assert (await svc.projector_for(bus.org)).path == service_path(tmp_path, bus.org)


async def test_at_least_waits_for_the_fold_and_behind_is_an_error(bus, served):
    async with served(read_wait_s=0.3):
        reader = Reader(bus)
        seq = await bus.publish(ev.JobSubmitted(job_id="j9", job_type="ft", model="m"))
        answer = await reader.ask("list_jobs", at_least={subjects.EVENTS_STREAM: seq},
                                  latest=False)
        assert [j["job_id"] for j in answer.result] == ["j9"]
        with pytest.raises(ServiceBehindError, match="read service is behind"):
            await reader.ask("list_jobs", at_least={subjects.EVENTS_STREAM: seq + 1000},
                             latest=False)
        assert (await reader.ask("list_jobs")).result  # and it goes on answering


async def test_read_your_writes_100_times_through_the_sdk(nats_server, org, served):
    async with served(), client(nats_server.url, org) as ow:
        reader = Reader(await ow.bus())
        for i in range(100):
            job = await ShellJob(ow).create(command=f"true {i}")
            listed = await reader.result("list_jobs", {"prefix": job.id})
            assert [j["job_id"] for j in listed] == [job.id], i
        assert reader.served
        assert len(await ow.jobs.list()) == 100  # the SDK's list asks the service too
        assert [j.id for j in await ow.jobs.find(command="true 7")] == [
            (await ShellJob(ow).create(command="true 7")).id]


async def test_every_query_of_the_table_answers(bus, served):
    await completed_job(bus)
    await pending_job(bus)
    params = {
        "job_detail": {"job_id": "j1"}, "resolve_run": {"job_or_run": "j1"},
        "worker": {"worker_id": "w1"}, "metrics_summary": {"run_id": "r1"},
        "metric_series": {"run_id": "r1"}, "find_jobs": {"params": {}},
    }
    async with served():
        reader = Reader(bus)
        for name in QUERIES:
            answer = await reader.ask(name, params.get(name))
            assert answer.result is not None, name
        series = await reader.result("metric_series", {"run_id": "r1"})
        assert [p["value"] for p in series["points"]] == [2.0, 1.0, 0.5]
        page = await reader.result("events_page", {"after": 0, "aggregate": "job", "limit": 2})
        assert [e["type"] for e in page] == ["JobSubmitted", "RunStarted"]
        assert (await reader.result("list_jobs", {"limit": 1, "offset": 1}))[0]["job_id"] == "j1"


async def test_bad_input_is_an_error_naming_it_and_the_service_goes_on(bus, served):
    async with served():
        reader = Reader(bus)
        with pytest.raises(NotFoundError, match="'no-such-job'"):
            await reader.ask("job_detail", {"job_id": "no-such-job"})
        with pytest.raises(NotFoundError, match="'no-such-run'"):
            await reader.ask("resolve_run", {"job_or_run": "no-such-run"})
        with pytest.raises(QueryError, match=r"\$\.limit"):
            await reader.ask("list_jobs", {"limit": "many"})
        with pytest.raises(QueryError, match="bogus"):
            await reader.ask("list_jobs", {"bogus": 1})
        # a request that skips the client's checks: the service names the problem itself
        for body, wanted in ((b"{not json", "malformed request"),
                             (b'{"params": {"offset": -1}}', r"\$\.offset")):
            reply = await bus.request(subjects.query_subject(bus.org, "list_jobs"), body)
            assert reply.code == "400"
            assert "Traceback" not in reply.error
            assert wanted.replace("\\", "") in reply.error.replace("\\", "")
        await pending_job(bus)
        assert [j["job_id"] for j in await reader.result("list_jobs")] == ["j2"]


async def test_fallback_without_a_service_says_so_once_and_answers_alike(bus, served):
    await completed_job(bus)
    notices: list[str] = []
    private = Reader(bus, notice=notices.append)
    first = await private.ask("job_detail", {"job_id": "j1"})
    await private.ask("list_jobs")
    assert not private.served
    assert len(notices) == 1
    assert "no read service" in notices[0]
    async with served():
        answer = await Reader(bus).ask("job_detail", {"job_id": "j1"})
    assert answer.result == first.result  # the same values and types on both paths
    private.close()


async def test_two_private_readers_do_not_lock_each_other(bus):
    await completed_job(bus)
    readers = [Reader(bus, notice=lambda _: None) for _ in range(2)]
    results: list[object] = []

    async def read(r: Reader) -> None:
        for _ in range(3):
            results.append([j["job_id"] for j in await r.result("list_jobs")])

    async with anyio.create_task_group() as tg:
        for r in readers:
            tg.start_soon(read, r)
    assert results == [["j1"]] * 6
    for r in readers:
        r.close()


@pytest.mark.parametrize("scope", ["read", "submit", "worker", "admin"])
def test_every_scope_may_ask_its_own_orgs_queries_only(scope):
    from ow.core import tenancy

    allow = tenancy.permissions(scope, "acme", "tid1")["publish"]["allow"]
    assert subjects.query_filter("acme") in allow or ">" in allow
    if scope != "admin":
        assert not any(a.startswith("ow.q.") and "acme" not in a for a in allow)


async def test_a_failing_query_answers_an_error_and_the_service_goes_on(bus, served, monkeypatch):
    async def boom(p):
        raise RuntimeError("disk on fire")

    monkeypatch.setitem(QUERIES, "costs", Query(boom, QUERIES["costs"].params, ()))
    async with served():
        reader = Reader(bus)
        with pytest.raises(_db.ProjectionError, match="disk on fire"):
            await reader.ask("costs")
        await pending_job(bus)
        assert [j["job_id"] for j in await reader.result("list_jobs")] == ["j2"]


async def test_the_sdk_logs_its_fallback_once_at_info(nats_server, org, caplog):
    import logging

    caplog.set_level(logging.INFO, logger="ow.sdk._jobs")
    async with client(nats_server.url, org) as ow:
        job = await ShellJob(ow).create(command="true")
        assert [j.id for j in await ow.jobs.list()] == [job.id]
        assert [j.id for j in await ow.jobs.find(command="true")] == [job.id]
    notices = [r for r in caplog.records if "no read service" in r.getMessage()]
    assert len(notices) == 1
    assert notices[0].levelno == logging.INFO


async def test_export_without_a_service_is_a_file_duckdb_opens(bus, tmp_path):
    import duckdb

    await completed_job(bus)
    async with Reader(bus, notice=lambda _: None) as reader:
        made = await reader.result("export")
    with duckdb.connect(made["path"], read_only=True) as con:
        assert con.execute("SELECT job_id, status FROM jobs").fetchall() == [("j1", "completed")]
        assert dict(con.execute("SELECT stream, seq FROM positions").fetchall()) == \
            made["positions"]


async def test_the_costs_ledger_prices_workers_and_jobs(bus, served):
    from datetime import timedelta

    t0 = ev.now() - timedelta(hours=2)
    await bus.publish(ev.WorkerProvisioned(worker_id="w1", provider="runpod", pod_id="p1",
                                           hardware="1x A100", price_per_hour=2.0, ts=t0))
    await bus.publish(ev.WorkerRegistered(worker_id="w1", hardware="1x A100", ts=t0))
    await bus.publish(ev.JobSubmitted(job_id="j1", job_type="ft", model="m", ts=t0))
    await bus.publish(ev.RunStarted(run_id="r1", job_id="j1", gen=0, worker_id="w1",
                                    claim_rev=1, ts=t0))
    await bus.publish(ev.RunFinished(run_id="r1", job_id="j1", status="completed",
                                     exit_code=0, ts=t0 + timedelta(hours=1)))
    await bus.publish(ev.WorkerTerminated(worker_id="w1", reason="idle",
                                          ts=t0 + timedelta(hours=1, minutes=30)))
    async with served():
        ledger = await Reader(bus).result("costs")
    assert ledger["total"] == pytest.approx(3.0)  # 1.5 h at $2
    assert [(j["job_id"], round(j["cost"], 6)) for j in ledger["jobs"]] == [("j1", 2.0)]


async def test_a_latest_ask_at_rest_walks_no_subjects(fresh_nats, tmp_path, monkeypatch):
    """The last message under the org's filter makes the server walk every subject (45 ms
    at 100k jobs, most of a served `ow ls`): asked only when the stream holds more than
    the projector folded. Old code asked it on every "latest" request."""
    walks: list[str] = []
    real = Bus.last_seq

    async def counted(self, stream, subject):
        walks.append(subject)
        return await real(self, stream, subject)

    monkeypatch.setattr(Bus, "last_seq", counted)
    bus, other = [await connect(fresh_nats.url, org=o) for o in ("solo", "other")]
    await bus.provision()
    async with running(tmp_path, fresh_nats.url, orgs=("solo",)):
        reader = Reader(bus, fallback=False)
        await completed_job(bus)
        assert [j["job_id"] for j in await reader.result("list_jobs")] == ["j1"]
        walks.clear()
        for _ in range(5):
            await reader.ask("list_jobs")
        assert walks == []  # nothing stored since: the stream's own last sequence said so
        seq = await bus.publish(ev.JobSubmitted(job_id="j2", job_type="ft", model="m"))
        answer = await reader.ask("list_jobs")  # read-your-writes holds
        assert answer.positions[subjects.EVENTS_STREAM] >= seq
        assert {j["job_id"] for j in answer.result} == {"j1", "j2"}
        # another org's message last on the shared stream (an open stack): the filter says
        # the org has nothing newer, and the answer does not wait for it
        await other.publish(ev.JobSubmitted(job_id="j3", job_type="ft", model="m"))
        walks.clear()
        answer = await reader.ask("list_jobs")
        assert {j["job_id"] for j in answer.result} == {"j1", "j2"}
        assert len(walks) == 1
    for b in (bus, other):
        await b.close()
