"""The agent: register, heartbeat, take pending jobs from the dispatch consumer, claim, run.

Dispatch: every job event of the org goes through one shared durable pull consumer, so each
event is handed to one agent at a time (no thundering herd); the KV `create` of the claim
is the fence, not the dispatcher. A dispatch message is acknowledged only once its job has
left `pending` (this agent started it, or someone else did), so a pending job is never
forgotten; an agent that cannot serve a job gives it back with a growing delay.

Imports: anyio, `ow.core`, `ow.agent`.
"""

from __future__ import annotations

import logging
import os
import random
import socket
import tempfile
from pathlib import Path
from typing import Any

import anyio
import nats.errors

from ow.agent import policy
from ow.agent.policy import Hardware
from ow.agent.runner import Execution, child_env, isolation_for, kill_group
from ow.core import bus as bus_mod
from ow.core import claims, defaults, subjects
from ow.core import events as ev
from ow.core.config import Config
from ow.core.errors import ConfigError, ConflictError, OWError
from ow.core.ids import new_id
from ow.core.state import JobState, apply, fold_all, fold_worker
from ow.core.tenancy import open_server

__all__ = ["Agent"]

log = logging.getLogger(__name__)

_DISPATCHING = (ev.JobSubmitted, ev.JobReset, ev.JobRequeued)


