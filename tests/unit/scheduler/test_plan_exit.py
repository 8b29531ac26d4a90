"""A worker whose process was seen to exit is lost at once; a terminated worker's claim
that holds no run is dropped at once; the planner matches hardware through ow.core."""

import msgspec
import pytest

from ow.core.lifecycle import restart_delay
from ow.scheduler.plan import (
    ClaimView,
    DropClaim,
    JobView,
    Requeue,
    Terminate,
    can_serve,
    plan,
    reconcile,
)

from .test_plan import NOW, L, ago, job, kinds, view, worker


def test_an_exited_worker_holding_a_run_is_requeued_and_terminated_at_once():
    w = msgspec.structs.replace(worker(run="r1", ping=1), exited="local: pod pod-1 exited")
    acts = plan(view(workers=[w]), NOW, L)
    assert kinds(acts) == ["Requeue", "Terminate"]
    requeue, term = acts
    assert isinstance(requeue, Requeue)
    assert isinstance(term, Terminate)
    assert (requeue.run_id, requeue.evidence["rule"]) == ("r1", "process_exited")
    assert requeue.evidence["seen"] == "local: pod pod-1 exited"
    assert term.pod_id == "pod-1"


@pytest.mark.parametrize("status", ["starting", "active", "draining"])
def test_an_exited_worker_is_retired_whatever_its_state(status):
    w = msgspec.structs.replace(worker(status=status, ping=1), exited="ow up: agent exited")
    assert kinds(plan(view(workers=[w]), NOW, L)) == ["Terminate"]


def test_an_exited_worker_is_not_counted_as_serving_a_pending_job():
    w = msgspec.structs.replace(worker(), exited="local: pod pod-1 exited")
    assert kinds(plan(view([job()], workers=[w]), NOW, L)) == ["Terminate", "Provision"]


def _claim(worker_id="z", run_id="r2"):
    return ClaimView(job_id="j1", run_id=run_id, worker_id=worker_id, gen=1, rev=7,
                     first_seen=ago(0.1))


def test_a_claim_of_a_terminated_worker_without_an_accepted_run_is_dropped_at_once():
    v = view(workers=[worker("z", status="terminated")])
    (drop,) = reconcile([_claim()], v, {}, NOW, L)
    assert isinstance(drop, DropClaim)
    assert (drop.rev, drop.evidence["rule"]) == (7, "unstarted_claim_of_terminated_worker")


def test_a_fresh_claim_of_a_live_worker_is_left_alone():
    assert reconcile([_claim()], view(workers=[worker("z")]), {}, NOW, L) == []


@pytest.mark.parametrize(("hw", "allowed", "ok"), [
    ("1x H200", ("H200",), True),  # finding 3: the planner and the agent now agree
    ("H200", ("1x H200",), True),
    ("2x H200", ("H200",), False),
    ("1x A6000", ("a6000", "1x H100"), True),
])
def test_the_planner_matches_labels_like_the_agent(hw, allowed, ok):
    assert can_serve(worker(hw=hw, vram=300), JobView(job_id="j", allowed_hardware=allowed,
                                                      image="img")) is ok


@pytest.mark.parametrize(("failures", "delay"), [
    (0, 0.5), (1, 0.5), (2, 1.0), (3, 2.0), (6, 16.0), (7, 30.0), (50, 30.0),
])
def test_restart_delays_double_up_to_a_cap(failures, delay):
    assert restart_delay(failures) == delay
