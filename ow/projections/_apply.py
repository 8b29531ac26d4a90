"""Applying one batch of one stream to the DuckDB tables, in one transaction.

`Folder.apply(stream, msgs)` decodes the batch, folds job and worker events with
`ow.core.state` (the one state machine), and writes the touched rows, the envelopes, the
anomalies and the stream position it reached in a single transaction: a crash either
applies the whole batch with its position or nothing of it. Metric batches are exploded
into long rows by DuckDB itself (one vectorised query instead of a Python loop per key).

Rows are loaded through Arrow tables (never `executemany`). Folded states are cached in
memory and read back from the `state` column of their row after a restart.

Imports: duckdb and pyarrow (lazily), msgspec and `ow.core`.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterable
from datetime import datetime
from typing import Any, NamedTuple

import msgspec

from ow.core import codec
from ow.core import events as ev
from ow.core.state import JobState, WorkerState, apply, apply_worker
from ow.projections._read import Msg

__all__ = ["Folder"]

log = logging.getLogger(__name__)

_json = msgspec.json.Encoder()
_job_dec = msgspec.json.Decoder(JobState)
_worker_dec = msgspec.json.Decoder(WorkerState)
_ping_dec = msgspec.json.Decoder(ev.WorkerPinged)


class _Record(msgspec.Struct, gc=False):
    """The fields of a metric record the projection keeps, typed strictly: a record that
    does not fit (or a message that is not valid JSON) goes to the SQL path."""

    type: str | None = None
    v: int | None = None
    ts: str | None = None
    run_id: str | None = None
    job_id: str | None = None
    data: dict[str, Any] | None = None


_records_dec = msgspec.json.Decoder(list[_Record])


class _Records(NamedTuple):
    """The records of a regular metrics batch as Arrow columns, and the number of records
    of each message."""

    run_id: Any
    job_id: Any
    ts: Any
    data: Any
    sizes: Any


def _read_records(msgs: list[Msg]) -> _Records | None:
    """The records of a batch of regular metrics messages, all `MetricBatch` messages or
    all JSON arrays of MetricLogged (as written before it); None for any other batch (a
    record of the wrong type or version, no run id, data not an object, a field whose type
    changes from record to record, a time Arrow cannot parse, a message that is not JSON on
    one line, a batch of both kinds).

    Each message is one line for Arrow's JSON reader (C++, off the GIL), an array wrapped
    as `{"r": <message>}`: no Python pass splits the records out of their messages."""
    if not all(m.data and b"\n" not in m.data for m in msgs):
        return None  # a message must be one line of JSON (an empty one is an anomaly)
    batches = sum(1 for m in msgs if m.data.startswith(codec.METRIC_BATCH_PREFIX))
    if batches == len(msgs):
        return _read_batches(msgs)
    if batches:
        return None
    parts: list[bytes] = []  # one copy of the batch into the lines (not one per message)
    for m in msgs:
        parts += (b'{"r":', m.data, b"}\n") if m.data[:1] == b"[" else (
            b'{"r":[', m.data, b"]}\n")
    import pyarrow as pa

    schema = pa.schema([("r", pa.list_(pa.struct(_envelope())))])
    table = _read_json(b"".join(parts), schema, len(msgs))
    if table is None:
        return None
    lists = table.column("r").combine_chunks()
    flat = lists.flatten()
    if lists.null_count or (len(flat) and not (_regular(flat, "MetricLogged")
                                               and _with_data(flat))):
        return None
    return _Records(flat.field("run_id"), flat.field("job_id"), flat.field("ts"),
                    flat.field("data") if len(flat) else None, _lengths(lists))


def _read_batches(msgs: list[Msg]) -> _Records | None:
    """`_read_records` of `MetricBatch` messages: the envelope of each message repeated
    for its records, a record's time the message's plus its `dt` microseconds."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    schema = pa.schema(_envelope() + [("records", pa.list_(pa.struct([("dt", pa.int64())])))])
    table = _read_json(b"\n".join(m.data for m in msgs) + b"\n", schema, len(msgs))
    if table is None or (len(table) and not _regular(
            table.to_struct_array().combine_chunks(), "MetricBatch")):
        return None
    lists = table.column("records").combine_chunks()
    flat = lists.flatten()
    if lists.null_count or flat.null_count:
        return None
    if not len(flat):
        return _Records(None, None, None, None, _lengths(lists))
    if flat.field("dt").null_count or not _with_data(flat):
        return None
    sizes = _lengths(lists)
    of = pa.array(np.repeat(np.arange(len(msgs)), sizes))  # each record's message
    ts = pc.add(table.column("ts").combine_chunks().take(of),
                flat.field("dt").cast(pa.duration("us")))
    return _Records(table.column("run_id").combine_chunks().take(of),
                    table.column("job_id").combine_chunks().take(of), ts,
                    flat.field("data"), sizes)


