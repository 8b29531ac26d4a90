"""The DuckDB side of a projection: opening the file, the schema, and error mapping.

DuckDB allows one writing process per file. Opening a file another process holds raises
`ProjectionLockedError`, naming that process (DuckDB's lock message carries its PID) and
what to do. A file DuckDB cannot open (truncated, garbage) is moved aside as
`<name>.corrupt-<UTC time>` with a one-line warning and a fresh one is made: a projection is
only a cache of the log, so the caller's catch-up rebuilds it. No duckdb exception crosses
this module's functions (`mapped`).

Imports: duckdb (lazily), stdlib and `ow.core`.
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ow.core.errors import ProjectionError, ProjectionLockedError  # re-exported: their old home

__all__ = [
    "STREAMS", "TABLES", "ProjectionError", "ProjectionLockedError", "connect", "mapped", "rows",
]

#: streams a projection folds, in the order a rebuild reads them
STREAMS = ("OW_EVENTS", "OW_METRICS", "OW_HEARTBEATS")

#: JSON documents are compressed with zstd: DuckDB's default string compressions
#: (dictionary, FSST) spent 0.3 s of a 1M-event rebuild analysing them at the last checkpoint,
#: after every stream had finished, for a file twice the size (bench/bench_projection.py)
_DDL = """
CREATE TABLE IF NOT EXISTS positions (stream VARCHAR PRIMARY KEY, seq BIGINT NOT NULL);
CREATE TABLE IF NOT EXISTS events (
    seq BIGINT, stream VARCHAR, subject VARCHAR, type VARCHAR, event_id VARCHAR,
    org VARCHAR, ts TIMESTAMPTZ, actor VARCHAR, json JSON USING COMPRESSION zstd);
CREATE TABLE IF NOT EXISTS jobs (
    job_id VARCHAR, org VARCHAR, type VARCHAR, model VARCHAR, status VARCHAR, gen INTEGER,
    error VARCHAR, cancel_requested BOOLEAN, requires_vram_gb DOUBLE, image VARCHAR,
    runs INTEGER, run_id VARCHAR, worker_id VARCHAR, outputs JSON USING COMPRESSION zstd,
    params JSON USING COMPRESSION zstd, created_at TIMESTAMPTZ, updated_at TIMESTAMPTZ,
    state JSON USING COMPRESSION zstd);
CREATE TABLE IF NOT EXISTS runs (
    run_id VARCHAR, job_id VARCHAR, gen INTEGER, worker_id VARCHAR, claim_rev BIGINT,
    status VARCHAR, started_at TIMESTAMPTZ, finished_at TIMESTAMPTZ, exit_code INTEGER,
    error VARCHAR, log_file VARCHAR, outputs JSON USING COMPRESSION zstd,
    artifacts JSON USING COMPRESSION zstd);
CREATE TABLE IF NOT EXISTS workers (
    worker_id VARCHAR, status VARCHAR, provider VARCHAR, pod_id VARCHAR, hardware VARCHAR,
    gpus JSON, vram_gb DOUBLE, image VARCHAR, price_per_hour DOUBLE,
    provisioned_at TIMESTAMPTZ, registered_at TIMESTAMPTZ, terminated_at TIMESTAMPTZ,
    last_ping TIMESTAMPTZ, run_id VARCHAR, reason VARCHAR, state JSON);
CREATE TABLE IF NOT EXISTS pings (
    worker_id VARCHAR PRIMARY KEY, ts TIMESTAMPTZ, run_id VARCHAR, seq BIGINT);
CREATE TABLE IF NOT EXISTS files (
    file_id VARCHAR, purpose VARCHAR, filename VARCHAR, size_bytes BIGINT, sha256 VARCHAR,
    store VARCHAR, key VARCHAR, created_at TIMESTAMPTZ, seq BIGINT);
CREATE TABLE IF NOT EXISTS metrics (
    seq BIGINT, idx INTEGER, run_id VARCHAR, job_id VARCHAR, step BIGINT, key VARCHAR,
    value DOUBLE, ts TIMESTAMPTZ, raw JSON);
