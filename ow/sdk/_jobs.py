"""Jobs: the `Jobs` base class of job types, and the `jobs` resource (retrieve, list, wait, …).

Submission is idempotent end to end: the job id is a content hash, `JobSubmitted` carries
it as its event id (so as its Nats-Msg-Id), and it is published with an expected last
subject sequence of 0 — a compare-and-set on the job's subject — so any number of
concurrent submitters store one `JobSubmitted`. A failed or canceled job submitted again
is reset (a new generation).

Imports: `ow.core`, pydantic (user params models) and sibling sdk modules.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import anyio

from ow.core import claims, defaults, ids, subjects
from ow.core import events as ev
from ow.core.bus import READ_RANGE_ERRORS
from ow.core.errors import (
    ConflictError,
    JobCanceledError,
    JobFailedError,
    NotFoundError,
    OWError,
    ValidationError,
    WaitTimeoutError,
)
from ow.core.state import TERMINAL, JobState, apply, fold_all
from ow.sdk._objects import Job

__all__ = ["AsyncJobsResource", "Jobs"]

log = logging.getLogger(__name__)

_RESERVED = ("requires_vram_gb", "allowed_hardware", "timeout_s")


class JobFold:
    """Every job of an org folded from the log, kept between calls: each call folds only
    the events since the last (a bulk read first, nats-py's ordered consumer if that fails).
    The projection (`ow ls`) is the store for queries at scale; this serves `jobs.list`."""

    def __init__(self) -> None:
        self.jobs: dict[str, JobState] = {}
        self.seen = 0  # the last stream sequence folded
        self._lock = anyio.Lock()

    async def states(self, bus: Any) -> list[JobState]:
        filt = subjects.events_filter(bus.org, "job")
        async with self._lock:
            last = await bus.last_seq(subjects.EVENTS_STREAM, filt)
            if last > self.seen:
                await self._read(bus, filt, last)
            return list(self.jobs.values())

    async def _read(self, bus: Any, filt: str, last: int) -> None:
        try:
            async for part in bus.read_range(subjects.EVENTS_STREAM, filt, self.seen + 1, last):
                for seq, subject, data, _ in part:
                    for event in bus._decode(data, seq, subject):  # skips (and logs) bad ones
                        self._apply(event)
                    self.seen = seq
        except READ_RANGE_ERRORS as exc:
            log.info("bulk read of the jobs stopped (%s); reading on through nats-py", exc)
        if self.seen < last:
            async for d in bus.subscribe(filt, start_seq=self.seen + 1, stop_at=last):
                self._apply(d.event)
                self.seen = d.seq

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

    def __init__(self, client: Any):
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
        """Submit a job whose params are already validated."""
        dumped = _dump(validated)
        mounted = await self._upload_mounts()
        entrypoint = self.get_entrypoint(validated)
        params = {"validated_params": dumped, **(extra_params or {})}
        image = self.base_image
        content = {"params": params, "mounted_files": mounted, "entrypoint": entrypoint}
        job_id = ids.job_id(self.job_type, content, image, self.client.org)
        named = self.with_job_id(validated, job_id)
        if named is not validated:  # params that name something after the job (hook below)
            dumped, entrypoint = _dump(named), self.get_entrypoint(named)
            params = {"validated_params": dumped, **(extra_params or {})}
        spec = ev.JobSubmitted(
            event_id=job_id, job_id=job_id, job_type=self.job_type,
            model=model if model is not None else str(dumped.get("model", "")),
            params=params, mounted_files=mounted, entrypoint=entrypoint, image=image,
            requires_vram_gb=self.requires_vram_gb if requires_vram_gb is None
            else requires_vram_gb,
            allowed_hardware=list(allowed_hardware or []),
            timeout_s=self.timeout_s if timeout_s is None else timeout_s,
        )
        return await self.client.jobs.submit(spec)

    async def _upload_mounts(self) -> dict[str, str]:
        """Upload every mounted file (directories recursively): {dest path: file id}."""
        mounted: dict[str, str] = {}
        for src, dest in self.mount.items():
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


class AsyncJobsResource:
    """`ow.jobs`: read, list, wait for, cancel and restart jobs."""

    def __init__(self, client: Any):
        self.client = client

    async def _read(self, job_id: str) -> tuple[JobState | None, int]:
        bus = await self.client.bus()
        history, last = await bus.history(subjects.job_subject(bus.org, job_id))
        return fold_all(d.event for d in history), last

    async def retrieve(self, job_id: str) -> Job:
        """The job as of now (reads its own subject and folds: read-your-writes)."""
        state, _ = await self._read(job_id)
        if state is None:
            raise NotFoundError("job", job_id, f"no such job in org {self.client.org!r}")
        return Job(state, self.client)

    async def submit(self, spec: ev.JobSubmitted) -> Job:
        """Publish a job spec once; an existing job is returned, a failed/canceled one reset."""
        bus = await self.client.bus()
        for _ in range(10):
            state, last = await self._read(spec.job_id)
            try:
                if state is None:
                    await bus.publish(spec, expected_seq=0)
                elif state.status in ("failed", "canceled"):
                    await self._reset(state, last, "resubmitted")
                else:
                    return Job(state, self.client)
            except ConflictError:
                continue  # someone else wrote first: read again
        return await self.retrieve(spec.job_id)

    async def _reset(self, state: JobState, last: int, reason: str) -> None:
        bus = await self.client.bus()
        found = await claims.current(bus, state.job_id)
        if found is not None:
            key = subjects.claim_key(bus.org, state.job_id)
            if not await bus.kv_delete(subjects.CLAIMS_BUCKET, key, last=found[1]):
                raise ConflictError(key, found[1], "the claim moved while resetting")
        await bus.publish(ev.JobReset(job_id=state.job_id, reason=reason), expected_seq=last)

    async def restart(self, job_id: str) -> Job:
        """Run a finished job again (a new generation); earlier runs are kept."""
        for _ in range(10):
            state, last = await self._read(job_id)
            if state is None:
                raise NotFoundError("job", job_id)
            if state.status not in TERMINAL:
                return Job(state, self.client)
            try:
                await self._reset(state, last, "restart")
            except ConflictError:
                continue
            return await self.retrieve(job_id)
        raise OWError(f"could not restart {job_id}: it keeps changing")

    async def cancel(self, job_id: str) -> Job:
        """Ask for cancellation: a pending job is canceled at once, a running one is killed."""
        bus = await self.client.bus()
        for _ in range(10):
            state, last = await self._read(job_id)
            if state is None:
                raise NotFoundError("job", job_id)
            if state.status in TERMINAL or state.cancel_requested:
                return Job(state, self.client)
            try:
                await bus.publish(ev.JobCancelRequested(job_id=job_id), expected_seq=last)
            except ConflictError:
                continue
            return await self.retrieve(job_id)
        raise OWError(f"could not cancel {job_id}: it keeps changing")

    async def wait(self, job_id: str, timeout: float | None = None) -> Job:  # noqa: ASYNC109
        """Wait for the job's terminal event (a subscription, not a polling loop)."""
        bus = await self.client.bus()
        state, last = await self._read(job_id)
        if state is None:
            raise NotFoundError("job", job_id)
        try:
            with anyio.fail_after(timeout):
                if state.status not in TERMINAL:
                    subject = subjects.job_subject(bus.org, job_id)
                    async for d in bus.subscribe(subject, start_seq=last + 1):
                        state, _ = apply(state, d.event)
                        if state.status in TERMINAL:
                            break
        except TimeoutError as exc:
            raise WaitTimeoutError(
                f"job {job_id} still {state.status} after {timeout}s; it goes on running"
            ) from exc
        job = Job(state, self.client)
        if state.status == "failed":
            raise JobFailedError(job_id, job.runs[-1].id if job.runs else "", state.error)
        if state.status == "canceled":
            raise JobCanceledError(job_id)
        return job

    async def list(
        self, status: str | None = None, type: str | None = None, limit: int | None = None
    ) -> list[Job]:
        """Jobs of the org, newest first, optionally filtered by status and type."""
        states = await self._all()
        out = [
            Job(s, self.client) for s in states
            if (status is None or s.status == status) and (type is None or s.spec.job_type == type)
        ]
        out.sort(key=lambda j: j.created_at or ev.now(), reverse=True)
        return out[:limit] if limit else out

    async def find(self, **params: Any) -> list[Job]:
        """Jobs whose validated params contain all the given key/values."""
        return [
            j for j in await self.list()
            if all(j.params.get("validated_params", {}).get(k) == v for k, v in params.items())
        ]

    async def _all(self) -> list[JobState]:
        """Every job of the org, folded from the log (incrementally: see `JobFold`)."""
        return await self.client._job_fold.states(await self.client.bus())

    async def download(self, job_id: str, dest: str, only_last_run: bool = True) -> Path:
        """Download artifacts and logs of the job's runs into `dest/<run_id>/…`."""
        job = await self.retrieve(job_id)
        runs = job.runs[-1:] if only_last_run else job.runs
        root = Path(dest)
        for run in runs:
            base = root if only_last_run else root / run.id
            for path, file_id in run.artifacts.items():
                await self.client.files.download(file_id, base / path)
            if run.log_file:
                await self.client.files.download(run.log_file, base / "log.txt")
        os.makedirs(root, exist_ok=True)
        return root
