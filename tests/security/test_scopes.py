"""Every scope against the JetStream API verbs that matter and every ow subject family,
tried with raw nats-py on a real server with two orgs (finding 3 of issue 15: a read token
paused the dispatch consumer, a worker token deleted it, read/submit tokens pulled the
secrets' ciphertext through a durable consumer of their own)."""

from __future__ import annotations

import base64
import time
import typing

import pytest

from ow.core import credentials as cr
from ow.core import events as ev
from ow.core import secrets as sec
from ow.core import subjects
from ow.core import tenancy as tn
from ow.core.config import from_env

from .conftest import SCOPES, Probe

pytestmark = pytest.mark.anyio

R, S, W, J, A = "read", "submit", "worker", "job", "admin"
RUN = "run"  # a per-run credential (job x1, run run1, worker x1): the job scope's, narrower
ALL = {R, S, W, J, A}
D = f"OW_EVENTS.{subjects.dispatch_consumer('orga')}"
K = "KV_ow_secrets"
API = "$JS.API"
NO_WAIT = b'{"batch": 1, "no_wait": true}'

#: (subject, payload, the scopes that may send it)
VERBS: list[tuple[str, bytes, set[str]]] = [
    (f"{API}.INFO", b"", ALL),
    (f"{API}.STREAM.INFO.OW_EVENTS", b"", ALL),
    (f"{API}.STREAM.CREATE.OW_EVENTS", b"", ALL),  # provision() on connect: a no-op
    (f"{API}.STREAM.CREATE.MINE", b"", {A}),
    (f"{API}.STREAM.UPDATE.OW_EVENTS", b"", {A}),
    (f"{API}.STREAM.DELETE.OW_EVENTS", b"", {A}),
    (f"{API}.STREAM.PURGE.OW_EVENTS", b"", {A}),
    (f"{API}.STREAM.PURGE.OBJ_ow_files", b"", {A}),
    (f"{API}.STREAM.MSG.DELETE.OW_EVENTS", b"", {A}),
    (f"{API}.STREAM.MSG.GET.OW_EVENTS", b"", ALL),
    (f"{API}.DIRECT.GET.OW_EVENTS", b"", ALL),
    # ordered consumers and the bulk reader: ephemeral, unnamed
    (f"{API}.CONSUMER.CREATE.OW_EVENTS", b"", ALL),
    (f"{API}.CONSUMER.CREATE.OW_EVENTS.spy", b"", {A}),
    (f"{API}.CONSUMER.CREATE.OW_EVENTS.spy.ow.ev.>", b"", {A}),
    (f"{API}.CONSUMER.DURABLE.CREATE.OW_EVENTS.spy", b"", {A}),
    # the dispatch consumer is the agents': they create it and pull from it, nothing else
    (f"{API}.CONSUMER.INFO.{D}", b"", ALL),
    (f"{API}.CONSUMER.DURABLE.CREATE.{D}", b"", {W, A}),
    (f"{API}.CONSUMER.CREATE.{D}", b"", {W, A}),
    (f"{API}.CONSUMER.MSG.NEXT.{D}", NO_WAIT, {W, A}),
    (f"{API}.CONSUMER.PAUSE.{D}", b"", {A}),
    (f"{API}.CONSUMER.DELETE.{D}", b"", {A}),
    (f"{API}.CONSUMER.DELETE.OW_EVENTS.other", b"", {R, S, W, J, A}),  # the bulk reader's own
    (f"{API}.CONSUMER.PAUSE.OW_EVENTS.other", b"", {A}),
    (f"{API}.CONSUMER.LIST.OW_EVENTS", b"", {A}),
    # the secrets' ciphertext: the workers' (they start jobs with them) and the admins'
    (f"{API}.STREAM.INFO.{K}", b"", ALL),
    (f"{API}.DIRECT.GET.{K}", b"", {W, A}),
    (f"{API}.DIRECT.GET.{K}.$KV.{K[3:]}.orga.X", b"", {W, A}),
    (f"{API}.STREAM.MSG.GET.{K}", b"", {W, A}),
    (f"{API}.CONSUMER.CREATE.{K}", b"", {W, A}),
    (f"{API}.CONSUMER.CREATE.{K}.spy", b"", {A}),
    (f"{API}.CONSUMER.DURABLE.CREATE.{K}.spy", b"", {A}),
    (f"{API}.CONSUMER.MSG.NEXT.{K}.spy", NO_WAIT, {A}),
    # claims are KV: a job reads and writes no KV at all
    (f"{API}.DIRECT.GET.KV_ow_claims", b"", {R, S, W, A}),
    (f"{API}.CONSUMER.CREATE.KV_ow_claims", b"", {R, S, W, A}),
    ("$KV.ow_claims.orga.j1", b"x", {W, A}),
    ("$KV.ow_leases.orga.j1", b"x", {A}),
    (f"$KV.{K[3:]}.orga.X", b"x", {A}),
    ("$O.ow_files.C.abc", b"x", {S, W, J, A}),
    ("ow.log.orga.run1", b"x", {W, J, A}),
    ("ow.log.orgb.run1", b"x", {A}),  # another org's name, in this account: nobody but admin
    ("ow.mx.orgb.run1", b"x", {A}),
    ("ow.ev.orgb.job.j1.RunFinished", b"{}", {A}),
]
#: what the job scope may do and a run's credential may not: a stream's info (its
#: subjects_filter lists every subject), payload-addressed gets and consumers (they cannot be
#: restricted to its own job's subjects), other consumers' info (test_run_reads.py has the rest)
NOT_RUN = tuple(f"{API}.{v}" for v in (
    "STREAM.INFO.", "STREAM.CREATE.", "STREAM.MSG.GET.", "DIRECT.GET.OW_EVENTS",
    "CONSUMER.CREATE.OW_EVENTS", f"CONSUMER.INFO.{D}", "DIRECT.GET.KV_", "CONSUMER.CREATE.KV_"))


