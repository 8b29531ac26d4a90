"""The read service as a process (`python -m ow.cli.serve`) with the real `ow` command:
concurrent readers and followers, read-your-writes across processes, kill -9 and resume,
the export, the fallback notice."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import anyio
import pytest

from ow.core import events as ev
from ow.core import subjects
from ow.projections.client import FALLBACK_NOTICE, Reader
from tests.integration.agents import ShellJob, client
from tests.integration.conftest import eventually
from tests.integration.test_projections_helpers import completed_job, publish_metrics

pytestmark = pytest.mark.anyio

OW = str(Path(sys.executable).parent / "ow")


@pytest.fixture
def env(nats_server, org, tmp_path):
    return {**os.environ, "OW_URL": nats_server.url, "OW_ORG": org, "OW_HOME": str(tmp_path),
            "COLUMNS": "200"}


@pytest.fixture
def ow(env):
    """Run `ow ARGS…` to the end; returns (exit code, stdout, stderr)."""
    async def run(*args: str) -> tuple[int, str, str]:
        proc = await anyio.run_process([OW, *args], env=env, check=False)
        return proc.returncode, proc.stdout.decode(), proc.stderr.decode()

    return run


@pytest.fixture
def service(env, tmp_path):
    """start() runs `python -m ow.cli.serve --no-web` and waits for its serve.json."""
    procs: list[subprocess.Popen] = []

    async def start(cmd: tuple[str, ...] = (sys.executable, "-m", "ow.cli.serve")) -> Any:
        state = tmp_path / "serve.json"
        state.unlink(missing_ok=True)
        log = open(tmp_path / "serve.log", "ab")  # noqa: SIM115 - the child's
        proc = subprocess.Popen([*cmd, "--no-web"], env=env, stdout=log,
                                stderr=subprocess.STDOUT)
        procs.append(proc)
        await eventually(lambda: state.exists() or proc.poll() is not None, timeout=30)
        assert proc.poll() is None, (tmp_path / "serve.log").read_text()
        return proc

    yield start
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
            p.wait(10)


def _follow(env: dict, *args: str, out: Path) -> subprocess.Popen:
    return subprocess.Popen([OW, *args], env=env, stdout=open(out, "wb"),  # noqa: SIM115
                            stderr=subprocess.STDOUT)


async def test_followers_and_readers_run_at_once(bus, env, ow, service, tmp_path):
    """Old code: every `ow ls`/`ow show` failed with "projection … is in use by process N"
    while `ow metrics -f` or `ow logs -f` held the file."""
    import duckdb

    await service()
    await bus.publish(ev.JobSubmitted(job_id="j1", job_type="custom", model="m"))
    await bus.publish(ev.RunStarted(run_id="r1", job_id="j1", gen=0, worker_id="w1",
                                    claim_rev=1))
    await publish_metrics(bus, "r1", "j1", [{"step": 0, "loss": 9.0}])
    followers = {name: _follow(env, *args, out=tmp_path / f"{name}.out") for name, args in {
        "logs": ("logs", "-f", "j1"), "metrics": ("metrics", "-f", "r1", "--json"),
        "tail": ("tail", "--json"),
    }.items()}
    try:
        for step in range(1, 6):
            await bus.publish_raw(subjects.log_subject(bus.org, "r1"), f"line {step}\n".encode())
            await publish_metrics(bus, "r1", "j1", [{"step": step, "loss": 10.0 - step}])
            code, out, err = await ow("ls", "--json")
            assert code == 0, err
            assert [j["job_id"] for j in json.loads(out)] == ["j1"]
            code, out, err = await ow("show", "j1", "--json")
            assert code == 0, err
            assert json.loads(out)["status"] == "in_progress"
            export = tmp_path / f"export-{step}.duckdb"
            code, _, err = await ow("projections", "export", str(export))
            assert code == 0, err
            with duckdb.connect(str(export), read_only=True) as con:
                assert con.execute("SELECT job_id FROM jobs").fetchall() == [("j1",)]
            assert "no read service" not in err
        await bus.publish(ev.RunFinished(run_id="r1", job_id="j1", status="completed",
                                         exit_code=0))
        await bus.publish(ev.JobCompleted(run_id="r1", job_id="j1"))
        with anyio.fail_after(60):  # a loaded machine starts CLIs slowly
            while followers["logs"].poll() is None:  # ends with its job
                await anyio.sleep(0.05)
        logs = (tmp_path / "logs.out").read_text()
        assert [ln for ln in logs.splitlines() if ln.startswith("line")] == [
            f"line {i}" for i in range(1, 6)]

        def metrics_done() -> bool:
            lines = (tmp_path / "metrics.out").read_text().splitlines()
            docs = [json.loads(ln) for ln in lines if ln.startswith("{")]
            return bool(docs) and docs[-1]["loss"] == [9.0, 9.0, 8.0, 7.0, 6.0, 5.0]

        await eventually(metrics_done, timeout=60)
        await eventually(lambda: "JobCompleted" in (tmp_path / "tail.out").read_text(), 60)
    finally:
        for p in followers.values():
            if p.poll() is None:
                p.terminate()
                p.wait(10)


async def test_submit_then_ls_in_another_process_shows_the_job(nats_server, org, ow, service):
    await service()
    async with client(nats_server.url, org) as sdk:
        for i in range(3):
            job = await ShellJob(sdk).create(command=f"echo {i}")
            code, out, err = await ow("ls", "--prefix", job.id, "--json")
            assert code == 0, err
            assert [j["job_id"] for j in json.loads(out)] == [job.id]


async def test_killed_service_resumes_and_equals_a_fresh_rebuild(bus, ow, service, tmp_path):
    await completed_job(bus)
    proc = await service()
    reader = Reader(bus)
    assert [j["job_id"] for j in await reader.result("list_jobs")] == ["j1"]
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    await completed_job(bus, "j2", "r2", "w2")  # while it is down
    await service((OW, "serve"))  # the `ow serve` command this time
    log = (tmp_path / "serve.log").read_text()
    resumed = [ln for ln in log.splitlines() if f"org {bus.org}: resuming after" in ln]
    assert len(resumed) == 2
    assert "'OW_EVENTS': 0" in resumed[0]
    assert "'OW_EVENTS': 0" not in resumed[1]  # from its committed position, not from 1
    assert {j["job_id"] for j in await reader.result("list_jobs")} == {"j1", "j2"}
    report = await reader.result("audit")
    assert report["violations"] == []  # the drift check: the service's rows = a fresh replay
    code, out, err = await ow("audit", "--json")
    assert code == 0, out + err
    assert json.loads(out)["clean"] is True


async def test_without_a_service_ls_says_so_in_one_line(bus, ow):
    await completed_job(bus)
    results = await _both(ow("ls", "--json"), ow("show", "j1", "--json"))
    for code, out, err in results:
        assert code == 0, err
        assert err.strip().splitlines() == [FALLBACK_NOTICE.format(org=bus.org)]
        assert "j1" in out


async def _both(*coros):
    out: list = [None] * len(coros)

    async def one(i, c):
        out[i] = await c

    async with anyio.create_task_group() as tg:
        for i, c in enumerate(coros):
            tg.start_soon(one, i, c)
    return out


async def test_the_dashboard_is_hosted_when_ow_web_exists(nats_server, org, tmp_path):
    pytest.importorskip("ow.web", exc_type=ImportError)  # as `ow serve` treats it
    import urllib.request

    from ow.cli.serve import serve, state_file

    async with anyio.create_task_group() as tg:
        port = await tg.start(lambda task_status: serve(
            url=nats_server.url, home=tmp_path, web_port=0, orgs=(org,),
            announce=lambda _: None, task_status=task_status))
        assert json.loads(state_file(tmp_path).read_text())["web_port"] == port
        status = await anyio.to_thread.run_sync(
            lambda: urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10).status)
        assert status == 200
        tg.cancel_scope.cancel()
    assert not state_file(tmp_path).exists()


async def test_bad_input_through_the_service_is_one_line_naming_it(bus, ow, service):
    await service()
    for args, wanted in ((("show", "nope"), "job 'nope' not found"),
                         (("logs", "nope"), "run 'nope' not found"),
                         (("ls", "--limit", "-1"), "$.limit")):
        code, _, err = await ow(*args)
        assert code == 1, err
        assert err.strip().splitlines() == [err.strip()]  # one line, and no notice: served
        assert wanted in err
        assert "Traceback" not in err


#: what `ow ls` / `ow show` through the service must not load: the fold (duckdb, pyarrow),
#: typer's pydantic, nats' websocket transport, the other command modules (and for `ls`'s
#: plain table, rich). Old code loaded all of them (1.5 s for `ow ls`);
#: bench/bench_reads.py prints the time
_NOT_ON_THE_READ_PATH = {"duckdb", "pyarrow", "pydantic", "aiohttp", "ow.sdk", "ow.cli.up",
                         "ow.cli.tenancy", "ow.cli.serve", "ow.projections._db"}
_LOADED = ("import json, sys\nfrom ow.cli import main\ntry:\n    main(sys.argv[1:])\n"
           "finally:\n    print(json.dumps(sorted(sys.modules)), file=sys.stderr)")


@pytest.mark.parametrize(("args", "also"), [(("ls",), {"rich"}), (("show", "j1"), set())])
async def test_a_served_read_loads_no_fold_nor_other_commands(bus, env, service, args, also):
    await completed_job(bus)
    await service()
    proc = await anyio.run_process([sys.executable, "-c", _LOADED, *args], env=env,
                                   check=False)
    err = proc.stderr.decode().splitlines()
    assert proc.returncode == 0, err
    assert "j1" in proc.stdout.decode()
    loaded = set(json.loads(err[-1]))
    assert {m.split(".")[0] for m in loaded} & (_NOT_ON_THE_READ_PATH | also) == set()
    assert loaded & _NOT_ON_THE_READ_PATH == set()
