"""The metrics stream (OW_METRICS): its table, and exploding a batch into long rows.

One row per (record, numeric key): a number in `value`, any other value (text, a boolean,
a list, an object) as its JSON in `raw`, the record's `step` as a column. A regular batch
is read into columns before the transaction (`_metric_columns.long_columns`) and exploded
by one DuckDB statement; any other goes message by message through msgspec
(`_metrics_py`), and what that cannot take through `_metrics_sql`, the reference path that
also records the anomalies (`tests/unit/projections` checks the paths give the same rows).

Imports: pyarrow (lazily), msgspec, `ow.core` and the projection's private modules.
"""

from __future__ import annotations

from typing import Any

import msgspec

from ow.core import codec
from ow.core.bus import Msg
from ow.projections._metric_columns import Irregular, Long, Record, long_rows, records_dec
from ow.projections._tables import Table, Writer

__all__ = ["METRICS", "MetricsFold"]

METRICS = Table("metrics", (
    ("seq", "BIGINT"), ("idx", "INTEGER"), ("run_id", "VARCHAR"), ("job_id", "VARCHAR"),
    ("step", "BIGINT"), ("key", "VARCHAR"), ("value", "DOUBLE"), ("ts", "TIMESTAMPTZ"),
    ("raw", "JSON"),
), order="seq, idx, key", migrate=("ALTER TABLE metrics ADD COLUMN IF NOT EXISTS raw JSON",))

_json = msgspec.json.Encoder()

_METRIC_T = (
    '[{"type":"VARCHAR","event_id":"VARCHAR","v":"INTEGER","ts":"VARCHAR",'
    '"run_id":"VARCHAR","job_id":"VARCHAR","data":"JSON"}]'
)
_NUMERIC = "('BIGINT', 'UBIGINT', 'DOUBLE')"
_IRREGULAR = (
    "r.type IS DISTINCT FROM 'MetricLogged' OR r.run_id IS NULL OR coalesce(r.v, 1) <> 1 "
    "OR json_type(r.data) IS DISTINCT FROM 'OBJECT'"
)
#: the long rows of well-formed records: a number in `value`, any other value (text, a
#: boolean, a list, an object) as its JSON in `raw`; a null is no row, and `step` is a column
_EXPLODE = f"""
INSERT INTO metrics (seq, idx, run_id, job_id, step, key, value, ts, raw)
SELECT seq, idx, run_id, job_id, step, k,
       CASE WHEN json_type(val) IN {_NUMERIC} THEN val::DOUBLE END, ts,
       CASE WHEN json_type(val) NOT IN {_NUMERIC} THEN val END FROM (
    SELECT seq, idx, r.run_id, r.job_id, r.ts::TIMESTAMPTZ AS ts,
           try_cast(json_extract(r.data, '$.step') AS BIGINT) AS step,
           unnest(json_keys(r.data)) AS k, unnest(json_extract(r.data, '$.*')) AS val
    FROM {{source}} WHERE {{where}})
WHERE json_type(val) <> 'NULL' AND k <> 'step'
"""
#: the reference path: parse once into a temp table, then rows, then every kind of anomaly
_METRICS_SQL = [
    f"""CREATE OR REPLACE TEMP TABLE _mx AS
SELECT seq, subject, unnest(l) AS r, generate_subscripts(l, 1) - 1 AS idx
FROM (SELECT seq, subject, from_json(j, '{_METRIC_T}') AS l FROM _stage WHERE json_valid(j))""",
    _EXPLODE.format(source="_mx", where=f"NOT ({_IRREGULAR})"),
    """INSERT INTO anomalies
SELECT seq, ?, subject, r.event_id, r.type, r.run_id,
       'metric record rejected: ' || CASE WHEN r.type IS DISTINCT FROM 'MetricLogged'
         THEN 'not a MetricLogged' WHEN r.run_id IS NULL THEN 'no run_id'
         WHEN coalesce(r.v, 1) <> 1 THEN 'unknown schema version ' || r.v
         ELSE 'data is not an object' END, NULL
FROM _mx WHERE """ + _IRREGULAR,
    """INSERT INTO anomalies
SELECT seq, ?, subject, NULL, NULL, NULL, 'undecodable: not valid JSON', j
FROM _stage WHERE NOT json_valid(j)""",
    "DROP TABLE _mx",
]



