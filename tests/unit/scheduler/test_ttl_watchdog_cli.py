"""The in-pod TTL manager commands (`python -m ow.scheduler.ttl_watchdog`)."""

import subprocess
import sys
from datetime import datetime


def _run(*args: str) -> str:
    out = subprocess.run(
        [sys.executable, "-m", "ow.scheduler.ttl_watchdog", *args],
        capture_output=True, text=True, check=False, env={"PATH": ""},
    )
    return out.stdout + out.stderr


def test_set_extend_check(tmp_path):
    f = str(tmp_path / "shutdown.txt")
    assert "no shutdown time set" in _run("--file", f, "--check")
    first = datetime.fromisoformat(_run("--file", f, "--set", "2").split()[-1])
    later = datetime.fromisoformat(_run("--file", f, "--extend", "1").split()[-1])
    assert (later - first).total_seconds() == 3600
    assert _run("--file", f, "--check").split()[-1] == later.isoformat()


def test_watchdog_refuses_to_run_outside_a_pod(tmp_path):
    assert "only runs inside a pod" in _run("--file", str(tmp_path / "s.txt"))
