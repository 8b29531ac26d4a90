"""What each token scope may do on the NATS server: its publish/subscribe permissions.

Allow-lists only. What a scope may send to the JetStream API is spelled out verb by verb
(`tests/security/test_scopes.py` tries every verb that matters against every scope on a real
server); the events it may publish come from `events.PUBLISHED_BY`. Rendered into the
accounts file by `ow.core.tenancy`.

Imports: stdlib and `ow.core` (events, ids, subjects).
"""

from __future__ import annotations

from typing import Any

from ow.core import events as ev
from ow.core import subjects
from ow.core.ids import encode_token

__all__ = ["SECRETS_BUCKET", "event_subjects", "inbox_prefix", "permissions", "run_permissions"]

SECRETS_BUCKET = "ow_secrets"

#: the streams `Bus.provision` creates (KV buckets and the object store are streams too)
_OW_STREAMS = (subjects.EVENTS_STREAM, subjects.METRICS_STREAM, subjects.LOGS_STREAM,
               subjects.HEARTBEATS_STREAM, f"KV_{subjects.CLAIMS_BUCKET}",
               f"KV_{subjects.LEASES_BUCKET}", f"OBJ_{subjects.FILES_BUCKET}")
_KV_STREAMS = (f"KV_{subjects.CLAIMS_BUCKET}", f"KV_{subjects.LEASES_BUCKET}")
_API = "$JS.API"
#: event types outside `ow.ev` (their own streams)
_OWN_FAMILY = {"MetricLogged": "mx", "MetricBatch": "mx", "WorkerPinged": "hb"}
#: the aggregate of each event type not under `job` (see `subjects.subject_of`)
_AGGREGATE = {"FileUploaded": "file", "WorkerProvisioned": "worker",
              "WorkerRegistered": "worker", "WorkerDraining": "worker",
              "WorkerTerminated": "worker", "SchedulerNoticed": "scheduler",
              "OrgCreated": "org", "TokenCreated": "token", "TokenRevoked": "token",
              "SecretSet": "secret"}


def _reads(streams: tuple[str, ...]) -> list[str]:
    """The JetStream API a reader of `streams` needs, exactly: stream info and (idempotent)
    creation for `provision()`, message gets, and ephemeral unnamed consumers (ordered
    consumers, the bulk reader under `Bus.read`; the server refuses a durable name on that
    subject), their info and their deletion. Never a named or durable consumer, a pull, a
    pause, a list."""
    allow = []
    for s in streams:
        allow += [f"{_API}.STREAM.INFO.{s}", f"{_API}.STREAM.CREATE.{s}",
                  f"{_API}.STREAM.MSG.GET.{s}", f"{_API}.DIRECT.GET.{s}",
                  f"{_API}.DIRECT.GET.{s}.>", f"{_API}.CONSUMER.CREATE.{s}",
                  f"{_API}.CONSUMER.INFO.{s}.*", f"{_API}.CONSUMER.DELETE.{s}.*"]
    return allow


def _file_reads(chunks: str = "*") -> list[str]:
    """How `blobs.NatsObjectStore` reads a file's chunks: a named consumer whose filter
    (`chunks`: the chunk subject's nuid) is in its API subject, pulled one at a time."""
    obj = f"OBJ_{subjects.FILES_BUCKET}"
    return [f"{_API}.CONSUMER.CREATE.{obj}.*.{subjects.object_chunks_subject(chunks)}",
            f"{_API}.CONSUMER.MSG.NEXT.{obj}.*"]


def event_subjects(scope: str, org: str, sender: str = "") -> list[str]:
    """The subjects of the events `scope` may publish in `org` (from `events.PUBLISHED_BY`).

    With `sender` (a worker credential's identity), bound events only under it
    (`….<EventType>.<sender>`, `subjects.BOUND_EVENTS`), and worker events and heartbeats
    only of that worker."""
    o = encode_token(org)
    out = []
    for kind, scopes in ev.PUBLISHED_BY.items():
        if scope not in scopes:
            continue
        aggregate = _AGGREGATE.get(kind, "job")
        if sender and kind == "WorkerPinged":
            subject = f"ow.hb.{o}.{sender}"
        elif family := _OWN_FAMILY.get(kind):
            subject = f"ow.{family}.{o}.>"
        elif sender and aggregate == "worker":
            subject = f"ow.ev.{o}.worker.{sender}.{kind}"
        else:
            subject = f"ow.ev.{o}.{aggregate}.*.{kind}"
            if sender and kind in subjects.BOUND_EVENTS:
                subject += f".{sender}"
        if subject not in out:
            out.append(subject)
    return out


