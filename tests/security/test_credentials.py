"""Per-worker and per-run credentials through the auth callout (issue 15, item 2): what a
run's credential may publish, that a worker's results count only under its own identity as
the server bound it, and that a credential nobody signed, or an expired one, is refused."""

from __future__ import annotations

import base64
import time

import msgspec
import pytest

from ow.core import bus as bus_mod
from ow.core import credentials as cr
from ow.core import events as ev
from ow.core import subjects
from ow.core import tenancy as tn
from ow.core.config import from_env
from ow.core.errors import TokenError
from ow.core.state import check, fold_all
from ow.projections.audit import audit

from .conftest import Probe, attack_a_running_job, eventually

pytestmark = pytest.mark.anyio


def worker(t, org: str, worker_id: str) -> tuple[str, bytes]:
    env = tn.worker_env(tn.load(t.home), org, worker_id)
    return env["OW_TOKEN"], base64.urlsafe_b64decode(env["OW_WORKER_KEY"])


def run_cred(t, worker_id: str, job_id: str, run_id: str, expires: int = 0) -> str:
    token, key = worker(t, "orga", worker_id)
    return cr.run_credential(key, token, job_id, run_id, expires or int(time.time()) + 600)


async def wrong(t, admin, token: str, allowed: list[str], refused: list[str]):
    """(allowed subjects the server refused to `token`, refused ones it let through)."""
    p = await Probe.open(t.url, token)
    got = {s: await p.allowed(s, b"{}") for s in allowed + refused}
    await p.close()
    await admin.close()
    return [s for s in allowed if not got[s]], [s for s in refused if got[s]]


async def test_a_run_credential_publishes_its_own_run_only(tenants):
    t = tenants
    a = await t.admin("orga")
    own = [subjects.metric_subject("orga", "run-1"), subjects.log_subject("orga", "run-1"),
           "ow.ev.orga.job.job-1.ArtifactUploaded.w1", "ow.ev.orga.job.job-1.CheckpointSaved.w1",
           "ow.ev.orga.file.f1.FileUploaded", "$O.ow_files.C.abc"]
    others = [subjects.metric_subject("orga", "run-2"), subjects.log_subject("orga", "run-2"),
              "ow.ev.orga.job.job-2.ArtifactUploaded.w1",  # another job
              "ow.ev.orga.job.job-1.ArtifactUploaded.w2",  # another worker's identity
              "ow.ev.orga.job.job-1.ArtifactUploaded",  # unbound
              "ow.ev.orga.job.job-1.RunFinished.w1", "ow.ev.orga.job.job-1.RunFinished",
              "ow.ev.orga.job.job-1.JobRequeued.w1", "ow.hb.orga.w1",
              "$KV.ow_claims.orga.job-1", f"$KV.{tn.SECRETS_BUCKET}.orga.X",
              "$JS.API.CONSUMER.DURABLE.CREATE.OW_EVENTS.spy",
              f"$JS.API.CONSUMER.MSG.NEXT.OW_EVENTS.{subjects.dispatch_consumer('orga')}",
              f"$JS.API.CONSUMER.CREATE.KV_{tn.SECRETS_BUCKET}",
              subjects.query_subject("orga", "jobs")]
    assert await wrong(t, a, run_cred(t, "w1", "job-1", "run-1"), own, others) == ([], [])


async def test_a_worker_credential_publishes_under_its_own_worker_id_only(tenants):
    t = tenants
    a = await t.admin("orga")
    token, _ = worker(t, "orga", "w1")
    allowed = ["ow.ev.orga.job.j1.RunFinished.w1", "ow.ev.orga.job.j1.RunStarted.w1",
               "ow.ev.orga.worker.w1.WorkerRegistered", "ow.hb.orga.w1",
               "ow.mx.orga.any-run", "ow.log.orga.any-run", "$KV.ow_claims.orga.j1"]
    refused = ["ow.ev.orga.job.j1.RunFinished.w2", "ow.ev.orga.job.j1.RunFinished",
               "ow.ev.orga.job.j1.JobRequeued", "ow.ev.orga.worker.w2.WorkerRegistered",
               "ow.hb.orga.w2", "ow.ev.orga.job.j1.JobSubmitted",
               "ow.ev.orgb.job.j1.RunFinished.w1"]
    assert await wrong(t, a, token, allowed, refused) == ([], [])


async def test_unsigned_expired_or_other_orgs_credentials_are_refused(tenants):
    t = tenants
    token, _ = worker(t, "orga", "w1")
    forged = cr.mint(b"k" * 32, cr.parse(token))  # the right claims, not the operator's key
    expired = run_cred(t, "w1", "job-1", "run-1", expires=int(time.time()) - 1)
    gone = cr.worker_credential(tn.cred_key(tn.load(t.home)), "nosuchorg", "w1")[0]
    for bad in (forged, expired, gone):
        with pytest.raises(TokenError):
            await bus_mod.connect(t.url, org="orga", token=bad, reconnect=False)
    b = await bus_mod.connect(t.url, org="orga", token=token, reconnect=False)  # the real one
    await b.close()


