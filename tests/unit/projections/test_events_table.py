"""The `events` table: DuckDB reads the envelope columns out of each event's JSON; they must
be those of the decoded event (defaults msgspec omitted, an upcast older version, a time
without a zone, a non-UTC offset), and an undecodable event has no row, only an anomaly."""

from __future__ import annotations

from datetime import UTC, datetime

from ow.core import codec
from ow.core import events as ev
from ow.core.bus import Msg
from ow.projections import _db
from ow.projections._apply import Folder


def _fold(bodies: list[bytes]) -> Folder:
    folder = Folder(_db.connect(None), fresh=True)
    msgs = [Msg(i + 1, f"ow.ev.o.job.j{i}", b, i) for i, b in enumerate(bodies)]
    folder.apply("OW_EVENTS", msgs)
    return folder


def test_envelope_columns_are_those_of_the_decoded_event() -> None:
    bodies = [
        codec.encode(ev.JobSubmitted(event_id="e1", org="o", actor="me", job_id="j0",
                                  ts=datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC))),
        codec.encode(ev.JobSubmitted(job_id="j1")),  # no event id, org, actor or time
        b'{"type":"JobSubmitted","v":0,"event_id":"e2","kind":"custom","job_id":"j2",'
        b'"ts":"2026-01-02T03:04:05"}',  # v0 (upcast), a time without a zone
        b'{"type":"JobCancelRequested","event_id":"e3","job_id":"j2",'
        b'"ts":"2026-01-02T05:04:05+02:00","actor":"x"}',
        b'{"type":"NoSuchEvent","job_id":"j3"}',  # undecodable
    ]
    folder = _fold(bodies)
    rows = _db.rows(folder.con, "SELECT * FROM events ORDER BY seq")
    expected = [codec.decode(b) for b in bodies[:4]]
    assert [r["seq"] for r in rows] == [1, 2, 3, 4]
    for row, e, body in zip(rows, expected, bodies, strict=False):
        assert row["stream"] == "OW_EVENTS"
        assert row["subject"] == f"ow.ev.o.job.j{row['seq'] - 1}"
        assert row["type"] == type(e).__name__
        assert (row["event_id"], row["org"], row["actor"]) == (e.event_id, e.org, e.actor)
        assert row["ts"] == (e.ts.replace(tzinfo=e.ts.tzinfo or UTC) if e.ts else None)
        assert row["json"] == body.decode()
    assert rows[2]["ts"] == datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert rows[3]["ts"] == datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    anomalies = _db.rows(folder.con, "SELECT seq, rule FROM anomalies")
    assert [a["seq"] for a in anomalies] == [5]
    assert anomalies[0]["rule"].startswith("undecodable")


def test_a_file_from_before_raw_values_gains_the_column(tmp_path) -> None:
    import duckdb

    path = tmp_path / "old.duckdb"
    old = duckdb.connect(str(path))
    old.execute("CREATE TABLE metrics (seq BIGINT, idx INTEGER, run_id VARCHAR, "
                "job_id VARCHAR, step BIGINT, key VARCHAR, value DOUBLE, ts TIMESTAMPTZ)")
    old.execute("INSERT INTO metrics VALUES (1, 0, 'r', 'j', 1, 'loss', 0.5, NULL)")
    old.close()
    con = _db.connect(path)
    assert con.execute("SELECT key, value, raw FROM metrics").fetchall() == [("loss", 0.5, None)]
