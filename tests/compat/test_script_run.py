"""`ow.run` outside a job makes the script a `script` job with one run, as openweights does
(a real nats-server and an in-process agent, which must not take that job)."""

import os
import sys
import uuid

import anyio
import pytest

from ow import AsyncOpenWeights
from tests.integration.agents import running_agents

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(120)]

SCRIPT = """
from ow import OpenWeights
ow = OpenWeights()
ow.run.log({"step": 1, "loss": 2.0})
ow.run.log({"step": 2, "loss": 0.5})
print(ow.run.job_id, ow.run.id)
"""  # no ow.close(): the client ends the run at exit


async def test_a_script_outside_a_job_gets_its_own_job_and_run(nats, tmp_path):
    org = f"t{uuid.uuid4().hex[:10]}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("OW_")}
    env.update(OW_URL=nats.url, OW_ORG=org, OW_HOME=str(tmp_path / "script-home"))
    async with running_agents(nats.url, org, 1, tmp_path), AsyncOpenWeights(
        url=nats.url, org=org, home=str(tmp_path / "h"), env={}
    ) as ow:
        done = await anyio.run_process([sys.executable, "-c", SCRIPT, "--lr", "1e-4"],
                                       env=env, check=False)
        assert done.returncode == 0, done.stderr.decode()
        job_id, run_id = done.stdout.decode().split()
        job = await ow.jobs.wait(job_id, timeout=30)
        assert job_id.startswith("sjob-")
        assert job.type == "script"
        assert job.status == "completed"
        assert job.params["script"] == "-c --lr 1e-4"  # sys.argv, joined as upstream does
        (run,) = job.runs
        assert run.id == run_id
        assert run.worker_id.startswith("script-")  # this process, not the agent
        assert await ow.events.latest("loss", job_id=job_id) == 0.5
        assert [e["data"]["step"] for e in await ow.events.list(run_id=run_id)] == [1, 2]
