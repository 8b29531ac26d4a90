"""Finding 2 of issue 15: a job held its org's workers token and published `RunFinished`
for another user's running run, which then showed `completed` with the forged outputs. Jobs
now get the org's job credential, which cannot publish a result."""

from __future__ import annotations

import shlex
import sys

import anyio
import pytest

from ow import AsyncOpenWeights
from ow.agent import Agent, Hardware
from ow.core import tenancy as tn
from ow.core.config import from_env
from ow.core.errors import JobCanceledError
from tests.integration.agents import ShellJob  # noqa: F401 - registers `shell`

from .conftest import eventually

pytestmark = pytest.mark.anyio

FORGE = """
import asyncio, os, sys, nats, msgspec
from ow.core import tenancy as tn
victim_run, victim_job = sys.argv[1], sys.argv[2]
async def main():
    opts = tn.connect_options(os.environ["OW_TOKEN"], "orga")
    nc = await nats.connect(os.environ["OW_URL"], allow_reconnect=False, **opts)
    body = msgspec.json.encode({"type": "RunFinished", "run_id": victim_run,
        "job_id": victim_job, "status": "completed", "outputs": {"result": "FORGED"}})
    try:
        await nc.jetstream().publish(f"ow.ev.orga.job.{victim_job}.RunFinished", body,
                                     timeout=2)
        print("forged")
    except Exception as exc:
        print("refused", type(exc).__name__)
    await nc.close()
asyncio.run(main())
"""


async def test_a_job_cannot_publish_another_runs_result(tenants, tmp_path):
    t = tenants
    wtoken = tn.worker_token(tn.load(t.home), "orga")
    worker = from_env({}, url=t.url, org="orga", home=str(t.home), heartbeat_s=1.0,
                      token=wtoken)
    agents = [Agent(worker, Hardware(image="*"), workdir=tmp_path / f"w{i}") for i in (1, 2)]
    async with anyio.create_task_group() as tg:
        for agent in agents:
            await tg.start(agent.run)
        async with AsyncOpenWeights(url=t.url, org="orga", token=t.tokens[("orga", "submit")],
                                    env={}) as ow:
            victim = await ow.shell.create(command="sleep 60", tag="victim")

            async def running():
                job = await ow.jobs.retrieve(victim.id)
                return job.runs[-1].id if job.status == "in_progress" and job.runs else None

            run_id = await eventually(running, timeout=30)
            attack = await ow.shell.create(
                command=f"{sys.executable} -c {shlex.quote(FORGE)} {run_id} {victim.id}")
            done = await ow.jobs.wait(attack.id, timeout=60)
            log = (await ow.files.content(done.runs[-1].log_file)).decode()
            still = await ow.jobs.retrieve(victim.id)
            assert "refused" in log, log
            assert (still.status, still.outputs) == ("in_progress", {})
            await ow.jobs.cancel(victim.id)
            with pytest.raises(JobCanceledError):
                await ow.jobs.wait(victim.id, timeout=30)
        for agent in agents:
            agent.shutdown()
