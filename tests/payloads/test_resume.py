"""A requeued fine-tuning job resumes from its last checkpoint, not from step 0.

The first agent is stopped mid-training (as on SIGTERM: its process group is killed and its
claim released, so the job is requeued); a second agent takes the job over.
"""

import uuid

import anyio
import pytest

from ow.core import events as ev
from ow.core import subjects
from tests.integration.agents import client, running_agents
from tests.integration.conftest import eventually
from tests.payloads import data

pytestmark = [pytest.mark.anyio, pytest.mark.slow]



async def _events(bus, job_id, kind):
    history, _ = await bus.history(subjects.job_subject(bus.org, job_id))
    return [d.event for d in history if isinstance(d.event, kind)]


@pytest.mark.timeout(240)
async def test_requeued_training_resumes_from_the_checkpoint(nats, tiny_model, tmp_path):
    import payloads.jobs  # noqa: F401  (registers the built-in job types)

    url, org = nats.url, f"t{uuid.uuid4().hex[:10]}"
    async with client(url, org) as ow:
        bus = await ow.bus()
        train = await ow.files.upload(data.conversations(tmp_path / "t.jsonl", n=8),
                                      "conversations")
        async with running_agents(url, org, 1, tmp_path / "a"):
            job = await ow.fine_tuning.create(
                model=str(tiny_model), training_file=train["id"], max_steps=200, save_steps=2,
                learning_rate=1e-3, r=4, per_device_train_batch_size=4,
                gradient_accumulation_steps=1, warmup_steps=0, max_seq_length=64,
            )
            saved = await eventually(
                lambda: _events(bus, job.id, ev.CheckpointSaved), timeout=150, interval=0.1
            )
        # leaving the block stopped the first agent: its run was requeued
        assert await _events(bus, job.id, ev.JobRequeued)
        first_run = saved[0].run_id
        async with running_agents(url, org, 1, tmp_path / "b"):
            with anyio.fail_after(200):
                while True:
                    steps = [r["data"]["step"] for r in await ow.metrics.list(_second(
                        await ow.jobs.retrieve(job.id), first_run)) if "loss" in r["data"]]
                    if steps:
                        break
                    await anyio.sleep(0.2)
            await ow.jobs.cancel(job.id)  # no need to train 200 steps to see where it began
        resumed_at = max(c.step for c in await _events(bus, job.id, ev.CheckpointSaved)
                         if c.run_id == first_run)
        assert steps[0] > resumed_at >= 2, f"second run started at step {steps[0]}"


def _second(job, first_run):
    later = [r.id for r in job.runs if r.id != first_run]
    return later[-1] if later else "none"
