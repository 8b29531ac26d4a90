"""Finding 6 of issue 15: wrong-typed params (`requires_vram_gb="lots"`, `timeout_s="x"`,
NaN/inf) were published as undecodable `JobSubmitted` events that every reader skipped.
They are now a `ValidationError` naming the field, and nothing is published; an undecodable
`JobSubmitted` that reaches the log anyway is an anomaly `ow audit` reports."""

from __future__ import annotations

import math

import pytest

from ow import AsyncOpenWeights
from ow.core import events as ev
from ow.core import subjects
from ow.core.errors import ValidationError
from ow.core.validate import job_problems
from ow.projections.audit import audit
from tests.integration.agents import ShellJob  # noqa: F401 - registers `shell`

pytestmark = pytest.mark.anyio

BAD = [
    ({"requires_vram_gb": "lots"}, "requires_vram_gb"),
    ({"timeout_s": "x"}, "timeout_s"),
    ({"requires_vram_gb": math.nan}, "requires_vram_gb"),
    ({"timeout_s": math.inf}, "timeout_s"),
    ({"requires_vram_gb": -1}, "requires_vram_gb"),
    ({"timeout_s": -5.0}, "timeout_s"),
    ({"allowed_hardware": "H100"}, "allowed_hardware"),
    ({"allowed_hardware": [3]}, "allowed_hardware"),
    ({"allowed_hardware": [""]}, "allowed_hardware"),
]


@pytest.mark.parametrize(("fields", "name"), BAD)
def test_a_bad_spec_has_a_problem_naming_its_field(fields, name):
    problems = job_problems(ev.JobSubmitted(job_id="j", **fields))
    assert problems
    assert any(name in str(p) for p in problems), problems


def test_a_good_spec_and_nan_inside_params():
    assert job_problems(ev.JobSubmitted(job_id="j", requires_vram_gb=24, timeout_s=60,
                                        allowed_hardware=["1x H100"])) == []
    (p,) = job_problems(ev.JobSubmitted(job_id="j", params={"lr": [1.0, math.nan]}))
    assert "params.lr[1]" in str(p)


@pytest.fixture
async def ow(fresh_nats, org):
    async with AsyncOpenWeights(url=fresh_nats.url, org=org, env={}) as c:
        yield c


@pytest.mark.parametrize(("fields", "name"), BAD)
async def test_a_bad_submit_is_refused_and_publishes_nothing(ow, fields, name):
    bus = await ow.bus()
    with pytest.raises(ValidationError, match=name):
        await ow.shell.create(command="echo hi", **fields)
    assert not await bus.last_seq(subjects.EVENTS_STREAM, subjects.events_filter(bus.org))
    job = await ow.shell.create(command="echo hi")  # the same job, right: it goes through
    assert job.status == "pending"


async def test_an_undecodable_job_submitted_is_an_anomaly_for_audit(ow):
    bus = await ow.bus()
    subject = subjects.job_subject(bus.org, "job-poison")[:-1] + "JobSubmitted"
    await bus.publish_raw(subject, b'{"type":"JobSubmitted","job_id":"job-poison",'
                                   b'"requires_vram_gb":"lots"}')
    report = await audit(bus)
    assert [(v.rule, v.seq) for v in report.violations] == [("rejected-event", 1)]
    assert "undecodable" in report.violations[0].detail