async def test_a_second_worker_cannot_finish_the_first_ones_run(tenants, tmp_path):
    t = tenants
    a = await t.admin("orga")
    job = ev.JobSubmitted(job_id="j-victim", image="x")
    await a.publish(job)
    w1 = await bus_mod.connect(t.url, org="orga", token=worker(t, "orga", "w1")[0])
    w2 = await Probe.open(t.url, worker(t, "orga", "w2")[0])
    await w1.publish(ev.RunStarted(run_id="r1", job_id=job.job_id, gen=0, worker_id="w1"))
    forged = msgspec.json.encode(ev.RunFinished(  # its payload says w1
        run_id="r1", job_id=job.job_id, status="completed", outputs={"result": "FORGED"},
        sender="w1", event_id="forged"))
    base = "ow.ev.orga.job.j-victim.RunFinished"
    assert not await w2.allowed(f"{base}.w1", forged)  # the server refuses w1's subject
    assert not await w2.allowed(base, forged)  # and an unbound one
    assert await w2.allowed(f"{base}.w2", forged)  # and takes it under w2's own identity
    await w1.publish(ev.RunFinished(run_id="r1", job_id=job.job_id, status="completed",
                                    outputs={"result": "real"}))

    async def history() -> list[ev.Event] | None:
        events = [d.event for d in (await a.history(subjects.job_subject("orga", job.job_id)))[0]]
        return events if len(events) == 4 else None

    events = await eventually(history, timeout=10)
    assert [e.sender for e in events] == ["", "w1", "w2", "w1"]
    assert check(fold_all(events[:2]), events[2]).rule.startswith(
        "RunFinished for run r1 from identity w2, but w1 holds its claim")
    state = fold_all(events)
    assert (state.status, state.outputs) == ("completed", {"result": "real"})
    report = await audit(a, tmp_path / "p.duckdb")  # `ow audit` names the forged result
    rejected = [(v.event_id, v.detail) for v in report.violations if v.rule == "rejected-event"]
    assert rejected == [
        ("forged", "OW_EVENTS: RunFinished for run r1 from identity w2, but w1 holds its claim")]
    await w2.close()
    for b in (w1, a):
        await b.close()


ATTACK = """
import asyncio, os, sys, nats, msgspec
from ow.core import tenancy as tn
victim_run, victim_job = sys.argv[1], sys.argv[2]
async def main():
    assert os.environ["OW_TOKEN"].startswith("owc_") and "OW_WORKER_KEY" not in os.environ
    nc = await nats.connect(os.environ["OW_URL"], allow_reconnect=False,
                            **tn.connect_options(os.environ["OW_TOKEN"], "orga"))
    js, me = nc.jetstream(), os.environ["OW_RUN_ID"]
    body = msgspec.json.encode({"type": "RunFinished", "run_id": victim_run,
        "job_id": victim_job, "status": "completed", "outputs": {"result": "FORGED"}})
    for name, subject in [("result", f"ow.ev.orga.job.{victim_job}.RunFinished"),
                          ("metric", f"ow.mx.orga.{victim_run}"), ("own", f"ow.mx.orga.{me}")]:
        try:
            await js.publish(subject, body, timeout=2)
            print(name, "accepted")
        except Exception as exc:
            print(name, "refused", type(exc).__name__)
    await nc.close()
asyncio.run(main())
"""


async def test_jobs_of_credentialed_agents_reach_only_their_own_run(tenants, tmp_path):
    t = tenants
    configs = [from_env({}, url=t.url, org="orga", home=str(t.home), heartbeat_s=1.0,
                        worker_id=w, **{k[3:].lower(): v for k, v in
                                        tn.worker_env(tn.load(t.home), "orga", w).items()})
               for w in ("w1", "w2")]
    log, still = await attack_a_running_job(t, configs, tmp_path, ATTACK)
    for line in ("result refused", "metric refused", "own accepted"):
        assert line in log, log
    assert (still.status, still.outputs) == ("in_progress", {})


async def test_ow_token_worker_prints_a_credential_for_a_hand_started_agent(tenants):
    import os
    import subprocess
    import sys
    from pathlib import Path

    t = tenants
    env = {k: v for k, v in os.environ.items() if not k.startswith("OW_")}
    out = subprocess.run(
        [str(Path(sys.executable).parent / "ow"), "token", "worker", "--org", "orga",
         "--worker-id", "w9"], env={**env, "OW_HOME": str(t.home)}, capture_output=True,
        text=True, check=True).stdout
    given = dict(line.split("=", 1) for line in out.split())
    cred = cr.verify(tn.cred_key(tn.load(t.home)), given["OW_TOKEN"], int(time.time()))
    assert (cred.kind, cred.org, cred.worker_id) == ("worker", "orga", "w9")
    b = await bus_mod.connect(t.url, org="orga", token=given["OW_TOKEN"], reconnect=False)
    assert b.sender == "w9"
    await b.close()