def _read_json(lines: bytes, schema: Any, rows: int) -> Any:
    """Arrow's JSON reader on `lines` (one row per message): the fields of `schema` typed,
    any other inferred; None if Arrow cannot read them so, or reads another number of rows."""
    import io

    import pyarrow as pa
    import pyarrow.json as pj

    try:
        # one thread: the caller's, off the GIL. Arrow's pool adds threads that fight the
        # folds (and the GIL holder) for the cores: the rebuild measured ~10% slower with it
        table = pj.read_json(
            io.BytesIO(lines), read_options=pj.ReadOptions(use_threads=False),
            parse_options=pj.ParseOptions(explicit_schema=schema,
                                          unexpected_field_behavior="infer"))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
        return None
    return table if table.num_rows == rows else None


def _envelope() -> list[tuple[str, Any]]:
    """The typed envelope fields a metrics message or record is read with."""
    s, i64, _, _, ts = _types()
    return [("type", s), ("v", i64), ("ts", ts), ("run_id", s), ("job_id", s),
            ("event_id", s), ("org", s), ("actor", s)]


def _lengths(lists: Any) -> Any:
    import pyarrow.compute as pc

    return pc.list_value_length(lists).to_numpy(zero_copy_only=False)


def _with_data(records: Any) -> bool:
    """Every record (an Arrow struct array) has `data`, an object."""
    import pyarrow as pa

    return (records.type.get_field_index("data") >= 0
            and pa.types.is_struct(records.type.field("data").type)
            and not records.field("data").null_count)


def _regular(records: Any, kind: str) -> bool:
    """Every record (an Arrow struct array) a `kind` v1 with a run id."""
    import pyarrow.compute as pc

    return not (
        records.null_count or records.field("run_id").null_count
        or records.field("type").null_count
        or not pc.all(pc.equal(records.field("type"), kind)).as_py()
        or not pc.all(pc.fill_null(pc.equal(records.field("v"), 1), True)).as_py())


class _Long(NamedTuple):
    """A regular metrics batch read into columns: seq, idx, run_id, job_id, ts, step and a
    value column `c<i>` for each of `keys` (no table if there is no value)."""

    table: Any
    keys: list[str]


