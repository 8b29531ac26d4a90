"""The DuckDB side of a projection: opening the file, the schema, and error mapping.

DuckDB allows one writing process per file. Opening a file another process holds raises
`ProjectionLockedError`, naming that process (DuckDB's lock message carries its PID) and
what to do. A file DuckDB cannot open (truncated, garbage) is moved aside as
`<name>.corrupt-<UTC time>` with a one-line warning and a fresh one is made: a projection is
only a cache of the log, so the caller's catch-up rebuilds it. No duckdb exception crosses
this module's functions (`mapped`). The tables are declared by the modules that write them
(`_tables.Table`); the schema here is derived from those declarations.

Imports: duckdb (lazily), stdlib, `ow.core` and the projection's table declarations.
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
from ow.projections._control import EVENTS, FILES, JOBS, RUNS, WORKERS
from ow.projections._heartbeats import PINGS
from ow.projections._metrics import METRICS
from ow.projections._tables import ANOMALIES, POSITIONS

__all__ = [
    "STREAMS", "TABLES", "ProjectionError", "ProjectionLockedError", "connect", "mapped", "rows",
]

#: streams a projection folds, in the order a rebuild reads them
STREAMS = ("OW_EVENTS", "OW_METRICS", "OW_HEARTBEATS")

#: every table, in the order they are created (each declared next to its rows' builder)
_DECLARED = (POSITIONS, EVENTS, JOBS, RUNS, WORKERS, PINGS, FILES, METRICS, ANOMALIES)

_DDL = "\n".join(t.ddl() for t in _DECLARED)

#: every table, and the columns that order it (for comparing two projections)
TABLES: dict[str, str] = {t.name: t.order for t in _DECLARED}

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
