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
