"""The fast paths of the metrics projection give exactly the rows of the SQL reference.

`_long_columns` reads a batch of regular records with Arrow's JSON reader;
`Folder._metrics_py` decodes well-formed messages with msgspec and loads Arrow columns;
`Folder._metrics` writes the first, else runs the second; `Folder._metrics_sql` is the reference
(DuckDB parses, explodes, records anomalies). All run here on the same batches, in memory
(no NATS), and the tables must be equal.
"""

from __future__ import annotations

import random

import msgspec
import pytest

from ow.core import codec
from ow.core import events as ev
from ow.core.bus import Msg
from ow.projections import _db
from ow.projections._apply import Folder, _long_columns
from ow.projections.audit import contents

T0 = ev.now()


def _record(run: str, data: object, **extra: object) -> dict:
    return {"type": "MetricLogged", "event_id": f"e{random.random()}", "org": "o",
            "ts": msgspec.json.encode(T0).decode().strip('"'), "actor": "a",
            "run_id": run, "job_id": f"job-{run}", "data": data, **extra}


def _body(records: list) -> bytes:
    return msgspec.json.encode(records)


def _both(batches: list[list[bytes]], path: str = "_metrics") -> tuple[dict, dict]:
    fast, ref = Folder(_db.connect(None), fresh=True), Folder(_db.connect(None), fresh=True)
    seq = 0
    for bodies in batches:
        msgs = []
        for body in bodies:
            seq += 1
            msgs.append(Msg(seq, f"ow.mx.o.r{seq % 3}", body, seq))
        for folder, name in ((fast, path), (ref, "_metrics_sql")):
            folder.con.execute("BEGIN TRANSACTION")
            if name == "_metrics":
                folder._metrics("OW_METRICS", msgs, _long_columns(msgs))
            else:
                getattr(folder, name)("OW_METRICS", msgs)
            folder.con.execute("COMMIT")
    return contents(fast.con), contents(ref.con)


CASES = {
    "regular": [[_body([_record("r1", {"step": s, "loss": 1 / (s + 1), "lr": 1e-4,
                                        "tokens": s * 512}) for s in range(50)])]],
    "mixed shapes and non-numbers": [[_body([
        _record("r1", {"step": 1, "loss": 2.0, "lr": 0.1, "tag": "a", "ok": True}),
        _record("r1", {"step": 2, "loss": 1.0}),
        _record("r1", {"loss": 3, "nested": {"x": 1}, "none": None, "list": [1]}),
        _record("r1", {"lr": 0.5, "step": 3}),
        _record("r1", {}),
    ])]],
    "mixed shapes and nulls": [[_body([
        _record("r1", {"step": 1, "loss": 2.0, "lr": 0.1, "none": None}),
        _record("r1", {"step": 2, "loss": 1.0}),
        _record("r1", {"loss": 3, "none": None}),
        _record("r1", {"lr": 0.5, "step": 3}),
        _record("r1", {}),
    ])]],
    "single object body": [[msgspec.json.encode(_record("r2", {"step": 9, "acc": 0.5}))]],
    "empty array": [[b"[]"]],
    "anomalies and bad json": [[
        _body([_record("r1", {"step": 1, "loss": 1.0}), {"type": "JobReset", "job_id": "j"}]),
        _body([_record("r1", [1, 2]), _record("r1", {"loss": 1.0}, v=2)]),
        _body([{"type": "MetricLogged", "data": {"loss": 1.0}}]),
        b"[oops", b"", _body([1, "x", None]),
        _body([_record("r3", {"step": 4, "loss": 0.25})]),
    ]],
    "odd values take the SQL path": [[
        _body([_record("r1", {"step": 1.5, "loss": 1.0})]),
        _body([_record("r1", {"step": True, "loss": 1.0})]),
        _body([_record("r1", {"step": "7", "loss": 1.0})]),
    ], [
        _body([_record("r1", {"step": 2**63 + 5, "big": 2**64 - 1, "inexact": 2**60 + 1})]),
        _body([_record("r1", {"step": 1, "inexact": 2**60 + 1, "neg": -0.0, "e": 1e300})]),
    ]],
    "pretty-printed body": [[msgspec.json.format(_body([_record("r1", {"step": 1, "loss": 0.5}),
                                                          _record("r1", {"step": 2})]))]],
    "an empty message alone": [[b""]],
    "null fields": [[_body([_record("r1", {"loss": 1.0}, job_id=None, ts=None, v=None)])]],
    "wrongly typed envelope": [[_body([_record("r1", {"loss": 1.0}, job_id=5)])]],
}


@pytest.mark.parametrize("path", ["_metrics", "_metrics_py"])
@pytest.mark.parametrize("batches", CASES.values(), ids=CASES.keys())
def test_fast_paths_equal_the_sql_reference(batches, path):
    fast, ref = _both(batches, path)
    assert fast == ref


