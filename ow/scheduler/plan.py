"""The pure scheduler: `plan(view, now, limits) -> list[Action]` and `reconcile(...)`.

The view is a snapshot of the org's cluster (pending jobs, workers and their heartbeats,
provisioning reservations, the provider's offers and cooldown); actions are imperative Structs
that the shell (`service.py`) carries out. Nothing here does I/O or reads a clock: `now` is
passed in, so every rule is a table-driven test. Every action carries its evidence (the rule
and the numbers behind it), which the shell publishes with the event it causes.

Rules (openweights defaults, all in `Limits`): a worker whose process was seen to exit (by
its provider, or by the `ow up` that supervised it) is lost at once; a lost worker (no heartbeat for
`lost_after_s`) has its run requeued and is terminated; a pod older than `pod_ttl_s` likewise;
a provisioned worker that never registers within `start_timeout_s` is terminated; an idle
provisioned worker is terminated after `idle_timeout_s`; each pending job that no idle or
starting worker can serve and that has no reservation gets one worker of the cheapest
hardware that fits (one GPU unless the job asks for more: `hardware.cheapest`), while the org
stays within `max_workers`, skipping hardware types that are cooling down after provider
failures (`cooldown_for`: a ladder, longer after each failure in a row); a job nothing can
serve gets a `Notice` that says what to do, and stays pending.

Imports: stdlib, msgspec, `ow.core` (defaults, events: a rule name, hardware) and
`ow.scheduler.hardware` (pure).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

import msgspec

from ow.core import defaults
from ow.core.events import NOTICE_UNSCHEDULABLE
from ow.core.hardware import Need, Offer, mismatch
from ow.scheduler.hardware import Hardware, cheapest, largest_single

__all__ = [
    "Action",
    "ClaimView",
    "DropClaim",
    "JobView",
    "Limits",
    "Notice",
    "Provision",
    "Requeue",
    "Terminate",
    "View",
    "WorkerView",
    "ALL_HARDWARE",
    "UNSCHEDULABLE",
    "can_serve",
    "cooldown_for",
    "plan",
    "reconcile",
]


class Limits(msgspec.Struct, frozen=True, kw_only=True):
    """Every number the scheduler decides with (seconds unless the name says otherwise)."""

    max_workers: int = defaults.MAX_WORKERS_PER_ORG
    idle_timeout_s: float = defaults.IDLE_TIMEOUT_S
    lost_after_s: float = defaults.LOST_AFTER_S
    pod_ttl_s: float = defaults.POD_TTL_S
    start_timeout_s: float = defaults.WORKER_START_TIMEOUT_S
    provider_cooldown_s: float = defaults.PROVIDER_COOLDOWN_S  # the first rung of the ladder
    provider_cooldown_max_s: float = defaults.PROVIDER_COOLDOWN_MAX_S
    reservation_ttl_s: float = defaults.PROVISION_RESERVATION_TTL_S
    claim_grace_s: float = defaults.CLAIM_GRACE_S
    tick_s: float = defaults.SCHEDULER_TICK_S
    lease_ttl_s: float = defaults.LEASE_TTL_S
    debounce_s: float = defaults.SCHEDULER_DEBOUNCE_S


# --- the view ------------------------------------------------------------------------


class JobView(msgspec.Struct, frozen=True, kw_only=True):
    job_id: str
    requires_vram_gb: float = 0
    allowed_hardware: tuple[str, ...] = ()
    image: str = ""
    submitted_at: datetime | None = None
    gpus: int = 0  # GPUs asked for (0: any single GPU or CPU)


class WorkerView(msgspec.Struct, frozen=True, kw_only=True):
    worker_id: str
    status: str = "starting"  # starting | active | draining | terminated
    hardware: str = ""
    vram_gb: float = 0
    image: str = ""
    provider: str = ""
    pod_id: str = ""  # set only for workers a provider started (WorkerProvisioned)
    pod_released: bool = False  # the scheduler already terminated the pod
    provisioned_at: datetime | None = None
    registered_at: datetime | None = None
    last_ping: datetime | None = None
    job_id: str = ""  # the job whose current run this worker holds
    run_id: str = ""
    idle_since: datetime | None = None
    job_ids: tuple[str, ...] = ()  # the jobs it was provisioned for
    exited: str = ""  # who saw its process exit, and how ("local: pod local-12 exited")


class ClaimView(msgspec.Struct, frozen=True, kw_only=True):
    """A claim in KV as the reconciler sees it, with when it was first seen at this revision."""

    job_id: str
    run_id: str
    worker_id: str
    gen: int
    rev: int
    done: bool = False
    first_seen: datetime


class View(msgspec.Struct, frozen=True, kw_only=True):
    pending: tuple[JobView, ...] = ()
    workers: tuple[WorkerView, ...] = ()
    reservations: Mapping[str, str] = {}  # job_id -> worker_id being provisioned for it
    offers: tuple[Hardware, ...] = ()  # what the provider can start
    # hardware name (or ALL_HARDWARE) -> until when it is not provisioned after failures
    cooldowns: Mapping[str, datetime] = {}
    notices: Mapping[str, tuple[str, str]] = {}  # subject_id -> (rule, message) last noticed


# --- actions -------------------------------------------------------------------------


class Provision(msgspec.Struct, frozen=True, kw_only=True):
    hardware: Hardware
    image: str
    job_ids: tuple[str, ...]
    evidence: dict[str, Any] = {}


class Terminate(msgspec.Struct, frozen=True, kw_only=True):
    worker_id: str
    pod_id: str  # "" for a worker no provider started: only WorkerTerminated is published
    reason: str
    evidence: dict[str, Any] = {}


class Requeue(msgspec.Struct, frozen=True, kw_only=True):
    job_id: str
    run_id: str
    reason: str
    evidence: dict[str, Any] = {}


class DropClaim(msgspec.Struct, frozen=True, kw_only=True):
    """Delete (CAS on `rev`) a claim whose run never started; the job is still pending."""

    job_id: str
    run_id: str
    rev: int
    reason: str
    evidence: dict[str, Any] = {}


class Notice(msgspec.Struct, frozen=True, kw_only=True):
    subject_id: str
    rule: str
    message: str
    evidence: dict[str, Any] = {}


Action = Provision | Terminate | Requeue | DropClaim | Notice

LIVE = ("starting", "active", "draining")

#: the cooldown key of a failure that concerns the whole provider (quota, credentials)
ALL_HARDWARE = "*"
#: the notice rule of a job that nothing here can ever run (readers may give up on it)
UNSCHEDULABLE = NOTICE_UNSCHEDULABLE


# --- rules ---------------------------------------------------------------------------


def _age(now: datetime, then: datetime | None) -> float | None:
    return None if then is None else (now - then).total_seconds()


def _iso(t: datetime | None) -> str | None:
    return None if t is None else t.isoformat()


def can_serve(worker: WorkerView, job: JobView) -> bool:
    """Whether a worker could run the job: the agent's own rule, `ow.core.hardware.mismatch`."""
    return not mismatch(
        Offer(hardware=worker.hardware, vram_gb=worker.vram_gb, image=worker.image),
        Need(requires_vram_gb=job.requires_vram_gb, allowed_hardware=job.allowed_hardware,
             image=job.image),
    )


