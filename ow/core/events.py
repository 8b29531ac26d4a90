"""The event catalogue: every fact `ow` stores on the log, as msgspec tagged Structs.

Each event carries its own envelope (`event_id`, `v`, `org`, `ts`, `actor`) in the base
class, and the class name is its tag (the `type` field on the wire). Never rename a class
or reuse a tag; add optional fields freely, anything else bumps `v` (see `upcast.py`).

Imports: stdlib and msgspec only.
"""

from __future__ import annotations

from datetime import UTC, datetime
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
    "MetricLogged",
    "OrgCreated",
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
    "decode_many",
    "encode",
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
    """One `ow.run.log(...)` record; several may share one message on OW_METRICS."""

    run_id: str
    job_id: str = ""
    data: dict[str, Any] = {}


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


def decode_many(data: bytes) -> list[Event]:
    """Decode a JSON array of events (a batched metrics message)."""
    return list(_many_decoder.decode(data))
