"""`ow audit`: check the history and the projection; every violation with the event showing it.

Checks (each a SQL query over a fresh replay of the log, so the fold in `ow.core.state`
stays the only judge of transitions):

- `missing-job`: an acknowledged `JobSubmitted` that the projection does not have;
- `double-start`: more than one run started for one job generation;
- `unterminated-run` / `double-termination`: a run with zero or several terminal events
  (`RunFinished`, `JobRequeued`, `JobCompleted`, `JobFailed`, `JobCanceled` naming it) once
  its job has moved on (a later generation or a terminal state);
- `rejected-event`: an event the fold rejected, e.g. a result from a run that did not hold
  the claim, and undecodable messages;
- `projection-drift`: rows of the projection that a fresh replay up to the same stream
  positions does not produce (or the reverse).

Imports: anyio, msgspec and `ow.core`; duckdb lazily.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import msgspec

from ow.core.bus import Bus
from ow.projections import _db
from ow.projections.runner import Projector

__all__ = ["Report", "Violation", "audit", "audit_file", "contents"]

_TERMINAL = "('RunFinished', 'JobRequeued', 'JobCompleted', 'JobFailed', 'JobCanceled')"

_CHECKS: dict[str, str] = {
    "missing-job": """
        SELECT seq, event_id, type, json->>'job_id' AS aggregate_id,
               'JobSubmitted at seq ' || seq || ' is not in the projection' AS detail
        FROM events WHERE type = 'JobSubmitted' AND seq <= {events_pos}
          AND json->>'job_id' NOT IN (SELECT job_id FROM proj.jobs)""",
    "double-start": """
        SELECT seq, event_id, type, job_id AS aggregate_id,
               'run ' || run_id || ' is run #' || n || ' started for generation ' || gen
               || ' (first: ' || first_run || ')' AS detail
        FROM (SELECT seq, event_id, type, json->>'job_id' AS job_id, json->>'run_id' AS run_id,
                     (json->>'gen')::INTEGER AS gen,
                     dense_rank() OVER w AS n, first_value(json->>'run_id') OVER w AS first_run
              FROM (SELECT DISTINCT ON (event_id) * FROM events WHERE type = 'RunStarted')
              WINDOW w AS (PARTITION BY json->>'job_id', json->>'gen' ORDER BY seq))
        WHERE n > 1""",
    "unterminated-run": """
        SELECT s.seq, s.event_id, s.type, s.job_id AS aggregate_id,
               'run ' || s.run_id || ' (generation ' || s.gen || ') never ended, but job is '
               || j.status || ' at generation ' || j.gen AS detail
        FROM _starts s LEFT JOIN jobs j USING (job_id)
        WHERE s.run_id NOT IN (SELECT run_id FROM _ends)
          AND (j.gen > s.gen OR (j.status IN ('completed', 'failed', 'canceled')
                                 AND j.run_id IS DISTINCT FROM s.run_id)
               OR EXISTS (SELECT 1 FROM _starts l WHERE l.job_id = s.job_id AND l.gen > s.gen))""",
    "double-termination": """
        SELECT seq, event_id, type, job_id AS aggregate_id,
               type || ' is terminal event #' || n || ' of run ' || run_id AS detail
        FROM (SELECT *, row_number() OVER (PARTITION BY run_id ORDER BY seq) AS n FROM _ends)
        WHERE n > 1""",
    "rejected-event": """
        SELECT seq, event_id, type, aggregate_id, stream || ': ' || rule AS detail
        FROM anomalies""",
}

_HELPERS = f"""
CREATE OR REPLACE TEMP TABLE _starts AS
    SELECT DISTINCT ON (event_id) seq, event_id, type, json->>'job_id' AS job_id,
           json->>'run_id' AS run_id, (json->>'gen')::INTEGER AS gen
    FROM events WHERE type = 'RunStarted' ORDER BY event_id, seq;
