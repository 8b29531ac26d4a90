"""`ow serve`: the read service in the foreground, and the web dashboard when `ow.web` exists.

`python -m ow.cli.serve` is what `ow up` starts as a child. It writes `<home>/serve.json`
(pid, web port) while it runs, so `ow up` and the CLI can find it, and removes it at exit.
The dashboard glue lives here, not in `ow.projections` (which imports only `ow.core`):
`ow.web.create_app(projector_for=, bus_for=, home=)` and `ow.web.serve_app(app, host,
port, task_status=)`, both fed by the running `ReadService`.

Imports: anyio, typer (for the command), `ow.core`, `ow.projections`, `ow.web` (optional).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio

from ow.core import defaults, locks

if TYPE_CHECKING:
    from ow.projections.service import ReadService

__all__ = ["main", "register", "serve", "state_file"]

log = logging.getLogger(__name__)


def state_file(home: Path) -> Path:
    return Path(home) / "serve.json"


def dashboard_url(home: Path, timeout_s: float = 15.0) -> str | None:
    """The running service's dashboard address (from serve.json), waiting up to `timeout_s`
    for it to start; None if it serves none (or is not up by then)."""
    import time

    deadline = time.monotonic() + timeout_s
    while True:
        with contextlib.suppress(OSError, ValueError):
            info = json.loads(state_file(home).read_text())
            return f"http://127.0.0.1:{info['web_port']}" if info.get("web_port") else None
        if time.monotonic() > deadline:
            return None
        time.sleep(0.1)  # a file another process writes: polling is the only option


def _free(host: str, port: int) -> bool:
    import socket

    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


async def serve(
    *, url: str, home: Path, web_port: int | None = defaults.WEB_PORT, host: str = "127.0.0.1",
    orgs: tuple[str, ...] = (), announce: Any = print,
    task_status: Any = anyio.TASK_STATUS_IGNORED,
) -> None:
    """Run the read service (and the dashboard unless `web_port` is None) until cancelled.
    On an open stack (no tenancy.json) it follows the default org and those of `orgs`."""
    from ow.projections.service import ReadService

    svc = ReadService(home, url, orgs=orgs)
    state = state_file(home)
    try:
        async with anyio.create_task_group() as tg:
            await tg.start(svc.run)
            port = await _start_web(tg, svc, home, host, web_port) if web_port is not None else None
            locks.write_state(state, {"pid": os.getpid(), "web_port": port, "url": url})
            announce(f"read service: orgs {', '.join(sorted(svc.orgs))} on {url}")
            if port:
                announce(f"dashboard: http://{host}:{port}")
            task_status.started(port)
    finally:
        with contextlib.suppress(OSError):
            if json.loads(state.read_text()).get("pid") == os.getpid():
                state.unlink()


async def _start_web(
    tg: anyio.abc.TaskGroup, svc: ReadService, home: Path, host: str, port: int
) -> int | None:
    try:
        import ow.web as web  # type: ignore[import-not-found]
    except ImportError:
        log.info("no ow.web in this build: serving queries without a dashboard")
        return None
    app = web.create_app(projector_for=svc.projector_for, bus_for=svc.bus_for, home=home)
    if port and not _free(host, port):  # another stack's dashboard: take a free port
        log.warning("dashboard port %s is taken: serving on a free port", port)
        port = 0
    try:
        return await tg.start(_web, web, app, host, port)
    except (OSError, SystemExit) as exc:  # uvicorn exits when it cannot bind
        log.warning("no dashboard: cannot listen on %s:%s (%s); queries go on — pick "
                    "another port with --web-port (0: a free one)", host, port, exc)
        return None


async def _web(web: Any, app: Any, host: str, port: int, *, task_status: Any) -> None:
    await web.serve_app(app, host, port, task_status=task_status)


def register(app: Any) -> None:
    import typer

    @app.command("serve")
    def serve_cmd(
        web_port: int = typer.Option(defaults.WEB_PORT, "--web-port",
                                     help="dashboard port (0: a free one)"),
        no_web: bool = typer.Option(False, "--no-web", help="queries only, no dashboard"),
    ) -> None:
        """Run the read service in the foreground (Ctrl-C stops it): it folds every org's
        streams live and answers `ow ls`, `ow show`, … and the SDK's lists over NATS."""
        from ow.cli import _app

        cfg = _app.settings.config
        _run(cfg.url, cfg.home_path, None if no_web else web_port, (cfg.org,))


def _run(url: str, home: Path, web_port: int | None, orgs: tuple[str, ...]) -> None:
    import signal

    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    home.mkdir(parents=True, exist_ok=True)

    async def until_signal() -> None:
        async with anyio.create_task_group() as tg:
            with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
                tg.start_soon(lambda: serve(url=url, home=home, web_port=web_port, orgs=orgs,
                                            announce=lambda s: print(s, flush=True)))
                async for _ in signals:
                    tg.cancel_scope.cancel()
                    break

    with contextlib.suppress(KeyboardInterrupt):
        anyio.run(until_signal)


def main(argv: list[str] | None = None) -> None:
    """`python -m ow.cli.serve` (the child `ow up` starts)."""
    from ow.core.config import from_env

    parser = argparse.ArgumentParser(prog="ow-serve")
    parser.add_argument("--web-port", type=int, default=defaults.WEB_PORT)
    parser.add_argument("--no-web", action="store_true")
    args = parser.parse_args(argv)
    cfg = from_env()
    _run(cfg.url, cfg.home_path, None if args.no_web else args.web_port, (cfg.org,))


if __name__ == "__main__":
    main()
