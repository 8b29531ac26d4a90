"""Projections against a real nats-server: batches, resume, rebuild, replay, anomalies, locks."""

from __future__ import annotations

import gc
import subprocess
import sys

import anyio
import pytest

from ow.core import events as ev
from ow.core import subjects
from ow.projections import ProjectionLockedError, Projector, rebuild, replay
from ow.projections._apply import Folder
from ow.projections.audit import contents
from tests.integration.conftest import eventually
from tests.integration.test_projections_helpers import completed_job, pending_job, publish_metrics

pytestmark = pytest.mark.anyio


async def _count(p: Projector, table: str) -> int:
    return (await p.query(f"SELECT count(*) AS n FROM {table}"))[0]["n"]


async def test_catch_up_fills_every_table(bus, tmp_path):
    await completed_job(bus)
    await pending_job(bus)
    async with Projector(bus, tmp_path / "p.duckdb", batch=2) as p:
        applied = await p.catch_up()
        jobs = await p.query("SELECT job_id, status, type, runs, run_id FROM jobs ORDER BY 1")
        assert jobs == [
            {"job_id": "j1", "status": "completed", "type": "custom", "runs": 1, "run_id": "r1"},
            {"job_id": "j2", "status": "pending", "type": "fine-tuning", "runs": 0,
             "run_id": None},
        ]
        runs = await p.query("SELECT run_id, status, exit_code, worker_id FROM runs")
        assert runs == [{"run_id": "r1", "status": "completed", "exit_code": 0, "worker_id": "w1"}]
        metrics = await p.query(
            "SELECT step, key, value, raw FROM metrics ORDER BY seq, idx, key")
        assert [(m["step"], m["key"], m["value"], m["raw"]) for m in metrics] == [
            (1, "loss", 2.0, None), (1, "lr", 0.1, None), (1, "ok", None, "true"),
            (1, "tag", None, '"a"'), (2, "loss", 1.0, None), (3, "loss", 0.5, None)]
        assert await _count(p, "files") == 1
        assert (await p.query("SELECT status FROM workers"))[0]["status"] == "active"
        assert (await p.query("SELECT run_id FROM pings"))[0]["run_id"] == "r1"
        assert await _count(p, "events") == 6
        assert await _count(p, "anomalies") == 0
        assert applied == 6 + 2 + 1
        assert p.position(subjects.EVENTS_STREAM) == await bus.last_seq(
            subjects.EVENTS_STREAM, subjects.events_filter(bus.org))


async def test_catch_up_gives_duckdb_its_threads_back(bus, tmp_path, monkeypatch):
    """While streams fold in parallel DuckDB gets cores // streams threads, then its own."""
    await completed_job(bus)
    monkeypatch.setattr("os.cpu_count", lambda: 6)
    seen = []
    real = Folder.write

    def write(self, stream, msgs, prepared):
        seen.append(self.con.execute("SELECT current_setting('threads')").fetchall()[0][0])
        return real(self, stream, msgs, prepared)

    monkeypatch.setattr(Folder, "write", write)
    async with Projector(bus, tmp_path / "p.duckdb") as p:
        p.con.execute("SET threads = 5")
        await p.catch_up()
        assert seen
        assert set(seen) == {2}  # 6 cores, 3 streams
        assert p.con.execute("SELECT current_setting('threads')").fetchall()[0][0] == 5


async def test_restart_resumes_without_double_apply(bus, tmp_path):
    path = tmp_path / "p.duckdb"
    await completed_job(bus)
    async with Projector(bus, path, batch=3) as p:
        await p.catch_up()
    await pending_job(bus)
    await publish_metrics(bus, "r1", "j1", [{"step": 4, "loss": 0.25}], arrays=True)  # older form
    async with Projector(bus, path, batch=3) as p:
        assert await p.catch_up() == 2
        assert await _count(p, "events") == 6
        assert await _count(p, "metrics") == 7
        assert await _count(p, "jobs") == 2
        assert await p.catch_up() == 0


async def test_failed_batch_is_rolled_back_with_its_position(bus, tmp_path, monkeypatch):
    path = tmp_path / "p.duckdb"
    await completed_job(bus)
    original = Folder._replace

    def boom(self, table, key, ids, rows):
        original(self, table, key, ids, rows)
        if table == "jobs":
            raise RuntimeError("crash after writing rows, before the position")

    monkeypatch.setattr(Folder, "_replace", boom)
    with pytest.raises(RuntimeError):
        async with Projector(bus, path, streams=(subjects.EVENTS_STREAM,)) as p:
            await p.catch_up()
    monkeypatch.setattr(Folder, "_replace", original)
    async with Projector(bus, path) as p:
        assert p.position(subjects.EVENTS_STREAM) == 0
        await p.catch_up()
        assert await _count(p, "events") == 5
        assert (await p.query("SELECT status FROM jobs"))[0]["status"] == "completed"


