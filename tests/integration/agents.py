"""Helpers for agent tests: in-process agents in a task group, agent processes, job types."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
from pydantic import BaseModel

from ow import AsyncOpenWeights, Jobs, register
from ow.agent import Agent, Hardware
from ow.core.config import from_env


class ShellParams(BaseModel):
    command: str
    tag: str = ""


@register("shell")
class ShellJob(Jobs):
    """A job that runs one shell command (the `ow exec` shape)."""

    params = ShellParams
    requires_vram_gb = 0

    def get_entrypoint(self, p: ShellParams) -> str:
        return p.command


@asynccontextmanager
async def running_agents(url: str, org: str, n: int = 1, tmp: Path | None = None, **kw):
    """Start `n` in-process agents; yields them; shuts them down (requeue + deregister)."""
    config = from_env({}, url=url, org=org, heartbeat_s=kw.pop("heartbeat_s", 1.0),
                      sandbox=kw.pop("sandbox", None), sandbox_ro=kw.pop("sandbox_ro", None))
    agents = [
        Agent(config, Hardware(image="*"), workdir=(tmp / f"a{i}") if tmp else None, **kw)
        for i in range(n)
    ]
    async with anyio.create_task_group() as tg:
        for a in agents:
            await tg.start(a.run)
        yield agents
        for a in agents:
            a.shutdown()


def start_agent_process(
    url: str, org: str, worker_id: str, tmp: Path, sandbox: str = "auto"
) -> subprocess.Popen:
    """An agent as a real process (for kill -9 tests)."""
    env = {**os.environ, "OW_URL": url, "OW_ORG": org, "OW_HEARTBEAT_S": "0.5",
           "OW_SANDBOX": sandbox}
    log = open(tmp / f"{worker_id}.log", "wb")  # noqa: SIM115 - lives as long as the process
    return subprocess.Popen(
        [sys.executable, "-m", "ow.agent", "--worker-id", worker_id, "--image", "*",
         "--workdir", str(tmp / worker_id)],
        env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )


def kill9(proc: subprocess.Popen) -> None:
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(5)


def client(url: str, org: str) -> AsyncOpenWeights:
    return AsyncOpenWeights(url=url, org=org, env={})
