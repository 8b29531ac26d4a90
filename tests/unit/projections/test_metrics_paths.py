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

from ow.core import events as ev
from ow.projections import _db
from ow.projections._apply import Folder, _long_columns
from ow.projections._read import Msg
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
