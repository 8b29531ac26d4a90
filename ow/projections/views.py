"""Read queries over a projection: what `ow ls`, `ow show`, `ow workers`, `ow metrics` and
dashboards ask. Each takes a caught-up `Projector` and returns plain rows (dicts). The read
service, the CLI and the SDK reach them through one table (`ow.projections.queries`).

Imports: `ow.core` and the sibling projection modules.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ow.core import subjects
from ow.core.errors import NotFoundError

if TYPE_CHECKING:  # the fold itself loads only where a query runs (not in a client)
    from ow.projections.runner import Projector

__all__ = [
    "anomalies", "costs", "events_page", "find_jobs", "job_detail", "job_states", "list_jobs",
    "list_workers", "metric_series", "metrics_summary", "resolve_run", "worker",
]

_JOB_COLUMNS = (
    "job_id, type, status, model, gen, runs, run_id, worker_id, error, created_at, updated_at"
)


_JOBS_WHERE = (
    "WHERE (? IS NULL OR status = ?) AND (? IS NULL OR type = ?) "
    "AND (? IS NULL OR starts_with(job_id, ?))"
)


def _jobs_args(status: str | None, type: str | None, prefix: str | None) -> list[Any]:
    return [status, status, type, type, prefix or None, prefix or None]


async def list_jobs(
    p: Projector, status: str | None = None, type: str | None = None, limit: int = 100,
    prefix: str | None = None, offset: int = 0,
) -> list[dict[str, Any]]:
    """Jobs newest first, optionally filtered by status, type and id prefix; a page of them."""
    return await p.query(
        f"SELECT {_JOB_COLUMNS} FROM jobs {_JOBS_WHERE} "
        "ORDER BY created_at DESC, job_id LIMIT ? OFFSET ?",
        [*_jobs_args(status, type, prefix), limit, offset],
    )


async def job_states(
    p: Projector, status: str | None = None, type: str | None = None,
    limit: int | None = None, prefix: str | None = None, offset: int = 0,
) -> list[str]:
    """The folded states (`ow.core.state.JobState` as JSON) of the jobs `list_jobs` names:
    what the SDK builds its `Job` objects from."""
    rows = await p.query(
        f"SELECT state FROM jobs {_JOBS_WHERE} ORDER BY created_at DESC, job_id "
        "LIMIT ? OFFSET ?", [*_jobs_args(status, type, prefix), limit, offset],
    )
    return [r["state"] for r in rows]


async def find_jobs(p: Projector, params: dict[str, Any]) -> list[str]:
    """States (as `job_states`) of the jobs whose validated params hold every key/value."""
    import json

    found = []
    for state in await job_states(p):
        validated = json.loads(state).get("spec", {}).get("params", {}).get("validated_params")
        if isinstance(validated, dict) and all(validated.get(k) == v for k, v in params.items()):
            found.append(state)
    return found


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
    # by subject, not by the JSON's job_id: no JSON parsed per row (a 20k-job log: 100 ms
    # a call before); the job's aggregate, and the scheduler's notices about it
    events = await p.query(
        "SELECT * FROM (SELECT seq, ts, type, actor FROM events "
        "WHERE starts_with(subject, ?) OR starts_with(subject, ?) "
        "ORDER BY seq DESC LIMIT ?) ORDER BY seq",
        [*(subjects.aggregate_subject(p.bus.org, agg, job_id)[:-1] for agg in
           ("job", "scheduler")), last_events],
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
    """Workers, with the newest of their registration and heartbeat times, the isolation
    their jobs get, and their current run (the last heartbeat's; an idle heartbeat, whose
    run id is empty, falls back to the worker's own)."""
    return await p.query(
        "SELECT w.worker_id, w.status, w.provider, w.hardware, w.vram_gb, w.pod_id, "
        "coalesce(w.isolation, '') AS isolation, greatest(w.last_ping, h.ts) AS last_ping, "
        "coalesce(nullif(h.run_id, ''), w.run_id) AS run_id, "
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


async def metric_series(p: Projector, run_id: str, key: str = "loss") -> dict[str, Any]:
    """One key of a run as points `{step, value, ts, seq}` in the order logged (for plots)."""
    points = await p.query(
        "SELECT step, value, ts, seq FROM metrics WHERE run_id = ? AND key = ? "
        "AND value IS NOT NULL ORDER BY seq, idx", [run_id, key],
    )
    return {"run_id": run_id, "key": key, "points": points}


async def events_page(
    p: Projector, after: int = 0, type: str | None = None, aggregate: str | None = None,
    aggregate_id: str | None = None, limit: int = 100,
) -> list[dict[str, Any]]:
    """Control-plane events after a sequence, oldest first: optionally of one type, one
    aggregate kind (job, worker, file, …) or one aggregate id."""
    return await p.query(
        "SELECT seq, ts, type, actor, subject, split_part(subject, '.', 4) AS aggregate, "
        "json FROM events WHERE seq > ? AND (? IS NULL OR type = ?) "
        "AND (? IS NULL OR split_part(subject, '.', 4) = ?) "
        "AND (? IS NULL OR json->>'job_id' = ? OR json->>'worker_id' = ? "
        "     OR json->>'run_id' = ?) ORDER BY seq LIMIT ?",
        [after, type, type, aggregate, aggregate, aggregate_id, aggregate_id, aggregate_id,
         aggregate_id, limit],
    )


async def anomalies(p: Projector, limit: int = 100) -> list[dict[str, Any]]:
    """Events the fold rejected (and undecodable messages), newest last."""
    return await p.query(
        "SELECT seq, stream, subject, event_id, type, aggregate_id, rule FROM anomalies "
        "ORDER BY seq DESC LIMIT ?", [limit],
    )


_WORKER_COST = """
    SELECT worker_id, provider, hardware, status, price_per_hour,
        coalesce(provisioned_at, registered_at) AS since, terminated_at,
        greatest(0, epoch(coalesce(terminated_at, now()) - coalesce(provisioned_at,
                 registered_at, now()))) / 3600.0 AS hours
    FROM workers"""


async def costs(p: Projector) -> dict[str, Any]:
    """The cost ledger: each worker's price per hour x the time from its provisioning (or
    registration) to its termination (or now); each job's share: its runs' time on their
    workers at those prices; and the org's total."""
    workers = await p.query(
        f"SELECT *, hours * price_per_hour AS cost FROM ({_WORKER_COST}) ORDER BY since, worker_id"
    )
    jobs = await p.query(
        "SELECT r.job_id, count(*) AS runs, sum(greatest(0, epoch(coalesce(r.finished_at, "
        "now()) - r.started_at)) / 3600.0 * coalesce(w.price_per_hour, 0)) AS cost, "
        "sum(greatest(0, epoch(coalesce(r.finished_at, now()) - r.started_at))) / 3600.0 "
        "AS hours FROM runs r LEFT JOIN workers w USING (worker_id) "
        "WHERE r.started_at IS NOT NULL GROUP BY r.job_id ORDER BY cost DESC, r.job_id"
    )
    total = sum(w["cost"] or 0.0 for w in workers)
    return {"org": p.bus.org, "total": total, "workers": workers, "jobs": jobs}
