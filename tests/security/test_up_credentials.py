"""`ow up` with two orgs runs a job in each end to end through the per-worker and per-run
credentials: each org's scheduler starts agents with their own worker credential, and each
job calls back (`ow.run.log`) with a credential for its run alone."""

from __future__ import annotations

import os
import shlex
import sys

import anyio
import pytest

from ow import AsyncOpenWeights
from tests.integration.agents import ShellJob  # noqa: F401 - registers `shell`
from tests.integration.test_supervision import OW, ow_up

pytestmark = pytest.mark.anyio

JOB = """
import os
from ow import OpenWeights
assert os.environ["OW_TOKEN"].startswith("owc_"), "not a run credential"
OpenWeights().run.log({"step": 1, "ok": 1})
print("logged as", os.environ["OW_RUN_ID"])
"""


async def _ow(env: dict[str, str], *args: str) -> str:
    proc = await anyio.run_process([OW, *args], env=env, check=False)
    assert proc.returncode == 0, proc.stderr.decode()
    return proc.stdout.decode()


@pytest.mark.timeout(180)  # `ow up`, a server restart, two schedulers' agents, `ow down`
async def test_up_with_two_orgs_runs_a_job_in_each_through_run_credentials(tmp_path):
    async with ow_up(tmp_path) as (url, home):
        env = {k: v for k, v in os.environ.items() if not k.startswith("OW_")}
        env |= {"OW_HOME": str(home), "OW_URL": url}
        tokens = {}
        for org in ("orga", "orgb"):
            await _ow(env, "org", "create", org)
            out = await _ow(env, "token", "create", "--org", org, "--scope", "submit")
            tokens[org] = out.strip().splitlines()[-1]
        for org in ("orga", "orgb"):
            async with AsyncOpenWeights(url=url, org=org, token=tokens[org], env={}) as ow:
                job = await ow.shell.create(
                    command=f"{sys.executable} -c {shlex.quote(JOB)}", tag=org)
                done = await ow.jobs.wait(job.id, timeout=90)
                log = (await ow.files.content(done.runs[-1].log_file)).decode()
                assert f"logged as {done.runs[-1].id}" in log, log
                events = await ow.events.list(run_id=done.runs[-1].id)
                assert [e["data"] for e in events] == [{"step": 1, "ok": 1}], events
