"""The pure scheduler rules: one table row per rule, plus properties over random clusters."""

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ow.scheduler.hardware import GPU_TABLE
from ow.scheduler.plan import (
    ClaimView,
    DropClaim,
    JobView,
    Limits,
    Notice,
    Provision,
    Requeue,
    Terminate,
    View,
    WorkerView,
    plan,
    reconcile,
)

NOW = datetime(2025, 1, 1, 12, tzinfo=UTC)
L = Limits()


def ago(s: float) -> datetime:
    return NOW - timedelta(seconds=s)


def job(jid="j1", vram=24.0, allowed=(), image="img", at=600):
    return JobView(job_id=jid, requires_vram_gb=vram, allowed_hardware=allowed, image=image,
                   submitted_at=ago(at))


def worker(wid="w1", status="active", ping=1, run="", idle=10, pod="pod-1", prov=600,
           hw="1x A6000", vram=48.0, image="img", job_ids=()):
    return WorkerView(
        worker_id=wid, status=status, hardware=hw, vram_gb=vram, image=image, pod_id=pod,
        provider="runpod", provisioned_at=ago(prov) if prov is not None else None,
        last_ping=ago(ping) if ping is not None else None, run_id=run,
        job_id="jr" if run else "", idle_since=None if run else ago(idle), job_ids=job_ids,
    )


def view(pending=(), workers=(), **kw):
    return View(pending=tuple(pending), workers=tuple(workers), offers=GPU_TABLE, **kw)


def kinds(actions):
    return [type(a).__name__ for a in actions]


@pytest.mark.parametrize(
    ("v", "want"),
    [
        # a pending job nobody can serve: one worker of the cheapest fitting hardware
        (view([job()]), ["Provision"]),
        # an idle worker that can serve it: nothing to do
        (view([job()], [worker()]), []),
        # a starting worker provisioned for it: nothing to do
        (view([job()], [worker(status="starting", ping=None, job_ids=("j1",))]), []),
        # a reservation covers it
        (view([job()], reservations={"j1": "w9"}), []),
        # busy worker: provision another
        (view([job()], [worker(run="r1")]), ["Provision"]),
        # wrong image on the idle worker
        (view([job(image="other")], [worker()]), ["Provision"]),
        # no hardware fits: a notice, no provision
        (view([job(vram=5000)]), ["Notice"]),
        # the same notice was already given: silence
        (view([job(vram=5000)], notices={"j1": (
            "no_hardware", "no hardware offers 5000 GB VRAM / allowed any")}), []),
        # cooldown
        (view([job()], cooldown_until=NOW + timedelta(seconds=5)), ["Notice"]),
        (view([job()], cooldown_until=NOW - timedelta(seconds=5)), ["Provision"]),
        # lost worker with a run: requeue, then terminate
        (view([], [worker(ping=121, run="r1")]), ["Requeue", "Terminate"]),
        # idle too long
        (view([], [worker(idle=301)]), ["Terminate"]),
        (view([], [worker(idle=299)]), []),
        # idle too long but a pending job needs it: keep it
        (view([job()], [worker(idle=301)]), []),
        # idle but not ours (no pod): never terminated for idleness
        (view([], [worker(idle=10_000, pod="")]), []),
        # pod TTL
        (view([], [worker(prov=24 * 3600 + 1, run="r1")]), ["Requeue", "Terminate"]),
        # never registered
        (view([], [worker(status="starting", ping=None, prov=901)]), ["Terminate"]),
        # a worker that left holding a run and a pod
        (view([], [worker(status="terminated", run="r1")]), ["Requeue", "Terminate"]),
        (view([], [WorkerView(worker_id="w", status="terminated", pod_id="p",
                              pod_released=True)]), []),
    ],
)
def test_rules(v, want):
    assert kinds(plan(v, NOW, L)) == want


def test_provision_picks_the_cheapest_fit_with_evidence():
    (p,) = plan(view([job(vram=100, allowed=("1x H200", "2x A100"))]), NOW, L)
    assert isinstance(p, Provision)
    assert p.hardware.name == "2x A100"
    assert p.job_ids == ("j1",)
    assert p.image == "img"
    assert p.evidence["rule"] == "cheapest_fit"


def test_lost_worker_evidence():
    req, term = plan(view([], [worker(ping=130, run="r1")]), NOW, L)
    assert isinstance(req, Requeue)
    assert isinstance(term, Terminate)
    assert req.run_id == "r1"
    assert term.pod_id == "pod-1"
    assert req.evidence["rule"] == "lost_after_s"
    assert req.evidence["last_ping_age_s"] == 130
    assert req.evidence["last_ping_at"] == ago(130).isoformat()


