"""Every read the dashboard makes of a projection, in one place (so the read service can
swap any of them for its own): `ow.projections.views` where it has the query, SQL here where
it does not. Each takes a live `Projector` and returns plain rows.

Lists carry the stream position they reflect, read before the query; metric points are cut
at that position so a live stream started after it repeats and skips nothing.

Imports: stdlib, `ow.core`, `ow.projections` and the sibling `ow.web.present`.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import anyio

from ow.core import subjects
from ow.core.errors import NotFoundError
from ow.projections import Projector, views
from ow.web import present

__all__ = [
    "anomalies", "at_least", "costs", "events", "job", "jobs", "metric_points", "position", "run",
    "workers",
]

_JOBS = (
    "SELECT job_id, type, status, model, gen, runs, run_id, worker_id, error, created_at, "
    "updated_at, count(*) OVER () AS total FROM jobs "
    "WHERE (? IS NULL OR status = ?) AND (? IS NULL OR type = ?) AND starts_with(job_id, ?) "
    "ORDER BY created_at DESC, job_id LIMIT ? OFFSET ?"
)


async def position(p: Projector, stream: str) -> int:
    """The sequence of `stream` the projection has folded, read through the query cursor
    (`Projector.position` uses the folding connection: DuckDB refuses it mid-fold)."""
    rows = await p.query("SELECT seq FROM positions WHERE stream = ?", [stream])
    return int(rows[0]["seq"]) if rows else 0


async def at_least(p: Projector, stream: str, seq: int, timeout_s: float = 3.0) -> int:
    """Wait until the projection has folded `seq` of `stream` (read-your-writes); returns the
    position reached (possibly short of `seq` after the timeout: the caller shows what is)."""
    reached = await position(p, stream)
    with anyio.move_on_after(timeout_s):
        # the projector has no change hook to await (yet): a short poll, only while behind
        while reached < seq:
            await anyio.sleep(0.01)
            reached = await position(p, stream)
    return reached


async def jobs(
    p: Projector, status: str | None, type: str | None, prefix: str, limit: int, offset: int
) -> dict[str, Any]:
    pos = await position(p, subjects.EVENTS_STREAM)
    rows = await p.query(_JOBS, [status, status, type, type, prefix, limit, offset])
    total = rows[0]["total"] if rows else 0
    for r in rows:
        del r["total"]
    return {"jobs": rows, "total": total, "position": pos}


async def job(p: Projector, job_id: str) -> dict[str, Any]:
    pos = await position(p, subjects.EVENTS_STREAM)
    detail = await views.job_detail(p, job_id, last_events=0)
    detail.pop("events", None)
    rows = await p.query(
        "SELECT seq, json FROM events WHERE json->>'job_id' = ? OR json->>'subject_id' = ? "
        "ORDER BY seq", [job_id, job_id],
    )
    detail["events"] = [present.event_row(r["seq"], r["json"]) for r in rows]
    for key in ("params", "outputs"):
        detail[key] = _json(detail.get(key))
    for r in detail["runs_detail"]:
        r["artifacts"] = _json(r.get("artifacts")) or {}
    return {**detail, "position": pos}


async def run(p: Projector, run_id: str) -> dict[str, Any]:
    rows = await p.query(
        "SELECT run_id, job_id, gen, status, worker_id, exit_code, error, log_file, started_at, "
        "finished_at, artifacts FROM runs WHERE run_id = ?", [run_id],
    )
    if not rows:
        raise NotFoundError("run", run_id, "open the job page to see its runs")
    row = rows[0]
    row["artifacts"] = _json(row.get("artifacts")) or {}
    return row


async def metric_points(p: Projector, run_id: str) -> dict[str, Any]:
    """The plot points of a run's records up to the metrics position, and that position."""
    pos = await position(p, subjects.METRICS_STREAM)
    rows = await p.query(
        "SELECT seq, idx, step, key, value, raw FROM metrics WHERE run_id = ? AND seq <= ? "
        "ORDER BY seq, idx", [run_id, pos],
    )
    records: dict[tuple[int, int], dict[str, Any]] = {}
    for r in rows:
        data = records.setdefault((r["seq"], r["idx"]), {})
        if r["step"] is not None:
            data["step"] = r["step"]
        data[r["key"]] = r["value"] if r["value"] is not None else _json(r["raw"])
    points = [pt for d in records.values() if (pt := present.point(d)) is not None]
    latest: dict[str, Any] = {}
    for d in records.values():
        latest.update(d)
    return {"points": points, "latest": latest, "records": len(records), "position": pos}


async def workers(p: Projector, now: datetime) -> list[dict[str, Any]]:
    rows = await views.list_workers(p, include_terminated=True)
    spans = {r["worker_id"]: r for r in await p.query(
        "SELECT worker_id, coalesce(provisioned_at, registered_at) AS since, terminated_at, "
        "gpus, image FROM workers"
    )}
    for r in rows:
        span = spans.get(r["worker_id"], {})
        end = span.get("terminated_at") or now
        seconds = (end - span["since"]).total_seconds() if span.get("since") else None
        r["heartbeat_age_s"] = present.age_s(r.get("last_ping"), now)
        r["cost_usd"] = present.cost_usd(r.get("price_per_hour"), seconds)
        r["gpus"] = _json(span.get("gpus")) or []
    return rows


async def costs(p: Projector, now: datetime) -> dict[str, Any]:
    """Dollars per job (each run: its worker's hourly price for the run's duration) and for
    the org (every worker from provisioning or registration to termination or now)."""
    runs = await p.query(
        "SELECT r.job_id, j.type, r.run_id, r.started_at, r.finished_at, w.price_per_hour "
        "FROM runs r LEFT JOIN workers w USING (worker_id) LEFT JOIN jobs j USING (job_id) "
        "ORDER BY r.started_at"
    )
    per_job: dict[str, dict[str, Any]] = {}
    for r in runs:
        seconds = ((r["finished_at"] or now) - r["started_at"]).total_seconds() \
            if r["started_at"] else None
        j = per_job.setdefault(r["job_id"], {"job_id": r["job_id"], "type": r["type"],
                                             "runs": 0, "seconds": 0.0, "cost_usd": 0.0})
        j["runs"] += 1
        j["seconds"] += seconds or 0.0
        j["cost_usd"] = round(j["cost_usd"] + present.cost_usd(r["price_per_hour"], seconds), 4)
    org = sum(w["cost_usd"] for w in await workers(p, now))
    ledger = sorted(per_job.values(), key=lambda j: -j["cost_usd"])
    return {"jobs": ledger, "org_cost_usd": round(org, 4)}


async def events(p: Projector, limit: int, before: int | None) -> dict[str, Any]:
    pos = await position(p, subjects.EVENTS_STREAM)
    rows = await p.query(
        "SELECT * FROM (SELECT seq, json FROM events WHERE seq <= ? AND (? IS NULL OR seq < ?) "
        "ORDER BY seq DESC LIMIT ?) ORDER BY seq", [pos, before, before, limit],
    )
    return {"events": [present.event_row(r["seq"], r["json"]) for r in rows], "position": pos}


async def anomalies(p: Projector, limit: int) -> list[dict[str, Any]]:
    rows = await p.query(
        "SELECT seq, stream, subject, event_id, type, aggregate_id, rule, json FROM anomalies "
        "ORDER BY seq DESC LIMIT ?", [limit],
    )
    for r in rows:
        r["json"] = _json(r["json"])
    return rows


def _json(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value
