"""The scheduler shell: read the org's streams -> fold -> plan -> act through a provider -> publish.

`Scheduler(bus, provider, limits).run()` folds `ow.ev.<org>.>` and `ow.hb.<org>.>` (from
sequence 1) into a `Cluster`, and, while it holds the org's leader lease (KV `ow_leases`,
`scheduler.<org>`, created with a TTL and renewed by CAS), plans on every change (debounced)
and on a tick, then carries the actions out:

- Provision: reserve `provision.<org>.<job>` in KV first (so a failover never starts two pods
  for one demand), then `provider.provision`, then `WorkerProvisioned`. A provider error
  becomes a `SchedulerNoticed` with the provider's text and a cooldown, never a crash loop.
- Terminate: `provider.terminate(pod_id)` for pods recorded in `WorkerProvisioned` only, then
  `WorkerTerminated{reason, evidence}`.
- Requeue: `ow.core.claims.release` (CAS-delete the claim, then `JobRequeued`).
- DropClaim / the reconciler: claims in `ow_claims` the log does not explain are repaired.

While leading it also asks the provider, every `defaults.POD_STATUS_POLL_S`, about the pods it
recorded: a pod reported exited (a local agent process that died, a RunPod pod that stopped)
is evidence that its worker is lost now (`plan`'s process_exited rule), as is a
`ServiceRestarted` from `ow up` naming the worker of an agent it restarted.

No event, action or provider failure stops the loop: each is logged and the next tick retries.

Imports: anyio, msgspec, `ow.core` and `ow.scheduler`.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any

import anyio
import msgspec

from ow.core import claims, defaults, subjects
from ow.core import events as ev
from ow.core.bus import Bus
from ow.core.config import Config
from ow.core.errors import OWError
from ow.core.ids import decode_token, encode_token, new_id
from ow.scheduler.plan import (
    ALL_HARDWARE,
    Action,
    ClaimView,
    DropClaim,
    Limits,
    Notice,
    Provision,
    Requeue,
    Terminate,
    cooldown_for,
    plan,
    reconcile,
)
from ow.scheduler.providers import PodNotRecordedError, Provider, ProviderError, QuotaError
from ow.scheduler.view import PROVIDER_ERROR, Cluster

__all__ = ["Scheduler", "limits_from"]

log = logging.getLogger(__name__)


def limits_from(config: Config, **overrides: Any) -> Limits:
    """The scheduler's limits from a `Config` (OW_MAX_WORKERS, OW_IDLE_TIMEOUT_S, ...)."""
    base = {
        "max_workers": config.max_workers, "idle_timeout_s": config.idle_timeout_s,
        "lost_after_s": config.lost_after_s, "pod_ttl_s": config.pod_ttl_s,
    }
    return Limits(**{**base, **overrides})