async def test_a_failed_write_leaves_the_state_at_its_position(bus, tmp_path, monkeypatch):
    """Catching up one event per batch (the next batches read and prepared beside each
    write), a write that fails leaves exactly the state as of the position it reached,
    and the next catch-up, reading states back from the rows, ends with the tables of a
    rebuild (a worker state read back once differed: an int default became a float)."""
    await completed_job(bus)
    await pending_job(bus)
    await bus.publish(ev.JobCancelRequested(job_id="j2"))
    await bus.publish(ev.JobCanceled(job_id="j2"))
    await bus.publish(ev.JobReset(job_id="j2", reason="again"))
    await completed_job(bus, job_id="j3", run_id="r3", worker="w1")
    real, writes = Folder.write, []

    def write(self, stream, msgs, prepared):
        writes.append(msgs[-1].seq)
        if len(writes) == 7:  # JobCancelRequested j2, JobCanceled j2 next
            raise RuntimeError("crash in the seventh write")
        return real(self, stream, msgs, prepared)

    monkeypatch.setattr(Folder, "write", write)
    path = tmp_path / "p.duckdb"
    with pytest.raises(RuntimeError):
        async with Projector(bus, path, streams=(subjects.EVENTS_STREAM,), batch=1) as p:
            await p.catch_up()
    monkeypatch.undo()
    control = ("jobs", "runs", "workers", "files", "events", "anomalies")
    async with Projector(bus, path, streams=(subjects.EVENTS_STREAM,)) as p:
        assert p.position(subjects.EVENTS_STREAM) == writes[5]
        crashed = {t: v for t, v in contents(p.con).items() if t in control}
    expected = await replay(bus, writes[5], tmp_path / "expected.duckdb")
    async with Projector(bus, expected) as p:
        assert crashed == {t: v for t, v in contents(p.con).items() if t in control}
    async with Projector(bus, path, batch=1) as p:
        await p.catch_up()
        resumed = contents(p.con)
    async with Projector(bus, await rebuild(bus, tmp_path / "r.duckdb")) as p:
        assert resumed == contents(p.con)


async def test_two_rebuilds_are_identical(bus, tmp_path):
    await completed_job(bus)
    await pending_job(bus)
    await bus.publish(ev.RunFinished(run_id="rX", job_id="j2", status="failed"))
    a = await rebuild(bus, tmp_path / "a.duckdb")
    b = await rebuild(bus, tmp_path / "b.duckdb")
    async with Projector(bus, a) as pa_, Projector(bus, b) as pb:
        ca, cb = contents(pa_.con), contents(pb.con)
    assert ca == cb
    assert len(ca["anomalies"]) == 1
    assert len(ca["metrics"]) == 6


async def test_a_rebuild_lets_its_states_go_before_the_collector_runs(bus, tmp_path, monkeypatch):
    """The collector stays off until the projector is shut (it would walk every folded state),
    and is on again after."""
    await completed_job(bus)
    seen = []
    real = Projector.shutdown

    def shutdown(self):
        seen.append(gc.isenabled())
        real(self)

    monkeypatch.setattr(Projector, "shutdown", shutdown)
    assert gc.isenabled()
    await rebuild(bus, tmp_path / "p.duckdb")
    assert seen == [False]
    assert gc.isenabled()


async def test_replay_until_a_sequence_and_a_time(bus, tmp_path):
    await pending_job(bus)
    cut = await bus.publish(ev.JobCancelRequested(job_id="j2"))
    later = ev.now()
    await bus.publish(ev.JobReset(job_id="j2", reason="again"))
    before = await replay(bus, cut - 1, tmp_path / "before.duckdb")
    at = await replay(bus, cut, tmp_path / "at.duckdb")
    at_time = await replay(bus, later, tmp_path / "time.duckdb")
    for path, status in ((before, "pending"), (at, "canceled"), (at_time, "canceled")):
        async with Projector(bus, path) as p:
            assert (await p.query("SELECT status FROM jobs"))[0]["status"] == status, path


async def test_rejected_and_undecodable_events_become_anomalies(bus, tmp_path):
    await completed_job(bus)
    await bus.publish(ev.RunFinished(run_id="r-stale", job_id="j1", status="failed"))
    await bus.publish_raw(subjects.job_subject(bus.org, "j1"), b"{not json")
    await bus.publish_raw(subjects.metric_subject(bus.org, "r1"), b"[oops")
    async with Projector(bus, tmp_path / "p.duckdb") as p:
        await p.catch_up()
        rows = await p.query("SELECT stream, type, rule FROM anomalies ORDER BY stream, seq")
    assert [r["stream"] for r in rows] == ["OW_EVENTS", "OW_EVENTS", "OW_METRICS"]
    assert rows[0]["type"] == "RunFinished"
    assert "r-stale" in rows[0]["rule"]
    assert rows[1]["rule"].startswith("undecodable")
    assert rows[2]["rule"].startswith("undecodable")


async def test_run_follows_the_live_log(bus, tmp_path):
    async with Projector(bus, tmp_path / "p.duckdb") as p, anyio.create_task_group() as tg:
        await tg.start(p.run)
        await pending_job(bus, "live")
        await publish_metrics(bus, "rl", "live", [{"step": 1, "loss": 1.0}])

        async def seen():
            return await _count(p, "jobs") == 1 and await _count(p, "metrics") == 1

        await eventually(seen)
        tg.cancel_scope.cancel()


@pytest.fixture
def locked_file(tmp_path):
    """A projection file held open by another process; yields (path, pid)."""
    path = tmp_path / "p.duckdb"
    holder = subprocess.Popen(
        [sys.executable, "-c",
         f"import duckdb, sys; c = duckdb.connect({str(path)!r}); print('ok', flush=True); "
         "sys.stdin.read()"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE,
    )
    assert holder.stdout.readline().strip() == b"ok"
    yield path, holder.pid
    holder.kill()
    holder.wait()


async def test_a_file_locked_by_another_process_names_it(bus, locked_file):
    path, pid = locked_file
    with pytest.raises(ProjectionLockedError) as err:
        async with Projector(bus, path) as p:
            await p.catch_up()
    assert str(pid) in str(err.value)
    assert "kill" in str(err.value)
