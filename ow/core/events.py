"""The event catalogue: every fact `ow` stores on the log, as msgspec tagged Structs.

Each event carries its own envelope (`event_id`, `v`, `org`, `ts`, `actor`) in the base
class, and the class name is its tag (the `type` field on the wire). Never rename a class
or reuse a tag; add optional fields freely, anything else bumps `v` (see `upcast.py`).
This module is the catalogue only: bytes <-> events is `codec.py`.

Imports: stdlib and msgspec only.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
from msgspec import UNSET, UnsetType

__all__ = [
    "AnyEvent",
    "ArtifactUploaded",
    "CheckpointSaved",
    "Event",
    "FileUploaded",
    "JobCancelRequested",
    "JobCanceled",
    "JobCompleted",
    "JobFailed",
    "JobRequeued",
    "JobReset",
    "JobSubmitted",
    "JobTimeoutExtended",
    "JobUpdated",
    "MetricBatch",
    "MetricLogged",
    "MetricRecord",
    "OrgCreated",
    "PUBLISHED_BY",
    "RunFinished",
    "RunStarted",
    "SchedulerNoticed",
    "SecretSet",
    "TokenCreated",
    "TokenRevoked",
    "WorkerDraining",
    "WorkerPinged",
    "WorkerProvisioned",
    "WorkerRegistered",
    "WorkerTerminated",
    "now",
]


def now() -> datetime:
    """Return the current time as an aware UTC datetime."""
    return datetime.now(UTC)


class Event(
    msgspec.Struct, frozen=True, kw_only=True, tag_field="type", tag=True, omit_defaults=True
):
    """Envelope shared by every event: who, when, which org, which schema version."""

    event_id: str = ""
    v: int = 1
    org: str = ""
    ts: datetime | None = None
    actor: str = ""
    #: who the server let publish it (a bound event's last subject token, `subjects.
    #: BOUND_EVENTS`), set by the decoder from the subject, never from the payload; ''
    #: when unbound (events of static tokens and the operator, and every older event)
    sender: str = ""


# --- files ---------------------------------------------------------------------------


class FileUploaded(Event, frozen=True, kw_only=True):
    file_id: str
    purpose: str
    filename: str = ""
    size_bytes: int = 0
    sha256: str = ""
    store: str = "nats"
    key: str = ""


# --- jobs ----------------------------------------------------------------------------


class JobSubmitted(Event, frozen=True, kw_only=True):
    job_id: str
    job_type: str = "custom"
    model: str = ""
    params: dict[str, Any] = {}
    mounted_files: dict[str, str] = {}
    entrypoint: str = ""
    image: str = ""
    requires_vram_gb: float = 0
    allowed_hardware: list[str] = []
    timeout_s: float = 0
    gpus: int = 0  # GPUs the job needs on one machine; 0: one GPU (or CPU), as most jobs


class JobUpdated(Event, frozen=True, kw_only=True):
    job_id: str
    params: dict[str, Any] | UnsetType = UNSET
    requires_vram_gb: float | UnsetType = UNSET
    allowed_hardware: list[str] | UnsetType = UNSET
    timeout_s: float | UnsetType = UNSET


class JobReset(Event, frozen=True, kw_only=True):
    job_id: str
    reason: str = ""


class JobCancelRequested(Event, frozen=True, kw_only=True):
    job_id: str
    reason: str = ""


class JobTimeoutExtended(Event, frozen=True, kw_only=True):
    job_id: str
    until: datetime


class JobRequeued(Event, frozen=True, kw_only=True):
    job_id: str
    run_id: str
    reason: str = ""
    evidence: dict[str, Any] = {}
    worker_gone: bool = False  # the run's worker is terminated: it never runs this job again


class JobCompleted(Event, frozen=True, kw_only=True):
    job_id: str
    run_id: str
    outputs: dict[str, Any] = {}


class JobFailed(Event, frozen=True, kw_only=True):
    job_id: str
    run_id: str = ""
    error: str = ""


class JobCanceled(Event, frozen=True, kw_only=True):
    job_id: str
    run_id: str = ""
    reason: str = ""


# --- runs ----------------------------------------------------------------------------


class RunStarted(Event, frozen=True, kw_only=True):
    run_id: str
    job_id: str
    gen: int
    worker_id: str
    claim_rev: int = 0


class ArtifactUploaded(Event, frozen=True, kw_only=True):
    run_id: str
    job_id: str
    file_id: str
    path: str = ""


class CheckpointSaved(Event, frozen=True, kw_only=True):
    run_id: str
    job_id: str
    step: int
    file_id: str


class RunFinished(Event, frozen=True, kw_only=True):
    """The one terminal event of a run, published by its agent under a claim CAS."""

    run_id: str
    job_id: str
    status: str  # completed | failed | canceled
    exit_code: int | None = None
    error: str = ""
    log_file: str = ""
    outputs: dict[str, Any] = {}


class MetricLogged(Event, frozen=True, kw_only=True):
    """One `ow.run.log(...)` record; several share one message on OW_METRICS (a
    `MetricBatch`, or a JSON array of these as written before it)."""

    run_id: str
    job_id: str = ""
    data: dict[str, Any] = {}


class MetricRecord(msgspec.Struct, frozen=True, gc=False):
    """One record of a `MetricBatch`: its time as microseconds after the batch's `ts`."""

    dt: int
    data: dict[str, Any]