class MetricsFold(Writer):
    """Folding metrics batches."""

    def _metrics(self, stream: str, msgs: list[Msg], long: Long | None) -> None:
        """Explode metric records into long rows: a regular batch from the columns Arrow
        read (`long_columns`, prepared before the transaction), any other through
        `_metrics_py`."""
        if long is None:
            self._metrics_py(stream, self._as_arrays(stream, msgs))
        elif long.keys:
            self._on_rows(long.table, "INSERT INTO metrics (seq, idx, run_id, job_id, step, "
                          "key, value, ts) " + " UNION ALL ".join(
                              f"SELECT seq, idx, run_id, job_id, step, ?, c{i}::DOUBLE, ts "
                              f"FROM _rows WHERE c{i} IS NOT NULL"
                              for i in range(len(long.keys))), long.keys)

    def _as_arrays(self, stream: str, msgs: list[Msg]) -> list[Msg]:
        """The batch with each `MetricBatch` message as the JSON array of its records (the
        form the slower paths read); one that does not decode is an anomaly."""
        out: list[Msg] = []
        bad: list[tuple[Any, ...]] = []
        for m in msgs:
            if m.data[:1] == b"[" or not codec.is_metric_batch(m.data):
                out.append(m)
                continue
            try:
                out.append(m._replace(data=_json.encode(codec.decode_message(m.data))))
            except (msgspec.DecodeError, msgspec.ValidationError) as exc:
                bad.append((m.seq, stream, m.subject, None, "MetricBatch",
                            m.subject.rsplit(".", 1)[-1],  # ow.mx.<org>.<run_id>
                            f"undecodable: {exc}", m.data.decode("utf-8", "replace")))
        self._anomalies(bad)
        return out

    def _metrics_py(self, stream: str, msgs: list[Msg]) -> None:
        """Explode metric records into long rows.

        Well-formed messages (every record a MetricLogged with a run id and an object of
        data) are decoded by msgspec and loaded as Arrow columns, a column per key. The
        others, and any batch with an unusual value (a non-integer step, an integer a
        double cannot hold, a value that is not a number: its JSON goes to `raw`), go
        through `_metrics_sql`, the reference that also records
        the anomalies; `tests/unit/projections` checks both give the same rows."""
        careful: list[Msg] = []
        seqs: list[int] = []
        sizes: list[int] = []
        records: list[Record] = []
        for m in msgs:
            try:
                recs = records_dec.decode(m.data if m.data[:1] == b"[" else b"[" + m.data + b"]")
            except (msgspec.DecodeError, msgspec.ValidationError):
                careful.append(m)
                continue
            if not all(r.type == "MetricLogged" and r.run_id is not None and r.data is not None
                       and (r.v is None or r.v == 1) for r in recs):
                careful.append(m)
                continue
            seqs.append(m.seq)
            sizes.append(len(recs))
            records += recs
        try:
            rows = long_rows(records, seqs, sizes) if records else None
        except Irregular:
            rows, careful = None, msgs
        if rows is not None:
            self._insert("metrics", rows)
        if careful:
            self._metrics_sql(stream, careful)

    def _metrics_sql(self, stream: str, msgs: list[Msg]) -> None:
        """The reference path: DuckDB parses the JSON, explodes it and finds the anomalies."""
        import pyarrow as pa

        stage = pa.table({
            "seq": pa.array([m.seq for m in msgs], pa.int64()),
            "subject": pa.array([m.subject for m in msgs], pa.string()),
            "j": pa.array([(m.data if m.data[:1] == b"[" else b"[" + m.data + b"]").decode(
                "utf-8", "replace") for m in msgs], pa.string()),
        })
        self.con.register("_stage", stage)
        try:
            for statement in _METRICS_SQL:
                self.con.execute(statement, [stream] if "?" in statement else [])
        finally:
            self.con.unregister("_stage")