REGULAR = ["regular", "mixed shapes and nulls", "single object body", "empty array",
           "null fields"]


@pytest.mark.parametrize("name", REGULAR)
def test_regular_batches_take_the_arrow_path(name):
    msgs = [Msg(i + 1, "ow.mx.o.r", body, i) for i, body in enumerate(CASES[name][0])]
    assert _long_columns(msgs) is not None


@pytest.mark.parametrize("name", ["anomalies and bad json", "odd values take the SQL path",
                                  "pretty-printed body", "an empty message alone",
                                  "wrongly typed envelope", "mixed shapes and non-numbers"])
def test_irregular_batches_leave_the_arrow_path(name):
    for bodies in CASES[name]:
        msgs = [Msg(i + 1, "ow.mx.o.r", body, i) for i, body in enumerate(bodies)]
        assert _long_columns(msgs) is None


def test_values_that_are_not_numbers_keep_their_json_in_raw():
    """Text, booleans, lists and objects are rows with their JSON in `raw` (nothing an
    `ow.run.log` wrote is lost); a null is no row; `step` is a column, not a row."""
    folder = Folder(_db.connect(None), fresh=True)
    body = _body([_record("r1", {"step": 3, "loss": 0.5, "text": "we can log any dicts",
                                 "ok": False, "xs": [1, 2], "obj": {"a": "é"}, "none": None})])
    folder.apply("OW_METRICS", [Msg(1, "ow.mx.o.r1", body, 1)])
    rows = folder.con.execute(
        "SELECT key, step, value, raw FROM metrics ORDER BY key").fetchall()
    assert rows == [("loss", 3, 0.5, None), ("obj", 3, None, '{"a":"é"}'),
                    ("ok", 3, None, "false"), ("text", 3, None, '"we can log any dicts"'),
                    ("xs", 3, None, "[1,2]")]


def test_a_time_that_is_not_a_timestamp_fails_the_batch_on_both_paths():
    import duckdb

    msgs = [Msg(1, "ow.mx.o.r", _body([_record("r1", {"loss": 1.0}, ts="yesterday")]), 1)]
    for run in (lambda f: f._metrics("OW_METRICS", msgs, _long_columns(msgs)),
                lambda f: f._metrics_py("OW_METRICS", msgs),
                lambda f: f._metrics_sql("OW_METRICS", msgs)):
        folder = Folder(_db.connect(None), fresh=True)
        folder.con.execute("BEGIN TRANSACTION")
        with pytest.raises(duckdb.Error):
            run(folder)


def test_a_generated_history_gives_equal_tables():
    rng = random.Random(7)
    keys = ["loss", "lr", "acc", "tokens", "tag", "ok", "step"]

    def value() -> object:
        return rng.choice([rng.random(), rng.randint(-5, 10**6), "s", True, None, 0])

    batches = []
    for _ in range(5):
        bodies = []
        for _ in range(rng.randint(1, 20)):
            recs = []
            for s in range(rng.randint(0, 30)):
                data = {k: (s if k == "step" else value())
                        for k in rng.sample(keys, rng.randint(0, len(keys)))}
                recs.append(_record(f"r{rng.randint(0, 4)}", data))
            if rng.random() < 0.1:
                recs.append({"type": "MetricLogged", "data": {}})  # no run id: an anomaly
            bodies.append(_body(recs))
        batches.append(bodies)
    for path in ("_metrics", "_metrics_py"):
        fast, ref = _both(batches, path)
        assert fast == ref
        assert len(fast["metrics"]) > 100


# --- MetricBatch messages (one envelope, compact records) -----------------------------


def _batch(run: str, datas: list, **extra: object) -> bytes:
    body = {"type": "MetricBatch", "event_id": f"b{random.random()}", "org": "o",
            "ts": msgspec.json.encode(T0).decode().strip('"'), "actor": "a", "run_id": run,
            "job_id": f"job-{run}", "records": [{"dt": 7 * i, "data": d}
                                                for i, d in enumerate(datas)], **extra}
    return msgspec.json.encode({k: v for k, v in body.items() if v is not ...})


def _as_arrays(bodies: list[bytes]) -> list[bytes]:
    """The same records written as JSON arrays of MetricLogged (the form before batches)."""
    return [b if b[:1] == b"[" else msgspec.json.encode(codec.decode_message(b)) for b in bodies]


