"""Table declarations, and the writing primitives every stream's fold shares.

A `Table` is declared once, next to the code that builds its rows (`_control.py`,
`_metrics.py`, `_heartbeats.py`; the two tables every stream writes, `positions` and
`anomalies`, here): its columns with their DuckDB types, the columns that order it, its
primary key. Both its `CREATE TABLE` (`Table.ddl`) and the Arrow layout of its rows
(`Table.arrow`) are derived from that declaration, so a column cannot be added to one and
forgotten in the other: `arrow` refuses rows whose columns are not the declared ones.

`Writer` holds the connection and the row-writing steps (insert, replace by id, run SQL
over an Arrow table) the per-stream folds are built on; `Folder` (`_apply.py`) combines them.

Imports: pyarrow (lazily), msgspec and the stdlib.
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

import msgspec

__all__ = ["ANOMALIES", "JSON_Z", "POSITIONS", "Table", "Writer", "j"]

#: a JSON document compressed with zstd: DuckDB's default string compressions (dictionary,
#: FSST) spent 0.3 s of a 1M-event rebuild analysing them at the last checkpoint, after
#: every stream had finished, for a file twice the size (bench/bench_projection.py)
JSON_Z = "JSON USING COMPRESSION zstd"

_json = msgspec.json.Encoder()


@functools.cache
def _arrow_type(sql: str) -> Any:
    """The Arrow type rows of a column of DuckDB type `sql` are built with (DuckDB casts
    on insert: an INTEGER column is loaded from int64, a JSON one from its text)."""
    import pyarrow as pa

    return {
        "VARCHAR": pa.string(), "JSON": pa.string(), "BIGINT": pa.int64(),
        "INTEGER": pa.int64(), "DOUBLE": pa.float64(), "BOOLEAN": pa.bool_(),
        "TIMESTAMPTZ": pa.timestamp("us", tz="UTC"),
    }[sql.split()[0]]


class Table(NamedTuple):
    """One table: its columns `(name, DuckDB type)` in order, the columns that order it
    (for comparing two projections), its primary key, and statements that bring a file
    made by an older version up to date."""

    name: str
    columns: tuple[tuple[str, str], ...]
    order: str
    key: str = ""
    migrate: tuple[str, ...] = ()

    def ddl(self) -> str:
        """`CREATE TABLE IF NOT EXISTS`, then the migrations."""
        cols = ", ".join(f"{c} {t}{' PRIMARY KEY' if c == self.key else ''}"
                         for c, t in self.columns)
        return "\n".join([f"CREATE TABLE IF NOT EXISTS {self.name} ({cols});",
                          *(f"{s};" for s in self.migrate)])

    def arrow(self, values: dict[str, list[Any]]) -> Any:
        """An Arrow table of rows given as one list per column, typed by the declaration;
        raises `ValueError` if the columns are not exactly the declared ones."""
        import pyarrow as pa

        if values.keys() != {c for c, _ in self.columns}:
            raise ValueError(f"rows for {self.name} have columns {sorted(values)}, "
                             f"declared: {[c for c, _ in self.columns]}")
        out = {}
        for name, sql in self.columns:
            t = _arrow_type(sql)
            out[name] = (_times(values[name], t) if pa.types.is_timestamp(t)
                         else pa.array(values[name], type=t))
        return pa.table(out)


def _times(values: list[Any], t: Any) -> Any:
    """A timestamp column from datetimes, through their RFC 3339 text (ten times faster
    than Arrow's conversion of datetime objects)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    try:
        return pc.cast(pa.array(msgspec.to_builtins(values), pa.string()), t)
    except (pa.ArrowInvalid, TypeError):  # a datetime without a zone, say
        return pa.array(values, type=t)


def j(value: Any) -> str:
    """A value as JSON text (for a JSON column)."""
    return _json.encode(value).decode()


POSITIONS = Table("positions", (("stream", "VARCHAR"), ("seq", "BIGINT NOT NULL")),
                  order="stream", key="stream")

ANOMALIES = Table("anomalies", (
    ("seq", "BIGINT"), ("stream", "VARCHAR"), ("subject", "VARCHAR"), ("event_id", "VARCHAR"),
    ("type", "VARCHAR"), ("aggregate_id", "VARCHAR"), ("rule", "VARCHAR"), ("json", "VARCHAR"),
), order="stream, seq, event_id")


class Writer:
    """The connection of a fold and the steps that write rows into it (in the caller's
    transaction)."""

    con: Any
    fresh: bool  # every state is in memory (a rebuild): never read rows back
    _written: dict[str, set[str]]  # while fresh: ids each table has rows of

    def _replace(self, table: str, key: str, ids: list[str], rows: Any) -> None:
        # `fresh` means no jobs or workers rows at open (files may exist): those tables then
        # hold rows only of ids this folder wrote, and nothing else needs deleting
        skip = self.fresh and table != "files"
        written = self._written.setdefault(table, set())
        stale = [i for i in ids if i in written] if skip else ids
        if stale:
            self.con.execute(
                f"DELETE FROM {table} WHERE {key} IN (SELECT unnest(?::VARCHAR[]))", [stale]
            )
        if skip:
            written.update(ids)
        self._insert(table, rows)

    def _insert(self, table: str, rows: Any) -> None:
        if rows.num_rows:
            self._on_rows(rows, f"INSERT INTO {table} BY NAME SELECT * FROM _rows")

    def _on_rows(self, rows: Any, sql: str, params: list[Any] | None = None) -> None:
        """Run `sql` with the Arrow table `rows` visible to it as `_rows`."""
        self.con.register("_rows", rows)
        try:
            self.con.execute(sql, params)
        finally:
            self.con.unregister("_rows")

    def _anomalies(self, rows: list[tuple[Any, ...]]) -> None:
        """Anomaly rows, each a tuple in the order of `ANOMALIES.columns`."""
        if not rows:
            return
        self._insert("anomalies", ANOMALIES.arrow(
            {c: [r[i] for r in rows] for i, (c, _) in enumerate(ANOMALIES.columns)}))
