"""The cluster model the scheduler folds events into, and its `View` snapshots for `plan`.

`Cluster.apply(event)` folds one event (control-plane or heartbeat) with the shared folds of
`ow.core.state`, plus what only the scheduler needs: which jobs a worker was provisioned for,
since when it is idle, whether its pod was already released, the last notice per subject and
the cooldown per hardware type with its count of failures in a row (from `SchedulerNoticed`,
so a new leader inherits it; a `WorkerProvisioned` of that hardware ends the run of failures).
It holds no I/O; the shell feeds it and asks for `snapshot(now, ...)`.

Imports: stdlib, msgspec, `ow.core` (events, state) and `ow.scheduler` (hardware, plan).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

import msgspec

from ow.core import events as ev
from ow.core.state import JobState, WorkerState, apply, apply_worker
from ow.scheduler.hardware import Hardware, find, requested_gpus
from ow.scheduler.plan import ALL_HARDWARE, JobView, View, WorkerView

__all__ = ["PROVIDER_ERROR", "Cluster"]

log = logging.getLogger(__name__)

#: the rule of a `SchedulerNoticed` that reports a provider failure (carries `cooldown_until`)
PROVIDER_ERROR = "provider_error"

_RUN_ENDS = (ev.RunFinished, ev.JobCompleted, ev.JobFailed, ev.JobCanceled, ev.JobRequeued)


class _WorkerExtra(msgspec.Struct, kw_only=True):
    job_ids: tuple[str, ...] = ()
    idle_since: datetime | None = None
    pod_released: bool = False
    exited: str = ""  # evidence that its process ended (provider status, ServiceRestarted)


class Cluster:
    """Jobs, workers and scheduler facts of one org, folded from its events."""

    def __init__(self) -> None:
        self.jobs: dict[str, JobState] = {}
        self.workers: dict[str, WorkerState] = {}
        self.extra: dict[str, _WorkerExtra] = {}
        self.pending: set[str] = set()
        self.running: dict[str, tuple[str, str]] = {}  # worker_id -> (job_id, run_id)
        self.started_runs: dict[str, str] = {}  # run_id -> job_id (every RunStarted seen)
        self.notices: dict[str, tuple[str, str]] = {}
        self.cooldowns: dict[str, datetime] = {}  # hardware name (or "*") -> until
        self.failures: dict[str, int] = {}  # hardware name (or "*") -> provider failures in a row
        self.pods: dict[str, tuple[str, str]] = {}  # pod_id -> (provider, worker_id)

    # --- folding ----------------------------------------------------------------------

    def apply(self, event: ev.Event) -> None:
        """Fold one event; anything that does not concern the scheduler is ignored."""
        if isinstance(event, ev.SchedulerNoticed):
            self._noticed(event)
        elif isinstance(event, ev.ServiceRestarted):
            if event.worker_id:
                self.exited(event.worker_id, f"ow up: {event.name} exited ({event.reason})")
        elif isinstance(event, ev.WorkerProvisioned | ev.WorkerRegistered | ev.WorkerPinged
                        | ev.WorkerDraining | ev.WorkerTerminated):
            self._worker(event)
        elif getattr(event, "job_id", "") and not isinstance(
            event, ev.MetricLogged | ev.FileUploaded
        ):
            self._job(event)

    def apply_all(self, events: Iterable[ev.Event]) -> None:
        for e in events:
            self.apply(e)

    def exited(self, worker_id: str, seen: str) -> None:
        """Its process was seen to end (`seen` says by whom): `plan` retires it at once."""
        w = self.workers.get(worker_id)
        if w is None or w.status == "terminated":
            return
        extra = self.extra.setdefault(worker_id, _WorkerExtra())
        extra.exited = extra.exited or seen

    def recorded_pods(self, provider: str) -> dict[str, str]:
        """pod_id -> worker_id of this provider's pods whose worker is not terminated."""
        return {
            pod: wid for pod, (owner, wid) in self.pods.items()
            if owner == provider and wid in self.workers
            and self.workers[wid].status != "terminated"
        }

    def _noticed(self, e: ev.SchedulerNoticed) -> None:
        self.notices[e.subject_id] = (e.rule, e.message)
        if e.rule != PROVIDER_ERROR:
            return
        until = e.evidence.get("cooldown_until")
        key = e.evidence.get("cooldown_key") or ALL_HARDWARE  # older notices: provider-wide
        failures = e.evidence.get("failures")
        if isinstance(until, str) and isinstance(key, str):
            try:
                t = datetime.fromisoformat(until)
            except ValueError:
                return
            self.cool_down(key, t, failures if isinstance(failures, int) else 1)

    def cool_down(self, key: str, until: datetime, failures: int) -> None:
        """Rest hardware `key` until `until` after its `failures`-th failure in a row."""
        if key not in self.cooldowns or until > self.cooldowns[key]:
            self.cooldowns[key] = until
        self.failures[key] = max(self.failures.get(key, 0), failures)

    def _worker(self, e: Any) -> None:
        wid = e.worker_id
        old = self.workers.get(wid)
        new, _ = apply_worker(old, e)
        if new is None:
            return
        if old is not None and old.last_ping and (
            new.last_ping is None or new.last_ping < old.last_ping
        ):  # the event and heartbeat streams interleave: keep the newest ping
            new = msgspec.structs.replace(new, last_ping=old.last_ping)
        self.workers[wid] = new
        extra = self.extra.setdefault(wid, _WorkerExtra())
        match e:
            case ev.WorkerProvisioned():
                extra.job_ids = tuple(e.job_ids)
                for k in (e.hardware, ALL_HARDWARE):  # it started: the failure ladder restarts
                    self.failures.pop(k, None)
                if e.pod_id:
                    self.pods[e.pod_id] = (e.provider, wid)
            case ev.WorkerRegistered():
                if wid not in self.running and extra.idle_since is None:
                    extra.idle_since = e.ts
            case ev.WorkerTerminated():
                if e.evidence.get("pod_terminated"):
                    extra.pod_released = True
            case _:
                pass

    def _job(self, e: ev.Event) -> None:
        job_id: str = getattr(e, "job_id", "")
        old = self.jobs.get(job_id)
        new, anomaly = apply(old, e)
        if new is None or anomaly is not None:
            return
        self.jobs[job_id] = new
        self.notices.pop(job_id, None)  # the job moved on: a later notice is news again
        if isinstance(e, ev.RunStarted):
            self.started_runs[e.run_id] = job_id
            self.running[e.worker_id] = (job_id, e.run_id)
            self.extra.setdefault(e.worker_id, _WorkerExtra()).idle_since = None
        elif isinstance(e, _RUN_ENDS) and old is not None and old.current_run is not None:
            wid = old.current_run.worker_id
            if self.running.get(wid, ("", ""))[1] == old.current_run.run_id:
                del self.running[wid]
                self.extra.setdefault(wid, _WorkerExtra()).idle_since = e.ts
        if new.status == "pending" and not new.cancel_requested:
            self.pending.add(job_id)
        else:
            self.pending.discard(job_id)

    # --- snapshots --------------------------------------------------------------------

    def _worker_view(self, w: WorkerState, offers: tuple[Hardware, ...]) -> WorkerView:
        extra = self.extra.get(w.worker_id, _WorkerExtra())
        job_id, run_id = self.running.get(w.worker_id, ("", ""))
        vram = w.vram_gb
        if w.status == "starting" and not vram:
            row = find(w.hardware, offers)
            vram = row.vram_gb if row else 0
        return WorkerView(
            worker_id=w.worker_id, status=w.status, hardware=w.hardware, vram_gb=vram,
            image=w.image, provider=w.provider, pod_id=w.pod_id,
            pod_released=extra.pod_released, provisioned_at=w.provisioned_at,
            registered_at=w.registered_at, last_ping=w.last_ping, job_id=job_id, run_id=run_id,
            idle_since=extra.idle_since, job_ids=extra.job_ids,
            exited="" if w.status == "terminated" else extra.exited,
        )

    def snapshot(
        self, reservations: Mapping[str, str], offers: tuple[Hardware, ...]
    ) -> View:
        """The view `plan` decides on. Workers known only from heartbeats are left out."""
        workers = tuple(
            self._worker_view(w, offers) for w in self.workers.values()
            if (w.provisioned_at or w.registered_at)
            and (w.status != "terminated" or self._leftover(w))
        )
        pending = tuple(
            JobView(
                job_id=j.job_id, requires_vram_gb=j.spec.requires_vram_gb,
                allowed_hardware=tuple(j.spec.allowed_hardware), image=j.spec.image,
                submitted_at=j.created_at, gpus=requested_gpus(j.spec.gpus, j.spec.params),
            )
            for j in (self.jobs[jid] for jid in sorted(self.pending))
        )
        return View(
            pending=pending, workers=workers, reservations=dict(reservations), offers=offers,
            cooldowns=dict(self.cooldowns), notices=dict(self.notices),
        )

    def _leftover(self, w: WorkerState) -> bool:
        """A terminated worker still matters if it holds a run or an unreleased pod."""
        extra = self.extra.get(w.worker_id, _WorkerExtra())
        return w.worker_id in self.running or bool(w.pod_id and not extra.pod_released)
