"""Finding 2 of issue 15: a job held its org's workers token and published `RunFinished`
for another user's running run, which then showed `completed` with the forged outputs. Jobs
now get the org's job credential, which cannot publish a result."""

from __future__ import annotations

import pytest

from ow.core import tenancy as tn
from ow.core.config import from_env

from .conftest import attack_a_running_job

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
    log, still = await attack_a_running_job(t, [worker, worker], tmp_path, FORGE)
    assert "refused" in log, log
    assert (still.status, still.outputs) == ("in_progress", {})
