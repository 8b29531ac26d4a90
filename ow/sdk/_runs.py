"""`ow.runs`: the runs of the org's jobs (list, retrieve, download), as openweights has them.

A run lives in its job's folded state (`ow.core.state`), so these read jobs and pick runs.

Imports: `ow.core` and sibling sdk modules.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from ow.core.errors import NotFoundError
from ow.sdk._objects import Run
from ow.sdk._resource import AsyncResource

if TYPE_CHECKING:
    pass

__all__ = ["AsyncRuns"]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class AsyncRuns(AsyncResource):
    """`ow.runs`: `list(job_id=, worker_id=, status=, limit=)`, `retrieve(id)`, `download`."""

    async def list(
        self, job_id: str | None = None, worker_id: str | None = None, limit: int | None = 10,
        status: str | None = None,
    ) -> list[Run]:
        """Runs, newest first, filtered by job, worker and status (openweights' default limit)."""
        jobs = [await self.client.jobs.retrieve(job_id)] if job_id else \
            await self.client.jobs.list()
        runs = [r for j in jobs for r in j.runs
                if (worker_id is None or r.worker_id == worker_id)
                and (status is None or r.status == status)]
        runs.sort(key=lambda r: r.started_at or _EPOCH, reverse=True)
        return runs[:limit] if limit else runs

    async def retrieve(self, run_id: str) -> Run:
        """One run by id (run ids name their job: `<job id>-…`, else every job is searched)."""
        for job in await self.client.jobs.list():
            for run in job.runs:
                if run.id == run_id:
                    return run
        raise NotFoundError("run", run_id, f"no such run in org {self.client.org!r}")

    async def download(self, run_id: str, dest: str) -> Path:
        """A run's artifacts (at their paths) and its log (`<run id>.log`) into `dest`."""
        run = await self.retrieve(run_id)
        root = Path(dest)
        for path, file_id in run.artifacts.items():
            await self.client.files.download(file_id, root / path)
        if run.log_file:
            await self.client.files.download(run.log_file, root / f"{run.id}.log")
        os.makedirs(root, exist_ok=True)
        return root
