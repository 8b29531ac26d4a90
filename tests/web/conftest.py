"""Fixtures for the dashboard: a private nats-server per test (the open local stack is the
`default` org, which tests must not share), the dashboard hosted as the read service hosts
it (live `Projector`s, admin buses, `serve_app` on a free port), and headless Chromium.

Also the tenancy fixture of tests/integration/test_tenancy.py (two orgs with tokens of
every scope), reused as is.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import pytest

from ow.core import bus as bus_mod
from ow.core.server import NatsServer
from ow.projections import Projector
from tests.integration.agents import (
    ShellJob,  # noqa: F401 - registers `shell`
    client,
    running_agents,
)
from tests.integration.test_tenancy import tenants  # noqa: F401 - a fixture, reused

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]
DOCS = Path(__file__).resolve().parents[2] / "docs"


@pytest.fixture
def home(tmp_path, monkeypatch) -> Path:
    """An ow home without tenancy: the unauthenticated local stack (never ~/.ow)."""
    h = tmp_path / "home"
    h.mkdir()
    monkeypatch.setenv("OW_HOME", str(h))
    return h


@pytest.fixture
def server(tmp_path):
    s = NatsServer(tmp_path / "nats", name="web").start()
    yield s
    s.stop(kill=True)


@pytest.fixture
async def bus(server):
    b = await bus_mod.connect(server.url, org="default", actor="test")
    await b.provision()
    yield b
    await b.close()


@dataclass
class Dashboard:
    url: str
    app: Any
    buses: dict[str, bus_mod.Bus]
    projectors: dict[str, Projector] = field(default_factory=dict)
    stop_server: Any = None  # async (): the HTTP server goes away (the projectors stay)
    start_server: Any = None  # async (): it comes back on the same port


@asynccontextmanager
async def running_dashboard(
    buses: dict[str, bus_mod.Bus], home: Path, port: int = 0
) -> AsyncIterator[Dashboard]:
    """The app over one live, following in-memory Projector per org, served on `port`."""
    from ow.core.errors import NotFoundError
    from ow.web import create_app, serve_app

    async with anyio.create_task_group() as tg:
        projectors: dict[str, Projector] = {}

        async def bus_for(org: str) -> bus_mod.Bus:
            if org not in buses:
                raise NotFoundError("org", org, "this read service does not follow it")
            return buses[org]

        async def projector_for(org: str) -> Projector:
            if org not in projectors:
                p = Projector(await bus_for(org), memory=True)
                await tg.start(p.run)
                projectors[org] = p
            return projectors[org]

        app = create_app(projector_for=projector_for, bus_for=bus_for, home=home)
        serving: list[tuple[anyio.CancelScope, anyio.Event]] = []

        async def serve(*, task_status: Any = anyio.TASK_STATUS_IGNORED) -> None:
            scope, done = anyio.CancelScope(), anyio.Event()
            serving.append((scope, done))
            with scope:
                await serve_app(app, "127.0.0.1", port, task_status=task_status)
            done.set()

        port = await tg.start(serve)

        async def stop_server() -> None:
            scope, done = serving.pop()
            scope.cancel()
            await done.wait()

        async def start_server() -> None:
            await tg.start(serve)

        yield Dashboard(f"http://127.0.0.1:{port}", app, buses, projectors,
                        stop_server, start_server)
        tg.cancel_scope.cancel()


@asynccontextmanager
async def browser_page(tmp_path: Path) -> AsyncIterator[Any]:
    """A page of a fresh headless Chromium (the system binary; never `playwright install`)."""
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"{CHROMIUM} is missing: `make sysdeps` installs Debian's chromium")
    pw_api = pytest.importorskip("playwright.async_api", reason="pip install -e '.[dev]'")
    async with pw_api.async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            context = await browser.new_context(viewport={"width": 1280, "height": 900})
            page = await context.new_page()
            page.set_default_timeout(10_000)
            yield page
        finally:
            await browser.close()


async def screenshot(page: Any, tmp_path: Path, name: str, docs: bool = False) -> Path:
    """Save what the page shows under the test's tmp dir (and, with OW_UPDATE_SCREENSHOT=1,
    for the README: a test run never rewrites a tracked file unasked)."""
    out = tmp_path / f"{name}.png"
    await page.screenshot(path=str(out), full_page=True)
    if docs and os.environ.get("OW_UPDATE_SCREENSHOT") == "1":
        DOCS.mkdir(exist_ok=True)
        shutil.copy(out, DOCS / "dashboard-run.png")
    return out


TICKING = "echo started; i=0; while true; do i=$((i+1)); echo tick $i; sleep 0.2; done"


@asynccontextmanager
async def running_job(
    url: str, d: Dashboard, tmp_path: Path, tag: str, **agent: Any
) -> AsyncIterator[Any]:
    """A real job (a shell loop printing a line every 0.2 s) on a real in-process agent of
    `default`; yields (job, run_id, client) once the dashboard shows it running."""
    import httpx

    from tests.integration.conftest import eventually

    c = client(url, "default")
    async with running_agents(url, "default", 1, tmp_path, **agent) as _agents, httpx.AsyncClient(
        base_url=d.url
    ) as http:
        job = await c.shell.create(command=TICKING, tag=tag)

        async def running() -> str | None:
            body = (await http.get(f"/api/orgs/default/jobs/{job.id}")).json()
            return body["run_id"] if body["status"] == "in_progress" else None

        run_id = await eventually(running, timeout=20)
        yield job, run_id, c
        await c.jobs.cancel(job.id)
    await c.close()


def run_client(url: str, job_id: str, run_id: str) -> Any:
    """The SDK as the job itself sees it (OW_RUN_ID / OW_JOB_ID set): `ow.run.log` works."""
    from ow import AsyncOpenWeights

    return AsyncOpenWeights(url=url, org="default", env={}, run_id=run_id, job_id=job_id)
