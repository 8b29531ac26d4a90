"""The job and worker folds: every transition and rejection as a table, plus idempotence."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ow.core import events as ev
from ow.core.state import JobState, apply, apply_worker, check, fold, fold_all, fold_worker

T0 = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
JOB = "custom-0123456789ab"
UNTIL = T0 + timedelta(hours=2)


def _id(kind: str, *parts: object) -> str:
    """Deterministic event ids: the same event built twice is the same event (as on the log)."""
    return "-".join([kind, *map(str, parts)])


def submitted(**kw) -> ev.JobSubmitted:
    return ev.JobSubmitted(
        event_id="e-sub", org="acme", ts=T0, job_id=JOB, job_type="custom",
        params={"lr": 1e-4}, image="ow-default", **kw,
    )


def started(run: str = "run-a", gen: int = 0) -> ev.RunStarted:
    return ev.RunStarted(
        event_id=_id("start", run, gen), ts=T0, run_id=run, job_id=JOB, gen=gen,
        worker_id="w1", claim_rev=gen + 1,
    )


def finished(run: str = "run-a", status: str = "completed", **kw) -> ev.RunFinished:
    return ev.RunFinished(
        event_id=_id("fin", run, status), ts=T0, run_id=run, job_id=JOB, status=status, **kw
    )


def requeued(run: str = "run-a") -> ev.JobRequeued:
    return ev.JobRequeued(event_id=_id("rq", run), run_id=run, job_id=JOB, reason="worker lost")


def reset(n: int = 0) -> ev.JobReset:
    return ev.JobReset(event_id=_id("reset", n), job_id=JOB, reason="try again")


def cancel() -> ev.JobCancelRequested:
    return ev.JobCancelRequested(event_id="e-cancel", job_id=JOB)


def artifact(run: str = "run-a") -> ev.ArtifactUploaded:
    return ev.ArtifactUploaded(
        event_id=_id("art", run), run_id=run, job_id=JOB, file_id="result:file-aa", path="out.jsonl"
    )


def checkpoint(run: str = "run-a", step: int = 100) -> ev.CheckpointSaved:
    return ev.CheckpointSaved(
        event_id=_id("ckpt", run, step), run_id=run, job_id=JOB, step=step,
        file_id=f"checkpoint:file-{step}",
    )


RUNNING = [submitted(), started()]
FAILED = [*RUNNING, finished(status="failed", error="boom")]
REQUEUED = [*RUNNING, requeued()]
RUNNING_GEN1 = [*REQUEUED, started("run-b", 1)]

# (id, history, event, expected fields of the new state)
ACCEPTED = [
    ("update", [submitted()],
     ev.JobUpdated(event_id="e-up", job_id=JOB, timeout_s=60.0),
     {"status": "pending", "spec.timeout_s": 60.0, "spec.params": {"lr": 1e-4}}),
    ("start", [submitted()], started(),
     {"status": "in_progress", "gen": 0, "current_run.run_id": "run-a",
      "current_run.claim_rev": 1}),
    ("finish completed", RUNNING, finished(outputs={"model": "m"}, exit_code=0),
     {"status": "completed", "outputs": {"model": "m"}, "runs[-1].status": "completed",
      "runs[-1].exit_code": 0, "current_run": None}),
    ("finish failed", RUNNING, finished(status="failed", error="OOM", exit_code=1),
     {"status": "failed", "error": "OOM", "runs[-1].status": "failed", "outputs": {}}),
    ("finish canceled", RUNNING, finished(status="canceled"), {"status": "canceled"}),
    ("job completed", RUNNING,
     ev.JobCompleted(event_id="e-c", job_id=JOB, run_id="run-a", outputs={"a": 1}),
     {"status": "completed", "outputs": {"a": 1}}),
    ("job failed", RUNNING, ev.JobFailed(event_id="e-f", job_id=JOB, run_id="run-a", error="x"),
     {"status": "failed", "error": "x"}),
    ("job canceled with its run", RUNNING,
     ev.JobCanceled(event_id="e-x", job_id=JOB, run_id="run-a"),
     {"status": "canceled", "runs[-1].status": "canceled"}),
    ("job canceled while pending", [submitted()], ev.JobCanceled(event_id="e-x", job_id=JOB),
     {"status": "canceled", "error": "canceled"}),
    ("cancel pending", [submitted()], cancel(), {"status": "canceled", "error": "canceled"}),
    ("cancel in progress", RUNNING, cancel(),
     {"status": "in_progress", "cancel_requested": True}),
    ("finish after cancel request", [*RUNNING, cancel()], finished(status="canceled"),
     {"status": "canceled", "cancel_requested": False}),
    ("requeue", RUNNING, requeued(),
     {"status": "pending", "gen": 1, "runs[-1].status": "requeued",
      "runs[-1].error": "worker lost"}),
    ("requeue after a cancel request: canceled, not run again", [*RUNNING, cancel()], requeued(),
     {"status": "canceled", "gen": 0, "runs[-1].status": "requeued", "cancel_requested": False,
      "error": "canceled (its run was requeued: worker lost)"}),
    ("start after requeue", REQUEUED, started("run-b", 1),
     {"status": "in_progress", "gen": 1, "current_run.run_id": "run-b"}),
    ("reset failed", FAILED, reset(), {"status": "pending", "gen": 1, "error": ""}),
    ("reset canceled", [submitted(), cancel()], reset(), {"status": "pending", "gen": 1}),
    ("reset completed", [*RUNNING, finished()], reset(), {"status": "pending", "gen": 1}),
    ("timeout extended", RUNNING, ev.JobTimeoutExtended(event_id="e-t", job_id=JOB, until=UNTIL),
     {"timeout_until": UNTIL}),
    ("artifact", RUNNING, artifact(), {"runs[-1].artifacts": (("out.jsonl", "result:file-aa"),)}),
    ("artifact of an earlier run", RUNNING_GEN1, artifact("run-a"),
     {"runs[0].artifacts": (("out.jsonl", "result:file-aa"),), "runs[1].artifacts": ()}),
    ("checkpoint", RUNNING, checkpoint(), {"checkpoint": (100, "checkpoint:file-100")}),
    ("checkpoint survives requeue", [*RUNNING, checkpoint()], requeued(),
     {"checkpoint": (100, "checkpoint:file-100"), "status": "pending"}),
]

# (id, history, event, a fragment of the anomaly's rule)
REJECTED = [
    ("submitted twice", [submitted()], msgspec.structs.replace(submitted(), event_id="e-2"),
     "submitted twice"),
    ("reset pending", [submitted()], reset(), "reset of a pending job"),
    ("reset in progress", RUNNING, reset(), "reset of a in_progress job"),
    ("cancel completed", [*RUNNING, finished()], cancel(), "cancel of a completed job"),
    ("cancel canceled", [submitted(), cancel()],
     msgspec.structs.replace(cancel(), event_id="e-cancel-2"), "cancel of a canceled job"),
    ("requeue pending", [submitted()], requeued(), "does not hold it"),
    ("requeue by another run", RUNNING, requeued("run-x"), "does not hold it"),
    ("start wrong gen", [submitted()], started(gen=1), "started for gen 1"),
    ("start stale gen after requeue", REQUEUED, started("run-b", 0), "at gen 1"),
    ("second start", RUNNING, started("run-b", 0), "the job is in_progress"),
    ("start after completion", [*RUNNING, finished()], started("run-b", 0), "completed"),
    ("late finish from a fenced-out run", RUNNING_GEN1, finished("run-a", "failed"),
     "result from run run-a"),
    ("finish without a run", [submitted()], finished(), "(no run holds it)"),
    ("finish twice", [*RUNNING, finished()], finished(status="failed"), "job is completed"),
    ("unknown run status", RUNNING, finished(status="exploded"), "unknown run status"),
    ("job completed by a fenced-out run", RUNNING_GEN1,
     ev.JobCompleted(job_id=JOB, run_id="run-a"), "result from run run-a"),
    ("job canceled by another run", RUNNING, ev.JobCanceled(job_id=JOB, run_id="run-x"),
     "result from run run-x"),
    ("artifact of an unknown run", RUNNING, artifact("run-x"), "artifact of unknown run"),
    ("checkpoint from a fenced-out run", RUNNING_GEN1, checkpoint("run-a", 200),
     "checkpoint from run run-a"),
    ("worker event", [submitted()], ev.WorkerPinged(worker_id="w1"), "does not apply to a job"),
]


def field(state: JobState | None, path: str) -> object:
    """Read `a.b`, `runs[-1].status` style paths off a state."""
    value: object = state
    for part in path.split("."):
        name, _, index = part.partition("[")
        value = getattr(value, name)
        if index:
            value = value[int(index.rstrip("]"))]  # type: ignore[index]
    return value


@pytest.mark.parametrize(("history", "event", "expected"),
                         [c[1:] for c in ACCEPTED], ids=[c[0] for c in ACCEPTED])
def test_accepted_transitions(history, event, expected):
    before = fold_all(history)
    after, anomaly = apply(before, event)
    assert anomaly is None
    assert {path: field(after, path) for path in expected} == expected
    assert after.seen[-1] == event.event_id


@pytest.mark.parametrize(("history", "event", "rule"),
                         [c[1:] for c in REJECTED], ids=[c[0] for c in REJECTED])
def test_rejected_events_leave_the_state_unchanged(history, event, rule):
    before = fold_all(history)
    after, anomaly = apply(before, event)
    assert after is before
    assert anomaly is not None
    assert rule in anomaly.rule
    assert (anomaly.event_id, anomaly.event_type, anomaly.aggregate_id) == (
        event.event_id, type(event).__name__, JOB)
    assert check(before, event) == anomaly


def test_submit_creates_a_pending_job():
    state = fold(None, submitted())
    assert (state.job_id, state.org, state.status, state.gen) == (JOB, "acme", "pending", 0)
    assert (state.spec, state.created_at, state.runs) == (submitted(), T0, ())


def test_an_event_before_submit_is_rejected():
    state, anomaly = apply(None, started())
    assert state is None
    assert anomaly.rule == "RunStarted before JobSubmitted"


def test_a_full_life_with_requeue_and_reset():
    state = fold_all([*RUNNING_GEN1, finished("run-b", "failed"), reset(),
                      started("run-c", 2), finished("run-c")])
    assert [(r.run_id, r.gen, r.status) for r in state.runs] == [
        ("run-a", 0, "requeued"), ("run-b", 1, "failed"), ("run-c", 2, "completed")]
    assert (state.status, state.gen, state.error) == ("completed", 2, "")


# --- idempotence -----------------------------------------------------------------------

RUNS = ["run-a", "run-b", "run-c"]
job_event = st.one_of(
    st.builds(started, st.sampled_from(RUNS), st.integers(0, 3)),
    st.builds(finished, st.sampled_from(RUNS), st.sampled_from(["completed", "failed"])),
    st.builds(requeued, st.sampled_from(RUNS)),
    st.builds(reset, st.integers(0, 3)),
    st.just(cancel()),
    st.builds(artifact, st.sampled_from(RUNS)),
    st.builds(checkpoint, st.sampled_from(RUNS), st.integers(1, 3)),
)
histories = st.lists(job_event, max_size=25).map(lambda h: [submitted(), *h])


@settings(max_examples=200, deadline=None)
@given(histories, st.data())
def test_an_event_delivered_twice_in_a_row_counts_once(history, data):
    i = data.draw(st.integers(0, len(history) - 1))
    assert fold_all([*history[: i + 1], history[i], *history[i + 1 :]]) == fold_all(history)


@settings(max_examples=200, deadline=None)
@given(histories, st.data())
def test_replaying_an_applied_event_later_changes_nothing(history, data):
    state, applied = None, []
    for i, event in enumerate(history):
        state, anomaly = apply(state, event)
        if anomaly is None:
            applied.append(i)
    i = data.draw(st.sampled_from(applied))
    replayed = history[i]
    at = data.draw(st.integers(i + 1, len(history)))
    assert fold_all([*history[:at], replayed, *history[at:]]) == state


@settings(max_examples=50, deadline=None)
@given(histories)
def test_two_folds_of_one_history_are_equal(history):
    assert fold_all(history) == fold_all(list(history))


# --- workers ---------------------------------------------------------------------------

W = "worker-1"
PROVISIONED = ev.WorkerProvisioned(
    worker_id=W, provider="runpod", pod_id="pod-9", hardware="1x A100", image="ow-default",
    price_per_hour=1.89, ts=T0,
)
REGISTERED = ev.WorkerRegistered(
    worker_id=W, hardware="1x A100", gpus=["A100"], vram_gb=80, image="ow-default",
    cached_models=["m"], isolation="bwrap", ts=T0 + timedelta(seconds=30),
)
PING = ev.WorkerPinged(worker_id=W, run_id="run-a", ts=T0 + timedelta(seconds=35))
DRAINING = ev.WorkerDraining(worker_id=W, reason="5 failed jobs")
TERMINATED = ev.WorkerTerminated(worker_id=W, reason="idle", ts=T0 + timedelta(minutes=9))

WORKER_ACCEPTED = [
    ("provisioned", [], PROVISIONED,
     {"status": "starting", "provider": "runpod", "pod_id": "pod-9", "price_per_hour": 1.89,
      "provisioned_at": T0}),
    ("registered", [PROVISIONED], REGISTERED,
     {"status": "active", "gpus": ("A100",), "vram_gb": 80, "provider": "runpod",
      "last_ping": REGISTERED.ts, "isolation": "bwrap"}),
    ("registered without provisioning", [], REGISTERED, {"status": "active", "provider": ""}),
    ("pinged", [PROVISIONED, REGISTERED], PING, {"last_ping": PING.ts, "run_id": "run-a"}),
    ("draining", [REGISTERED], DRAINING, {"status": "draining", "reason": "5 failed jobs"}),
    ("terminated", [REGISTERED, DRAINING], TERMINATED,
     {"status": "terminated", "reason": "idle", "terminated_at": TERMINATED.ts}),
    ("terminated twice", [REGISTERED, TERMINATED],
     msgspec.structs.replace(TERMINATED, reason="again"), {"reason": "idle"}),
]

WORKER_REJECTED = [
    ("ping after termination", [REGISTERED, TERMINATED], PING, "after the worker was terminated"),
    ("register after termination", [TERMINATED], REGISTERED, "after the worker was terminated"),
    ("job event", [REGISTERED], submitted(), "does not apply to a worker"),
]


def fold_workers(events):
    state = None
    for e in events:
        state = fold_worker(state, e)
    return state


@pytest.mark.parametrize(("history", "event", "expected"),
                         [c[1:] for c in WORKER_ACCEPTED], ids=[c[0] for c in WORKER_ACCEPTED])
def test_worker_transitions(history, event, expected):
    after, anomaly = apply_worker(fold_workers(history), event)
    assert anomaly is None
    assert {name: getattr(after, name) for name in expected} == expected


@pytest.mark.parametrize(("history", "event", "rule"),
                         [c[1:] for c in WORKER_REJECTED], ids=[c[0] for c in WORKER_REJECTED])
def test_worker_rejections(history, event, rule):
    before = fold_workers(history)
    after, anomaly = apply_worker(before, event)
    assert after == before
    assert rule in anomaly.rule


@settings(max_examples=100, deadline=None)
@given(st.lists(st.sampled_from([PROVISIONED, REGISTERED, PING, DRAINING, TERMINATED]),
                min_size=1, max_size=10), st.data())
def test_a_worker_event_delivered_twice_in_a_row_counts_once(history, data):
    i = data.draw(st.integers(0, len(history) - 1))
    assert fold_workers([*history[: i + 1], history[i], *history[i + 1 :]]) == fold_workers(
        history)
