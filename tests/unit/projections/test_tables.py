"""Table declarations (`_tables.Table`): the schema and the row layout come from one place.

Each table is declared once (columns and DuckDB types) next to the code that builds its rows;
the `CREATE TABLE` and the Arrow layout are derived from it. The schema must stay what it
was before the declarations (pinned below, as DuckDB reports it), a declared column must be
one DuckDB created with that type, and rows missing or adding a column are refused.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from ow.projections import TABLES, _db
from ow.projections._control import JOBS
from ow.projections._heartbeats import PINGS
from ow.projections._tables import ANOMALIES, Table

#: `duckdb_tables().sql` of a fresh projection, as the hand-written DDL made it
SCHEMA = {
    'anomalies': (
        'CREATE TABLE anomalies(seq BIGINT, stream VARCHAR, subject VARCHAR, event_id '
        'VARCHAR, "type" VARCHAR, aggregate_id VARCHAR, "rule" VARCHAR, "json" VARCHAR);'
    ),
    'events': (
        'CREATE TABLE events(seq BIGINT, stream VARCHAR, subject VARCHAR, "type" VARCHAR, '
        'event_id VARCHAR, org VARCHAR, ts TIMESTAMP WITH TIME ZONE, actor VARCHAR, '
        '"json" JSON USING COMPRESSION ZSTD);'
    ),
    'files': (
        'CREATE TABLE files(file_id VARCHAR, purpose VARCHAR, filename VARCHAR, '
        'size_bytes BIGINT, sha256 VARCHAR, store VARCHAR, "key" VARCHAR, created_at '
        'TIMESTAMP WITH TIME ZONE, seq BIGINT);'
    ),
    'jobs': (
        'CREATE TABLE jobs(job_id VARCHAR, org VARCHAR, "type" VARCHAR, model VARCHAR, '
        'status VARCHAR, gen INTEGER, "error" VARCHAR, cancel_requested BOOLEAN, '
        'requires_vram_gb DOUBLE, image VARCHAR, runs INTEGER, run_id VARCHAR, worker_id '
        'VARCHAR, outputs JSON USING COMPRESSION ZSTD, params JSON USING COMPRESSION '
        'ZSTD, created_at TIMESTAMP WITH TIME ZONE, updated_at TIMESTAMP WITH TIME ZONE, '
        'state JSON USING COMPRESSION ZSTD);'
    ),
    'metrics': (
        'CREATE TABLE metrics(seq BIGINT, idx INTEGER, run_id VARCHAR, job_id VARCHAR, '
        'step BIGINT, "key" VARCHAR, "value" DOUBLE, ts TIMESTAMP WITH TIME ZONE, raw '
        'JSON);'
    ),
    'pings': (
        'CREATE TABLE pings(worker_id VARCHAR PRIMARY KEY, ts TIMESTAMP WITH TIME ZONE, '
        'run_id VARCHAR, seq BIGINT);'
    ),
    'positions': (
        'CREATE TABLE positions(stream VARCHAR PRIMARY KEY, seq BIGINT NOT NULL);'
    ),
    'runs': (
        'CREATE TABLE runs(run_id VARCHAR, job_id VARCHAR, gen INTEGER, worker_id '
        'VARCHAR, claim_rev BIGINT, status VARCHAR, started_at TIMESTAMP WITH TIME ZONE, '
        'finished_at TIMESTAMP WITH TIME ZONE, exit_code INTEGER, "error" VARCHAR, '
        'log_file VARCHAR, outputs JSON USING COMPRESSION ZSTD, artifacts JSON USING '
        'COMPRESSION ZSTD);'
    ),
    'workers': (
        'CREATE TABLE workers(worker_id VARCHAR, status VARCHAR, provider VARCHAR, pod_id '
        'VARCHAR, hardware VARCHAR, gpus JSON, vram_gb DOUBLE, image VARCHAR, '
        'price_per_hour DOUBLE, provisioned_at TIMESTAMP WITH TIME ZONE, registered_at '
        'TIMESTAMP WITH TIME ZONE, terminated_at TIMESTAMP WITH TIME ZONE, last_ping '
        'TIMESTAMP WITH TIME ZONE, run_id VARCHAR, reason VARCHAR, state JSON, "isolation" '
        'VARCHAR);'
    ),
}


def test_the_derived_schema_is_the_one_the_hand_written_ddl_made():
    con = _db.connect(None)
    got = dict(con.execute("SELECT table_name, sql FROM duckdb_tables()").fetchall())
    assert got == SCHEMA
    assert list(TABLES) == ["positions", "events", "jobs", "runs", "workers", "pings", "files",
                            "metrics", "anomalies"]


def test_every_declared_column_is_created_with_its_type():
    con = _db.connect(None)
    for table in _db._DECLARED:
        described = con.execute(f"DESCRIBE {table.name}").fetchall()
        assert [r[0] for r in described] == [c for c, _ in table.columns]
        for (name, sql), row in zip(table.columns, described, strict=True):
            want = {"TIMESTAMPTZ": "TIMESTAMP WITH TIME ZONE"}.get(sql.split()[0],
                                                                  sql.split()[0])
            assert row[1] == want, (table.name, name)


def test_rows_built_from_a_declaration_load_into_its_table():
    con = _db.connect(None)
    now = datetime(2026, 3, 1, 10, tzinfo=UTC)
    rows = PINGS.arrow({"worker_id": ["w1"], "ts": [now], "run_id": ["r1"], "seq": [7]})
    con.register("_rows", rows)
    con.execute("INSERT INTO pings SELECT * FROM _rows")
    assert con.execute("SELECT * FROM pings").fetchall() == [("w1", now, "r1", 7)]
    assert rows.schema.names == [c for c, _ in PINGS.columns]


@pytest.mark.parametrize("change", ["missing", "extra"])
def test_rows_with_other_columns_than_declared_are_refused(change):
    values = {c: [] for c, _ in ANOMALIES.columns}
    if change == "missing":
        del values["rule"]
    else:
        values["note"] = []
    with pytest.raises(ValueError, match="anomalies"):
        ANOMALIES.arrow(values)


def test_ddl_names_the_primary_key_and_the_migrations():
    t = Table("t", (("a", "VARCHAR"), ("b", "JSON")), order="a", key="a",
              migrate=("ALTER TABLE t ADD COLUMN IF NOT EXISTS c JSON",))
    assert t.ddl() == ("CREATE TABLE IF NOT EXISTS t (a VARCHAR PRIMARY KEY, b JSON);\n"
                       "ALTER TABLE t ADD COLUMN IF NOT EXISTS c JSON;")
    assert JOBS.order == TABLES["jobs"]


def test_a_file_from_before_metrics_raw_is_brought_up_to_date(tmp_path):
    import duckdb

    path = tmp_path / "old.duckdb"
    with duckdb.connect(str(path)) as con:
        con.execute("CREATE TABLE metrics (seq BIGINT, idx INTEGER, run_id VARCHAR, "
                    "job_id VARCHAR, step BIGINT, key VARCHAR, value DOUBLE, ts TIMESTAMPTZ)")
    con = _db.connect(path)
    assert [r[0] for r in con.execute("DESCRIBE metrics").fetchall()][-1] == "raw"
    con.close()


def test_a_workers_table_of_an_older_version_gets_the_isolation_column(tmp_path):
    import duckdb

    path = tmp_path / "old.duckdb"
    old = duckdb.connect(str(path))
    old.execute(SCHEMA["workers"].replace(', "isolation" VARCHAR', ""))
    old.execute("INSERT INTO workers (worker_id, status) VALUES ('w1', 'active')")
    old.close()
    con = _db.connect(path)
    assert con.execute("SELECT worker_id, isolation FROM workers").fetchall() == [("w1", None)]
    con.close()
