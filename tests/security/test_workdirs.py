"""Issue 16, finding 7: every run's work dir (and log) stayed in the agent's dir forever
(a 1 GiB upload stayed). A run's work dir is removed when it ends; the last few failed ones
are kept for a look (OW_KEEP_FAILED_RUNS)."""

from __future__ import annotations

import anyio
import pytest

from ow import AsyncOpenWeights
from ow.agent import Agent, Hardware
from ow.core import defaults
from ow.core.config import from_env
from ow.core.errors import JobFailedError
from tests.integration.agents import ShellJob  # noqa: F401 - registers `shell`

pytestmark = pytest.mark.anyio


async def test_work_dirs_go_when_runs_end_but_the_last_failed_ones(fresh_nats, org, tmp_path):
    config = from_env({"OW_KEEP_FAILED_RUNS": "2"}, url=fresh_nats.url, org=org,
                      heartbeat_s=1.0)
    assert config.keep_failed_runs == 2
    assert from_env({}).keep_failed_runs == defaults.KEEP_FAILED_RUNS
    work = tmp_path / "work"
    agent = Agent(config, Hardware(image="*"), workdir=work)
    async with anyio.create_task_group() as tg:
        await tg.start(agent.run)
        async with AsyncOpenWeights(url=fresh_nats.url, org=org, env={}) as ow:
            ok = await ow.shell.create(command="head -c 1000000 /dev/zero > big; echo done")
            done = await ow.jobs.wait(ok.id, timeout=30)
            assert "done" in (await ow.files.content(done.runs[-1].log_file)).decode()
            failed = []
            for i in range(3):
                job = await ow.shell.create(command=f"echo {i} > mine; exit 3")
                with pytest.raises(JobFailedError):
                    await ow.jobs.wait(job.id, timeout=30)
                failed.append((await ow.jobs.retrieve(job.id)).runs[-1].id)
        agent.shutdown()
    left = sorted(p.name for p in work.iterdir())
    assert left == sorted(f"failed-{r}" for r in failed[1:]) + sorted(f"{r}.log"
                                                                      for r in failed[1:])
    assert (work / f"failed-{failed[-1]}" / "mine").read_text() == "2\n"