def _long_columns(msgs: list[Msg]) -> _Long | None:
    """The whole batch, if every record is a regular metric record: Arrow's JSON reader
    (C++, off the GIL) turns the records into columns, one per numeric key of `data`, for
    one DuckDB statement to explode into long rows. None for any other batch, which
    `Folder._metrics_py` then takes message by message. Needs no database."""
    import numpy as np
    import pyarrow as pa

    records = _read_records(msgs)
    if records is None:
        return None
    sizes, data = records.sizes, records.data
    total = int(sizes.sum())
    if not total:
        return _Long(None, [])
    cols: dict[str, Any] = {
        "seq": np.repeat(np.fromiter((m.seq for m in msgs), np.int64, len(msgs)), sizes),
        "idx": (np.arange(total) - np.repeat(np.cumsum(sizes) - sizes, sizes)).astype(np.int32),
        "run_id": records.run_id, "job_id": records.job_id, "ts": records.ts,
    }
    keys: list[str] = []
    for i, f in enumerate(data.type):
        if f.name == "step":
            if not (pa.types.is_integer(f.type) or pa.types.is_null(f.type)):
                return None  # a float, bool or string step: the SQL path casts it
            cols["step"] = data.field(i).cast(pa.int64())
        elif pa.types.is_integer(f.type) or pa.types.is_floating(f.type):
            cols[f"c{len(keys)}"] = data.field(i)
            keys.append(f.name)
        elif not pa.types.is_null(f.type):
            return None  # text, booleans, lists, objects: their JSON goes to `raw`
    if not keys:
        return _Long(None, [])
    cols.setdefault("step", pa.nulls(total, pa.int64()))
    return _Long(pa.table(cols), keys)


class _Irregular(Exception):
    """A batch the Python path of metrics does not handle (it takes the SQL path)."""

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


#: the events table from (seq, subject, json) rows; absent envelope strings are '' as in
#: the decoded event (msgspec omits defaults when encoding)
_EVENTS_SQL = """
INSERT INTO events
SELECT seq, ?, subject, e.type, coalesce(e.event_id, ''), coalesce(e.org, ''),
       e.ts::TIMESTAMPTZ, coalesce(e.actor, ''), json
FROM (SELECT seq, subject, json, json_transform(json, '{"type": "VARCHAR",
      "event_id": "VARCHAR", "org": "VARCHAR", "ts": "VARCHAR", "actor": "VARCHAR"}') AS e
      FROM _rows)
"""


def _j(value: Any) -> str:
    return _json.encode(value).decode()


def _arrow(columns: dict[str, tuple[Any, list[Any]]]) -> Any:
    """An Arrow table from named, typed columns."""
    import pyarrow as pa

    return pa.table({
        name: _times(values, t) if pa.types.is_timestamp(t) else pa.array(values, type=t)
        for name, (t, values) in columns.items()
    })


