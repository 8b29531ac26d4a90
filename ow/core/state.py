"""The pure folds: job (with its runs) and worker state from their events.

`apply(state, event) -> (state, anomaly)` is the one transition function. `fold` keeps the
state, `check` keeps the anomaly. A rejected event leaves the state unchanged; a duplicate
(same `event_id` already applied) changes nothing and is not an anomaly. Every reader (SDK,
scheduler, agent, projections, audit) uses these, so none can disagree.

Job states: pending -> in_progress -> completed | failed | canceled; failed/canceled/completed
-> pending on reset (a new generation); in_progress -> pending on requeue (a new generation);
pending -> canceled on a cancel request.

A terminated worker never becomes a job's runner again. The job fold sees only the job's own
subject, so what it knows of terminations comes from there: a `JobRequeued` with
`worker_gone` (the scheduler's requeue of a lost or terminated worker's run) names that
worker in `gone_workers`, and a later `RunStarted` from it is rejected (an anomaly for
`ow audit`). Every reader folds the same history and so agrees, without reading workers; the
scheduler drops such a run's claim at once, so the job is handed on once, not in a loop.

A bound run (its `RunStarted` published under a worker credential, `Event.sender`) takes
its result, requeue, artifacts and checkpoints only from that same identity (`foreign`):
another worker of the org, or a job, naming the run is an anomaly, whatever its payload says.

Imports: stdlib, msgspec and `ow.core` (events, ids).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

import msgspec
from msgspec import UNSET

from ow.core import events as ev
from ow.core.ids import encode_token

__all__ = [
    "TERMINAL",
    "Anomaly",
    "JobState",
    "RunState",
    "WorkerState",
    "apply",
    "apply_worker",
    "check",
    "fold",
    "fold_all",
    "fold_worker",
    "foreign",
]

TERMINAL = frozenset({"completed", "failed", "canceled"})
_SEEN_LIMIT = 256


class Anomaly(msgspec.Struct, frozen=True):
    """An event the fold rejected, and why (reported by `ow audit`)."""

    event_id: str
    event_type: str
    aggregate_id: str
    rule: str


class RunState(msgspec.Struct, frozen=True, kw_only=True):
    run_id: str
    job_id: str
    gen: int
    worker_id: str
    claim_rev: int = 0
    sender: str = ""  # the identity the server bound its RunStarted to ('' unbound)
    status: str = "in_progress"  # + completed | failed | canceled | requeued
    started_at: datetime | None = None
    finished_at: datetime | None = None
    exit_code: int | None = None
    error: str = ""
    log_file: str = ""
    outputs: dict[str, Any] = {}
    artifacts: tuple[tuple[str, str], ...] = ()  # (path, file_id)


class JobState(msgspec.Struct, frozen=True, kw_only=True):
    job_id: str
    org: str = ""
    spec: ev.JobSubmitted
    status: str = "pending"
    gen: int = 0
    runs: tuple[RunState, ...] = ()
    outputs: dict[str, Any] = {}
    error: str = ""
    cancel_requested: bool = False
    timeout_until: datetime | None = None
    checkpoint: tuple[int, str] | None = None  # (step, file_id) of the last checkpoint
    gone_workers: tuple[str, ...] = ()  # workers whose run was requeued as terminated
    created_at: datetime | None = None
    updated_at: datetime | None = None
    seen: tuple[str, ...] = ()  # recent event ids, for idempotence

    @property
    def current_run(self) -> RunState | None:
        """The run that holds the job now (only while in progress)."""
        if self.status == "in_progress" and self.runs:
            return self.runs[-1]
        return None


def _reject(event: ev.Event, agg: str, rule: str) -> Anomaly:
    return Anomaly(event.event_id, type(event).__name__, agg, rule)


def _replace_run(state: JobState, run: RunState, **changes: Any) -> tuple[RunState, ...]:
    return tuple(msgspec.structs.replace(r, **changes) if r is run else r for r in state.runs)


def _find_run(state: JobState, run_id: str) -> RunState | None:
    return next((r for r in state.runs if r.run_id == run_id), None)


#: the bound events that the operator (its scheduler: unbound) may also publish for a run
_OPERATOR_MAY = (ev.JobRequeued, ev.JobCompleted, ev.JobFailed, ev.JobCanceled)


def foreign(run: RunState, event: ev.Event) -> str:
    """Why `event` about `run` does not count, as its sender is not the identity that holds
    the run's claim (both as the server bound them: `Event.sender`), or ''.

    An unbound run (started unbound: static tokens, older logs) takes anyone its
    permissions let through, as before. A bound run takes only its own identity, and the
    operator's unbound requeue or cancel."""
    if event.sender == run.sender or not run.sender:
        return ""
    if not event.sender and isinstance(event, _OPERATOR_MAY):
        return ""
    who = f"identity {event.sender}" if event.sender else "an unbound publisher"
    return (f"{type(event).__name__} for run {run.run_id} from {who}, but {run.sender} holds "
            "its claim")


