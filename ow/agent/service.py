"""The agent: register, heartbeat, take pending jobs from the dispatch consumer, claim, run.

Dispatch: every job event of the org goes through one shared durable pull consumer, so each
event is handed to one agent at a time (no thundering herd); the KV `create` of the claim
is the fence, not the dispatcher. A dispatch message is acknowledged only once its job has
left `pending` (this agent started it, or someone else did), so a pending job is never
forgotten; an agent that cannot serve a job gives it back with a growing delay. What to do
with each offered job event is `policy.offer`'s decision (take, give back, drop).

An agent that sees its own `WorkerTerminated` (the scheduler reaped it, its pod's TTL expired,
an operator ended it) stops at once: it kills its job, publishes nothing more about it (whoever
terminated the worker requeues the run) and exits saying why (`Agent.terminated`).

Imports: anyio, `ow.core`, `ow.agent`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
import socket
import tempfile
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import anyio

from ow.agent import policy
from ow.agent.policy import Hardware
from ow.agent.runner import Execution, child_env, isolation_for, kill_group
from ow.core import bus as bus_mod
from ow.core import claims, commands, defaults, subjects
from ow.core import events as ev
from ow.core.config import Config
from ow.core.errors import ConfigError, ConflictError, NotConnectedError, OWError
from ow.core.ids import new_id
from ow.core.state import JobState, apply, fold_all, fold_worker
from ow.core.tenancy import open_server

if TYPE_CHECKING:
    from ow.core.blobs import BlobStore

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
        self.worker_id = worker_id or config.worker_id or _credential_worker(config.token) \
            or new_id("worker")
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="ow-agent-"))
        self.max_failures = max_failures
        self.environ = dict(os.environ if environ is None else environ)
        self.isolation = isolation_for(config.sandbox)  # bwrap | user | none
        self.rng = random.Random()
        self._bus: bus_mod.Bus | None = None  # connected by `run`
        self._blobs: BlobStore | None = None
        self.current: Execution | None = None
        #: the run won, from its RunStarted until its result is out: a shutdown releases it
        #: even before `current` exists (credentials, secrets, files)
        self.held: Held | None = None
        self.failures = 0
        self._stopping = False
        self._scope: anyio.CancelScope | None = None
        self.terminated = ""  # why this worker was terminated (by someone else), if it was

    @property
    def bus(self) -> bus_mod.Bus:
        """The agent's connection, from the start of `run` on."""
        if self._bus is None:
            raise NotConnectedError(
                f"agent {self.worker_id} is not connected yet: start it with `await "
                "tg.start(agent.run)` (or run it) before using its bus"
            )
        return self._bus

    @property
    def blobs(self) -> BlobStore:
        """Where the agent's files live (the configured blob store), from `run` on."""
        if self._blobs is None:
            raise NotConnectedError(
                f"agent {self.worker_id} has no blob store yet: it is made when `run` starts"
            )
        return self._blobs

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

        self._bus = await bus_mod.connect(
            self.config.url, org=self.config.org, actor=self.worker_id,
            token=self.config.token, name=f"ow-agent-{self.worker_id}",
        )
        await self.bus.provision(self.config.replicas)

        async def get_bus() -> bus_mod.Bus:
            return self.bus

        self._blobs = store_for(self.config, get_bus)
        try:
            seen = await self._refuse_a_terminated_id()
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
                    tg.start_soon(self._watch_termination, seen + 1)
                    reason = await self._take_jobs()
                    tg.cancel_scope.cancel()
        finally:
            with anyio.CancelScope(shield=True):
                await self._leave(reason)
        if self.terminated:
            log.error("worker_id=%s was terminated (%s): its job was stopped and it takes no "
                      "more work", self.worker_id, self.terminated)

    async def _watch_termination(self, start_seq: int) -> None:
        """Stop at once on this worker's own `WorkerTerminated` (a scheduler reaped it, its pod
        TTL expired, an operator ended it): a terminated worker never runs a job again."""
        subject = subjects.worker_subject(self.bus.org, self.worker_id)
        async for d in self.bus.subscribe(subject, start_seq=start_seq):
            if isinstance(d.event, ev.WorkerTerminated) and not self._stopping:
                self.terminated = d.event.reason or "no reason given"
                self.shutdown()
                return

    async def _refuse_a_terminated_id(self) -> int:
        """A terminated worker stays terminated in the fold: under its id this agent's
        registration would be rejected and every run it took requeued by the scheduler.
        Returns the last sequence of the worker's subject (where its watch starts)."""
        subject = subjects.worker_subject(self.bus.org, self.worker_id)
        history, last = await self.bus.history(subject)
        state = None
        for d in history:
            state = fold_worker(state, d.event)
        if state is not None and state.status == "terminated":
            raise ConfigError(
                f"worker id {self.worker_id!r} was terminated ({state.reason or 'no reason'}, "
                f"{state.terminated_at:%Y-%m-%d %H:%M:%S} UTC) and a terminated worker stays "
                "terminated: start this agent with another --worker-id, or none (one is made up)"
            )
        return last

    async def _register(self) -> None:
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
        try:
            run, self.current, held, self.held = self.current, None, self.held, None
            if run is not None and run.proc is not None:
                await kill_group(run.proc)
            if held is not None and not self.terminated:  # else the terminator requeues
                await claims.release(
                    self.bus, held.job_id, held.run_id, f"worker {reason}",
                    {"rule": "agent shutdown releases its claim"}, rev=held.rev,
                )
            if not self.terminated:
                await self.bus.publish(
                    ev.WorkerTerminated(worker_id=self.worker_id, reason=reason)
                )
        except OWError as exc:
            log.warning("worker_id=%s could not deregister cleanly: %s", self.worker_id, exc)

    async def _heartbeat(self) -> None:
        while True:
            run_id = self.held.run_id if self.held else ""
            try:
                await self.bus.publish(ev.WorkerPinged(worker_id=self.worker_id, run_id=run_id))
            except OWError as exc:
                log.warning("heartbeat failed: %s", exc)
            await anyio.sleep(self.config.heartbeat_s)

    # --- taking jobs ----------------------------------------------------------------

    async def _take_jobs(self) -> str:
        """The dispatch loop; returns why it stopped."""
        dispatch = await self.bus.dispatch(self.bus.org)
        while not self._stopping:
            for offered in await dispatch.next(timeout_s=5):
                try:
                    await self._offer(offered)
                except OWError as exc:
                    log.warning("dispatch of seq=%s failed: %s", offered.seq, exc)
                    await offered.give_back(policy.nak_delay(offered.delivered))
            if self.failures >= self.max_failures:
                await self.bus.publish(
                    ev.WorkerDraining(
                        worker_id=self.worker_id,
                        reason=f"{self.failures} consecutive failed jobs: likely a bad machine",
                    )
                )
                return "drained"
        return "stopped"

    async def _offer(self, offered: bus_mod.Offer) -> None:
        """Consider one dispatched job event: claim and run it, give it back, or drop it."""
        event = offered.events[0] if offered.events else None
        state, last = None, 0
        if isinstance(event, _DISPATCHING):
            state, last = await self._read(event, offered.seq, fresh=offered.delivered == 1)
        delay = policy.claim_delay(state.spec, self.hw, self.rng) if state else 0.0
        await self._decided(offered, state, last,
                            policy.offer(state, self.hw, offered.delivered, claim_delay_s=delay))

    async def _decided(
        self, offered: bus_mod.Offer, state: JobState | None, last: int,
        decision: policy.Decision,
    ) -> None:
        """Carry out `policy.offer`'s decision about an offered job event."""
        match decision:
            case policy.Take() if state is not None:
                started = await self._claim(state, last)
                if started is None:  # lost the race: decide again on the job as it is now
                    fresh, _ = await self._history(state.job_id)
                    await self._decided(offered, fresh, 0, policy.offer(
                        fresh, self.hw, offered.delivered, claim_lost=True))
                    return
                await offered.take()
                await self._execute(*started)
            case policy.GiveBack(delay_s=delay_s, why=why):
                log.debug("seq=%s given back for %.2fs: %s", offered.seq, delay_s, why)
                await offered.give_back(delay_s)
            case _:
                await offered.take()

    async def _read(
        self, event: ev.Event, seq: int, fresh: bool
    ) -> tuple[JobState | None, int]:
        """The job's state; a JobSubmitted delivered for the first time is its own history."""
        if fresh and isinstance(event, ev.JobSubmitted):
            return apply(None, event)[0], seq
        return await self._history(event.job_id)

    async def _history(self, job_id: str) -> tuple[JobState | None, int]:
        history, last = await self.bus.history(subjects.job_subject(self.bus.org, job_id))
        return fold_all(d.event for d in history), last

    async def _claim(
        self, state: JobState, last: int
    ) -> tuple[JobState, int, str, claims.Claim, int] | None:
        """Win the claim and publish RunStarted fenced on the job's subject sequence."""
        run_id = new_id("run")
        claim = claims.Claim(gen=state.gen, worker_id=self.worker_id, run_id=run_id)
        rev = await claims.take(self.bus, state.job_id, claim)
        if rev is None:
            return None
        started = ev.RunStarted(
            run_id=run_id, job_id=state.job_id, gen=state.gen, worker_id=self.worker_id,
            claim_rev=rev,
        )
        bus = self.bus

        async def act(
            decision: commands.Decision, fresh: JobState | None
        ) -> tuple[JobState, int] | None:
            if not isinstance(decision, commands.Publish) or fresh is None:
                return None  # no longer pending at this generation: give the claim back
            return fresh, await bus.publish(started, expected_seq=decision.expected_seq)

        with contextlib.suppress(ConflictError):  # lost every race: give the claim back
            won = await commands.cas(
                partial(self._history, state.job_id), partial(commands.start_run, started=started),
                act, first=(state, last),
                key=subjects.job_subject(bus.org, state.job_id),
            )
            if won is not None:
                self.held = Held(state.job_id, run_id, rev)
                return won[0], won[1], run_id, claim, rev
        await self.bus.kv_delete(
            subjects.CLAIMS_BUCKET, subjects.claim_key(self.bus.org, state.job_id), last=rev
        )
        return None

    async def _execute(
        self, state: JobState, seq: int, run_id: str, claim: claims.Claim, rev: int
    ) -> None:
        state = apply(state, ev.RunStarted(
            run_id=run_id, job_id=state.job_id, gen=state.gen, worker_id=self.worker_id,
            claim_rev=rev,
        ))[0] or state
        from ow.core.secrets import job_env, readable_files  # secrets (decrypted), OW_TOKEN

        workdir = self.workdir / run_id
        env = child_env(  # an allow-list of ours, never all of it (ow.agent.sandbox)
            self.environ, run_id=run_id, job_id=state.job_id, url=self.config.url,
            org=self.bus.org, workdir=workdir, secrets=await job_env(
                self.bus, self.config, job_id=state.job_id, run_id=run_id,
                timeout_s=state.spec.timeout_s, checkpoint=state.checkpoint,
                files=await readable_files(self.blobs, self.bus.org, state.spec,
                                           state.checkpoint)),
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
        try:
            status = await self.current.run()
        except OWError as exc:  # the server stayed away past every retry: hand the job on
            log.warning("run_id=%s could not report (%s); releasing its claim", run_id, exc)
            with contextlib.suppress(OWError):
                await claims.release(self.bus, state.job_id, run_id, "result not reported",
                                     {"rule": "agent could not reach the server"}, rev=rev)
            status = ""
        # (not in a `finally`: on cancellation `_leave` still needs them to kill and release)
        self.current, self.held = None, None
        self.failures = self.failures + 1 if status == "failed" else 0


class Held(NamedTuple):
    """A run this agent won (its claim and RunStarted), by its claim's revision."""

    job_id: str
    run_id: str
    rev: int


def _job_of(key: str) -> str:
    from ow.core.ids import decode_token

    return decode_token(key.split(".", 1)[1])


def _credential_worker(token: str) -> str:
    """The worker id a worker credential was issued for ('' for any other token)."""
    from ow.core import credentials

    return credentials.parse(token).worker_id if credentials.is_credential(token) else ""