def _retire(w: WorkerView, reason: str, evidence: dict[str, Any]) -> list[Action]:
    """Requeue the worker's run (if it holds one), then terminate it."""
    out: list[Action] = []
    if w.run_id:
        out.append(Requeue(job_id=w.job_id, run_id=w.run_id, reason=reason, evidence=evidence))
    out.append(Terminate(worker_id=w.worker_id, pod_id=w.pod_id, reason=reason, evidence=evidence))
    return out


def _health(w: WorkerView, now: datetime, limits: Limits) -> list[Action]:
    """Exited, lost, past its TTL, or never registered: the actions that retire the worker."""
    if w.exited:  # its provider or supervisor saw the process end: lost now, not in minutes
        return _retire(w, "worker process exited", {
            "rule": "process_exited", "seen": w.exited, "last_ping_at": _iso(w.last_ping),
        })
    ping_age = _age(now, w.last_ping)
    if w.status != "starting" and ping_age is not None and ping_age > limits.lost_after_s:
        return _retire(w, "worker lost: no heartbeat", {
            "rule": "lost_after_s", "last_ping_age_s": round(ping_age, 3),
            "last_ping_at": _iso(w.last_ping), "lost_after_s": limits.lost_after_s,
        })
    pod_age = _age(now, w.provisioned_at)
    if w.pod_id and pod_age is not None and pod_age > limits.pod_ttl_s:
        return _retire(w, "pod TTL expired", {
            "rule": "pod_ttl_s", "pod_age_s": round(pod_age, 3),
            "provisioned_at": _iso(w.provisioned_at), "pod_ttl_s": limits.pod_ttl_s,
        })
    if w.status == "starting" and pod_age is not None and pod_age > limits.start_timeout_s:
        return _retire(w, "worker never registered", {
            "rule": "start_timeout_s", "pod_age_s": round(pod_age, 3),
            "provisioned_at": _iso(w.provisioned_at), "start_timeout_s": limits.start_timeout_s,
        })
    return []