BATCHES = {
    "regular": [[_batch("r1", [{"step": s, "loss": 1 / (s + 1), "lr": 1e-4, "tokens": s * 512}
                               for s in range(50)]),
                 _batch("r2", [{"step": 1, "loss": 0.5}])]],
    "mixed shapes, nulls and non-numbers": [[
        _batch("r1", [{"step": 1, "loss": 2.0, "none": None}, {"step": 2, "loss": 1.0},
                      {"loss": 3, "none": None}, {"lr": 0.5, "step": 3}, {}]),
        _batch("r1", [{"step": 1, "tag": "a", "ok": True, "nested": {"x": 1}}]),
    ]],
    "odd steps": [[_batch("r1", [{"step": 1.5, "loss": 1.0}, {"step": "7"}])]],
    "no records, no time, no job": [[_batch("r1", []), _batch("r2", [{"loss": 1.0}], ts=None,
                                                              job_id=...)]],
    "a time with an offset, records before it": [[_batch(
        "r1", [{"loss": 1.0}, {"loss": 2.0}], ts="2026-03-01T10:00:00.5+02:00",
        records=[{"dt": -1_500_000, "data": {"loss": 1.0}}, {"dt": 3, "data": {"a": 2}}])]],
    "batches and arrays in one batch": [[
        _batch("r1", [{"step": 1, "loss": 1.0}]),
        _body([_record("r1", {"step": 2, "loss": 0.5})]),
    ]],
}


@pytest.mark.parametrize("batches", BATCHES.values(), ids=BATCHES.keys())
def test_metric_batches_give_the_rows_of_their_records_as_arrays(batches):
    fast = Folder(_db.connect(None), fresh=True)
    ref = Folder(_db.connect(None), fresh=True)
    seq = 0
    for bodies in batches:
        msgs = [Msg(seq + i + 1, "ow.mx.o.r", b, 0) for i, b in enumerate(bodies)]
        arrays = [m._replace(data=b) for m, b in zip(msgs, _as_arrays(bodies), strict=True)]
        seq += len(bodies)
        for folder in (fast, ref):
            folder.con.execute("BEGIN TRANSACTION")
            if folder is fast:
                folder._metrics("OW_METRICS", msgs, _long_columns(msgs))
            else:
                folder._metrics_sql("OW_METRICS", arrays)
            folder.con.execute("COMMIT")
    assert contents(fast.con) == contents(ref.con)
    assert contents(fast.con)["metrics"] or batches == BATCHES["no records, no time, no job"]


@pytest.mark.parametrize("name", ["regular", "no records, no time, no job",
                                  "a time with an offset, records before it"])
def test_regular_metric_batches_take_the_arrow_path(name):
    msgs = [Msg(i + 1, "ow.mx.o.r", body, i) for i, body in enumerate(BATCHES[name][0])]
    assert _long_columns(msgs) is not None


def test_a_metric_batch_that_does_not_decode_is_an_anomaly_and_the_rest_is_kept():
    good = _batch("r1", [{"step": 1, "loss": 1.0}])
    bad = [b'{"type":"MetricBatch","run_id":"r1"}',  # no records
           _batch("r1", [], records=[{"dt": 1.5, "data": {"loss": 1.0}}]),
           _batch("r1", [{"loss": 1.0}], v=2),
           b'{"run_id":"r1","type":"MetricBatch","records":[{"dt":1}]}']
    msgs = [Msg(i + 1, "ow.mx.o.r1", b, 0) for i, b in enumerate([good, *bad])]
    assert _long_columns(msgs) is None
    folder = Folder(_db.connect(None), fresh=True)
    folder.apply("OW_METRICS", msgs)
    rows = folder.con.execute("SELECT seq, key, value FROM metrics").fetchall()
    assert rows == [(1, "loss", 1.0)]
    anomalies = folder.con.execute(
        "SELECT seq, type, aggregate_id, rule FROM anomalies ORDER BY seq").fetchall()
    assert [a[:3] for a in anomalies] == [(s, "MetricBatch", "r1") for s in (2, 3, 4, 5)]
    assert "records" in anomalies[0][3]
    assert "newer" in anomalies[2][3]
    assert all(a[3].startswith("undecodable: ") for a in anomalies)


def test_encode_metrics_round_trips_the_records():
    rs = [ev.MetricLogged(ts=T0 + ev.timedelta(microseconds=d), org="o", actor="run-1",
                          run_id="run-1", job_id="j", data={"step": i})
          for i, d in enumerate([0, 5, 3, 1_000_000])]
    out = codec.decode_message(codec.encode_metrics(rs, "m1"))
    assert [e.event_id for e in out] == ["m1-0", "m1-1", "m1-2", "m1-3"]
    assert [(e.ts, e.data, e.run_id, e.job_id, e.org, e.actor) for e in out] == [
        (r.ts, r.data, r.run_id, r.job_id, r.org, r.actor) for r in rs]
    with pytest.raises(ValueError, match="one run"):
        codec.encode_metrics([rs[0], ev.MetricLogged(ts=T0, run_id="run-2")], "m2")