def test_no_hardware_notice_names_the_numbers():
    (n,) = plan(view([job(vram=200, allowed=("1x H200",))]), NOW, L)
    assert isinstance(n, Notice)
    assert n.message == "no hardware offers 200 GB VRAM / allowed 1x H200"


def test_max_workers_caps_provisioning():
    jobs = [job(f"j{i}") for i in range(12)]
    busy = [worker(f"w{i}", run=f"r{i}") for i in range(3)]
    out = plan(view(jobs, busy, reservations={"jx": "w-new"}), NOW, Limits(max_workers=8))
    assert kinds(out).count("Provision") == 4  # 3 busy + 1 in flight + 4 = 8
    assert kinds(out).count("Notice") == 8


@pytest.mark.parametrize(
    ("claim", "started", "want"),
    [
        (dict(first_seen=ago(31)), {}, [DropClaim]),
        (dict(first_seen=ago(5)), {}, []),
        (dict(first_seen=ago(31), done=True), {}, []),
        (dict(first_seen=ago(31), worker_id="gone"), {"r1": "j1"}, [Requeue]),
        (dict(first_seen=ago(31)), {"r1": "j1"}, []),
    ],
)
def test_reconcile(claim, started, want):
    c = ClaimView(**{"job_id": "j1", "run_id": "r1", "worker_id": "w1", "gen": 0, "rev": 3,
                     **claim})
    v = view([], [worker(), WorkerView(worker_id="gone", status="terminated")])
    assert [type(a) for a in reconcile([c], v, started, NOW, L)] == want


# --- properties ----------------------------------------------------------------------

jobs_st = st.lists(
    st.builds(
        job, jid=st.sampled_from([f"j{i}" for i in range(10)]),
        vram=st.sampled_from([0, 24, 80, 200, 5000]),
        allowed=st.sampled_from([(), ("1x H200",), ("2x A100", "1x A6000")]),
        image=st.sampled_from(["img", "other"]), at=st.integers(0, 1000),
    ),
    max_size=10, unique_by=lambda j: j.job_id,
)
workers_st = st.lists(
    st.builds(
        worker, wid=st.sampled_from([f"w{i}" for i in range(12)]),
        status=st.sampled_from(["starting", "active", "draining", "terminated"]),
        ping=st.one_of(st.none(), st.integers(0, 400)),
        run=st.sampled_from(["", "", "r1", "r2"]), idle=st.integers(0, 1000),
        pod=st.sampled_from(["", "p1", "p2"]), prov=st.one_of(st.none(), st.integers(0, 10**5)),
        hw=st.sampled_from(["1x A6000", "1x H200", "cpu"]), vram=st.sampled_from([0, 48, 141]),
        image=st.sampled_from(["img", "*"]),
    ),
    max_size=12, unique_by=lambda w: w.worker_id,
)
limits_st = st.builds(Limits, max_workers=st.integers(0, 8))


@settings(max_examples=200, deadline=None)
@given(jobs_st, workers_st, st.dictionaries(st.sampled_from(["j1", "j2"]),
                                            st.sampled_from(["w1", "wx"])), limits_st)
def test_properties(pending, workers, reservations, limits):
    v = view(pending, workers, reservations=reservations)
    out = plan(v, NOW, limits)
    # deterministic
    assert out == plan(v, NOW, limits)
    # never more than max_workers: live workers not terminated + in flight + provisions
    terminated = {a.worker_id for a in out if isinstance(a, Terminate)}
    live = [w for w in workers if w.status != "terminated" and w.worker_id not in terminated]
    in_flight = {r for r in reservations.values() if r not in {w.worker_id for w in workers}}
    provisions = [a for a in out if isinstance(a, Provision)]
    if provisions:
        assert len(live) + len(in_flight) + len(provisions) <= limits.max_workers
    # never two provisions for one job, never for a reserved job
    provisioned = [j for p in provisions for j in p.job_ids]
    assert len(provisioned) == len(set(provisioned))
    assert not set(provisioned) & set(reservations)
    # never terminate a busy, healthy worker
    for w in workers:
        healthy = (
            w.status in ("active", "draining") and w.last_ping is not None
            and (NOW - w.last_ping).total_seconds() <= limits.lost_after_s
            and (w.provisioned_at is None
                 or (NOW - w.provisioned_at).total_seconds() <= limits.pod_ttl_s)
        )
        if healthy and w.run_id:
            assert w.worker_id not in terminated
    # every action carries its rule
    assert all(a.evidence.get("rule") for a in out)
