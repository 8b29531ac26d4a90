"""The pure scheduler rules: one table row per rule, plus properties over random clusters."""

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ow.core import events as ev
from ow.scheduler.hardware import GPU_TABLE, requested_gpus
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
    cooldown_for,
    plan,
    reconcile,
)
from ow.scheduler.view import Cluster

NOW = datetime(2025, 1, 1, 12, tzinfo=UTC)
L = Limits()


def ago(s: float) -> datetime:
    return NOW - timedelta(seconds=s)


def job(jid="j1", vram=24.0, allowed=(), image="img", at=600, gpus=0):
    return JobView(job_id=jid, requires_vram_gb=vram, allowed_hardware=allowed, image=image,
                   submitted_at=ago(at), gpus=gpus)


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
        (view([job(vram=5000)], notices={"j1": ("no_hardware", (
            "needs 5000 GB VRAM, more than the largest single GPU (141 GB, 1x H200); the "
            "largest worker here has 0 GB — ask for several GPUs with allowed_hardware="
            '["8x H200"] or gpus=8, or lower requires_vram_gb'))}), []),
        # cooldown: provider-wide
        (view([job()], cooldowns={"*": NOW + timedelta(seconds=5)}), ["Notice"]),
        (view([job()], cooldowns={"*": NOW - timedelta(seconds=5)}), ["Provision"]),
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
    assert n.message == (
        "needs 200 GB VRAM on allowed_hardware 1x H200; none of those is offered with that "
        "much (the largest worker here has 0 GB) — widen allowed_hardware or lower "
        "requires_vram_gb")


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


# --- hardware choice (issue 17.5): one GPU unless the job asks for more ----------------


def provisioned(j, **kw):
    out = plan(view([j], **kw), NOW, L)
    return [a.hardware.name for a in out if isinstance(a, Provision)] or out


@pytest.mark.parametrize(
    ("j", "want"),
    [
        (job(vram=0), "cpu"),
        (job(vram=24), "1x A6000"),
        (job(vram=48), "1x A6000"),
        (job(vram=65), "1x A100"),  # was 2x A6000 (cheaper, but a machine unsloth cannot use)
        (job(vram=80), "1x A100"),
        (job(vram=90), "1x H100N"),
        (job(vram=100), "1x H200"),  # was 4x A6000
        (job(vram=141), "1x H200"),
        # multi-GPU only when asked: by allowed_hardware ...
        (job(vram=65, allowed=("2x A6000",)), "2x A6000"),
        (job(vram=100, allowed=("1x H200", "2x A100")), "2x A100"),
        (job(vram=24, allowed=("H200",)), "1x H200"),
        # ... or by a GPU count
        (job(vram=65, gpus=2), "2x A6000"),
        (job(vram=24, gpus=2), "2x A6000"),
        (job(vram=150, gpus=4), "4x A6000"),
        (job(vram=200, gpus=4), "8x A6000"),  # 4x A6000 has 192 GB; 8x A6000 beats 4x A100
        (job(vram=0, gpus=2), "2x A6000"),
    ],
)
def test_cheapest_single_gpu_unless_asked(j, want):
    assert provisioned(j) == [want]


def test_above_the_largest_single_gpu_the_notice_says_how_to_ask_for_more():
    (n,) = plan(view([job(vram=200)]), NOW, L)
    assert isinstance(n, Notice)
    assert n.rule == "no_hardware"
    assert "more than the largest single GPU (141 GB, 1x H200)" in n.message
    assert 'allowed_hardware=["2x H200"] or gpus=2' in n.message
    assert n.evidence["largest_single_gpu"] == "1x H200"


def test_a_gpu_job_on_a_cpu_only_stack_says_how_to_run_it():
    cpu = (GPU_TABLE[0],)
    v = View(pending=(job(vram=24),), workers=(worker(hw="cpu", vram=0, image="*"),), offers=cpu)
    (n,) = plan(v, NOW, L)
    assert isinstance(n, Notice)
    assert n.message.startswith("needs 24 GB VRAM; the largest worker here has 0 GB; no GPU "
                                "provider is configured (this one offers: cpu)")
    assert "pass requires_vram_gb=0 to run on this CPU" in n.message
    assert n.evidence["largest_worker_vram_gb"] == 0


def test_the_largest_worker_is_named():
    v = View(pending=(job(vram=100),), workers=(worker(vram=48),), offers=(GPU_TABLE[0],))
    (n,) = plan(v, NOW, L)
    assert "the largest worker here has 48 GB" in n.message


# --- cooldown per hardware type --------------------------------------------------------


