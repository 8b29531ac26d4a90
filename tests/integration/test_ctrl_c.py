"""Issue 16.5: Ctrl-C on `ow exec` and `ow deploy` cancels the job they started and says so
(exit 130); `ow exec --detach` submits, prints the id and leaves the job running. Real
subprocesses get a real SIGINT."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import anyio
import pytest

from tests.integration.agents import running_agents
from tests.integration.conftest import eventually
from tests.integration.test_scheduler import job_state

pytestmark = pytest.mark.anyio

OW = str(Path(sys.executable).parent / "ow")


@pytest.fixture
def env(nats_server, org, tmp_path):
    return {**os.environ, "OW_URL": nats_server.url, "OW_ORG": org, "OW_HOME": str(tmp_path),
            "COLUMNS": "300"}


async def read_until(stream, want: bytes, seen: bytearray, limit_s: float = 30) -> None:
    with anyio.fail_after(limit_s):
        async for chunk in stream:
            seen += chunk
            if want in seen:
                return
    raise AssertionError(f"{want!r} never came; got {bytes(seen)!r}")


async def interrupt(proc, seen: bytearray) -> int:
    proc.send_signal(signal.SIGINT)
    with anyio.fail_after(30):
        async for chunk in proc.stderr:
            seen += chunk
        return await proc.wait()


def job_of(text: str) -> str:
    return text.split("job ", 1)[1].split()[0]


async def test_ctrl_c_on_exec_cancels_the_running_job(bus, env, nats_server, tmp_path):
    async with running_agents(nats_server.url, bus.org, 1, tmp_path):
        proc = await anyio.open_process([OW, "exec", "echo started; exec sleep 120"], env=env)
        out, err = bytearray(), bytearray()
        await read_until(proc.stdout, b"started", out)
        await read_until(proc.stderr, b"job ", err, limit_s=5)
        code = await interrupt(proc, err)
        job_id = job_of(err.decode())
        state = await job_state(bus, job_id)
    assert code == 130
    assert f"canceled job {job_id}" in err.decode()
    assert state.status == "canceled"
    assert state.runs[-1].status != "in_progress"  # the agent killed the command


async def test_ctrl_c_on_a_pending_exec_cancels_it(bus, env):
    proc = await anyio.open_process([OW, "exec", "true"], env=env)  # no worker: it waits
    err = bytearray()
    await read_until(proc.stderr, b"job ", err)
    code = await interrupt(proc, err)
    job_id = job_of(err.decode())
    assert code == 130
    assert f"canceled job {job_id}" in err.decode()
    assert (await job_state(bus, job_id)).status == "canceled"


async def test_exec_detach_prints_the_id_and_leaves_the_job(bus, env):
    done = await anyio.run_process([OW, "exec", "--detach", "true"], env=env, check=False)
    assert done.returncode == 0, done.stderr
    job_id = done.stdout.decode().strip()
    state = await job_state(bus, job_id)
    assert state is not None
    assert state.status == "pending"
    assert not state.cancel_requested


async def test_ctrl_c_on_deploy_while_it_waits_cancels_the_api_job(bus, env):
    proc = await anyio.open_process([OW, "deploy", "some/model", "--vram", "0"], env=env)

    async def submitted():
        from ow.core import subjects

        history, _ = await bus.history(subjects.events_filter(bus.org, "job"))
        return [d.event.job_id for d in history if type(d.event).__name__ == "JobSubmitted"]

    (job_id,) = await eventually(submitted, timeout=30)
    await eventually(lambda: _extended(bus, job_id), timeout=30)  # up() is waiting now
    err = bytearray()
    code = await interrupt(proc, err)
    out = (await proc.stdout.receive()).decode() if proc.stdout else ""
    text = out + err.decode()
    assert code == 130, text
    assert f"canceled job {job_id}" in text
    assert (await job_state(bus, job_id)).status == "canceled"


async def _extended(bus, job_id):
    from ow.core import events as ev
    from ow.core import subjects

    history, _ = await bus.history(subjects.job_subject(bus.org, job_id))
    return any(isinstance(d.event, ev.JobTimeoutExtended) for d in history)
