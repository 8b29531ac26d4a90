"""Every name on the wire: streams, subjects, KV buckets, keys and object store names.

Imports: stdlib and `ow.core` (ids, senders).
"""

from __future__ import annotations

import base64

from ow.core.ids import encode_token
from ow.core.senders import BOUND_EVENTS, sender_of_subject

__all__ = [
    "AUTH_ACCOUNT",
    "BOUND_EVENTS",
    "CALLOUT_SUBJECT",
    "CLAIMS_BUCKET",
    "EVENTS_STREAM",
    "FILES_BUCKET",
    "object_chunks_subject",
    "object_meta_subject",
    "HEARTBEATS_STREAM",
    "LEASES_BUCKET",
    "LOGS_STREAM",
    "METRICS_STREAM",
    "aggregate_subject",
    "claim_key",
    "aggregate_of",
    "dispatch_consumer",
    "dispatch_filters",
    "events_filter",
    "file_key",
    "heartbeat_subject",
    "job_subject",
    "lease_key",
    "log_subject",
    "metric_subject",
    "query_filter",
    "query_subject",
    "sender_of_subject",
    "subject_of",
    "worker_subject",
]

EVENTS_STREAM = "OW_EVENTS"
METRICS_STREAM = "OW_METRICS"
LOGS_STREAM = "OW_LOGS"
HEARTBEATS_STREAM = "OW_HEARTBEATS"
CLAIMS_BUCKET = "ow_claims"
LEASES_BUCKET = "ow_leases"
FILES_BUCKET = "ow_files"

#: the auth callout (`ow.core.callout`): where the server asks, and its service's account
CALLOUT_SUBJECT = "$SYS.REQ.USER.AUTH"
AUTH_ACCOUNT = "OW_AUTH"  # uppercase: never an org name (`tenancy._ORG_NAME`)

EVENTS_PREFIX = "ow.ev"
METRICS_PREFIX = "ow.mx"
LOGS_PREFIX = "ow.log"
HEARTBEATS_PREFIX = "ow.hb"
QUERY_PREFIX = "ow.q"  # the read service: `ow.q.<org>.<query>` (request/reply)
READ_SERVICE = "ow-read"  # its nats.micro service name


def aggregate_subject(org: str, aggregate: str, agg_id: str) -> str:
    """The filter over one aggregate's history: `ow.ev.<org>.<aggregate>.<id>.>`.

    Each event is stored under `ow.ev.<org>.<aggregate>.<id>.<EventType>` (see `subject_of`),
    so a consumer can select event types by subject (the dispatch consumer takes only the
    events that make a job pending) while one aggregate is still one filter. A bound event
    (`BOUND_EVENTS`) published under an identity has that identity as one more token:
    `….<EventType>.<sender>` (`sender_of_subject`).
    """
    return f"{EVENTS_PREFIX}.{encode_token(org)}.{aggregate}.{encode_token(agg_id)}.>"


def job_subject(org: str, job_id: str) -> str:
    """A job's history filter; its runs' control events live there too (a run is part of it)."""
    return aggregate_subject(org, "job", job_id)


def worker_subject(org: str, worker_id: str) -> str:
    return aggregate_subject(org, "worker", worker_id)


def events_filter(org: str | None = None, aggregate: str | None = None) -> str:
    """A wildcard over control-plane events, optionally for one org and aggregate kind."""
    org_tok = encode_token(org) if org else "*"
    if aggregate:
        return f"{EVENTS_PREFIX}.{org_tok}.{aggregate}.>"
    return f"{EVENTS_PREFIX}.{org_tok}.>"


def dispatch_filters(org: str) -> list[str]:
    """Subjects of the events that make a job pending: what agents are handed."""
    org_tok = encode_token(org)
    return [
        f"{EVENTS_PREFIX}.{org_tok}.job.*.{kind}"
        for kind in ("JobSubmitted", "JobReset", "JobRequeued")
    ] + [f"{EVENTS_PREFIX}.{org_tok}.job.*.JobRequeued.*"]  # a worker's release, bound


