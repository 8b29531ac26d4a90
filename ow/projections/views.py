"""Read queries over a projection: what `ow ls`, `ow show`, `ow workers`, `ow metrics` and
dashboards ask. Each takes a caught-up `Projector` and returns plain rows (dicts).

Imports: `ow.core` and the sibling projection modules.
"""

from __future__ import annotations

from typing import Any

from ow.core.errors import NotFoundError
from ow.projections.runner import Projector

__all__ = ["job_detail", "list_jobs", "list_workers", "metrics_summary", "resolve_run", "worker"]

_JOB_COLUMNS = (
    "job_id, type, status, model, gen, runs, run_id, worker_id, error, created_at, updated_at"
)


async def list_jobs(
    p: Projector, status: str | None = None, type: str | None = None, limit: int = 100
) -> list[dict[str, Any]]:
    """Jobs newest first, optionally filtered by status and type."""
    return await p.query(
        f"SELECT {_JOB_COLUMNS} FROM jobs WHERE (? IS NULL OR status = ?) "
        "AND (? IS NULL OR type = ?) ORDER BY created_at DESC, job_id LIMIT ?",
        [status, status, type, type, limit],
    )


async def job_detail(p: Projector, job_id: str, last_events: int = 10) -> dict[str, Any]:
    """A job with its spec, its runs, and its last events."""
    rows = await p.query(
        f"SELECT {_JOB_COLUMNS}, image, requires_vram_gb, cancel_requested, outputs, params "
        "FROM jobs WHERE job_id = ?", [job_id],
    )
    if not rows:
        raise NotFoundError("job", job_id, "see `ow ls` for the jobs of this org")
    runs = await p.query(
        "SELECT run_id, gen, status, worker_id, exit_code, error, log_file, started_at, "
        "finished_at, artifacts FROM runs WHERE job_id = ? ORDER BY gen, started_at", [job_id],
    )
    events = await p.query(
        "SELECT * FROM (SELECT seq, ts, type, actor FROM events "
        "WHERE json->>'job_id' = ? ORDER BY seq DESC LIMIT ?) ORDER BY seq",
        [job_id, last_events],
    )
    return {**rows[0], "runs_detail": runs, "events": events}


async def resolve_run(p: Projector, job_or_run: str) -> dict[str, Any]:
    """The run named, or the latest run of the job named."""
    rows = await p.query(
        "SELECT run_id, job_id, status, log_file FROM runs WHERE run_id = ? OR job_id = ? "
        "ORDER BY (run_id = ?) DESC, gen DESC, started_at DESC LIMIT 1",
        [job_or_run, job_or_run, job_or_run],
    )
    if not rows:
        raise NotFoundError("run", job_or_run, "no job or run by that id has started a run")
    return rows[0]


async def list_workers(p: Projector, include_terminated: bool = False) -> list[dict[str, Any]]:
    """Workers, with the newest of their registration and heartbeat times."""
    return await p.query(
        "SELECT w.worker_id, w.status, w.provider, w.hardware, w.vram_gb, w.pod_id, "
        "greatest(w.last_ping, h.ts) AS last_ping, coalesce(h.run_id, w.run_id) AS run_id, "
        "w.price_per_hour FROM workers w LEFT JOIN pings h USING (worker_id) "
        "WHERE ? OR w.status <> 'terminated' ORDER BY w.registered_at NULLS LAST, w.worker_id",
        [include_terminated],
    )


async def worker(p: Projector, worker_id: str) -> dict[str, Any]:
    rows = await p.query(
        "SELECT worker_id, status, provider, pod_id, hardware "
        "FROM workers WHERE worker_id = ?", [worker_id],
    )
    if not rows:
        raise NotFoundError("worker", worker_id, "see `ow workers`")
    return rows[0]


async def metrics_summary(p: Projector, run_id: str, key: str = "loss") -> dict[str, Any]:
    """Latest value of every key a run logged (a number in `value`, anything else as JSON in
    `raw`), and the series of `key`'s numbers in the order logged."""
    latest = await p.query(
        "SELECT key, arg_max(value, (seq, idx)) AS value, arg_max(raw, (seq, idx)) AS raw, "
        "arg_max(step, (seq, idx)) AS step, count(*) AS n FROM metrics WHERE run_id = ? "
        "GROUP BY key ORDER BY key", [run_id],
    )
    series = await p.query(
        "SELECT value FROM metrics WHERE run_id = ? AND key = ? AND value IS NOT NULL "
        "ORDER BY seq, idx", [run_id, key]
    )
    return {"run_id": run_id, "latest": latest, key: [r["value"] for r in series]}
