"""`ow up --detach` and `ow down` for real, twice on the same home."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import anyio
import pytest

pytestmark = pytest.mark.anyio

OW = str(Path(sys.executable).parent / "ow")


@pytest.mark.timeout(180)  # three `ow up`/`ow down` on a loaded 2-core machine
async def test_a_second_up_on_the_same_home_runs_each_job_once(tmp_path):
    """The local agent of each `ow up` is a new worker: the last one's `ow down` terminated
    its id, and a job run under a terminated id was requeued when the scheduler noticed
    (the job ran twice)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OW_")}
    env |= {"OW_HOME": str(tmp_path), "COLUMNS": "200"}

    async def ow(*args: str) -> str:
        proc = await anyio.run_process([OW, *args], env=env, check=False)
        assert proc.returncode == 0, (args, proc.stdout.decode(), proc.stderr.decode())
        return proc.stdout.decode()

    async def up() -> None:  # on a random port: clients are told it through OW_URL
        out = await ow("up", "--detach", "--port", "-1")
        env["OW_URL"] = out.split("NATS at ")[1].split()[0]

    try:
        for word in ("first", "second"):
            await up()
            assert f"hello {word}" in await ow("exec", f"sleep 2; echo hello {word}")
            await ow("down")
        await up()
        jobs = json.loads(await ow("ls", "--json"))
        events = [json.loads(line) for line in
                  (await ow("tail", "--since", "1", "--no-follow", "--json")).splitlines()]
    finally:
        await ow("down")
    assert [(j["status"], j["runs"]) for j in jobs] == [("completed", 1), ("completed", 1)]
    assert not [e for e in events if e["type"] == "JobRequeued"]
    workers = {e["worker_id"] for e in events if e["type"] == "WorkerRegistered"}
    assert len(workers) == 3


@pytest.mark.timeout(240)  # five `ow up`/`ow down` on a loaded 2-core machine
async def test_a_second_up_on_a_running_home_touches_nothing_and_loses_nothing(tmp_path):
    """Finding 5 of the security issue: a second `ow up` started a second server on the same
    store and acknowledged events were lost; a failing `ow up -d` deleted up.json."""
    from ow.core.server import free_port

    env = {k: v for k, v in os.environ.items() if not k.startswith("OW_")}
    env |= {"OW_HOME": str(tmp_path), "COLUMNS": "200"}

    async def ow(*args: str, rc: int = 0) -> tuple[str, str]:
        proc = await anyio.run_process([OW, *args], env=env, check=False)
        out, err = proc.stdout.decode(), proc.stderr.decode()
        assert proc.returncode == rc, (args, out, err)
        return out, err

    async def event_ids() -> list[str]:
        out, _ = await ow("tail", "--since", "1", "--no-follow", "--json")
        return [json.loads(line)["event_id"] for line in out.splitlines()]

    out, _ = await ow("up", "--detach", "--port", "-1")
    url = env["OW_URL"] = out.split("NATS at ")[1].split()[0]
    try:
        await ow("exec", "echo one")
        files = {p: p.read_text() for p in (tmp_path / "up.json", tmp_path / "nats" / "ow.conf")}
        before = await event_ids()
        other = str(free_port())
        _, err = await ow("up", "--detach", "--port", other, rc=2)  # refused, naming it
        assert f"already up at {url}" in err
        out, _ = await ow("up", "--detach")
        assert out.startswith(f"ow is already up at {url}")
        out, _ = await ow("up", "--port", "-1")  # in the foreground, too: it returns at once
        assert out.startswith(f"ow is already up at {url}")
        assert {p: p.read_text() for p in files} == files, "a failed start touched the stack"
        await ow("exec", "echo two")
        await ow("down")
        out, _ = await ow("up", "--detach", "--port", "-1")
        env["OW_URL"] = out.split("NATS at ")[1].split()[0]
        after = await event_ids()
        jobs = json.loads((await ow("ls", "--json"))[0])
    finally:
        await ow("down")
    assert after[: len(before)] == before, "acknowledged events were lost or reordered"
    assert len(after) == len(set(after))
    assert sorted(j["status"] for j in jobs) == ["completed", "completed"]


def test_one_server_per_store(tmp_path):
    """The embedded server refuses a store another running server holds."""
    from ow.core.errors import BusUnavailableError
    from ow.core.server import NatsServer

    with NatsServer(tmp_path / "store", name="a"):
        with pytest.raises(BusUnavailableError, match="in use by another nats-server"):
            NatsServer(tmp_path / "store", name="b").start()
        assert not (tmp_path / "store" / "b.conf").exists()
    with NatsServer(tmp_path / "store", name="b") as b:  # free again once the first stopped
        assert b.proc.poll() is None


def test_an_orphaned_server_keeps_its_store_locked(tmp_path):
    """The process that started a server died (kill -9) and left it running: a new start on
    that store is refused while the orphan runs, naming it."""
    import signal
    import subprocess

    from ow.core.errors import BusUnavailableError
    from ow.core.server import NatsServer

    store = tmp_path / "store"
    code = ("import sys, threading; from ow.core.server import NatsServer; "
            f"s = NatsServer({str(store)!r}, name='a').start(); print(s.proc.pid, flush=True); "
            "threading.Event().wait()")
    parent = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE)
    orphan = int(parent.stdout.readline())
    try:
        parent.kill()  # kill -9 of the process that started the server
        parent.wait()
        with pytest.raises(BusUnavailableError, match=f"pid {orphan}"):
            NatsServer(store, name="b").start()
    finally:
        os.kill(orphan, signal.SIGKILL)