def permissions(scope: str, org: str, token_id: str, sender: str = "") -> dict[str, Any]:
    """The NATS permissions of token `token_id` of `scope` in `org`'s account (`sender`: the
    identity of a worker credential, see `event_subjects`).

    Allow-lists only: what each scope may send to the JetStream API is spelled out verb by
    verb (tests/security/test_scopes.py tries every verb that matters against every scope),
    and the events it may publish come from `events.PUBLISHED_BY`.
    """
    o = encode_token(org)
    if scope == "admin":
        return {"publish": {"allow": [">"]}, "subscribe": {"allow": [">"]}}
    streams = _OW_STREAMS if scope != "job" else tuple(
        s for s in _OW_STREAMS if s not in _KV_STREAMS)  # a job reads and writes no KV
    allow = [f"{_API}.INFO", f"{_API}.STREAM.NAMES", f"{_API}.STREAM.LIST",
             *(f"{_API}.STREAM.{op}.{s}" for s in _KV_STREAMS for op in ("INFO", "CREATE")),
             f"{_API}.STREAM.INFO.KV_{SECRETS_BUCKET}", *_reads(streams), "$JS.FC.>",
             f"{inbox_prefix(token_id)}.>", *event_subjects(scope, org, sender),
             *_file_reads()]
    if scope != "job":  # the read service's queries of the org (a job reads only its run)
        allow.append(subjects.query_filter(org))
    if scope in ("submit", "worker", "job"):
        allow += [f"$O.{subjects.FILES_BUCKET}.>"]
    if scope in ("worker", "job"):
        allow += [f"ow.log.{o}.>"]
    if scope == "worker":  # claims, the dispatch consumer, the secrets' ciphertext
        d = f"{subjects.EVENTS_STREAM}.{subjects.dispatch_consumer(org)}"
        allow += [f"$KV.{subjects.CLAIMS_BUCKET}.{o}.>",
                  f"{_API}.CONSUMER.DURABLE.CREATE.{d}", f"{_API}.CONSUMER.CREATE.{d}",
                  f"{_API}.CONSUMER.CREATE.{d}.>", f"{_API}.CONSUMER.INFO.{d}",
                  f"{_API}.CONSUMER.MSG.NEXT.{d}", f"$JS.ACK.{d}.>",
                  *_reads((f"KV_{SECRETS_BUCKET}",))]
    # subscribe: the org's subjects and this token's own inboxes (`inbox_prefix`), so
    # replies to other clients (KV reads, consumer deliveries) stay theirs
    perms: dict[str, Any] = {"publish": {"allow": allow},
                             "subscribe": {"allow": ["ow.>", f"{inbox_prefix(token_id)}.>"]}}
    # the dispatch consumer is the agents': nobody else pulls its jobs or redefines it, and
    # no scope but admin pauses or deletes it (`CONSUMER.DELETE.<stream>.*` above)
    d = f"{subjects.EVENTS_STREAM}.{subjects.dispatch_consumer(org)}"
    perms["publish"]["deny"] = [f"{_API}.CONSUMER.DELETE.{d}"]
    return perms


def run_permissions(org: str, job_id: str, run_id: str, sender: str,
                    files: dict[str, str] | None = None) -> dict[str, Any]:
    """What a per-run credential may do: publish its own run's metrics and logs, its job's
    artifacts and checkpoints under its worker's identity `sender`, files (FileUploaded and
    object store writes); read only its own job's events and the files in `files` (file id
    -> object nuid, `credentials.job_files`); subscribe to its own inboxes and its own run's
    subjects. Never a result, a claim, KV, a query, a stream's info, another run's subjects.

    Reads go only through API subjects that carry what is read: direct gets of the last
    message of a subject (`DIRECT.GET.<stream>.<subject>`), consumers whose filter is in the
    API subject (`CONSUMER.CREATE.<stream>.<name>.<filter>`). A file's chunks are allowed by
    its nuid exactly: a wildcard there would let a literal `*` filter read every chunk.
    Object store writes cannot be narrowed (a file's object name is the hash of bytes not
    yet written, its chunks' nuid is the writer's choice): bytes are checked against their
    FileUploaded's SHA-256 at every read instead (`ow.core.files.fetch_file`)."""
    o, j, r = encode_token(org), encode_token(job_id), encode_token(run_id)
    ev_s, obj_s = subjects.EVENTS_STREAM, f"OBJ_{subjects.FILES_BUCKET}"
    job = f"ow.ev.{o}.job.{j}"
    reads = [f"{_API}.DIRECT.GET.{ev_s}.{job}.>", f"{_API}.CONSUMER.CREATE.{ev_s}.*.{job}.>"]
    for file_id, nuid in sorted((files or {}).items()):
        f = encode_token(file_id)
        meta = subjects.object_meta_subject(subjects.file_key(org, file_id))
        reads += [f"{_API}.DIRECT.GET.{ev_s}.ow.ev.{o}.file.{f}.>",
                  f"{_API}.DIRECT.GET.{obj_s}.{meta}"]
        if nuid:
            reads.append(_file_reads(nuid)[0])
    for s in (ev_s, obj_s):  # its own consumers' info and deletion (names are nuids)
        reads += [f"{_API}.CONSUMER.INFO.{s}.*", f"{_API}.CONSUMER.DELETE.{s}.*"]
    reads.append(_file_reads()[1])  # chunks, one pull at a time
    own = [f"ow.mx.{o}.{r}", f"ow.log.{o}.{r}", f"ow.ev.{o}.file.*.FileUploaded",
           f"{job}.ArtifactUploaded.{sender}", f"{job}.CheckpointSaved.{sender}",
           f"$O.{subjects.FILES_BUCKET}.>"]
    inbox = f"{inbox_prefix(r)}.>"
    d = f"{ev_s}.{subjects.dispatch_consumer(org)}"  # the agents': never a job's
    return {"publish": {"allow": [f"{_API}.INFO", *reads, "$JS.FC.>", inbox, *own],
                        "deny": [f"{_API}.CONSUMER.*.{d}", f"{_API}.CONSUMER.*.{d}.>"]},
            "subscribe": {"allow": [inbox, f"ow.mx.{o}.{r}", f"ow.log.{o}.{r}"]}}


def inbox_prefix(token_id: str) -> str:
    """The reply-subject prefix of a token's connections: a non-admin token may subscribe
    to its own inboxes only, so it never sees replies meant for another client."""
    return f"_INBOX_{token_id}"