def test_a_cooling_hardware_type_is_skipped_for_the_next_cheapest():
    soon = NOW + timedelta(seconds=30)
    assert provisioned(job(vram=24), cooldowns={"1x A6000": soon}) == ["1x L40S"]
    (p,) = plan(view([job(vram=24)], cooldowns={"1x A6000": soon}), NOW, L)
    assert p.evidence["cooling_down"] == ["1x A6000"]
    # a past cooldown is no cooldown
    assert provisioned(job(vram=24), cooldowns={"1x A6000": NOW}) == ["1x A6000"]


def test_when_every_fitting_type_cools_down_the_notice_says_until_when():
    until = {h.name: NOW + timedelta(seconds=i + 1) for i, h in enumerate(GPU_TABLE)}
    (n,) = plan(view([job(vram=141)], cooldowns=until), NOW, L)
    assert isinstance(n, Notice)
    assert n.rule == "provider_cooldown"
    first = min(u for name, u in until.items() if "H200" in name)
    assert n.evidence["cooldown_until"] == first.isoformat()
    assert "1x H200" in n.evidence["cooldowns"]


@pytest.mark.parametrize(
    ("failures", "want"), [(0, 60), (1, 60), (2, 240), (3, 960), (4, 3600), (9, 3600)]
)
def test_cooldown_ladder(failures, want):
    assert cooldown_for(failures, L) == want


@settings(max_examples=200, deadline=None)
@given(st.floats(0, 2000), st.sampled_from([(), ("1x H200",), ("2x A100", "1x A6000")]),
       st.integers(0, 8))
def test_multi_gpu_only_when_asked(vram, allowed, gpus):
    for a in plan(view([job(vram=vram, allowed=allowed, gpus=gpus)]), NOW, L):
        if isinstance(a, Provision):
            asked = gpus > 1 or any(not h.startswith("1x") for h in allowed)
            assert a.hardware.count <= 1 or asked
            assert a.hardware.vram_gb >= vram
            assert gpus <= 1 or a.hardware.count >= gpus
        else:
            assert isinstance(a, Notice)
            assert a.rule == "no_hardware"
            assert a.message.startswith(f"needs {vram:g} GB VRAM")
            assert " — " in a.message  # then what to do about it


@pytest.mark.parametrize(
    ("gpus", "params", "want"),
    [
        (0, {}, 0),
        (2, {}, 2),
        (0, {"gpus": 4}, 4),
        (0, {"validated_params": {"num_gpus": 2}}, 2),
        (3, {"gpus": 4}, 3),  # the field wins
        (0, {"validated_params": {"gpus": True}}, 0),  # not a count
        (0, {"validated_params": {"gpus": "2"}}, 0),
    ],
)
def test_requested_gpus(gpus, params, want):
    assert requested_gpus(gpus, params) == want


def test_the_cluster_passes_the_gpu_count_and_the_cooldown_ladder_to_the_plan():
    c = Cluster()
    c.apply(ev.JobSubmitted(job_id="j1", requires_vram_gb=24, params={"gpus": 2}, ts=NOW))
    until = (NOW + timedelta(seconds=240)).isoformat()
    c.apply(ev.SchedulerNoticed(subject_id="j1", rule="provider_error", evidence={
        "cooldown_key": "2x A6000", "failures": 2, "cooldown_until": until}))
    v = c.snapshot({}, GPU_TABLE)
    assert v.pending[0].gpus == 2
    assert v.cooldowns == {"2x A6000": NOW + timedelta(seconds=240)}
    assert c.failures == {"2x A6000": 2}
    (p,) = plan(v, NOW, L)
    assert isinstance(p, Provision)
    assert p.hardware.name == "2x L40S"  # 2x A6000 rests: the next cheapest pair
    c.apply(ev.WorkerProvisioned(worker_id="w1", provider="runpod", pod_id="p1",
                                 hardware="2x A6000", job_ids=["j1"]))
    assert c.failures == {}  # it started: the ladder starts again from the bottom


def test_a_job_a_busy_worker_can_run_waits_for_it_and_is_not_unschedulable():
    cpu = (GPU_TABLE[0],)
    busy = worker(hw="cpu", vram=40, run="r1", image="*")
    (n,) = plan(View(pending=(job(vram=12),), workers=(busy,), offers=cpu), NOW, L)
    assert isinstance(n, Notice)
    assert n.rule == "workers_busy"
    assert n.message == "waiting for a busy worker: 1 here can run it, none is free"
    assert n.evidence["workers"] == ["w1"]
    lost = worker(hw="cpu", vram=40, run="r1", image="*", ping=500)  # retired: it does not count
    (req, term, n) = plan(View(pending=(job(vram=12),), workers=(lost,), offers=cpu), NOW, L)
    assert n.rule == "no_hardware"
