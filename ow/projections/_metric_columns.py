"""Reading a batch of metrics messages into Arrow columns, without a database.

The fast paths of the metrics fold (`_metrics.py`): `long_columns` reads a regular batch
(every record a MetricLogged v1 with a run id and an object of data, as `MetricBatch`
messages or JSON arrays) with Arrow's JSON reader (C++, off the GIL) into one value column
per numeric key; `long_rows` builds the long rows of records msgspec decoded. Each returns
None or raises `Irregular` for a batch it does not handle: the SQL path then takes it.

Imports: numpy and pyarrow (lazily), msgspec and `ow.core`.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import msgspec

from ow.core import codec
from ow.core.bus import Msg

__all__ = ["Irregular", "Long", "Record", "long_columns", "long_rows", "records_dec"]


class Record(msgspec.Struct, gc=False):
    """The fields of a metric record the projection keeps, typed strictly: a record that
    does not fit (or a message that is not valid JSON) goes to the SQL path."""

    type: str | None = None
    v: int | None = None
    ts: str | None = None
    run_id: str | None = None
    job_id: str | None = None
    data: dict[str, Any] | None = None


records_dec = msgspec.json.Decoder(list[Record])


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
    import pyarrow as pa

    s, i64, ts = pa.string(), pa.int64(), pa.timestamp("us", tz="UTC")
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


class Long(NamedTuple):
    """A regular metrics batch read into columns: seq, idx, run_id, job_id, ts, step and a
    value column `c<i>` for each of `keys` (no table if there is no value)."""

    table: Any
    keys: list[str]


def long_columns(msgs: list[Msg]) -> Long | None:
    """The whole batch, if every record is a regular metric record: Arrow's JSON reader
    (C++, off the GIL) turns the records into columns, one per numeric key of `data`, for
    one DuckDB statement to explode into long rows. None for any other batch, which
    `MetricsFold._metrics_py` then takes message by message. Needs no database."""
    import numpy as np
    import pyarrow as pa

    records = _read_records(msgs)
    if records is None:
        return None
    sizes, data = records.sizes, records.data
    total = int(sizes.sum())
    if not total:
        return Long(None, [])
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
        return Long(None, [])
    cols.setdefault("step", pa.nulls(total, pa.int64()))
    return Long(pa.table(cols), keys)


class Irregular(Exception):
    """A batch the Python path of metrics does not handle (it takes the SQL path)."""


_NUMBER = frozenset({int, float})


def long_rows(records: list[Record], seqs: list[int], sizes: list[int]) -> Any:
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
        raise Irregular from exc
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
                raise Irregular  # a float, bool or string step: the SQL path casts it
            try:
                rows["step"] = pa.array(steps, pa.int64())
            except (pa.ArrowInvalid, OverflowError) as exc:
                raise Irregular from exc
        else:
            rows["step"] = pa.nulls(n, pa.int64())
        for key in dict.fromkeys(shape):
            if key == "step":
                continue
            values = [d[key] for d in group]
            cols = rows
            kinds = set(map(type, values))
            if not kinds <= _NUMBER | {type(None)}:
                raise Irregular  # text, booleans, lists, objects: the SQL path keeps their JSON
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
                    raise Irregular from exc
            if len(value):
                tables.append(pa.table({
                    **cols, "key": pa.repeat(pa.scalar(key, pa.string()), len(value)),
                    "value": value,
                }))
    return pa.concat_tables(tables) if tables else None
