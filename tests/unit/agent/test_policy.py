"""The agent's pure decisions: which jobs it serves, and what it does with an offered job."""

import pytest

from ow.agent.policy import Drop, GiveBack, Hardware, Take, can_serve, nak_delay, offer
from ow.core import events as ev
from ow.core.state import JobState


def _job(**kw) -> ev.JobSubmitted:
    return ev.JobSubmitted(job_id="j-1", **kw)


def test_a_1x_h200_worker_serves_a_job_allowed_on_h200():
    """Finding 3: the agent said "not in allowed_hardware" while the planner said yes."""
    ok, why = can_serve(Hardware(name="1x H200", vram_gb=141), _job(allowed_hardware=["H200"]))
    assert (ok, why) == (True, "")


def test_the_agent_gives_the_reason_it_refuses():
    ok, why = can_serve(Hardware(name="cpu"), _job(requires_vram_gb=24))
    assert not ok
    assert why == "needs 24 GB VRAM, worker has 0 GB"

CPU = Hardware(name="cpu", image="*")


def _state(status: str = "pending", **spec) -> JobState:
    return JobState(job_id="j-1", spec=_job(**spec), status=status)


@pytest.mark.parametrize(("state", "delivered", "kw", "decision"), [
    (_state(), 1, {}, Take()),
    (_state(), 3, {}, Take()),
    (None, 1, {}, Drop("job is not dispatchable")),
    (_state("in_progress"), 1, {}, Drop("job is in_progress")),
    (_state("completed"), 2, {}, Drop("job is completed")),
    (_state("canceled"), 1, {"claim_lost": True}, Drop("job is canceled")),
    (_state(requires_vram_gb=24), 1, {},
     GiveBack(nak_delay(1), "needs 24 GB VRAM, worker has 0 GB")),
    (_state(requires_vram_gb=24), 4, {},
     GiveBack(nak_delay(4), "needs 24 GB VRAM, worker has 0 GB")),
    (_state(), 1, {"claim_delay_s": 0.2},
     GiveBack(0.2, "yielding to a worker with the model cached")),
    (_state(), 2, {"claim_delay_s": 0.2}, Take()),  # its turn came back: take it now
    (_state(), 1, {"claim_lost": True}, GiveBack(nak_delay(1), "another worker holds the claim")),
])
def test_offer_table(state, delivered, kw, decision):
    assert offer(state, CPU, delivered, **kw) == decision


def test_give_back_delays_grow_with_deliveries_and_are_capped():
    delays = [nak_delay(n) for n in (1, 2, 10, 1000)]
    assert delays == sorted(delays)
    assert delays[-1] == 30.0