class MetricBatch(Event, frozen=True, kw_only=True):
    """The OW_METRICS message of one run's records: one envelope for all of them.

    Not an event of its own (not in `AnyEvent`): `codec.decode_message` expands it into one
    `MetricLogged` per record, with event id `<event_id>-<index>` and time `ts + dt`, and
    every reader sees those. A record written as a full envelope took 250 bytes for 60 of
    data; here it takes 70 (DESIGN.md section 2: this is the one message that shares an
    envelope, as a batch of one run's records)."""

    run_id: str
    job_id: str = ""
    records: list[MetricRecord]

    def expand(self) -> list[MetricLogged]:
        t = self.ts
        return [
            MetricLogged(
                event_id=f"{self.event_id}-{i}", v=1, org=self.org, actor=self.actor,
                ts=None if t is None else t + timedelta(microseconds=r.dt),
                run_id=self.run_id, job_id=self.job_id, data=r.data,
            )
            for i, r in enumerate(self.records)
        ]


# --- workers -------------------------------------------------------------------------


class WorkerProvisioned(Event, frozen=True, kw_only=True):
    worker_id: str
    provider: str
    pod_id: str = ""
    hardware: str = ""
    image: str = ""
    price_per_hour: float = 0
    job_ids: list[str] = []


class WorkerRegistered(Event, frozen=True, kw_only=True):
    worker_id: str
    hardware: str = ""
    gpus: list[str] = []
    vram_gb: float = 0
    image: str = ""
    cached_models: list[str] = []
    pid: int = 0
    host: str = ""
    isolation: str = ""  # how its jobs are isolated: bwrap | user | none (ow.agent.sandbox)


class WorkerPinged(Event, frozen=True, kw_only=True):
    worker_id: str
    run_id: str = ""


class WorkerDraining(Event, frozen=True, kw_only=True):
    worker_id: str
    reason: str = ""


class WorkerTerminated(Event, frozen=True, kw_only=True):
    worker_id: str
    reason: str = ""
    evidence: dict[str, Any] = {}


#: the rule of a `SchedulerNoticed` about a job nothing here can ever run (readers give up on it)
NOTICE_UNSCHEDULABLE = "no_hardware"


class SchedulerNoticed(Event, frozen=True, kw_only=True):
    """A scheduler decision that changes no state but explains one (why a job waits)."""

    subject_id: str
    rule: str
    message: str = ""
    evidence: dict[str, Any] = {}


# --- services (what `ow up` supervises) ----------------------------------------------


class ServiceRestarted(Event, frozen=True, kw_only=True):
    """`ow up` restarted a process it supervises (scheduler, agent, read service, server).

    `exit` is the process's exit code (negative: killed by that signal); `worker_id` names the
    worker an agent process ran as, which is lost at once (its run is requeued).
    """

    name: str
    exit: int | None = None
    reason: str = ""
    worker_id: str = ""
    restarts: int = 0  # how many times this service was restarted so far (this one included)
    backoff_s: float = 0


# --- tenancy -------------------------------------------------------------------------


class OrgCreated(Event, frozen=True, kw_only=True):
    name: str


class TokenCreated(Event, frozen=True, kw_only=True):
    token_id: str
    hash: str
    scope: str = "admin"
    expires: datetime | None = None


class TokenRevoked(Event, frozen=True, kw_only=True):
    token_id: str
    reason: str = ""


class SecretSet(Event, frozen=True, kw_only=True):
    name: str
    removed: bool = False


AnyEvent = (
    FileUploaded
    | JobSubmitted
    | JobUpdated
    | JobReset
    | JobCancelRequested
    | JobTimeoutExtended
    | JobRequeued
    | JobCompleted
    | JobFailed
    | JobCanceled
    | RunStarted
    | ArtifactUploaded
    | CheckpointSaved
    | RunFinished
    | MetricLogged
    | WorkerProvisioned
    | WorkerRegistered
    | WorkerPinged
    | WorkerDraining
    | WorkerTerminated
    | SchedulerNoticed
    | ServiceRestarted
    | OrgCreated
    | TokenCreated
    | TokenRevoked
    | SecretSet
)

# --- who may publish what (ow.core.tenancy derives token permissions from this) -----------

#: event type -> the token scopes whose connections may publish it. `admin` (an org admin,
#: the operator's control identity: the scheduler, the CLI) may publish every event and is
#: not listed; `read` publishes nothing. `job` is the credential a job's own code gets (its
#: run's metrics, artifacts, checkpoints and files, never a result or a claim). A new event
#: type must be added here (tests/security/test_scopes.py checks that every one is).
PUBLISHED_BY: dict[str, frozenset[str]] = {
    "FileUploaded": frozenset({"submit", "worker", "job"}),
    "JobSubmitted": frozenset({"submit"}),
    "JobUpdated": frozenset({"submit"}),
    "JobReset": frozenset({"submit"}),
    "JobCancelRequested": frozenset({"submit"}),
    "JobTimeoutExtended": frozenset({"submit"}),  # an API deployment's keep-alive
    "JobRequeued": frozenset({"worker"}),  # an agent releasing its claim (claims.release)
    "JobCompleted": frozenset(),
    "JobFailed": frozenset(),
    "JobCanceled": frozenset(),
    "RunStarted": frozenset({"worker"}),
    "ArtifactUploaded": frozenset({"worker", "job"}),
    "CheckpointSaved": frozenset({"worker", "job"}),
    "RunFinished": frozenset({"worker"}),
    "MetricLogged": frozenset({"worker", "job"}),
    "MetricBatch": frozenset({"worker", "job"}),
    "WorkerProvisioned": frozenset(),  # the scheduler
    "WorkerRegistered": frozenset({"worker"}),
    "WorkerPinged": frozenset({"worker"}),
    "WorkerDraining": frozenset({"worker"}),
    "WorkerTerminated": frozenset({"worker"}),
    "SchedulerNoticed": frozenset(),
    "OrgCreated": frozenset(),
    "TokenCreated": frozenset(),
    "TokenRevoked": frozenset(),
    "SecretSet": frozenset(),
    "ServiceRestarted": frozenset(),  # `ow up` (the operator)
}

