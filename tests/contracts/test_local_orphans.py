"""The local provider on shutdown: the agents it started, and the orphans among those it
adopted, are stopped; an adopted agent whose starter still runs is left to that starter.

Found by the chaos suite: an agent started by a scheduler that was then killed (-9) was
adopted by the next scheduler, and outlived `ow down` (it retried a server that was gone,
for ever)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from ow.core.server import pid_alive
from ow.scheduler.providers import LocalProvider
from tests.integration.conftest import eventually

pytestmark = pytest.mark.anyio

_SLEEP = "import time; time.sleep(120)"
_ORPHAN = ("import subprocess, sys; p = subprocess.Popen([sys.executable, '-c', "
           f"{_SLEEP!r}, '--worker-id', 'w-orphan'], start_new_session=True, "
           "stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL); print(p.pid)")


async def test_closing_ends_adopted_orphans_but_not_agents_whose_starter_runs():
    # an orphan: its starter exits at once, as a killed scheduler leaves its agents
    orphan = int(subprocess.run([sys.executable, "-c", _ORPHAN], capture_output=True,
                                text=True, check=True, timeout=30).stdout)
    # an agent of a starter that still runs (this test)
    kept = subprocess.Popen([sys.executable, "-c", _SLEEP, "--worker-id", "w-kept"],
                            start_new_session=True)
    try:
        provider = LocalProvider(term_grace_s=2)
        provider.record(f"local-{orphan}", "w-orphan")
        provider.record(f"local-{kept.pid}", "w-kept")

        async def adopted() -> bool:  # its cmdline names its worker: pids are reused
            return await provider.status(f"local-{orphan}") == "running"

        assert await eventually(adopted, timeout=10)
        await provider.aclose()
        assert await eventually(lambda: not pid_alive(orphan), timeout=10)
        assert kept.poll() is None
    finally:
        for pid in (orphan, kept.pid):
            if pid_alive(pid):
                subprocess.run(["kill", "-9", str(pid)], check=False)
        kept.wait(timeout=10)