def _event_subjects() -> list[tuple[str, set[str]]]:
    """One subject of each event type, with the scopes PUBLISHED_BY gives it (+ admin), and
    a run's credential (for run1 of job x1, worker x1: `RUN`) where the job scope may and
    the event is not bound (a bound one it may publish only under its worker's identity)."""
    rows = []
    for kind, scopes in ev.PUBLISHED_BY.items():
        if kind in ("MetricLogged", "MetricBatch"):
            subject = subjects.metric_subject("orga", "run1")
        elif kind == "WorkerPinged":
            subject = subjects.heartbeat_subject("orga", "w1")
        else:
            subject = subjects.subject_of(_sample(kind))
        run = {RUN} if J in scopes and kind not in subjects.BOUND_EVENTS else set()
        rows.append((subject, {*scopes, A, *run}))
        if kind in subjects.BOUND_EVENTS and scopes:  # the same, under identity x1
            bound = {A, RUN} if J in scopes else {A}
            rows.append((subjects.subject_of(_sample(kind, sender="x1")), bound))
    return rows


def _sample(kind: str, sender: str = "") -> ev.Event:
    cls = getattr(ev, kind)
    fields = {f: "x1" for f in cls.__struct_fields__
              if f in ("job_id", "run_id", "file_id", "worker_id", "subject_id", "name",
                       "token_id")}
    fields |= {k: v for k, v in {"gen": 1, "step": 1, "status": "completed", "purpose": "p",
                                 "provider": "p", "rule": "r", "hash": "h",
                                 "until": ev.now(), "records": []}.items()
               if k in cls.__struct_fields__}
    return cls(org="orga", sender=sender, **fields)


def test_published_by_names_every_event_type():
    union = {t.__name__ for t in typing.get_args(ev.AnyEvent)} | {"MetricBatch"}
    assert set(ev.PUBLISHED_BY) == union
    assert all(s <= {"submit", "worker", "job"} for s in ev.PUBLISHED_BY.values())


async def test_every_scope_against_the_jetstream_api(tenants):
    t = tenants
    a = await t.admin("orga")
    await a.dispatch_subscription("orga")  # the agents' consumer exists, with a job on it
    await a.publish(ev.JobSubmitted(job_id="j-dispatch", requires_vram_gb=0, image="x"))
    config = from_env({}, url=t.url, org="orga", home=str(t.home))
    await sec.set_secret(a, sec.ensure_key(config), "MYSECRET", "value")
    wrong: list[tuple[str, str, bool]] = []
    env = tn.worker_env(tn.load(t.home), "orga", "x1")
    run = cr.run_credential(base64.urlsafe_b64decode(env["OW_WORKER_KEY"]), env["OW_TOKEN"],
                            "x1", "run1", int(time.time()) + 600)
    for scope in (*SCOPES, RUN):
        token = run if scope == RUN else t.tokens[("orga", scope)]
        if not token:
            wrong.append((scope, "(no such credential)", False))
            continue
        p = await Probe.open(t.url, token)
        for subject, payload, allowed in VERBS:
            if J in allowed and not subject.startswith(NOT_RUN):
                allowed = allowed | {RUN}
            if scope == A and (".DELETE." in subject or ".PAUSE." in subject):
                continue  # the admin may; doing it would end the test
            if (got := await p.allowed(subject, payload)) != (scope in allowed):
                wrong.append((scope, subject, got))
        for subject, allowed in _event_subjects():
            if (got := await p.allowed(subject, b"{}")) != (scope in allowed):
                wrong.append((scope, subject, got))
        await p.close()
    assert not wrong, "\n".join(f"{s:7} {'ALLOWED' if g else 'denied'}: {subj}"
                                for s, subj, g in wrong)
    info = await a.js.consumer_info("OW_EVENTS", subjects.dispatch_consumer("orga"))
    assert info.config.pause_until is None
    await a.close()


async def test_the_job_credential_is_its_orgs_and_nothing_more(tenants):
    t = tenants
    state = tn.load(t.home)
    token = tn.job_token(state, "orga")
    record = state.tokens[tn.parse_token(token)[0]]
    assert (record.org, record.scope) == ("orga", "job")
    assert token not in (tn.worker_token(state, "orga"), tn.control_token(state, "orga"))
    assert tn.job_token(state, "orgb") != token
