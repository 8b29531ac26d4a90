"""A terminated worker never becomes a job's runner again (finding 2 of the robustness issue).

The job fold learns the termination from the job's own history: the scheduler's requeue of a
lost or terminated worker's run says `worker_gone`.
"""

from __future__ import annotations

from ow.core import events as ev
from ow.core.state import apply, fold_all

JOB = "custom-0123456789ab"


def _started(run: str, gen: int, worker: str) -> ev.RunStarted:
    return ev.RunStarted(event_id=f"start-{run}", run_id=run, job_id=JOB, gen=gen,
                         worker_id=worker, claim_rev=gen + 1)


def _requeued(run: str, gone: bool) -> ev.JobRequeued:
    return ev.JobRequeued(event_id=f"rq-{run}", run_id=run, job_id=JOB, reason="worker lost",
                          worker_gone=gone)


SUBMITTED = ev.JobSubmitted(event_id="sub", job_id=JOB)


def test_a_run_started_by_a_worker_requeued_as_gone_is_rejected():
    state = fold_all([SUBMITTED, _started("r1", 0, "zombie"), _requeued("r1", gone=True)])
    new, anomaly = apply(state, _started("r2", 1, "zombie"))
    assert new == state
    assert anomaly is not None
    assert "worker zombie, which was terminated" in anomaly.rule
    assert state.status == "pending"
    assert state.gone_workers == ("zombie",)


def test_another_worker_then_takes_the_job_at_the_next_generation():
    state = fold_all([
        SUBMITTED, _started("r1", 0, "zombie"), _requeued("r1", gone=True),
        _started("r2", 1, "zombie"), _requeued("r2", gone=True),  # rejected, then rejected
        _started("r3", 1, "healthy"),
    ])
    assert state.status == "in_progress"
    assert state.gen == 1  # handed on once, not generation after generation
    assert state.current_run.worker_id == "healthy"
    assert [r.run_id for r in state.runs] == ["r1", "r3"]


def test_a_plain_requeue_lets_the_same_worker_claim_again():
    """An agent that restarts releases its own run (not gone): it may take the job again."""
    state = fold_all([SUBMITTED, _started("r1", 0, "w1"), _requeued("r1", gone=False),
                      _started("r2", 1, "w1")])
    assert state.status == "in_progress"
    assert state.current_run.run_id == "r2"
