"""Jobs: the `Jobs` base class of job types, and the `jobs` resource (retrieve, list, wait, …).

Submission is idempotent end to end: the job id is a content hash, `JobSubmitted` carries
it as its event id (so as its Nats-Msg-Id), and it is published with an expected last
subject sequence of 0 — a compare-and-set on the job's subject — so any number of
concurrent submitters store one `JobSubmitted`. A failed or canceled job submitted again
is reset (a new generation).

Imports: `ow.core`, `ow.projections.client` (lazily: asking the read service), pydantic
(user params models) and sibling sdk modules.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import msgspec

from ow.core import claims, codec, commands, defaults, ids, subjects
from ow.core import events as ev
from ow.core.errors import (
    BusUnavailableError,
    ConflictError,
    JobCanceledError,
    JobFailedError,
    NoServiceError,
    NotFoundError,
    ServiceBehindError,
    ValidationError,
    WaitTimeoutError,
)
from ow.core.files import inside, relative_path
from ow.core.state import TERMINAL, JobState, apply, fold_all
from ow.core.validate import job_problems
from ow.sdk._objects import Job
from ow.sdk._resource import AsyncResource

if TYPE_CHECKING:
    from ow.core.bus import Bus
    from ow.sdk._client import AsyncOpenWeights

__all__ = ["AsyncJobsResource", "Jobs"]

log = logging.getLogger(__name__)

_RESERVED = ("requires_vram_gb", "allowed_hardware", "timeout_s")
_state_dec = msgspec.json.Decoder(JobState)


class JobFold:
    """The SDK's job lists: asked of the read service (`job_states`, `find_jobs`, at least
    as far as the log is now), or, with no service answering, every job of the org folded
    from the log and kept between calls: each call folds only the events since the last
    (through the bus's one reader, `Bus.read`)."""

    def __init__(self) -> None:
        self.jobs: dict[str, JobState] = {}
        self.seen = 0  # the last stream sequence folded
        self._lock = anyio.Lock()
        self._noticed = False

    async def served(self, bus: Bus, query: str, params: dict[str, Any]) -> list[JobState] | None:
        """The read service's answer to a job query, or None if no service answers."""
        from ow.projections.client import BUSY_NOTICE, FALLBACK_NOTICE, Reader

        try:
            reader = Reader(bus, fallback=False, timeout=defaults.QUERY_TIMEOUT_S)
            states = await reader.result(query, params)
        except NoServiceError:
            if not self._noticed:
                self._noticed = True
                log.info(FALLBACK_NOTICE.format(org=bus.org))
            return None
        except (ServiceBehindError, BusUnavailableError) as exc:  # there, but not answering
            log.warning(BUSY_NOTICE.format(org=bus.org, why=exc))
            return None
        return [_state_dec.decode(s) for s in states]

    async def states(self, bus: Bus) -> list[JobState]:
        filt = subjects.events_filter(bus.org, "job")
        async with self._lock:
            last = await bus.last_seq(subjects.EVENTS_STREAM, filt)
            if last > self.seen:
                await self._read(bus, filt, last)
            return list(self.jobs.values())

    async def _read(self, bus: Bus, filt: str, last: int) -> None:
        async for batch in bus.read(subjects.EVENTS_STREAM, filt, start_seq=self.seen + 1,
                                    stop_at=last):
            for seq, subject, data, _ in batch:
                for event in codec.decode_or_skip(data, seq, subject):  # logs, skips bad ones
                    self._apply(event)
                self.seen = seq

    def _apply(self, event: ev.Event) -> None:
        jid = getattr(event, "job_id", "")
        state, _ = apply(self.jobs.get(jid), event)
        if state is not None:
            self.jobs[jid] = state


class Jobs:
    """Base class of a job type: subclass, set the attributes, decorate with `@register`."""

    job_type: str = "custom"
    mount: dict[str, str] = {}
    params: Any = None  # a pydantic BaseModel (or msgspec Struct) class
    requires_vram_gb: float = defaults.DEFAULT_REQUIRES_VRAM_GB
    base_image: str = defaults.DEFAULT_IMAGE
    timeout_s: float = 0

    def __init_subclass__(cls, **kwargs: Any):
        super().__init_subclass__(**kwargs)
        cls.mount = dict(cls.mount)  # its own dict: a subclass's edits reach no other class

    def __init__(self, client: AsyncOpenWeights):
        self.client = client

    def get_entrypoint(self, validated_params: Any) -> str:
        raise NotImplementedError(f"{type(self).__name__} must define get_entrypoint(params)")

    def with_job_id(self, validated_params: Any, job_id: str) -> Any:
        """Hook: params completed with the job's id, which hashes the params as given
        (openweights' `finetuned_model_id` template names `{job_id}`). Default: unchanged."""
        return validated_params

    # --- submission -------------------------------------------------------------------

    def validate_params(self, params: dict[str, Any]) -> Any:
        """Validate user params with the job's model: ValidationError naming the field."""
        model = self.params
        if model is None:
            return params
        if hasattr(model, "model_validate"):
            import pydantic

            try:
                return model.model_validate(params)
            except pydantic.ValidationError as exc:
                problems = "; ".join(
                    f"{'.'.join(map(str, e['loc'])) or 'params'}: {e['msg']}" for e in exc.errors()
                )
                raise ValidationError(
                    f"bad params for {self.job_type}: {problems}"
                ) from exc
        import msgspec

        try:
            return msgspec.convert(params, model)
        except msgspec.ValidationError as exc:
            raise ValidationError(f"bad params for {self.job_type}: {exc}") from exc

    async def create(self, **params: Any) -> Job:
        """Validate, upload the mounts, and submit (or return the existing identical job)."""
        overrides = {k: params.pop(k) for k in _RESERVED if k in params}
        validated = self.validate_params(params)
        return await self.submit(validated, **overrides)

    async def submit(
        self,
        validated: Any,
        *,
        requires_vram_gb: float | None = None,
        allowed_hardware: list[str] | None = None,
        timeout_s: float | None = None,
        model: str | None = None,
        extra_params: dict[str, Any] | None = None,
    ) -> Job:
        """Submit a job whose params are already validated.

        The spec is checked against the event schema first (`validate.job_problems`): a
        wrong type, NaN/inf, a negative VRAM or timeout is a `ValidationError` naming the
        field, before any mount is uploaded and before anything is published."""
        dumped = _dump(validated)
        entrypoint = self.get_entrypoint(validated)
        params = {"validated_params": dumped, **(extra_params or {})}
        spec = ev.JobSubmitted(
            job_id="", job_type=self.job_type,
            model=model if model is not None else str(dumped.get("model", "")),
            params=params, entrypoint=entrypoint, image=self.base_image,
            requires_vram_gb=self.requires_vram_gb if requires_vram_gb is None
            else requires_vram_gb,
            allowed_hardware=allowed_hardware if allowed_hardware is not None else [],
            timeout_s=self.timeout_s if timeout_s is None else timeout_s,
        )
        if problems := job_problems(spec):
            raise ValidationError([msgspec.structs.replace(p, file=self.job_type)
                                   for p in problems])
        mounted = await self._upload_mounts()
        content = {"params": params, "mounted_files": mounted, "entrypoint": entrypoint}
        job_id = ids.job_id(self.job_type, content, spec.image, self.client.org)
        named = self.with_job_id(validated, job_id)
        if named is not validated:  # params that name something after the job (hook below)
            dumped = _dump(named)
            spec = msgspec.structs.replace(
                spec, entrypoint=self.get_entrypoint(named),
                params={"validated_params": dumped, **(extra_params or {})})
        spec = msgspec.structs.replace(spec, event_id=job_id, job_id=job_id,
                                       mounted_files=mounted)
        return await self.client.jobs.submit(spec)

    async def _upload_mounts(self) -> dict[str, str]:
        """Upload every mounted file (directories recursively): {dest path: file id}."""
        mounted: dict[str, str] = {}
        for src, dest in self.mount.items():
            relative_path(dest, f"mounted file (from {src!r})")  # inside the work dir
            path = Path(src).expanduser()
            if not path.exists():
                raise ValidationError(
                    f"mount source {src!r} does not exist (mounted as {dest!r}); "
                    "fix the path in the job class's `mount`"
                )
            files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
            for f in files:
                if "__pycache__" in f.parts:
                    continue
                target = dest if path.is_file() else str(Path(dest) / f.relative_to(path))
                obj = await self.client.files.upload(str(f), "custom_job_file")
                mounted[target] = obj["id"]
        return mounted


def _dump(validated: Any) -> dict[str, Any]:
    if hasattr(validated, "model_dump"):
        return validated.model_dump(mode="json")
    if isinstance(validated, dict):
        return validated
    import msgspec

    return msgspec.to_builtins(validated)


class AsyncJobsResource(AsyncResource):
    """`ow.jobs`: read, list, wait for, cancel and restart jobs."""

    async def current(self, job_id: str) -> tuple[JobState | None, int]:
        """The job's state folded from its subject (None if there is no such job) and the
        last sequence read."""
        bus = await self.client.bus()
        history, last = await bus.history(subjects.job_subject(bus.org, job_id))
        return fold_all(d.event for d in history), last

    async def retrieve(self, job_id: str) -> Job:
        """The job as of now (reads its own subject and folds: read-your-writes)."""
        state, _ = await self.current(job_id)
        if state is None:
            raise NotFoundError("job", job_id, f"no such job in org {self.client.org!r}")
        return Job(state, self.client)

    async def submit(self, spec: ev.JobSubmitted) -> Job:
        """Publish a job spec once; an existing job is returned, a failed/canceled one reset."""
        try:
            return await self._command(spec.job_id, partial(commands.submit, spec=spec))
        except ConflictError:  # others keep writing it: it exists, as it is now
            return await self.retrieve(spec.job_id)

    async def restart(self, job_id: str) -> Job:
        """Run a finished job again (a new generation); earlier runs are kept."""
        return await self._command(job_id, partial(commands.restart, job_id=job_id))

    async def cancel(self, job_id: str) -> Job:
        """Ask for cancellation: a pending job is canceled at once, a running one is killed."""
        return await self._command(job_id, partial(commands.cancel, job_id=job_id))

    async def _command(
        self, job_id: str, decide: Callable[[JobState | None, int], commands.Decision]
    ) -> Job:
        """Carry out one job command's decision, read again and decided again on a lost race."""
        bus = await self.client.bus()

        async def act(decision: commands.Decision, _: JobState | None) -> Job:
            match decision:
                case commands.Existing(state):
                    return Job(state, self.client)
                case commands.Missing():
                    raise NotFoundError("job", job_id, f"no such job in org {self.client.org!r}")
                case commands.Reset(event, seq):
                    await self._release_claim(job_id)
                    await bus.publish(event, expected_seq=seq)
                case commands.Publish(event, seq):
                    await bus.publish(event, expected_seq=seq)
            return await self.retrieve(job_id)

        return await commands.cas(
            partial(self.current, job_id), decide, act, key=subjects.job_subject(bus.org, job_id)
        )

    async def _release_claim(self, job_id: str) -> None:
        bus = await self.client.bus()
        found = await claims.current(bus, job_id)
        if found is not None:
            key = subjects.claim_key(bus.org, job_id)
            if not await bus.kv_delete(subjects.CLAIMS_BUCKET, key, last=found[1]):
                raise ConflictError(key, found[1], "the claim moved while resetting")

    async def wait(
        self,
        job_id: str,
        timeout: float | None = None,  # noqa: ASYNC109
        unschedulable_after: float | None = defaults.UNSCHEDULABLE_GRACE_S,
    ) -> Job:
        """Wait for the job's terminal event (a subscription, not a polling loop).

        While it waits, each reason the scheduler gives for a pending job is logged once (a
        warning on `ow.sdk`, so it shows on stderr). If the reason is that nothing here can
        ever run the job, and it stands `unschedulable_after` seconds (default 30 s: time to
        start a fitting worker by hand), UnschedulableError is raised; the job stays pending.
        `unschedulable_after=None` waits on regardless.
        """
        from ow.core.errors import UnschedulableError
        from ow.sdk import _pending

        bus = await self.client.bus()
        state, last = await self.current(job_id)
        if state is None:
            raise NotFoundError("job", job_id)
        box: dict[str, Any] = {"state": state, "stuck": None}

        def say(n: ev.SchedulerNoticed) -> None:
            log.warning("job %s is pending: %s", job_id, n.message)

        async def give_up(scope: anyio.CancelScope) -> None:
            box["stuck"] = await _pending.watch(
                bus, job_id, lambda: box["state"], say, unschedulable_after
            )
            scope.cancel()

        try:
            with anyio.fail_after(timeout):
                if state.status not in TERMINAL:
                    subject = subjects.job_subject(bus.org, job_id)
                    async with anyio.create_task_group() as tg:
                        tg.start_soon(give_up, tg.cancel_scope)
                        async for d in bus.subscribe(subject, start_seq=last + 1):
                            state, _ = apply(state, d.event)
                            box["state"] = state
                            if state.status in TERMINAL:
                                break
                        tg.cancel_scope.cancel()
        except TimeoutError as exc:
            raise WaitTimeoutError(
                f"job {job_id} still {state.status} after {timeout}s; it goes on running"
            ) from exc
        if box["stuck"] is not None and state.status not in TERMINAL:
            raise UnschedulableError(job_id, box["stuck"].message)
        job = Job(state, self.client)
        if state.status == "failed":
            raise JobFailedError(job_id, job.runs[-1].id if job.runs else "", state.error)
        if state.status == "canceled":
            raise JobCanceledError(job_id)
        return job

    async def pending_reason(self, job_id: str) -> str | None:
        """Why the pending job is not running yet (the scheduler's standing notice), or None."""
        from ow.sdk import _pending

        return await _pending.reason_of(await self.client.bus(), job_id)

    async def list(
        self, status: str | None = None, type: str | None = None, limit: int | None = None
    ) -> list[Job]:
        """Jobs of the org, newest first, optionally filtered by status and type."""
        bus = await self.client.bus()
        fold = self.client.job_fold
        served = await fold.served(bus, "job_states", {"status": status, "type": type,
                                                       "limit": limit})
        if served is not None:
            return [Job(s, self.client) for s in served]
        out = await self._folded(
            lambda s: (status is None or s.status == status)
            and (type is None or s.spec.job_type == type)
        )
        return out[:limit] if limit else out

    async def find(self, **params: Any) -> list[Job]:
        """Jobs whose validated params contain all the given key/values."""
        served = await self.client.job_fold.served(
            await self.client.bus(), "find_jobs", {"params": params}
        )
        if served is not None:
            return [Job(s, self.client) for s in served]
        return [
            j for j in await self._folded(lambda s: True)
            if all(j.params.get("validated_params", {}).get(k) == v for k, v in params.items())
        ]

    async def _folded(self, keep: Callable[[JobState], bool]) -> list[Job]:
        """The jobs of this process's own fold that `keep` keeps, newest first."""
        out = [Job(s, self.client) for s in await self._all() if keep(s)]
        out.sort(key=lambda j: j.created_at or ev.now(), reverse=True)
        return out

    async def _all(self) -> list[JobState]:
        """Every job of the org, folded from the log (incrementally: see `JobFold`)."""
        return await self.client.job_fold.states(await self.client.bus())

    async def download(self, job_id: str, dest: str, only_last_run: bool = True) -> Path:
        """Download artifacts and logs of the job's runs into `dest/<run_id>/…`."""
        job = await self.retrieve(job_id)
        runs = job.runs[-1:] if only_last_run else job.runs
        root = Path(dest)
        for run in runs:
            base = root if only_last_run else root / run.id
            for path, file_id in run.artifacts.items():  # a path the job chose: kept inside
                await self.client.files.download(file_id, inside(base, path, "artifact path"))
            if run.log_file:
                await self.client.files.download(run.log_file, base / "log.txt")
        os.makedirs(root, exist_ok=True)
        return root
