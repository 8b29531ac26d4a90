"""Job commands on a real nats-server: a poison JobSubmitted does not burn its job id (issue 15.6).

Before `commands.submit`, a submit was fenced on an empty subject (expected sequence 0): one
undecodable event on the subject made every later submit of that id a conflict, and the
client answered `NotFoundError` forever.
"""

from __future__ import annotations

import pytest

from ow.core import defaults, ids, subjects
from ow.core import events as ev
from ow.core.errors import NotFoundError

from .agents import client, running_agents

pytestmark = pytest.mark.anyio


def _spec(org: str) -> ev.JobSubmitted:
    job_id = ids.job_id("shell", {"entrypoint": "echo ok", "org": org}, defaults.DEFAULT_IMAGE,
                        org)
    return ev.JobSubmitted(
        event_id=job_id, job_id=job_id, job_type="shell", entrypoint="echo ok",
        params={"validated_params": {"command": "echo ok"}}, image=defaults.DEFAULT_IMAGE,
    )


async def test_a_poison_job_submitted_does_not_block_a_valid_submit_of_the_same_id(
    nats_server, org, tmp_path
):
    spec = _spec(org)
    async with client(nats_server.url, org) as ow:
        bus = await ow.bus()
        subject = subjects.job_subject(org, spec.job_id)
        poison = (b'{"type":"JobSubmitted","event_id":"%s","job_id":"%s","timeout_s":"x"}'
                  % (spec.job_id.encode(), spec.job_id.encode()))
        await bus.publish_raw(subject, poison)
        with pytest.raises(NotFoundError):  # undecodable: not a job
            await ow.jobs.retrieve(spec.job_id)

        job = await ow.jobs.submit(spec)
        assert (job.id, job.status) == (spec.job_id, "pending")
        again = await ow.jobs.submit(spec)  # idempotent as ever: no second JobSubmitted
        history, _ = await bus.history(subject)
        assert [type(d.event).__name__ for d in history] == ["JobSubmitted"]
        assert again.id == job.id
        assert spec.job_id in [j.id for j in await ow.jobs.list()]

        async with running_agents(nats_server.url, org, 1, tmp_path):
            done = await ow.jobs.wait(spec.job_id, timeout=60)
        assert done.status == "completed"