class Scheduler:
    """`async with Scheduler(bus, provider) as s: await s.run()`; one leads per org."""

    def __init__(
        self,
        bus: Bus,
        provider: Provider,
        limits: Limits | None = None,
        *,
        worker_env: Mapping[str, str] | None = None,
        worker_credentials: Callable[[str], Mapping[str, str]] | None = None,
        clock: Callable[[], datetime] = ev.now,
        scheduler_id: str | None = None,
    ):
        self.bus = bus
        self.provider = provider
        self.limits = limits or Limits()
        self.clock = clock
        self.id = scheduler_id or new_id("scheduler")
        self.worker_env = dict(worker_env or {"OW_URL": bus.url, "OW_ORG": bus.org})
        #: a worker's own credential and key, by worker id (`tenancy.worker_env`)
        self.worker_credentials = worker_credentials or (lambda _worker_id: {})
        self.cluster = Cluster()
        self.is_leader = False
        self._changed = anyio.Event()
        self._scope: anyio.CancelScope | None = None
        self._done: set[tuple[str, ...]] = set()  # actions already carried out
        self._claims_seen: dict[tuple[str, int], datetime] = {}
        self._last_reconcile: datetime | None = None
        self.pod_poll_s = defaults.POD_STATUS_POLL_S

    async def __aenter__(self) -> Scheduler:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.shutdown()

    def shutdown(self) -> None:
        """Stop (the lease is given up so a standby takes over at once). Idempotent."""
        if self._scope is not None:
            self._scope.cancel()

    # --- life cycle -----------------------------------------------------------------

    async def run(self, *, task_status: Any = anyio.TASK_STATUS_IGNORED) -> None:
        """Catch up on the org's streams, then lead (or stand by) until shut down."""
        org = self.bus.org
        hb_filter = f"{subjects.HEARTBEATS_PREFIX}.{encode_token(org)}.>"
        try:
            with anyio.CancelScope() as self._scope:
                async with anyio.create_task_group() as tg:
                    await tg.start(self._consume, subjects.events_filter(org),
                                   subjects.EVENTS_STREAM)
                    await tg.start(self._consume, hb_filter, subjects.HEARTBEATS_STREAM)
                    task_status.started()
                    tg.start_soon(self._lead)
        finally:
            with anyio.CancelScope(shield=True), anyio.move_on_after(30):
                await self.provider.aclose()

    async def _consume(self, subject: str, stream: str, *, task_status: Any) -> None:
        """Fold a stream into the cluster; `started` once caught up with its start."""
        last = await self.bus.last_seq(stream, subject)
        if last == 0:
            task_status.started()
        async for d in self.bus.subscribe(subject, stream=stream, start_seq=1):
            try:
                self._fold(d.event)
            except Exception:  # one bad event must not stop the scheduler
                log.exception("could not fold seq=%s subject=%s", d.seq, d.subject)
            self._changed.set()
            if last and d.seq >= last:
                task_status.started()
                last = 0

    def _fold(self, event: ev.Event) -> None:
        self.cluster.apply(event)
        if isinstance(event, ev.WorkerProvisioned) and event.provider == self.provider.name:
            self.provider.record(event.pod_id, event.worker_id)

    # --- leadership -----------------------------------------------------------------

    async def _lead(self) -> None:
        """Take the lease when free, act while it is renewed, stand by otherwise."""
        key = subjects.lease_key("scheduler", self.bus.org)
        ttl = self.limits.lease_ttl_s
        while True:
            try:
                rev = await self.bus.kv_create(
                    subjects.LEASES_BUCKET, key, self.id.encode(), ttl_s=ttl
                )
            except OWError as exc:
                log.warning("lease %s: %s", key, exc)
                rev = None
            if rev is None:
                await anyio.sleep(ttl / 3)
                continue
            try:
                await self._hold(key, rev)
            finally:
                self.is_leader = False

    async def _hold(self, key: str, rev: int) -> None:
        log.info("scheduler_id=%s leads org=%s", self.id, self.bus.org)
        self.is_leader = True
        ttl = self.limits.lease_ttl_s
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(self._act_loop)
                tg.start_soon(self._watch_pods)
                while True:
                    await anyio.sleep(ttl / 3)
                    try:
                        new = await self.bus.kv_update(
                            subjects.LEASES_BUCKET, key, self.id.encode(), rev, ttl_s=ttl
                        )
                    except OWError as exc:
                        log.warning("lease renewal failed: %s", exc)
                        continue  # the TTL decides; a later renewal may still make it
                    if new is None:
                        log.warning("scheduler_id=%s lost the lease of org=%s",
                                    self.id, self.bus.org)
                        tg.cancel_scope.cancel()
                        return
                    rev = new
        finally:
            with (
                anyio.CancelScope(shield=True), anyio.move_on_after(2),
                contextlib.suppress(OWError),
            ):
                await self.bus.kv_delete(subjects.LEASES_BUCKET, key, last=rev)

    async def _watch_pods(self) -> None:
        """Ask the provider about the pods it recorded: one it reports exited is evidence
        that its worker is lost now (`plan`'s process_exited rule), not minutes later."""
        while True:
            for pod_id, worker_id in self.cluster.recorded_pods(self.provider.name).items():
                try:
                    status = await self.provider.status(pod_id)
                except Exception as exc:  # a provider hiccup: ask again next time
                    log.warning("status of pod_id=%s: %s", pod_id, exc)
                    continue
                if status == "exited":
                    self.cluster.exited(worker_id, f"{self.provider.name}: pod {pod_id} exited")
                    self._changed.set()
            await anyio.sleep(self.pod_poll_s)

    async def _act_loop(self) -> None:
        while True:
            with anyio.move_on_after(self.limits.tick_s):
                await self._changed.wait()
            self._changed = anyio.Event()
            await anyio.sleep(self.limits.debounce_s)  # let a burst of events land first
            try:
                await self.step()
            except Exception:  # never crash the loop: the next tick tries again
                log.exception("scheduler step failed")

    # --- one step -------------------------------------------------------------------

    async def step(self) -> list[Action]:
        """Plan once and carry the actions out; returns them (for tests and logs)."""
        now = self.clock()
        view = self.cluster.snapshot(await self._reservations(), self.provider.offers)
        actions = plan(view, now, self.limits)
        due = self._last_reconcile is None or (
            now - self._last_reconcile >= timedelta(seconds=self.limits.tick_s)
        )
        if due:
            self._last_reconcile = now
            claim_views = await self._claims(now)
            actions += reconcile(claim_views, view, self.cluster.started_runs, now, self.limits)
        for action in actions:
            try:
                await self._do(action, now)
            except Exception:
                log.exception("action failed: %r", action)
        return actions

    async def _reservations(self) -> dict[str, str]:
        """Live provisioning reservations of this org: job_id -> worker_id."""
        prefix = subjects.lease_key("provision", self.bus.org)
        out: dict[str, str] = {}
        for key in await self.bus.kv_keys(subjects.LEASES_BUCKET, f"{prefix}.>"):
            entry = await self.bus.kv_get(subjects.LEASES_BUCKET, key)
            if entry is None:
                continue
            worker_id = entry.value.decode()
            w = self.cluster.workers.get(worker_id)
            if w is not None and w.status == "terminated":
                continue  # its worker is gone: the job may be provisioned for again
            out[decode_token(key.rsplit(".", 1)[1])] = worker_id
        return out

    async def _claims(self, now: datetime) -> list[ClaimView]:
        prefix = subjects.claim_key(self.bus.org, "x").rsplit(".", 1)[0]
        out: list[ClaimView] = []
        for key in await self.bus.kv_keys(subjects.CLAIMS_BUCKET, f"{prefix}.>"):
            entry = await self.bus.kv_get(subjects.CLAIMS_BUCKET, key)
            if entry is None:
                continue
            try:
                c = msgspec.json.decode(entry.value, type=claims.Claim)
            except msgspec.DecodeError:
                log.warning("undecodable claim %s", key)
                continue
            seen = self._claims_seen.setdefault((key, entry.revision), now)
            out.append(ClaimView(
                job_id=decode_token(key.split(".", 1)[1]), run_id=c.run_id,
                worker_id=c.worker_id, gen=c.gen, rev=entry.revision, done=c.done,
                first_seen=seen,
            ))
        return out

    async def _do(self, action: Action, now: datetime) -> None:
        match action:
            case Provision():
                await self._provision(action, now)
            case Terminate():
                await self._terminate(action)
            case Requeue():
                await self._requeue(action)
            case DropClaim():
                await self._drop_claim(action)
            case Notice():
                await self._notice(action.subject_id, action.rule, action.message, action.evidence)

    async def _notice(self, subject_id: str, rule: str, message: str, evidence: dict) -> None:
        self.cluster.notices[subject_id] = (rule, message)  # before it loops back: no repeat
        await self.bus.publish(ev.SchedulerNoticed(
            subject_id=subject_id, rule=rule, message=message, evidence=evidence
        ))

    async def _provision(self, a: Provision, now: datetime) -> None:
        job_id = a.job_ids[0]
        worker_id = new_id("worker")
        key = subjects.lease_key("provision", self.bus.org, job_id)
        rev = await self._reserve(key, worker_id)
        if rev is None:
            log.debug("job_id=%s is already being provisioned for", job_id)
            return
        env = {**self.worker_env, **self.worker_credentials(worker_id)}
        try:
            pod_id, price = await self.provider.provision(worker_id, a.hardware, a.image, env)
        except Exception as exc:
            err = exc if isinstance(exc, ProviderError) else ProviderError(
                self.provider.name, f"{type(exc).__name__}: {exc}"
            )
            err.message = _scrubbed(err.message, env)  # it goes into an event
            err.args = (f"{err.provider}: {err.message}",)
            await self._provider_failed(err, a, key, rev, now)
            return
        log.info("provisioned worker_id=%s pod_id=%s (%s) for %s",
                 worker_id, pod_id, a.hardware.name, a.job_ids)
        await self.bus.publish(ev.WorkerProvisioned(
            worker_id=worker_id, provider=self.provider.name, pod_id=pod_id,
            hardware=a.hardware.name, image=a.image, price_per_hour=price,
            job_ids=list(a.job_ids),
        ))

    async def _reserve(self, key: str, worker_id: str) -> int | None:
        """Reserve a job's provisioning; a reservation left by a worker that is terminated
        (it died before it took the job) is taken over, CAS on its revision."""
        ttl = self.limits.reservation_ttl_s
        rev = await self.bus.kv_create(subjects.LEASES_BUCKET, key, worker_id.encode(), ttl_s=ttl)
        if rev is not None:
            return rev
        entry = await self.bus.kv_get(subjects.LEASES_BUCKET, key)
        held = self.cluster.workers.get(entry.value.decode()) if entry else None
        if entry is None or held is None or held.status != "terminated":
            return None
        return await self.bus.kv_update(
            subjects.LEASES_BUCKET, key, worker_id.encode(), entry.revision, ttl_s=ttl
        )

    async def _provider_failed(
        self, err: ProviderError, a: Provision, key: str, rev: int, now: datetime
    ) -> None:
        cool_key = ALL_HARDWARE if isinstance(err, QuotaError) else a.hardware.name
        failures = self.cluster.failures.get(cool_key, 0) + 1
        cooldown_s = cooldown_for(failures, self.limits)
        until = now + timedelta(seconds=cooldown_s)
        self.cluster.cool_down(cool_key, until, failures)
        log.warning("provider %s failed: %s; %s cools down until %s (failure %d in a row)",
                    err.provider, err, cool_key, until, failures)
        await self.bus.kv_delete(subjects.LEASES_BUCKET, key, last=rev)
        await self._notice(a.job_ids[0], PROVIDER_ERROR, err.message, {
            "rule": PROVIDER_ERROR, "provider": err.provider, "kind": err.kind,
            "hardware": a.hardware.name, "job_ids": list(a.job_ids), "cooldown_key": cool_key,
            "failures": failures, "cooldown_s": cooldown_s, "cooldown_until": until.isoformat(),
        })

    async def _terminate(self, a: Terminate) -> None:
        pod_done = False
        if a.pod_id:
            owner = self.cluster.pods.get(a.pod_id, ("", ""))[0]
            if owner != self.provider.name:
                log.debug("pod_id=%s belongs to provider %r, not ours", a.pod_id, owner)
            elif ("pod", a.pod_id) in self._done:
                pod_done = True
            else:
                try:
                    await self.provider.terminate(a.pod_id)
                except PodNotRecordedError as exc:
                    log.error("%s", exc)
                    return
                except ProviderError as exc:
                    log.warning("could not terminate pod_id=%s: %s", a.pod_id, exc)
                    return  # planned again on the next step
                self._done.add(("pod", a.pod_id))
                pod_done = True
        w = self.cluster.workers.get(a.worker_id)
        already = w is not None and w.status == "terminated"
        mark = ("terminated", a.worker_id, str(pod_done))
        if (already and not pod_done) or mark in self._done:
            return
        self._done.add(mark)
        await self.bus.publish(ev.WorkerTerminated(
            worker_id=a.worker_id, reason=a.reason,
            evidence={**a.evidence, "pod_id": a.pod_id, "pod_terminated": pod_done},
        ))

    async def _requeue(self, a: Requeue) -> None:
        if ("requeue", a.run_id) in self._done:
            return
        # every scheduler requeue retires the run's worker (lost, past its TTL, terminated)
        released = await claims.release(
            self.bus, a.job_id, a.run_id, a.reason, a.evidence, worker_gone=True
        )
        if not released and await claims.current(self.bus, a.job_id) is None:
            job = self.cluster.jobs.get(a.job_id)
            run = job.current_run if job else None
            if run is not None and run.run_id == a.run_id:
                # the claim is gone but the job still shows the run: finish the requeue
                await self.bus.publish(ev.JobRequeued(
                    job_id=a.job_id, run_id=a.run_id, reason=a.reason,
                    evidence={**a.evidence, "repaired": "claim already deleted"},
                    worker_gone=True,
                ))
                released = True
        if released:
            self._done.add(("requeue", a.run_id))
            log.info("requeued job_id=%s run_id=%s: %s", a.job_id, a.run_id, a.reason)

    async def _drop_claim(self, a: DropClaim) -> None:
        key = subjects.claim_key(self.bus.org, a.job_id)
        if await self.bus.kv_delete(subjects.CLAIMS_BUCKET, key, last=a.rev):
            log.info("dropped claim of job_id=%s run_id=%s: %s", a.job_id, a.run_id, a.reason)


def _scrubbed(text: str, env: Mapping[str, str]) -> str:
    """`text` with the credentials a worker is given (its token, its org's secrets key)
    masked, should a provider echo them back in an error."""
    for name in ("OW_TOKEN", "OW_ORG_SECRET_KEY"):
        if value := env.get(name):
            text = text.replace(value, f"<{name}>")
    return text