def _finish(
    state: JobState, event: ev.Event, run_id: str, status: str, **run_fields: Any
) -> tuple[JobState, Anomaly | None]:
    """A run's terminal event: only the run that currently holds the job may end it, and
    only its claim holder's identity may say so."""
    current = state.current_run
    if current is None or current.run_id != run_id:
        holder = current.run_id if current else "no run"
        return state, _reject(
            event, state.job_id,
            f"result from run {run_id or '-'} but the job is {state.status} ({holder} holds it)",
        )
    if why := foreign(current, event):
        return state, _reject(event, state.job_id, why)
    runs = _replace_run(
        state, current, status=status, finished_at=event.ts, **run_fields
    )
    outputs = run_fields.get("outputs", state.outputs) if status == "completed" else state.outputs
    return msgspec.structs.replace(
        state, status=status, runs=runs, outputs=outputs,
        error=run_fields.get("error", "") if status != "completed" else "",
        cancel_requested=False,
    ), None


def _apply_job(state: JobState, e: ev.Event) -> tuple[JobState, Anomaly | None]:
    """Transition table of the job aggregate (one `case` per event type)."""
    jid = state.job_id
    match e:
        case ev.JobSubmitted():
            return state, _reject(e, jid, "job submitted twice (content ids must be unique)")
        case ev.JobUpdated():
            changes = {
                f: getattr(e, f)
                for f in ("params", "requires_vram_gb", "allowed_hardware", "timeout_s")
                if getattr(e, f) is not UNSET
            }
            return msgspec.structs.replace(
                state, spec=msgspec.structs.replace(state.spec, **changes)
            ), None
        case ev.JobReset():
            if state.status not in TERMINAL:
                return state, _reject(e, jid, f"reset of a {state.status} job")
            return msgspec.structs.replace(
                state, status="pending", gen=state.gen + 1, error="", cancel_requested=False
            ), None
        case ev.JobCancelRequested():
            if state.status == "pending":
                return msgspec.structs.replace(state, status="canceled", error="canceled"), None
            if state.status == "in_progress":
                return msgspec.structs.replace(state, cancel_requested=True), None
            return state, _reject(e, jid, f"cancel of a {state.status} job")
        case ev.JobTimeoutExtended(until=until):
            return msgspec.structs.replace(state, timeout_until=until), None
        case ev.JobRequeued(run_id=run_id, reason=reason):
            current = state.current_run
            if current is None or current.run_id != run_id:
                return state, _reject(e, jid, f"requeue of run {run_id} that does not hold it")
            if why := foreign(current, e):
                return state, _reject(e, jid, why)
            runs = _replace_run(
                state, current, status="requeued", finished_at=e.ts, error=reason
            )
            gone = state.gone_workers
            if e.worker_gone and current.worker_id not in gone:
                gone = (*gone, current.worker_id)
            if state.cancel_requested:  # asked to stop: a lost run is not started again
                return msgspec.structs.replace(
                    state, status="canceled", runs=runs, cancel_requested=False,
                    gone_workers=gone, error=f"canceled (its run was requeued: {reason})",
                ), None
            return msgspec.structs.replace(
                state, status="pending", gen=state.gen + 1, runs=runs, cancel_requested=False,
                gone_workers=gone,
            ), None
        case ev.RunStarted(run_id=run_id, gen=gen):
            if e.worker_id in state.gone_workers:
                return state, _reject(
                    e, jid, f"run {run_id} started by worker {e.worker_id}, which was terminated",
                )
            if e.sender and e.sender != encode_token(e.worker_id):
                return state, _reject(
                    e, jid, f"run {run_id} started as worker {e.worker_id} by identity "
                    f"{e.sender}",
                )
            if state.status != "pending" or gen != state.gen:
                return state, _reject(
                    e, jid,
                    f"run {run_id} started for gen {gen} but the job is {state.status} "
                    f"at gen {state.gen}",
                )
            run = RunState(
                run_id=run_id, job_id=jid, gen=gen, worker_id=e.worker_id,
                claim_rev=e.claim_rev, started_at=e.ts, sender=e.sender,
            )
            return msgspec.structs.replace(
                state, status="in_progress", runs=(*state.runs, run)
            ), None
        case ev.RunFinished(run_id=run_id, status=status):
            if status not in TERMINAL:
                return state, _reject(e, jid, f"unknown run status {status!r}")
            return _finish(
                state, e, run_id, status, exit_code=e.exit_code, error=e.error,
                log_file=e.log_file, outputs=e.outputs,
            )
        case ev.JobCompleted(run_id=run_id, outputs=outputs):
            return _finish(state, e, run_id, "completed", outputs=outputs)
        case ev.JobFailed(run_id=run_id, error=error):
            return _finish(state, e, run_id, "failed", error=error)
        case ev.JobCanceled(run_id=run_id):
            if not run_id and state.status == "pending":
                return msgspec.structs.replace(state, status="canceled", error="canceled"), None
            return _finish(state, e, run_id, "canceled", error=e.reason or "canceled")
        case ev.ArtifactUploaded(run_id=run_id, file_id=fid, path=path):
            run = _find_run(state, run_id)
            if run is None:
                return state, _reject(e, jid, f"artifact of unknown run {run_id}")
            if why := foreign(run, e):
                return state, _reject(e, jid, why)
            runs = _replace_run(state, run, artifacts=(*run.artifacts, (path, fid)))
            return msgspec.structs.replace(state, runs=runs), None
        case ev.CheckpointSaved(run_id=run_id, step=step, file_id=fid):
            current = state.current_run
            if current is None or current.run_id != run_id:
                return state, _reject(e, jid, f"checkpoint from run {run_id} that does not hold it")
            if why := foreign(current, e):
                return state, _reject(e, jid, why)
            return msgspec.structs.replace(state, checkpoint=(step, fid)), None
    return state, _reject(e, jid, f"{type(e).__name__} does not apply to a job")


