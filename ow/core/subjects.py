"""Every name on the wire: streams, subjects, KV buckets, keys and object store names.

Imports: stdlib and `ow.core.ids` only.
"""

from __future__ import annotations

from ow.core.ids import encode_token

__all__ = [
    "CLAIMS_BUCKET",
    "EVENTS_STREAM",
    "FILES_BUCKET",
    "HEARTBEATS_STREAM",
    "LEASES_BUCKET",
    "LOGS_STREAM",
    "METRICS_STREAM",
    "aggregate_subject",
    "claim_key",
    "dispatch_consumer",
    "events_filter",
    "file_key",
    "heartbeat_subject",
    "job_subject",
    "lease_key",
    "log_subject",
    "metric_subject",
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

EVENTS_PREFIX = "ow.ev"
METRICS_PREFIX = "ow.mx"
LOGS_PREFIX = "ow.log"
HEARTBEATS_PREFIX = "ow.hb"


def aggregate_subject(org: str, aggregate: str, agg_id: str) -> str:
    """`ow.ev.<org>.<aggregate>.<id>`: the subject holding one aggregate's history."""
    return f"{EVENTS_PREFIX}.{encode_token(org)}.{aggregate}.{encode_token(agg_id)}"


def job_subject(org: str, job_id: str) -> str:
    """A job's subject; its runs' control events live here too (a run is part of its job)."""
    return aggregate_subject(org, "job", job_id)


def worker_subject(org: str, worker_id: str) -> str:
    return aggregate_subject(org, "worker", worker_id)


def events_filter(org: str | None = None, aggregate: str | None = None) -> str:
    """A wildcard over control-plane events, optionally for one org and aggregate kind."""
    org_tok = encode_token(org) if org else "*"
    if aggregate:
        return f"{EVENTS_PREFIX}.{org_tok}.{aggregate}.*"
    return f"{EVENTS_PREFIX}.{org_tok}.>"


def metric_subject(org: str, run_id: str) -> str:
    return f"{METRICS_PREFIX}.{encode_token(org)}.{encode_token(run_id)}"


def log_subject(org: str, run_id: str) -> str:
    return f"{LOGS_PREFIX}.{encode_token(org)}.{encode_token(run_id)}"


def heartbeat_subject(org: str, worker_id: str) -> str:
    return f"{HEARTBEATS_PREFIX}.{encode_token(org)}.{encode_token(worker_id)}"


def claim_key(org: str, job_id: str) -> str:
    """KV key in `ow_claims` for the current claim on a job."""
    return f"{encode_token(org)}.{encode_token(job_id)}"


def lease_key(kind: str, org: str, *parts: str) -> str:
    """KV key in `ow_leases`: `scheduler.<org>`, `provision.<org>.<job>`, `submit.<org>.<job>`."""
    return ".".join([kind, encode_token(org), *(encode_token(p) for p in parts)])


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
    match event:
        case ev.FileUploaded(file_id=fid):
            return aggregate_subject(org, "file", fid)
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
            return worker_subject(org, wid)
        case ev.SchedulerNoticed(subject_id=sid):
            return aggregate_subject(org, "scheduler", sid)
        case ev.OrgCreated(name=name):
            return aggregate_subject(org, "org", name)
        case ev.TokenCreated(token_id=tid) | ev.TokenRevoked(token_id=tid):
            return aggregate_subject(org, "token", tid)
        case ev.SecretSet(name=name):
            return aggregate_subject(org, "secret", name)
    job = getattr(event, "job_id", None)
    if job:
        return job_subject(org, job)
    raise ValueError(f"no subject for event {type(event).__name__}")