def aggregate_of(subject: str) -> str:
    """The aggregate filter an event subject belongs to (for expected-sequence checks)."""
    return ".".join(subject.split(".")[:5]) + ".>"


def metric_subject(org: str, run_id: str) -> str:
    return f"{METRICS_PREFIX}.{encode_token(org)}.{encode_token(run_id)}"


def log_subject(org: str, run_id: str) -> str:
    return f"{LOGS_PREFIX}.{encode_token(org)}.{encode_token(run_id)}"


def heartbeat_subject(org: str, worker_id: str) -> str:
    return f"{HEARTBEATS_PREFIX}.{encode_token(org)}.{encode_token(worker_id)}"


def query_subject(org: str, query: str) -> str:
    """Where the read service answers one query of an org: `ow.q.<org>.<query>`."""
    return f"{QUERY_PREFIX}.{encode_token(org)}.{query}"


def query_filter(org: str) -> str:
    """Every query subject of an org (what its tokens may publish to)."""
    return f"{QUERY_PREFIX}.{encode_token(org)}.>"


def claim_key(org: str, job_id: str) -> str:
    """KV key in `ow_claims` for the current claim on a job."""
    return f"{encode_token(org)}.{encode_token(job_id)}"


def lease_key(kind: str, org: str, *parts: str) -> str:
    """KV key in `ow_leases`: `scheduler.<org>`, `provision.<org>.<job>`, `submit.<org>.<job>`."""
    return ".".join([kind, encode_token(org), *(encode_token(p) for p in parts)])


def object_meta_subject(name: str, bucket: str = FILES_BUCKET) -> str:
    """The subject of an object's metadata in a NATS object store (ADR-20: base64url name)."""
    return f"$O.{bucket}.M.{base64.urlsafe_b64encode(name.encode()).decode()}"


def object_chunks_subject(nuid: str, bucket: str = FILES_BUCKET) -> str:
    """The subject of an object's chunks in a NATS object store (named by its nuid)."""
    return f"$O.{bucket}.C.{nuid}"


def file_key(org: str, file_id: str) -> str:
    """Object name (NATS object store) or S3 key of a file's bytes."""
    return f"{encode_token(org)}/{encode_token(file_id)}"


def dispatch_consumer(org: str) -> str:
    """Durable name of the shared pull consumer that hands pending jobs to agents."""
    return f"ow_dispatch_{encode_token(org)}"


def subject_of(event: object) -> str:
    """The subject an event is stored under (events without one raise ValueError)."""
    from ow.core import events as ev

    org = getattr(event, "org", "")
    kind = type(event).__name__
    match event:
        case ev.FileUploaded(file_id=fid):
            return aggregate_subject(org, "file", fid)[:-1] + kind
        case ev.MetricLogged(run_id=rid):
            return metric_subject(org, rid)
        case ev.WorkerPinged(worker_id=wid):
            return heartbeat_subject(org, wid)
        case (
            ev.WorkerProvisioned(worker_id=wid)
            | ev.WorkerRegistered(worker_id=wid)
            | ev.WorkerDraining(worker_id=wid)
            | ev.WorkerTerminated(worker_id=wid)
        ):
            return worker_subject(org, wid)[:-1] + kind
        case ev.SchedulerNoticed(subject_id=sid):
            return aggregate_subject(org, "scheduler", sid)[:-1] + kind
        case ev.ServiceRestarted(name=name):
            return aggregate_subject(org, "service", name)[:-1] + kind
        case ev.OrgCreated(name=name):
            return aggregate_subject(org, "org", name)[:-1] + kind
        case ev.TokenCreated(token_id=tid) | ev.TokenRevoked(token_id=tid):
            return aggregate_subject(org, "token", tid)[:-1] + kind
        case ev.SecretSet(name=name):
            return aggregate_subject(org, "secret", name)[:-1] + kind
    job = getattr(event, "job_id", None)
    if job:
        sender = getattr(event, "sender", "") if kind in BOUND_EVENTS else ""
        return job_subject(org, job)[:-1] + kind + (f".{sender}" if sender else "")
    raise ValueError(f"no subject for event {type(event).__name__}")