def _times(values: list[Any], t: Any) -> Any:
    """A timestamp column from datetimes, through their RFC 3339 text (ten times faster
    than Arrow's conversion of datetime objects)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    try:
        return pc.cast(pa.array(msgspec.to_builtins(values), pa.string()), t)
    except (pa.ArrowInvalid, TypeError):  # a datetime without a zone, say
        return pa.array(values, type=t)


def _types() -> Any:
    import pyarrow as pa

    return pa.string(), pa.int64(), pa.float64(), pa.bool_(), pa.timestamp("us", tz="UTC")


class Folder:
    """Folds batches into one DuckDB connection; holds the folded states in memory."""

    def __init__(self, con: Any, *, fresh: bool = False):
        self.con = con
        self.fresh = fresh  # every state is in memory (a rebuild): never read rows back
        self._written: dict[str, set[str]] = {}  # while fresh: ids each table has rows of
        self.jobs: dict[str, JobState] = {}
        self.workers: dict[str, WorkerState] = {}

    def position(self, stream: str) -> int:
        row = self.con.execute("SELECT seq FROM positions WHERE stream = ?", [stream]).fetchall()
        return int(row[0][0]) if row else 0

    def apply(self, stream: str, msgs: list[Msg]) -> None:
        """Apply one batch and record `msgs[-1].seq` as the stream's position, atomically."""
        self.write(stream, msgs, self.prepare(stream, msgs))

    def prepare(self, stream: str, msgs: list[Msg]) -> Any:
        """The part of applying a batch that needs no database, for `write`: metrics read
        into columns. `Projector` runs it for the next batch while this one is written."""
        return _long_columns(msgs) if stream == "OW_METRICS" and msgs else None

    def write(self, stream: str, msgs: list[Msg], prepared: Any) -> None:
        """`apply` with what `prepare` returned for the same batch."""
        if not msgs:
            return
        self.con.execute("BEGIN TRANSACTION")
        try:
            if stream == "OW_METRICS":
                self._metrics(stream, msgs, prepared)
            elif stream == "OW_HEARTBEATS":
                self._pings(msgs)
            else:
                self._control(stream, msgs)
            self.con.execute(
                "UPDATE positions SET seq = ? WHERE stream = ?", [msgs[-1].seq, stream]
            )
            self.con.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(Exception):
                self.con.execute("ROLLBACK")
            self.jobs.clear()  # the cache may hold states the rollback just undid
            self.workers.clear()
            self.fresh = False
            self._written.clear()
            raise

    # --- control-plane events ---------------------------------------------------------

    def _control(self, stream: str, msgs: list[Msg]) -> None:
        bad: list[tuple[Any, ...]] = []
        events = codec.decode_each([m.data for m in msgs])
        if events is not None:
            decoded = list(zip(msgs, events, strict=True))
        else:  # an undecodable or older-version event: one by one
            decoded = []
            for m in msgs:
                try:
                    decoded.append((m, codec.decode(m.data)))
                except (msgspec.DecodeError, msgspec.ValidationError, ValueError) as exc:
                    bad.append((m.seq, stream, m.subject, None, None, _agg_id(m.subject),
                                f"undecodable: {exc}", m.data.decode("utf-8", "replace")))
        kinds = [(_aggregate(m.subject), m, e) for m, e in decoded]
        if not self.fresh:  # a rebuild has every state in memory
            self._load("jobs", "job_id",
                       {getattr(e, "job_id", "") for k, _, e in kinds if k == "job"})
            self._load("workers", "worker_id",
                       {getattr(e, "worker_id", "") for k, _, e in kinds if k == "worker"})
        touched_jobs: set[str] = set()
        touched_workers: set[str] = set()
        files: list[tuple[Msg, ev.FileUploaded]] = []
        for kind, m, e in kinds:
            anomaly = None
            if kind == "job":
                jid = getattr(e, "job_id", "")
                new, anomaly = apply(self.jobs.get(jid), e)
                if new is not None and anomaly is None:
                    self.jobs[jid] = new
                    touched_jobs.add(jid)
            elif kind == "worker":
                wid = getattr(e, "worker_id", "")
                new_w, anomaly = apply_worker(self.workers.get(wid), e)
                if new_w is not None and anomaly is None:
                    self.workers[wid] = new_w
                    touched_workers.add(wid)
            elif isinstance(e, ev.FileUploaded):
                files.append((m, e))
            if anomaly is not None:
                bad.append((m.seq, stream, m.subject, anomaly.event_id, anomaly.event_type,
                            anomaly.aggregate_id, anomaly.rule, m.data.decode()))
        self._events(stream, [m for m, _ in decoded])
        self._write_jobs(touched_jobs)
        self._write_workers(touched_workers)
        self._write_files(files)
        self._anomalies(bad)

    def _events(self, stream: str, msgs: list[Msg]) -> None:
        """The envelopes of decoded events. DuckDB reads the envelope fields out of the JSON
        (one parse per event, off the GIL): building those columns in Python cost twice as
        much and held the GIL the other streams' folds need."""
        if not msgs:
            return
        import pyarrow as pa

        rows = pa.table({
            "seq": pa.array([m.seq for m in msgs], pa.int64()),
            "subject": pa.array([m.subject for m in msgs], pa.string()),
            # bytes to text in Arrow (it checks the UTF-8): a Python decode per event is slower
            "json": pa.array([m.data for m in msgs], pa.binary()).cast(pa.string()),
        })
        self._on_rows(rows, _EVENTS_SQL, [stream])

    def _load(self, table: str, key: str, ids: Iterable[str]) -> None:
        """Read back the states of aggregates this process has not folded yet."""
        cache: dict[str, Any] = self.jobs if table == "jobs" else self.workers
        missing = [i for i in ids if i and i not in cache]
        if self.fresh or not missing:
            return
        dec = _job_dec if table == "jobs" else _worker_dec
        rows = self.con.execute(
            f"SELECT {key}, state FROM {table} WHERE {key} IN (SELECT unnest(?::VARCHAR[]))",
            [missing],
        ).fetchall()
        for agg_id, state in rows:
            cache[agg_id] = dec.decode(state)

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

    def _write_jobs(self, ids: set[str]) -> None:
        if not ids:
            return
        s, i64, f64, b, ts = _types()
        states = [self.jobs[i] for i in sorted(ids)]
        last = [st.runs[-1] if st.runs else None for st in states]
        self._replace("jobs", "job_id", [st.job_id for st in states], _arrow({
            "job_id": (s, [st.job_id for st in states]),
            "org": (s, [st.org for st in states]),
            "type": (s, [st.spec.job_type for st in states]),
            "model": (s, [st.spec.model for st in states]),
            "status": (s, [st.status for st in states]),
            "gen": (i64, [st.gen for st in states]),
            "error": (s, [st.error for st in states]),
            "cancel_requested": (b, [st.cancel_requested for st in states]),
            "requires_vram_gb": (f64, [float(st.spec.requires_vram_gb) for st in states]),
            "image": (s, [st.spec.image for st in states]),
            "runs": (i64, [len(st.runs) for st in states]),
            "run_id": (s, [r.run_id if r else None for r in last]),
            "worker_id": (s, [r.worker_id if r else None for r in last]),
            "outputs": (s, [_j(st.outputs) for st in states]),
            "params": (s, [_j(st.spec.params) for st in states]),
            "created_at": (ts, [st.created_at for st in states]),
            "updated_at": (ts, [st.updated_at for st in states]),
            "state": (s, [_j(st) for st in states]),
        }))
        runs = [r for st in states for r in st.runs]
        self._replace("runs", "job_id", [st.job_id for st in states], _arrow({
            "run_id": (s, [r.run_id for r in runs]),
            "job_id": (s, [r.job_id for r in runs]),
            "gen": (i64, [r.gen for r in runs]),
            "worker_id": (s, [r.worker_id for r in runs]),
            "claim_rev": (i64, [r.claim_rev for r in runs]),
            "status": (s, [r.status for r in runs]),
            "started_at": (ts, [r.started_at for r in runs]),
            "finished_at": (ts, [r.finished_at for r in runs]),
            "exit_code": (i64, [r.exit_code for r in runs]),
            "error": (s, [r.error for r in runs]),
            "log_file": (s, [r.log_file for r in runs]),
            "outputs": (s, [_j(r.outputs) for r in runs]),
            "artifacts": (s, [_j(dict(r.artifacts)) for r in runs]),
        }))

    def _write_workers(self, ids: set[str]) -> None:
        if not ids:
            return
        s, _, f64, _, ts = _types()
        ws = [self.workers[i] for i in sorted(ids)]
        self._replace("workers", "worker_id", [w.worker_id for w in ws], _arrow({
            "worker_id": (s, [w.worker_id for w in ws]),
            "status": (s, [w.status for w in ws]),
            "provider": (s, [w.provider for w in ws]),
            "pod_id": (s, [w.pod_id for w in ws]),
            "hardware": (s, [w.hardware for w in ws]),
            "gpus": (s, [_j(w.gpus) for w in ws]),
            "vram_gb": (f64, [float(w.vram_gb) for w in ws]),
            "image": (s, [w.image for w in ws]),
            "price_per_hour": (f64, [float(w.price_per_hour) for w in ws]),
            "provisioned_at": (ts, [w.provisioned_at for w in ws]),
            "registered_at": (ts, [w.registered_at for w in ws]),
            "terminated_at": (ts, [w.terminated_at for w in ws]),
            "last_ping": (ts, [w.last_ping for w in ws]),
            "run_id": (s, [w.run_id for w in ws]),
            "reason": (s, [w.reason for w in ws]),
            "state": (s, [_j(w) for w in ws]),
        }))

    def _write_files(self, files: list[tuple[Msg, ev.FileUploaded]]) -> None:
        if not files:
            return
        s, i64, _, _, ts = _types()
        latest = {e.file_id: (m, e) for m, e in files}  # one row per file id
        rows = list(latest.values())
        self._replace("files", "file_id", list(latest), _arrow({
            "file_id": (s, [e.file_id for _, e in rows]),
            "purpose": (s, [e.purpose for _, e in rows]),
            "filename": (s, [e.filename for _, e in rows]),
            "size_bytes": (i64, [e.size_bytes for _, e in rows]),
            "sha256": (s, [e.sha256 for _, e in rows]),
            "store": (s, [e.store for _, e in rows]),
            "key": (s, [e.key for _, e in rows]),
            "created_at": (ts, [e.ts for _, e in rows]),
            "seq": (i64, [m.seq for m, _ in rows]),
        }))

    def _anomalies(self, rows: list[tuple[Any, ...]]) -> None:
        if not rows:
            return
        s, i64, _, _, _ = _types()
        cols = ["seq", "stream", "subject", "event_id", "type", "aggregate_id", "rule", "json"]
        types = [i64, s, s, s, s, s, s, s]
        self._insert("anomalies", _arrow(
            {c: (t, [r[i] for r in rows]) for i, (c, t) in enumerate(zip(cols, types, strict=True))}
        ))

    # --- metrics and heartbeats -------------------------------------------------------

    def _metrics(self, stream: str, msgs: list[Msg], long: _Long | None) -> None:
        """Explode metric records into long rows: a regular batch from the columns Arrow
        read (`_long_columns`, prepared before the transaction), any other through
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
        records: list[_Record] = []
        for m in msgs:
            try:
                recs = _records_dec.decode(m.data if m.data[:1] == b"[" else b"[" + m.data + b"]")
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
            rows = _long_rows(records, seqs, sizes) if records else None
        except _Irregular:
            rows, careful = None, msgs
        if rows is not None:
            self._insert("metrics", rows)
        if careful:
            self._metrics_sql(stream, careful)

    def _metrics_sql(self, stream: str, msgs: list[Msg]) -> None:
        """The reference path: DuckDB parses the JSON, explodes it and finds the anomalies."""
        s, i64, _, _, _ = _types()
        stage = _arrow({
            "seq": (i64, [m.seq for m in msgs]),
            "subject": (s, [m.subject for m in msgs]),
            "j": (s, [(m.data if m.data[:1] == b"[" else b"[" + m.data + b"]").decode(
                "utf-8", "replace") for m in msgs]),
        })
        self.con.register("_stage", stage)
        try:
            for statement in _METRICS_SQL:
                self.con.execute(statement, [stream] if "?" in statement else [])
        finally:
            self.con.unregister("_stage")

    def _pings(self, msgs: list[Msg]) -> None:
        """Heartbeats keep the newest ping per worker (order-free, so no fold is needed)."""
        s, i64, _, _, ts = _types()
        latest: dict[str, tuple[datetime, str, int]] = {}
        for m in msgs:
            try:
                p = _ping_dec.decode(m.data)
            except (msgspec.DecodeError, msgspec.ValidationError):
                continue  # heartbeats are advisory and bounded; a bad one is not history
            if p.ts and (p.worker_id not in latest or p.ts >= latest[p.worker_id][0]):
                latest[p.worker_id] = (p.ts, p.run_id, m.seq)
        rows = _arrow({
            "worker_id": (s, list(latest)),
            "ts": (ts, [v[0] for v in latest.values()]),
            "run_id": (s, [v[1] for v in latest.values()]),
            "seq": (i64, [v[2] for v in latest.values()]),
        })
        if rows.num_rows:
            self._on_rows(
                rows, "INSERT INTO pings SELECT * FROM _rows ON CONFLICT (worker_id) DO UPDATE "
                "SET ts = excluded.ts, run_id = excluded.run_id, seq = excluded.seq "
                "WHERE excluded.ts >= pings.ts")


def _aggregate(subject: str) -> str:
    """`ow.ev.<org>.<aggregate>.<id>` -> aggregate."""
    parts = subject.split(".", 4)
    return parts[3] if len(parts) > 3 else ""


def _agg_id(subject: str) -> str:
    parts = subject.split(".", 4)
    return parts[4] if len(parts) > 4 else ""


_NUMBER = frozenset({int, float})


def _long_rows(records: list[_Record], seqs: list[int], sizes: list[int]) -> Any:
    """Long rows (seq, idx, run_id, job_id, step, key, value, ts) of well-formed records,
    built a column per (shape of data, key) instead of a Python loop per value."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    datas = [r.data for r in records]
    base = {
        "seq": pa.array(np.repeat(np.asarray(seqs, np.int64), sizes)),
        "idx": pa.array(np.concatenate([np.arange(n, dtype=np.int32) for n in sizes])),
        "run_id": pa.array([r.run_id for r in records], pa.string()),
        "job_id": pa.array([r.job_id for r in records], pa.string()),
    }
    try:
        base["ts"] = pc.cast(pa.array([r.ts for r in records], pa.string()),
                             pa.timestamp("us", tz="UTC"))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise _Irregular from exc
    shapes = list(map(tuple, datas))  # the keys of each record, in order
    groups: dict[tuple[str, ...], list[int]] = {}
    if shapes.count(shapes[0]) == len(shapes):
        groups[shapes[0]] = []  # every record: no selection needed
    else:
        for i, shape in enumerate(shapes):
            groups.setdefault(shape, []).append(i)
    tables = []
    for shape, members in groups.items():
        rows = dict(base)
        group = datas
        if members:
            take = pa.array(members, pa.int64())
            rows = {name: col.take(take) for name, col in base.items()}
            group = [datas[i] for i in members]
        n = len(group)
        if "step" in shape:
            steps = [d["step"] for d in group]
            if not set(map(type, steps)) <= {int}:
                raise _Irregular  # a float, bool or string step: the SQL path casts it
            try:
                rows["step"] = pa.array(steps, pa.int64())
            except (pa.ArrowInvalid, OverflowError) as exc:
                raise _Irregular from exc
        else:
            rows["step"] = pa.nulls(n, pa.int64())
        for key in dict.fromkeys(shape):
            if key == "step":
                continue
            values = [d[key] for d in group]
            cols = rows
            kinds = set(map(type, values))
            if not kinds <= _NUMBER | {type(None)}:
                raise _Irregular  # text, booleans, lists, objects: the SQL path keeps their JSON
            if not kinds <= _NUMBER:  # nulls: no row
                keep = [type(v) in _NUMBER for v in values]
                mask = pa.array(keep, pa.bool_())
                cols = {name: col.filter(mask) for name, col in rows.items()}
                values = [v for v, k in zip(values, keep, strict=True) if k]
            try:
                value = pa.array(values, pa.float64())
            except (pa.ArrowInvalid, OverflowError):  # integers a double cannot hold exactly
                try:
                    value = pa.array([float(v) for v in values], pa.float64())
                except OverflowError as exc:
                    raise _Irregular from exc
            if len(value):
                tables.append(pa.table({
                    **cols, "key": pa.repeat(pa.scalar(key, pa.string()), len(value)),
                    "value": value,
                }))
    return pa.concat_tables(tables) if tables else None