ALTER TABLE metrics ADD COLUMN IF NOT EXISTS raw JSON;
CREATE TABLE IF NOT EXISTS anomalies (
    seq BIGINT, stream VARCHAR, subject VARCHAR, event_id VARCHAR, type VARCHAR,
    aggregate_id VARCHAR, rule VARCHAR, json VARCHAR);
"""

#: every table, and the columns that order it (for comparing two projections)
TABLES: dict[str, str] = {
    "positions": "stream",
    "events": "seq",
    "jobs": "job_id",
    "runs": "job_id, gen, run_id",
    "workers": "worker_id",
    "pings": "worker_id",
    "files": "file_id",
    "metrics": "seq, idx, key",
    "anomalies": "stream, seq, event_id",
}

log = logging.getLogger(__name__)

_LOCK = re.compile(r"Conflicting lock is held in (?P<exe>.*?) \(PID (?P<pid>\d+)\)")


@contextlib.contextmanager
def mapped(what: str, path: Path | str = "") -> Iterator[None]:
    """Map duckdb errors into `ProjectionError`s."""
    import duckdb

    try:
        yield
    except duckdb.Error as exc:
        raise ProjectionError(f"{what} failed on projection {path}: {exc}") from exc


def rows(con: Any, sql: str, params: list[Any] | None = None) -> list[dict[str, Any]]:
    """A query's rows as dicts (through Arrow: aware UTC datetimes without pytz)."""
    rel = con.sql(sql, params=params or None)
    return [] if rel is None else rel.to_arrow_table().to_pylist()


def connect(path: Path | str | None) -> Any:
    """Open (creating if needed) a projection file, or an in-memory one for None.

    A file that exists but cannot be opened as a projection is moved aside and replaced by
    a fresh, empty one (`_move_aside`); a file another process holds is never touched.
    """
    if path is None:
        return _schema(_open(":memory:"), ":memory:")
    file = Path(path)
    file.parent.mkdir(parents=True, exist_ok=True)
    existed = file.exists()
    try:
        return _schema(_open(str(file)), str(file))
    except ProjectionLockedError:
        raise
    except ProjectionError as exc:
        if not existed:
            raise
        _move_aside(file, exc)
    return _schema(_open(str(file)), str(file))


def _open(target: str) -> Any:
    import duckdb

    try:
        return duckdb.connect(target)
    except duckdb.IOException as exc:
        m = _LOCK.search(str(exc))
        if m or "lock" in str(exc).lower():
            raise ProjectionLockedError(
                Path(target), int(m["pid"]) if m else None, m["exe"] if m else ""
            ) from exc
        raise ProjectionError(f"cannot open projection {target}: {exc}") from exc
    except duckdb.Error as exc:
        raise ProjectionError(f"cannot open projection {target}: {exc}") from exc


def _schema(con: Any, target: str) -> Any:
    """Create what is missing (tables, stream positions); closes `con` if that fails."""
    try:
        with mapped("creating the schema", target):
            con.execute("SET TimeZone='UTC'")
            con.execute(_DDL)
            for stream in STREAMS:
                con.execute(
                    "INSERT INTO positions SELECT ?, 0 WHERE NOT EXISTS "
                    "(SELECT 1 FROM positions WHERE stream = ?)", [stream, stream],
                )
    except ProjectionError:
        with contextlib.suppress(Exception):
            con.close()
        raise
    return con


def _move_aside(file: Path, exc: Exception) -> Path:
    """Rename an unreadable projection (and its WAL) to `<name>.corrupt-<UTC time>`."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%fZ")
    aside = file.with_name(f"{file.name}.corrupt-{stamp}")
    file.rename(aside)
    wal = file.with_name(file.name + ".wal")
    if wal.exists():
        wal.rename(aside.with_name(aside.name + ".wal"))
    reason = str(exc.__cause__ or exc).splitlines()[0]
    log.warning("projection %s could not be opened (%s): moved it aside to %s; "
                "rebuilding a fresh one from the log", file, reason, aside.name)
    return aside
