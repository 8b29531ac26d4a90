"""The benches run on a fresh clone: without psycopg (the `bench` extra) their PostgreSQL rows
say why they are unavailable instead of failing with ModuleNotFoundError."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"


@pytest.mark.parametrize(("module", "function"), [
    ("bench_run_log", "pg_insert_each"),
    ("bench_claims", "pg_claims"),
])
def test_a_postgresql_row_without_psycopg_says_unavailable(module, function):
    code = (f"import sys; sys.modules['psycopg'] = None; sys.path.insert(0, {str(BENCH)!r}); "
            f"import {module}; print({module}.{function}())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "unavailable (no psycopg: pip install -e '.[bench]')"


@pytest.mark.parametrize(("script", "row"), [
    ("bench_latency.py", "cancel -> process gone"),
    ("bench_recovery.py", "agent kill -9 -> job completed"),
])
def test_the_benches_that_watch_a_job_run_with_jobs_in_the_sandbox(script, row):
    """Both waited (forever, or until their own timeout) for a file that the sandboxed job
    wrote into its own /tmp; they find the job's process by its command line now."""
    out = subprocess.run([sys.executable, str(BENCH / script)], capture_output=True, text=True,
                         timeout=300, env={**os.environ, "BENCH_N": "2"})
    assert out.returncode == 0, out.stderr[-2000:]
    assert row in out.stdout
