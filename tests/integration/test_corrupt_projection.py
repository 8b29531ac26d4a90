"""Issue 16.6: a projection file DuckDB cannot open (truncated, garbage) is moved aside as
`<name>.corrupt-<UTC time>` with a one-line notice, and a fresh one is rebuilt from the log:
`ow ls` and `ow projections rebuild` work on it."""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path

import anyio
import pytest

from ow.projections import _db
from tests.integration.test_projections_helpers import completed_job, pending_job

pytestmark = pytest.mark.anyio

OW = str(Path(sys.executable).parent / "ow")


def truncated(path: Path) -> None:
    con = _db.connect(path)
    con.execute("CREATE TABLE filler AS SELECT range AS n FROM range(50000)")
    con.close()
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def garbage(path: Path) -> None:
    path.write_bytes(b"not a duckdb file\n" * 500)


CORRUPTIONS = [pytest.param(truncated, id="truncated"), pytest.param(garbage, id="garbage")]


@pytest.mark.parametrize("corrupt", CORRUPTIONS)
def test_connect_moves_a_corrupt_file_aside_and_starts_fresh(tmp_path, corrupt, caplog):
    caplog.set_level(logging.WARNING, logger="ow.projections")
    path = tmp_path / "p.duckdb"
    corrupt(path)
    bad = path.read_bytes()
    con = _db.connect(path)
    try:
        assert _db.rows(con, "SELECT stream, seq FROM positions ORDER BY stream") == [
            {"stream": s, "seq": 0} for s in sorted(_db.STREAMS)]
    finally:
        con.close()
    (aside,) = tmp_path.glob("p.duckdb.corrupt-*")
    assert aside.read_bytes() == bad  # nothing lost: kept for a post-mortem
    (line,) = [r.getMessage() for r in caplog.records]
    assert "could not be opened" in line
    assert aside.name in line
    assert "\n" not in line


def test_a_good_file_and_a_new_file_are_left_alone(tmp_path):
    path = tmp_path / "p.duckdb"
    _db.connect(path).close()
    _db.connect(path).close()
    assert [p.name for p in tmp_path.iterdir() if "corrupt" in p.name] == []


@pytest.fixture
def ow(nats_server, org, tmp_path):
    env = {**os.environ, "OW_URL": nats_server.url, "OW_ORG": org, "OW_HOME": str(tmp_path),
           "COLUMNS": "200"}

    async def run(*args: str) -> tuple[int, str, str]:
        proc = await anyio.run_process([OW, *args], env=env, check=False)
        return proc.returncode, proc.stdout.decode(), proc.stderr.decode()

    return run


@pytest.mark.parametrize("corrupt", CORRUPTIONS)
async def test_ow_ls_on_a_corrupt_projection_rebuilds_it(bus, ow, tmp_path, corrupt):
    await completed_job(bus)
    await pending_job(bus)
    db = tmp_path / "mine.duckdb"
    corrupt(db)
    code, out, err = await ow("--db", str(db), "ls", "--json")
    assert code == 0, err
    assert {j["job_id"] for j in json.loads(out)} == {"j1", "j2"}
    assert err.count("moved it aside") == 1
    assert len(list(tmp_path.glob("mine.duckdb.corrupt-*"))) == 1
    code, _, err = await ow("--db", str(db), "ls")  # the fresh file is fine: no notice
    assert code == 0
    assert "moved it aside" not in err


@pytest.mark.parametrize("corrupt", CORRUPTIONS)
async def test_ow_projections_rebuild_on_a_corrupt_projection(bus, ow, tmp_path, corrupt):
    await completed_job(bus)
    db = tmp_path / "mine.duckdb"
    corrupt(db)
    code, _, err = await ow("--db", str(db), "projections", "rebuild")
    assert code == 0, err
    assert err.count("moved it aside") == 1
    code, out, _ = await ow("--db", str(db), "ls", "--json")
    assert [j["job_id"] for j in json.loads(out)] == ["j1"]