def _after_leaving(w: WorkerView) -> list[Action]:
    """A worker that left (it said goodbye, or we retired it) but left a run or a pod behind."""
    out: list[Action] = []
    evidence = {"rule": "worker_terminated", "worker_id": w.worker_id}
    if w.run_id:
        out.append(Requeue(
            job_id=w.job_id, run_id=w.run_id, reason="worker terminated while holding the run",
            evidence=evidence,
        ))
    if w.pod_id and not w.pod_released:
        out.append(Terminate(
            worker_id=w.worker_id, pod_id=w.pod_id, reason="release the pod of a worker that left",
            evidence={**evidence, "rule": "pod_release", "pod_id": w.pod_id},
        ))
    return out


def _match(
    pending: list[JobView], free: list[WorkerView], reservations: Mapping[str, str]
) -> tuple[list[JobView], set[str]]:
    """Pair each pending job with a reservation or a distinct free worker that can serve it.

    Returns the unserved jobs and the ids of the workers spoken for. A starting worker is
    paired first with the jobs it was provisioned for.
    """
    used: set[str] = set()
    unserved: list[JobView] = []
    for job in pending:
        if job.job_id in reservations:
            used.add(reservations[job.job_id])
            continue
        options = [w for w in free if w.worker_id not in used and can_serve(w, job)]
        if not options:
            unserved.append(job)
            continue
        best = min(options, key=lambda w: (job.job_id not in w.job_ids, w.worker_id))
        used.add(best.worker_id)
    return unserved, used


def _notice(view: View, subject_id: str, rule: str, message: str, **evidence: Any) -> list[Action]:
    """A notice, unless the same one is the last noticed for this subject (no spam)."""
    if view.notices.get(subject_id) == (rule, message):
        return []
    return [Notice(subject_id=subject_id, rule=rule, message=message,
                   evidence={"rule": rule, **evidence})]


def cooldown_for(failures: int, limits: Limits) -> float:
    """Seconds a hardware type rests after its `failures`-th provider failure in a row:
    the base, then four times longer each time (60 s, 4 min, 16 min, ...), capped."""
    rung = limits.provider_cooldown_s * 4 ** max(0, failures - 1)
    return min(rung, limits.provider_cooldown_max_s)


def _cooling(view: View, hw: Hardware, now: datetime) -> datetime | None:
    """Until when `hw` is cooling down, or None."""
    until = [view.cooldowns.get(k) for k in (hw.name, ALL_HARDWARE)]
    return max((u for u in until if u is not None and now < u), default=None)


