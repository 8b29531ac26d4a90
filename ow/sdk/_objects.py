"""The objects the SDK hands back: `Job` and `Run`, read-only views of a folded state.

A `Job` is mapping-like (`job["outputs"]`, as openweights users write) and has methods
(`refresh`, `wait`, `download`, `cancel`, `restart`). They call the async client; when the
job came through the sync facade they run through its portal, so one implementation serves
both.

Imports: stdlib and `ow.core`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

from ow.core.errors import UnsupportedError
from ow.core.state import JobState, RunState

if TYPE_CHECKING:
    from ow.sdk._client import AsyncOpenWeights

__all__ = ["Job", "Run"]


class Run:
    """One execution of a job: `events` (its logged records), `download(dir)`, `run["id"]`."""

    def __init__(
        self, state: RunState, client: AsyncOpenWeights | None = None, portal: Any = None
    ):
        self._state = state
        self._client = client
        self._portal = portal
        self.id = state.run_id
        self.job_id = state.job_id
        self.status = state.status
        self.gen = state.gen
        self.worker_id = state.worker_id
        self.log_file = state.log_file
        self.exit_code = state.exit_code
        self.error = state.error
        self.outputs = state.outputs
        self.started_at: datetime | None = state.started_at
        self.finished_at: datetime | None = state.finished_at
        self.artifacts = dict(state.artifacts)

    def __repr__(self) -> str:
        return f"Run(id={self.id!r}, status={self.status!r}, worker={self.worker_id!r})"

    def __getitem__(self, key: str) -> Any:
        return getattr(self, key)

    def _call(self, fn: Any, *args: Any) -> Any:
        if self._client is None:
            raise UnsupportedError("this Run was built without a client; read it via ow.runs")
        if self._portal is not None:
            return self._portal.call(lambda: fn(*args))
        return fn(*args)

    @property
    def events(self) -> Any:
        """The records this run logged, oldest first (awaitable on the async client)."""
        return self._call(lambda: self._client.events.list(run_id=self.id))

    def download(self, target_dir: str) -> Any:
        """Download this run's artifacts and log into `target_dir`."""
        return self._call(self._client.runs.download, self.id, target_dir)


class Job(Mapping[str, Any]):
    """A job as of its last read. `refresh()` reads it again."""

    def __init__(self, state: JobState, client: AsyncOpenWeights, portal: Any = None):
        self._state = state
        self._client = client
        self._portal = portal
        spec = state.spec
        self.id = state.job_id
        self.type = spec.job_type
        self.status = state.status
        self.model = spec.model
        self.params = spec.params
        self.mounted_files = spec.mounted_files
        self.entrypoint = spec.entrypoint
        self.image = spec.image
        self.requires_vram_gb = spec.requires_vram_gb
        self.allowed_hardware = spec.allowed_hardware
        self.outputs = state.outputs
        self.error = state.error
        self.gen = state.gen
        self.created_at = state.created_at
        self.updated_at = state.updated_at
        self.runs = [Run(r, client, portal) for r in state.runs]

    @property
    def worker_id(self) -> str | None:
        """The worker of the latest run (None before any run), as openweights' job row."""
        return self.runs[-1].worker_id if self.runs else None

    @property
    def checkpoint(self) -> tuple[int, str] | None:
        """(step, file id) of the job's last published checkpoint, or None."""
        return self._state.checkpoint

    # --- mapping view (openweights code indexes jobs like dicts) --------------------

    def _fields(self) -> dict[str, Any]:
        return {
            "id": self.id, "type": self.type, "status": self.status, "model": self.model,
            "params": self.params, "outputs": self.outputs, "error": self.error,
            "requires_vram_gb": self.requires_vram_gb, "allowed_hardware": self.allowed_hardware,
            "docker_image": self.image, "script": self.entrypoint, "worker_id": self.worker_id,
            "created_at": self.created_at, "updated_at": self.updated_at,
        }

    def __getitem__(self, key: str) -> Any:
        return self._fields()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._fields())

    def __len__(self) -> int:
        return len(self._fields())

    def __repr__(self) -> str:
        return f"Job(id={self.id!r}, type={self.type!r}, status={self.status!r})"

    # --- methods --------------------------------------------------------------------

    def _call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        if self._portal is not None:
            result = self._portal.call(lambda: fn(*args, **kwargs))
            return _bind(result, self._portal)
        return fn(*args, **kwargs)

    def refresh(self) -> Any:
        """Read the job again; returns the fresh Job (and updates this one)."""
        return self._call(self._refresh)

    async def _refresh(self) -> Job:
        fresh = await self._client.jobs.retrieve(self.id)
        self.__dict__.update({k: v for k, v in fresh.__dict__.items() if k != "_portal"})
        return self

    def wait(self, timeout: float | None = None) -> Any:
        """Wait for the job to end: the completed Job, or JobFailedError/JobCanceledError."""
        return self._call(self._client.jobs.wait, self.id, timeout)

    @property
    def pending_reason(self) -> str | None:
        """Why this pending job is not running yet, as the scheduler said it (read now), e.g.
        "needs 24 GB VRAM; the largest worker here has 0 GB; ..."; None when it is not
        pending or nothing is in its way. In async code: `await client.jobs.pending_reason(id)`.
        """
        if self._portal is None:
            from ow.core.errors import UnsupportedError

            raise UnsupportedError(f"job.pending_reason reads the log: in async code use "
                          f"`await client.jobs.pending_reason({self.id!r})`")
        return self._portal.call(self._client.jobs.pending_reason, self.id)

    def cancel(self) -> Any:
        return self._call(self._client.jobs.cancel, self.id)

    def restart(self) -> Any:
        return self._call(self._client.jobs.restart, self.id)

    def download(self, dest: str, only_last_run: bool = True) -> Any:
        """Download the artifacts (and logs) of the job's runs into `dest`."""
        return self._call(self._client.jobs.download, self.id, dest, only_last_run)


def _bind(result: Any, portal: Any) -> Any:
    """Give Jobs returned through the sync facade the portal, so their methods are sync."""
    items = result if isinstance(result, list) else [result]
    for item in items:
        if isinstance(item, Job):
            item._portal = portal
            for run in item.runs:
                run._portal = portal
        elif isinstance(item, Run):
            item._portal = portal
    return result
