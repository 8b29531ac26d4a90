"""The auth callout service (`python -m ow.core.authsvc`) as `ow up` runs it, for tests that
render accounts themselves: worker and run credentials, and tokens created after the
server started, connect through it."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import anyio

from ow.core import bus as bus_mod
from ow.core import tenancy as tn
from ow.core.errors import OWError

__all__ = ["callout_service", "connects"]


def connects(url: str, org: str, token: str) -> bool:
    """Whether `token` can connect to `org` now (a raw attempt, no retries)."""
    async def attempt() -> bool:
        try:
            b = await bus_mod.connect(url, org=org, token=token, reconnect=False)
        except OWError:
            return False
        await b.close()
        return True
    return anyio.run(attempt)


@contextlib.contextmanager
def callout_service(url: str, home: Path, org: str) -> Iterator[subprocess.Popen]:
    """Run the callout service for the server at `url` until the block ends; it answers
    (a worker credential of `org` connects) before the block starts."""
    env = {**os.environ, "OW_URL": url, "OW_HOME": str(home),
           "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.Popen([sys.executable, "-m", "ow.core.authsvc"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        probe = tn.worker_env(tn.load(home), org, "probe")["OW_TOKEN"]
        deadline = time.monotonic() + 30
        while not connects(url, org, probe):
            assert proc.poll() is None, "the auth callout service exited"
            assert time.monotonic() < deadline, "the auth callout service never answered"
            time.sleep(0.1)  # another process starting: polling is the only option
        yield proc
    finally:
        proc.terminate()
        proc.wait(10)
