"""Issue 16.5, the headline case: Ctrl-C on a serving `ow deploy` (the tiny model on a CPU
agent) cancels its API job and says so, instead of leaving it up under its lease."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import anyio
import pytest

from tests.integration.agents import running_agents
from tests.integration.test_scheduler import job_state
from tests.payloads.tiny_model import tiny_model  # noqa: F401  (a fixture)

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

OW = str(Path(sys.executable).parent / "ow")


@pytest.mark.timeout(180)
async def test_ctrl_c_on_a_serving_deploy_cancels_its_job(nats_server, bus, tmp_path, tiny_model):  # noqa: F811
    env = {**os.environ, "OW_URL": nats_server.url, "OW_ORG": bus.org,
           "OW_HOME": str(tmp_path / "home"), "COLUMNS": "300"}
    async with running_agents(nats_server.url, bus.org, 1, tmp_path):
        proc = await anyio.open_process([OW, "deploy", str(tiny_model), "--vram", "0"], env=env)
        out = bytearray()
        with anyio.fail_after(150):
            async for chunk in proc.stdout:
                out += chunk
                if b"serving" in out and b"\n" in out.split(b"serving", 1)[1]:
                    break
        proc.send_signal(signal.SIGINT)
        with anyio.fail_after(30):
            async for chunk in proc.stdout:
                out += chunk
            code = await proc.wait()
        text = " ".join(out.decode().split())
        (job_id,) = [w for w in text.split() if w.startswith("api-")]
        state = await job_state(bus, job_id)
    assert "serving" in text
    assert code == 130, text
    assert f"canceled job {job_id}" in text
    assert state.status == "canceled"