def _why_not(view: View, job: JobView, staying: list[WorkerView]) -> tuple[str, dict[str, Any]]:
    """What to tell the user of a job no offer fits, and the numbers behind it."""
    need = f"needs {job.requires_vram_gb:g} GB VRAM"
    biggest = max((w.vram_gb for w in staying), default=0)
    here = f"the largest worker here has {biggest:g} GB"
    gpu_rows = [h for h in view.offers if h.count > 0]
    single = largest_single(view.offers)
    evidence: dict[str, Any] = {
        "requires_vram_gb": job.requires_vram_gb, "allowed_hardware": list(job.allowed_hardware),
        "gpus": job.gpus, "largest_worker_vram_gb": biggest,
        "offers": [h.name for h in view.offers],
    }
    cpu = any(h.count == 0 for h in view.offers) or any(not w.vram_gb for w in staying)
    if not gpu_rows:
        offered = ", ".join(h.name for h in view.offers) or "nothing"
        hint = " — pass requires_vram_gb=0 to run on this CPU" if cpu else ""
        return (f"{need}; {here}; no GPU provider is configured (this one offers: {offered})"
                f"{hint}, or start the stack with a GPU provider (OW_PROVIDER=runpod)"), evidence
    if job.allowed_hardware:
        return (f"{need} on allowed_hardware {', '.join(job.allowed_hardware)}; none of those "
                f"is offered with that much ({here}) — widen allowed_hardware or lower "
                "requires_vram_gb"), evidence
    if job.gpus <= 1 and single is not None and job.requires_vram_gb > single.vram_gb:
        n = next((n for n in (2, 4, 8) if n * single.vram_gb >= job.requires_vram_gb), 8)
        evidence["largest_single_gpu"] = single.name
        return (f"{need}, more than the largest single GPU ({single.vram_gb:g} GB, "
                f"{single.name}); {here} — ask for several GPUs with allowed_hardware="
                f"[\"{n}x {single.gpu}\"] or gpus={n}, or lower requires_vram_gb"), evidence
    return (f"{need} on {job.gpus or 1} GPU(s); no offered machine has that much ({here}) — "
            "lower requires_vram_gb or gpus"), evidence


def _provision(
    view: View, unserved: list[JobView], staying: list[WorkerView], live_count: int,
    now: datetime, limits: Limits,
) -> list[Action]:
    """Provision for, or explain, each job no free worker serves. `staying`: the live
    workers this plan does not retire."""
    out: list[Action] = []
    ready = tuple(h for h in view.offers if _cooling(view, h, now) is None)
    for job in unserved:
        if cheapest(job.requires_vram_gb, job.allowed_hardware, view.offers, job.gpus) is None:
            able = sorted(w.worker_id for w in staying
                          if w.status in ("starting", "active") and can_serve(w, job))
            if able:  # nothing to start, but a busy worker here will take it when free
                out += _notice(
                    view, job.job_id, "workers_busy",
                    f"waiting for a busy worker: {len(able)} here can run it, none is free",
                    workers=able,
                )
                continue
            message, evidence = _why_not(view, job, staying)
            out += _notice(view, job.job_id, UNSCHEDULABLE, message, **evidence)
            continue
        hw = cheapest(job.requires_vram_gb, job.allowed_hardware, ready, job.gpus)
        cooling = sorted(  # the rows that fit this job but rest after provider failures
            (h.name, u.isoformat()) for h in view.offers
            if (u := _cooling(view, h, now))
            and cheapest(job.requires_vram_gb, job.allowed_hardware, (h,), job.gpus)
        )
        if hw is None:
            until = min(u for _, u in cooling)
            out += _notice(
                view, job.job_id, "provider_cooldown",
                f"every machine that fits failed to start recently; waiting for the provider "
                f"cooldown until {until} (cooling down: {', '.join(n for n, _ in cooling)})",
                cooldown_until=until, cooldowns=dict(cooling),
            )
        elif live_count >= limits.max_workers:
            out += _notice(
                view, job.job_id, "max_workers",
                f"the org runs its maximum of {limits.max_workers} workers",
                workers=live_count, max_workers=limits.max_workers,
            )
        else:
            live_count += 1
            out.append(Provision(hardware=hw, image=job.image, job_ids=(job.job_id,), evidence={
                "rule": "cheapest_fit", "requires_vram_gb": job.requires_vram_gb,
                "allowed_hardware": list(job.allowed_hardware), "gpus": job.gpus,
                "hardware": hw.name, "price_per_hour": hw.price_per_hour,
                "workers": live_count, "max_workers": limits.max_workers,
                "cooling_down": [n for n, _ in cooling],
            }))
    return out


