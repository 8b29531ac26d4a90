"""The agent's pure decisions: which jobs it serves, and what it does with an offered job."""

from ow.agent.policy import Hardware, can_serve
from ow.core import events as ev


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