def apply(state: JobState | None, event: ev.Event) -> tuple[JobState | None, Anomaly | None]:
    """One step of the job fold: the new state and the anomaly, if the event was rejected."""
    if state is None:
        if isinstance(event, ev.JobSubmitted):
            new = JobState(
                job_id=event.job_id, org=event.org, spec=event, created_at=event.ts,
                updated_at=event.ts, seen=(event.event_id,) if event.event_id else (),
            )
            return new, None
        agg = getattr(event, "job_id", "?")
        return None, _reject(event, agg, f"{type(event).__name__} before JobSubmitted")
    if event.event_id and event.event_id in state.seen:
        return state, None
    new, anomaly = _apply_job(state, event)
    if anomaly is not None:
        return state, anomaly
    seen = (*state.seen, event.event_id)[-_SEEN_LIMIT:] if event.event_id else state.seen
    return msgspec.structs.replace(new, seen=seen, updated_at=event.ts or state.updated_at), None


def fold(state: JobState | None, event: ev.Event) -> JobState | None:
    """The new state after one event (a rejected event leaves it unchanged)."""
    return apply(state, event)[0]


def check(state: JobState | None, event: ev.Event) -> Anomaly | None:
    """Why the fold would reject this event, or None if it applies."""
    return apply(state, event)[1]


def fold_all(events: Iterable[ev.Event], state: JobState | None = None) -> JobState | None:
    """Fold a whole history."""
    for event in events:
        state = fold(state, event)
    return state


# --- workers -------------------------------------------------------------------------


class WorkerState(msgspec.Struct, frozen=True, kw_only=True):
    worker_id: str
    status: str = "starting"  # starting | active | draining | terminated
    provider: str = ""
    pod_id: str = ""
    hardware: str = ""
    gpus: tuple[str, ...] = ()
    vram_gb: float = 0.0
    image: str = ""
    cached_models: tuple[str, ...] = ()
    price_per_hour: float = 0.0
    provisioned_at: datetime | None = None
    registered_at: datetime | None = None
    terminated_at: datetime | None = None
    last_ping: datetime | None = None
    run_id: str = ""
    reason: str = ""
    isolation: str = ""  # what its jobs run in: bwrap | user | none ("" from older agents)


def apply_worker(
    state: WorkerState | None, e: ev.Event
) -> tuple[WorkerState | None, Anomaly | None]:
    """One step of the worker fold."""
    wid = getattr(e, "worker_id", "?")
    if state is None:
        state = WorkerState(worker_id=wid)
    if state.status == "terminated" and not isinstance(e, ev.WorkerTerminated):
        return state, _reject(e, wid, f"{type(e).__name__} after the worker was terminated")
    match e:
        case ev.WorkerProvisioned():
            return msgspec.structs.replace(
                state, provider=e.provider, pod_id=e.pod_id, hardware=e.hardware,
                image=e.image, price_per_hour=e.price_per_hour, provisioned_at=e.ts,
            ), None
        case ev.WorkerRegistered():
            return msgspec.structs.replace(
                state, status="active", hardware=e.hardware or state.hardware,
                gpus=tuple(e.gpus), vram_gb=e.vram_gb, image=e.image,
                cached_models=tuple(e.cached_models), registered_at=e.ts, last_ping=e.ts,
                isolation=e.isolation,
            ), None
        case ev.WorkerPinged():
            return msgspec.structs.replace(state, last_ping=e.ts, run_id=e.run_id), None
        case ev.WorkerDraining(reason=reason):
            return msgspec.structs.replace(state, status="draining", reason=reason), None
        case ev.WorkerTerminated(reason=reason):
            if state.status == "terminated":
                return state, None
            return msgspec.structs.replace(
                state, status="terminated", reason=reason, terminated_at=e.ts
            ), None
    return state, _reject(e, wid, f"{type(e).__name__} does not apply to a worker")


def fold_worker(state: WorkerState | None, event: ev.Event) -> WorkerState | None:
    return apply_worker(state, event)[0]