def _idle(w: WorkerView, now: datetime, limits: Limits) -> list[Action]:
    idle_age = _age(now, w.idle_since)
    if w.status != "active" or w.run_id or not w.pod_id or idle_age is None:
        return []
    if idle_age <= limits.idle_timeout_s:
        return []
    return [Terminate(worker_id=w.worker_id, pod_id=w.pod_id, reason="idle", evidence={
        "rule": "idle_timeout_s", "idle_s": round(idle_age, 3),
        "idle_since": _iso(w.idle_since), "idle_timeout_s": limits.idle_timeout_s,
    })]


def plan(view: View, now: datetime, limits: Limits) -> list[Action]:
    """Everything the scheduler should do now, in order: repairs, retirements, provisioning."""
    actions: list[Action] = []
    retired: set[str] = set()
    workers = sorted(view.workers, key=lambda w: w.worker_id)
    for w in workers:
        if w.status == "terminated":
            actions += _after_leaving(w)
            continue
        health = _health(w, now, limits)
        if health:
            retired.add(w.worker_id)
            actions += health
    live = [w for w in workers if w.status in LIVE and w.worker_id not in retired]
    free = [w for w in live if w.status in ("starting", "active") and not w.run_id]
    pending = sorted(
        view.pending, key=lambda j: (j.submitted_at is None, j.submitted_at or now, j.job_id)
    )
    unserved, used = _match(pending, free, view.reservations)
    for w in free:
        if w.worker_id not in used:
            idle = _idle(w, now, limits)
            if idle:
                retired.add(w.worker_id)
                actions += idle
    known = {w.worker_id for w in view.workers}
    in_flight = {wid for wid in view.reservations.values() if wid not in known}
    staying = [w for w in live if w.worker_id not in retired]
    actions += _provision(view, unserved, staying, len(staying) + len(in_flight), now, limits)
    return actions


def reconcile(
    claims: list[ClaimView], view: View, started_runs: Mapping[str, str], now: datetime,
    limits: Limits,
) -> list[Action]:
    """Repair claims the log does not explain.

    `started_runs` maps run ids that have a `RunStarted` to their job. A claim with no
    `RunStarted` is dropped once it is older than `claim_grace_s` (CAS on its revision); a
    started run whose worker is gone is requeued (the release deletes the claim with CAS).
    """
    workers = {w.worker_id: w for w in view.workers}
    out: list[Action] = []
    for c in sorted(claims, key=lambda c: c.job_id):
        if c.done:
            continue
        w = workers.get(c.worker_id)
        age = (now - c.first_seen).total_seconds()
        evidence = {"rule": "", "worker_id": c.worker_id, "claim_rev": c.rev,
                    "claim_age_s": round(age, 3)}
        if c.run_id in started_runs:
            if w is not None and w.status == "terminated":
                out.append(Requeue(
                    job_id=c.job_id, run_id=c.run_id, reason="claim held by a terminated worker",
                    evidence={**evidence, "rule": "claim_of_terminated_worker"},
                ))
        elif w is not None and w.status == "terminated":  # its RunStarted, if any, is rejected
            out.append(DropClaim(
                job_id=c.job_id, run_id=c.run_id, rev=c.rev,
                reason="claim of a terminated worker that holds no run",
                evidence={**evidence, "rule": "unstarted_claim_of_terminated_worker"},
            ))
        elif age > limits.claim_grace_s:
            out.append(DropClaim(
                job_id=c.job_id, run_id=c.run_id, rev=c.rev,
                reason="claim without RunStarted",
                evidence={**evidence, "rule": "claim_without_run_started",
                          "claim_grace_s": limits.claim_grace_s},
            ))
    return out
