"""The event catalogue: every fact `ow` stores on the log, as msgspec tagged Structs.

Each event carries its own envelope (`event_id`, `v`, `org`, `ts`, `actor`) in the base
class, and the class name is its tag (the `type` field on the wire). Never rename a class
or reuse a tag; add optional fields freely, anything else bumps `v` (see `upcast.py`).

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
    "METRIC_BATCH_PREFIX",
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
    "decode",
    "decode_message",
    "encode",
    "encode_metrics",
    "is_metric_batch",
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

    Not an event of its own (not in `AnyEvent`): `decode_message` expands it into one
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


class SchedulerNoticed(Event, frozen=True, kw_only=True):
    """A scheduler decision that changes no state but explains one (why a job waits)."""

    subject_id: str
    rule: str
    message: str = ""
    evidence: dict[str, Any] = {}


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
}


_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(AnyEvent)
_many_decoder = msgspec.json.Decoder(list[AnyEvent])


def encode(event: Event) -> bytes:
    """Encode one event as JSON bytes (the wire and storage format)."""
    return _encoder.encode(event)


def decode(data: bytes) -> Event:
    """Decode one stored event, upcasting older schema versions (raises msgspec errors)."""
    from ow.core.upcast import CURRENT, upcast_decode

    try:
        event = _decoder.decode(data)
    except msgspec.ValidationError:
        return upcast_decode(data)
    if event.v != CURRENT.get(type(event).__name__, 1):  # older (or unknown) version
        return upcast_decode(data)
    return event


def decode_each(datas: list[bytes]) -> list[Event] | None:
    """Decode many stored events at once (one parse instead of one call each), or None if
    any of them is not a current-version event: then `decode` them one by one."""
    from ow.core.upcast import CURRENT

    try:
        events = _many_decoder.decode(b"[" + b",".join(datas) + b"]")
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None
    # one value per message: a message holding two would need another holding none,
    # which is not JSON
    if len(events) != len(datas) or any(
        e.v != CURRENT.get(type(e).__name__, 1) for e in events
    ):
        return None
    return events


def decode_message(data: bytes) -> list[Event]:
    """The events of one stored message: a single event, a `MetricBatch` expanded into its
    records, or a JSON array of events (raises msgspec errors)."""
    if data[:1] == b"[":  # a metrics message as written before `MetricBatch`
        return list(_many_decoder.decode(data))
    if not data.startswith(METRIC_BATCH_PREFIX):
        try:
            return [decode(data)]
        except msgspec.ValidationError:
            if not is_metric_batch(data):
                raise
    batch = _batch_decoder.decode(data)
    if batch.v != 1:
        raise msgspec.ValidationError(f"MetricBatch v{batch.v} is newer than this ow knows")
    return batch.expand()  # type: ignore[return-value]


#: how every message `encode_metrics` writes starts
METRIC_BATCH_PREFIX = b'{"type":"MetricBatch"'


def is_metric_batch(data: bytes) -> bool:
    """Whether a stored message is a `MetricBatch` (valid or not)."""
    if data.startswith(METRIC_BATCH_PREFIX):
        return True
    try:
        return _tag_decoder.decode(data).type == "MetricBatch"
    except msgspec.MsgspecError:
        return False


class _Tag(msgspec.Struct):
    type: str = ""


_tag_decoder = msgspec.json.Decoder(_Tag)
_batch_decoder = msgspec.json.Decoder(MetricBatch)
_US = timedelta(microseconds=1)


def encode_metrics(records: list[MetricLogged], event_id: str) -> bytes:
    """One run's records as a `MetricBatch` message (`event_id` its id and Nats-Msg-Id).
    Every record must share the first's run, job, org and actor."""
    first = records[0]
    t0 = first.ts
    for r in records:
        if (r.run_id, r.job_id, r.org, r.actor) != (first.run_id, first.job_id, first.org,
                                                   first.actor):
            raise ValueError("a metrics batch holds the records of one run")
        if (r.ts is None) != (t0 is None):
            raise ValueError("a metrics batch needs a time on every record or on none")
    return _encoder.encode(MetricBatch(
        event_id=event_id, org=first.org, ts=t0, actor=first.actor, run_id=first.run_id,
        job_id=first.job_id,
        records=[MetricRecord(0 if t0 is None else (r.ts - t0) // _US, r.data)  # type: ignore[operator]
                 for r in records],
    ))