CREATE OR REPLACE TEMP TABLE _ends AS
    SELECT DISTINCT ON (event_id) seq, event_id, type, json->>'job_id' AS job_id,
           json->>'run_id' AS run_id
    FROM events WHERE type IN {_TERMINAL} AND coalesce(json->>'run_id', '') <> ''
    ORDER BY event_id, seq;
"""


class Violation(msgspec.Struct, frozen=True, kw_only=True):
    """One broken rule and the event that shows it."""

    rule: str
    aggregate_id: str
    seq: int | None
    event_id: str | None
    event_type: str | None
    detail: str


class Report(msgspec.Struct, frozen=True, kw_only=True):
    org: str
    positions: dict[str, int]
    violations: list[Violation]

    @property
    def clean(self) -> bool:
        return not self.violations


def contents(con: Any, schema: str = "main") -> dict[str, list[dict[str, Any]]]:
    """Every table's rows in a fixed order (two equal projections give equal dicts)."""
    return {t: _db.rows(con, f"SELECT * FROM {schema}.{t} ORDER BY ALL") for t in _db.TABLES}


async def audit(bus: Bus, path: str | Path | None = None) -> Report:
    """Catch the projection up, replay the log afresh to the same positions, and check both."""
    async with Projector(bus, path) as proj:
        await proj.catch_up()
        proj_path = proj.path
    assert proj_path is not None
    return await audit_file(bus, proj_path)


async def audit_file(bus: Bus, proj_path: Path) -> Report:
    """Check a projection file no process holds (e.g. a snapshot of the read service's)
    against a fresh replay of the log up to the positions it records."""
    positions = await anyio.to_thread.run_sync(_positions, proj_path)
    fresh = Projector(bus, memory=True)
    try:
        await fresh.catch_up(stop_at=positions)
        violations = await anyio.to_thread.run_sync(_check, fresh.con, proj_path, positions)
    finally:
        fresh.shutdown()
    return Report(org=bus.org, positions=positions, violations=violations)


def _positions(path: Path) -> dict[str, int]:
    import duckdb

    with _db.mapped("audit", path), duckdb.connect(str(path), read_only=True) as con:
        return {s: int(q) for s, q in con.execute("SELECT stream, seq FROM positions").fetchall()}


def _check(con: Any, proj_path: Path, positions: dict[str, int]) -> list[Violation]:
    with _db.mapped("audit", proj_path):
        con.execute(f"ATTACH '{proj_path}' AS proj (READ_ONLY)")
        try:
            con.execute(_HELPERS)
            found = []
            for rule, sql in _CHECKS.items():
                query = sql.format(events_pos=positions.get("OW_EVENTS", 0)) + " ORDER BY seq"
                for r in _db.rows(con, query):
                    found.append(Violation(
                        rule=rule, aggregate_id=r["aggregate_id"] or "", seq=r["seq"],
                        event_id=r["event_id"], event_type=r["type"], detail=r["detail"],
                    ))
            found.extend(_drift(con))
            return found
        finally:
            con.execute("DETACH proj")


def _drift(con: Any) -> list[Violation]:
    """Rows in one of (projection, fresh replay) but not in the other."""
    out = []
    for table in _db.TABLES:
        for side, a, b in (("projection", "proj", "main"), ("fresh replay", "main", "proj")):
            rows = _db.rows(
                con, f"SELECT * FROM {a}.{table} EXCEPT ALL SELECT * FROM {b}.{table} LIMIT 5"
            )
            for row in rows:
                out.append(Violation(
                    rule="projection-drift", aggregate_id=str(next(iter(row.values()))),
                    seq=None, event_id=None,
                    event_type=None,
                    detail=f"{table}: row only in the {side}: {_short(row)}",
                ))
    return out


def _short(row: dict[str, Any]) -> str:
    text = ", ".join(f"{k}={v}" for k, v in row.items() if k not in ("state", "json"))
    return text if len(text) <= 160 else text[:157] + "…"
