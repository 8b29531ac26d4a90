"""openweights' read helpers against ow: `ow.runs`, `run.events`, `Run.download`,
`job.worker_id`, `events.latest([...])` and `latest("*")`, `job.checkpoint` (a real
nats-server and an in-process agent running a job that logs records and writes a file)."""

import shlex
import uuid

import pytest

from ow import AsyncOpenWeights
from tests.integration.agents import ShellParams, running_agents  # noqa: F401 (registers)

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(120)]

SCRIPT = """
from ow import OpenWeights
ow = OpenWeights()
ow.run.log({"step": 1, "loss": 2.0, "acc": 0.1})
ow.run.log({"step": 2, "loss": 1.5, "acc": None})
open("uploads/result.txt", "w").write("fourteen")
ow.close()
"""


@pytest.fixture
async def finished(nats, tmp_path):
    org = f"t{uuid.uuid4().hex[:10]}"
    async with running_agents(nats.url, org, 1, tmp_path), AsyncOpenWeights(
        url=nats.url, org=org, home=str(tmp_path / "h"), env={}
    ) as ow:
        command = "mkdir -p uploads && python -c " + shlex.quote(SCRIPT)
        job = await ow.shell.create(command=command)
        yield ow, await ow.jobs.wait(job.id, timeout=90)


async def test_latest_takes_a_list_of_keys_or_star(finished):
    ow, job = finished
    assert await ow.events.latest(["loss", "acc"], job_id=job.id) == {"loss": 1.5, "acc": None}
    assert await ow.events.latest("*", job_id=job.id) == {"step": 2, "loss": 1.5, "acc": 0.1}
    assert await ow.events.latest("loss", job_id=job.id) == 1.5  # ow's single-key form


async def test_runs_list_events_download_and_worker_id(finished, tmp_path):
    ow, job = finished
    runs = await ow.runs.list(job_id=job.id)
    assert [r.id for r in runs] == [job.runs[-1].id]
    run = runs[0]
    assert job.worker_id == run.worker_id == run["worker_id"]
    assert job["worker_id"] == job.worker_id
    assert [r.id for r in await ow.runs.list(worker_id=run.worker_id)] == [run.id]
    assert [e["data"]["step"] for e in await run.events if "step" in e["data"]] == [1, 2]
    await run.download(str(tmp_path / "dl"))
    assert (tmp_path / "dl" / "result.txt").read_text() == "fourteen"
    assert (tmp_path / "dl" / f"{run.id}.log").exists()
    assert job.checkpoint is None  # a job that published none
