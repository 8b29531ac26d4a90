"""The real `ow` command in a subprocess, against the test server and a fresh org."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import anyio
import pytest

from ow.core import codec, subjects
from ow.core import events as ev
from ow.projections.client import FALLBACK_NOTICE
from tests.integration.test_projections_helpers import completed_job, pending_job, publish_metrics

pytestmark = pytest.mark.anyio

OW = str(Path(sys.executable).parent / "ow")


@pytest.fixture
def ow(nats_server, org, tmp_path):
    """Run `ow ARGS…`; returns (exit code, stdout, stderr)."""
    env = {**os.environ, "OW_URL": nats_server.url, "OW_ORG": org, "OW_HOME": str(tmp_path),
           "COLUMNS": "200"}

    async def run(*args: str) -> tuple[int, str, str]:
        proc = await anyio.run_process([OW, *args], env=env, check=False)
        return proc.returncode, proc.stdout.decode(), proc.stderr.decode()

    return run


async def test_ls_lists_jobs_as_json(bus, ow):
    await completed_job(bus)
    await pending_job(bus)
    code, out, _ = await ow("ls", "--json")
    assert code == 0
    assert {(j["job_id"], j["status"]) for j in json.loads(out)} == {
        ("j1", "completed"), ("j2", "pending")}
    code, out, _ = await ow("ls", "--status", "pending", "--json")
    assert [j["job_id"] for j in json.loads(out)] == ["j2"]


async def test_ls_renders_a_table(bus, ow):
    await pending_job(bus)
    code, out, _ = await ow("ls")
    assert code == 0
    assert "j2" in out
    assert "fine-tuning" in out


async def test_show_gives_runs_and_last_events(bus, ow):
    await completed_job(bus)
    code, out, _ = await ow("show", "j1", "--json")
    job = json.loads(out)
    assert code == 0
    assert [r["run_id"] for r in job["runs_detail"]] == ["r1"]
    assert [e["type"] for e in job["events"]] == ["JobSubmitted", "RunStarted", "RunFinished"]


async def test_tail_prints_one_line_per_event(bus, ow):
    await completed_job(bus)
    code, out, _ = await ow("tail", "--no-follow", "--json")
    assert code == 0
    types = [json.loads(line)["type"] for line in out.splitlines()]
    assert types == ["WorkerRegistered", "FileUploaded", "JobSubmitted", "RunStarted",
                     "RunFinished"]
    code, out, _ = await ow("tail", "--no-follow", "--type", "worker")
    assert len(out.splitlines()) == 1
    assert "WorkerRegistered" in out


async def test_audit_reports_clean_then_a_violation(bus, ow):
    await completed_job(bus)
    code, out, _ = await ow("audit", "--json")
    assert code == 0
    assert json.loads(out)["clean"] is True
    await bus.publish(ev.RunFinished(run_id="r-old", job_id="j1", status="failed"))
    code, out, _ = await ow("audit", "--json")
    report = json.loads(out)
    assert code == 1, out
    assert [v["rule"] for v in report["violations"]] == ["rejected-event"]


async def test_audit_says_how_to_mend_a_drifted_projection(bus, ow, org, tmp_path):
    import duckdb

    from ow.core.ids import encode_token

    await completed_job(bus)
    assert (await ow("audit"))[0] == 0
    path = tmp_path / "projections" / f"{encode_token(org)}.duckdb"
    with duckdb.connect(str(path)) as con:  # as if folded by an ow without `raw` values
        con.execute("DELETE FROM metrics WHERE raw IS NOT NULL")
    code, out, _ = await ow("audit")
    assert code == 1
    assert "row only in the fresh replay" in out
    assert "`ow projections rebuild` rebuilds it" in out
    assert (await ow("projections", "rebuild"))[0] == 0
    assert (await ow("audit"))[0] == 0


async def test_an_error_is_one_red_line_and_exit_1(bus, ow):
    code, out, err = await ow("show", "no-such-job")
    assert code == 1
    lines = err.strip().splitlines()  # after the one-line notice of the private fold
    assert lines[:1] == [FALLBACK_NOTICE.format(org=bus.org)]
    assert lines[1:] == [
        "error: job 'no-such-job' not found — see `ow ls` for the jobs of this org"]
    assert "Traceback" not in err


async def test_usage_errors_exit_2(ow):
    code, _, err = await ow("ls", "--bogus")
    assert code == 2
    assert "--bogus" in err


async def test_metrics_workers_logs_and_ssh(bus, ow):
    await completed_job(bus)
    await bus.publish_raw(subjects.log_subject(bus.org, "r1"), b"hello\n")
    await bus.publish_raw(subjects.log_subject(bus.org, "r1"), b"world\n")
    await publish_metrics(bus, "r1", "j1", [{"text": "we can log any dicts"}])
    code, out, _ = await ow("metrics", "r1", "--json")
    summary = json.loads(out)
    assert summary["loss"] == [2.0, 1.0, 0.5]
    text = [r for r in summary["latest"] if r["key"] == "text"]
    assert text == [{"key": "text", "value": None, "raw": '"we can log any dicts"',
                     "step": None, "n": 1}]
    code, out, _ = await ow("metrics", "r1")
    assert "we can log any dicts" in out
    code, out, _ = await ow("workers", "--json")
    assert [w["worker_id"] for w in json.loads(out)] == ["w1"]
    code, out, _ = await ow("logs", "j1")
    assert out == "hello\nworld\n"
    code, _, err = await ow("ssh", "--worker", "w1")
    assert code == 1
    assert len(err.strip().splitlines()) == 2  # the private fold's notice, the error


async def test_replay_and_rebuild(bus, ow, tmp_path):
    await pending_job(bus)
    seq = await bus.publish(ev.JobCancelRequested(job_id="j2"))
    out_file = tmp_path / "then.duckdb"
    code, _, err = await ow("replay", "--until", str(seq - 1), "--out", str(out_file))
    assert code == 0, err
    assert out_file.exists()
    code, out, err = await ow("projections", "rebuild")
    assert code == 0, err
    assert "rebuilt" in out


async def test_exec_streams_output_and_exits_with_the_job_code(nats_server, org, ow, tmp_path):
    from tests.integration.agents import running_agents

    async with running_agents(nats_server.url, org, 1, tmp_path):
        for code_wanted in (0, 3):  # the second run is fast: its output is already stored
            code, out, err = await ow("exec", f"echo out-{code_wanted}; exit {code_wanted}")
            assert code == code_wanted, err
            assert f"out-{code_wanted}" in out


async def test_workers_show_isolation_and_an_idle_heartbeat_keeps_the_run(bus, ow):
    await bus.publish(ev.WorkerRegistered(worker_id="w-iso", hardware="cpu", isolation="bwrap"))
    # the worker's run as its own row has it (a ping on the control stream, as older agents
    # sent), then an idle heartbeat: its empty run id is no run, so the row's stays
    old_ping = bus.stamp(ev.WorkerPinged(worker_id="w-iso", run_id="r-old"))
    await bus.publish_raw(subjects.worker_subject(bus.org, "w-iso"), codec.encode(old_ping))
    await bus.publish(ev.WorkerPinged(worker_id="w-iso", run_id=""))
    code, out, _ = await ow("workers", "--json")
    assert code == 0
    (w,) = json.loads(out)
    assert (w["isolation"], w["run_id"]) == ("bwrap", "r-old")
    await bus.publish(ev.WorkerPinged(worker_id="w-iso", run_id="r-new"))
    code, out, _ = await ow("workers")
    assert code == 0
    header, row = out.splitlines()[:2]
    assert "isolation" in header
    assert "bwrap" in row
    assert "r-new" in row