class Agent:
    """One worker. `async with Agent(config, hw) as a: await a.run()`."""

    def __init__(
        self,
        config: Config,
        hardware: Hardware,
        *,
        worker_id: str | None = None,
        workdir: str | Path | None = None,
        max_failures: int = defaults.MAX_CONSECUTIVE_FAILURES,
        environ: dict[str, str] | None = None,
    ):
        self.config = config
        self.hw = hardware
        self.worker_id = worker_id or config.worker_id or new_id("worker")
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="ow-agent-"))
        self.max_failures = max_failures
        self.environ = dict(os.environ if environ is None else environ)
        self.isolation = isolation_for(config.sandbox)  # bwrap | user | none
        self.rng = random.Random()
        self.bus: bus_mod.Bus | None = None
        self.blobs: Any = None
        self.current: Execution | None = None
        self.failures = 0
        self._stopping = False
        self._scope: anyio.CancelScope | None = None

    async def __aenter__(self) -> Agent:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.shutdown()

    def shutdown(self) -> None:
        """Stop taking jobs and leave (the running job is requeued). Idempotent."""
        self._stopping = True
        if self._scope is not None:
            self._scope.cancel()

    # --- life cycle -----------------------------------------------------------------

    async def run(self, *, task_status: Any = anyio.TASK_STATUS_IGNORED) -> None:
        """Register, then heartbeat and take jobs until shut down or drained."""
        from ow.core.blobs import store_for

        self.bus = await bus_mod.connect(
            self.config.url, org=self.config.org, actor=self.worker_id,
            token=self.config.token, name=f"ow-agent-{self.worker_id}",
        )
        await self.bus.provision(self.config.replicas)

        async def get_bus() -> bus_mod.Bus:
            assert self.bus is not None
            return self.bus

        self.blobs = store_for(self.config, get_bus)
        try:
            await self._refuse_a_terminated_id()
        except BaseException:
            await self.bus.close()
            raise
        reason = "stopped"
        try:
            await self._register()
            await self._recover_earlier_runs()
            task_status.started(self.worker_id)
            with anyio.CancelScope() as self._scope:
                async with anyio.create_task_group() as tg:
                    tg.start_soon(self._heartbeat)
                    reason = await self._take_jobs()
                    tg.cancel_scope.cancel()
        finally:
            with anyio.CancelScope(shield=True):
                await self._leave(reason)

    async def _refuse_a_terminated_id(self) -> None:
        """A terminated worker stays terminated in the fold: under its id this agent's
        registration would be rejected and every run it took requeued by the scheduler."""
        assert self.bus is not None
        history, _ = await self.bus.history(subjects.worker_subject(self.bus.org, self.worker_id))
        state = None
        for d in history:
            state = fold_worker(state, d.event)
        if state is not None and state.status == "terminated":
            raise ConfigError(
                f"worker id {self.worker_id!r} was terminated ({state.reason or 'no reason'}, "
                f"{state.terminated_at:%Y-%m-%d %H:%M:%S} UTC) and a terminated worker stays "
                "terminated: start this agent with another --worker-id, or none (one is made up)"
            )

    async def _register(self) -> None:
        assert self.bus is not None
        await self.bus.publish(
            ev.WorkerRegistered(
                worker_id=self.worker_id, hardware=self.hw.name, gpus=list(self.hw.gpus),
                vram_gb=self.hw.vram_gb, image=self.hw.image,
                cached_models=list(self.hw.cached_models), pid=os.getpid(),
                host=socket.gethostname(), isolation=self.isolation,
            )
        )

    async def _recover_earlier_runs(self) -> None:
        """Requeue runs that an earlier incarnation of this worker left holding claims."""
        assert self.bus is not None
        prefix = subjects.claim_key(self.bus.org, "x").rsplit(".", 1)[0]
        for key in await self.bus.kv_keys(subjects.CLAIMS_BUCKET, f"{prefix}.>"):
            job_id = _job_of(key)
            found = await claims.current(self.bus, job_id)
            if found and found[0].worker_id == self.worker_id and not found[0].done:
                await claims.release(
                    self.bus, job_id, found[0].run_id, "worker restarted",
                    {"rule": "earlier incarnation of the worker held the claim"},
                )

    async def _leave(self, reason: str) -> None:
        """Release the running job (requeue) and say goodbye."""
        if self.bus is None:
            return
        try:
            with anyio.move_on_after(defaults.LEAVE_TIMEOUT_S):
                await self._release_and_deregister(reason)
        finally:
            await self.bus.close()

    async def _release_and_deregister(self, reason: str) -> None:
        assert self.bus is not None
        try:
            if self.current is not None:
                run = self.current
                self.current = None
                if run.proc is not None:
                    await kill_group(run.proc)
                await claims.release(
                    self.bus, run.job_id, run.run_id, f"worker {reason}",
                    {"rule": "agent shutdown releases its claim"}, rev=run.claim_rev,
                )
            await self.bus.publish(ev.WorkerTerminated(worker_id=self.worker_id, reason=reason))
        except OWError as exc:
            log.warning("worker_id=%s could not deregister cleanly: %s", self.worker_id, exc)

    async def _heartbeat(self) -> None:
        assert self.bus is not None
        while True:
            run_id = self.current.run_id if self.current else ""
            try:
                await self.bus.publish(ev.WorkerPinged(worker_id=self.worker_id, run_id=run_id))
            except OWError as exc:
                log.warning("heartbeat failed: %s", exc)
            await anyio.sleep(self.config.heartbeat_s)

    # --- taking jobs ----------------------------------------------------------------

    async def _take_jobs(self) -> str:
        """The dispatch loop; returns why it stopped."""
        assert self.bus is not None
        sub = await self.bus.dispatch_subscription(self.bus.org)
        while not self._stopping:
            try:
                msgs = await sub.fetch(1, timeout=5)
            except (nats.errors.TimeoutError, TimeoutError):
                continue
            except nats.errors.Error as exc:
                log.warning("dispatch fetch failed (%s); retrying", exc)
                await anyio.sleep(0.5)
                continue
            for msg in msgs:
                try:
                    await self._offer(msg)
                except OWError as exc:
                    log.warning("dispatch of seq=%s failed: %s", msg.metadata.sequence.stream, exc)
                    await msg.nak(delay=policy.nak_delay(msg.metadata.num_delivered))
            if self.failures >= self.max_failures:
                assert self.bus is not None
                await self.bus.publish(
                    ev.WorkerDraining(
                        worker_id=self.worker_id,
                        reason=f"{self.failures} consecutive failed jobs: likely a bad machine",
                    )
                )
                return "drained"
        return "stopped"

    async def _offer(self, msg: Any) -> None:
        """Consider one dispatched job event: claim and run it, give it back, or drop it."""
        assert self.bus is not None
        event = self.bus._decode(msg.data, msg.metadata.sequence.stream, msg.subject)
        if not event or not isinstance(event[0], _DISPATCHING):
            await msg.ack()
            return
        first = msg.metadata.num_delivered == 1
        state, last = await self._read(event[0], msg.metadata.sequence.stream, fresh=first)
        if state is None or state.status != "pending":
            await msg.ack()
            return
        ok, why = policy.can_serve(self.hw, state.spec)
        delay = policy.claim_delay(state.spec, self.hw, self.rng)
        if not ok or (delay and msg.metadata.num_delivered == 1):
            log.debug("job_id=%s not taken: %s", state.job_id, why or "yielding to cached")
            await msg.nak(delay=delay or policy.nak_delay(msg.metadata.num_delivered))
            return
        started = await self._claim(state, last)
        if started is None:  # someone holds the claim: drop the message once the job moved on
            state, _ = await self._history(state.job_id)
            if state is None or state.status != "pending":
                await msg.ack()
            else:
                await msg.nak(delay=policy.nak_delay(msg.metadata.num_delivered))
            return
        await msg.ack()
        await self._execute(*started)

    async def _read(
        self, event: ev.Event, seq: int, fresh: bool
    ) -> tuple[JobState | None, int]:
        """The job's state; a JobSubmitted delivered for the first time is its own history."""
        if fresh and isinstance(event, ev.JobSubmitted):
            return apply(None, event)[0], seq
        return await self._history(event.job_id)

    async def _history(self, job_id: str) -> tuple[JobState | None, int]:
        assert self.bus is not None
        history, last = await self.bus.history(subjects.job_subject(self.bus.org, job_id))
        return fold_all(d.event for d in history), last

    async def _claim(
        self, state: JobState, last: int
    ) -> tuple[JobState, int, str, claims.Claim, int] | None:
        """Win the claim and publish RunStarted fenced on the job's subject sequence."""
        assert self.bus is not None
        run_id = new_id("run")
        claim = claims.Claim(gen=state.gen, worker_id=self.worker_id, run_id=run_id)
        rev = await claims.take(self.bus, state.job_id, claim)
        if rev is None:
            return None
        started = ev.RunStarted(
            run_id=run_id, job_id=state.job_id, gen=state.gen, worker_id=self.worker_id,
            claim_rev=rev,
        )
        for _ in range(5):
            try:
                seq = await self.bus.publish(started, expected_seq=last)
                return state, seq, run_id, claim, rev
            except ConflictError:
                fresh, last = await self._history(state.job_id)
                if fresh is None or fresh.status != "pending" or fresh.gen != state.gen:
                    break
                state = fresh
        await self.bus.kv_delete(
            subjects.CLAIMS_BUCKET, subjects.claim_key(self.bus.org, state.job_id), last=rev
        )
        return None

    async def _execute(
        self, state: JobState, seq: int, run_id: str, claim: claims.Claim, rev: int
    ) -> None:
        assert self.bus is not None
        state = apply(state, ev.RunStarted(
            run_id=run_id, job_id=state.job_id, gen=state.gen, worker_id=self.worker_id,
            claim_rev=rev,
        ))[0] or state
        from ow.core.secrets import job_env  # the org's secrets (decrypted) and OW_TOKEN

        workdir = self.workdir / run_id
        env = child_env(  # an allow-list of ours, never all of it (ow.agent.sandbox)
            self.environ, run_id=run_id, job_id=state.job_id, url=self.config.url,
            org=self.bus.org, secrets=await job_env(self.bus, self.config), workdir=workdir,
        )
        self.current = Execution(
            bus=self.bus, blobs=self.blobs, state=state, last_seq=seq, run_id=run_id,
            claim=claim, claim_rev=rev, workdir=workdir, env=env, isolation=self.isolation,
            hidden=(self.config.home_path, self.workdir),
            read_only=tuple(p for p in self.config.sandbox_ro.split(os.pathsep) if p),
            open_server=not self.config.token or open_server(self.config.home_path),
            keep_failed=self.config.keep_failed_runs,
        )
        log.info("worker_id=%s runs job_id=%s run_id=%s", self.worker_id, state.job_id, run_id)
        status = await self.current.run()
        self.current = None
        self.failures = self.failures + 1 if status == "failed" else 0


def _job_of(key: str) -> str:
    from ow.core.ids import decode_token

    return decode_token(key.split(".", 1)[1])

