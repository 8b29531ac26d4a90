"""`ow up`, `ow down`, `ow worker`, `ow scheduler`: the embedded default and its processes.

`ow up` starts, in one command, a nats-server with JetStream (data under the ow home), a
scheduler with the local provider and one local agent; it prints where it listens and stops
all of them on Ctrl-C. It supervises them (`ow.cli._supervise`): a child that exits is
restarted with backoff, and each restart is a line on its output and a `ServiceRestarted`
event (an agent's names its worker, which the scheduler treats as lost at once); a dead
nats-server is started again on its port and store.

One stack per home: `ow up` holds `<home>/up.lock` for its life (`ow.core.locks`). A
second `ow up` on that home says where the running one is and touches nothing (a different
`--port` is refused). `ow up --detach` runs the same in the background (its pid and URL in
`<home>/up.json`) and returns once the server accepts clients; `ow down` stops it.
"""

from __future__ import annotations

import importlib.util
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from ow.cli._supervise import Child, Reporter, Services
from ow.core import defaults, locks
from ow.core import events as ev
from ow.core.config import from_env, private_home
from ow.core.errors import BusUnavailableError, ConfigError
from ow.core.ids import uuid7
from ow.core.server import NatsServer

__all__ = ["already_up", "down", "register", "serve", "start_detached"]


def _state_file(home: Path) -> Path:
    return home / "up.json"


def _lock_file(home: Path) -> Path:
    return home / "up.lock"


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


def _child(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    out = open(log, "ab")  # noqa: SIM115 - owned by the child for its lifetime
    return subprocess.Popen(
        [sys.executable, "-m", *args], env=env, stdout=out, stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def _agent_argv() -> list[str]:
    # a new id for each start: a worker id that was terminated (the last `ow down`, or the
    # agent that died before this restart) stays terminated in the fold
    return ["ow.agent", "--image", "*", "--worker-id",
            f"local-{socket.gethostname()}-{secrets.token_hex(3)}"]


def _running(root: Path) -> dict[str, Any] | None:
    """What up.json says about the `ow up` that holds this home's lock, if one does."""
    if locks.holder(_lock_file(root)) is None:
        return None
    try:
        return json.loads(_state_file(root).read_text())
    except (OSError, ValueError):
        return {"url": "", "pid": locks.holder(_lock_file(root))}


def already_up(root: Path, port: int | None) -> str | None:
    """The URL of the `ow up` running on this home, or None; refuses a different `port`
    (None: any port will do)."""
    info = _running(root)
    if info is None:
        return None
    url = info.get("url", "")
    if url and port is not None and port > 0 and url.rsplit(":", 1)[-1] != str(port):
        raise ConfigError(
            f"ow is already up at {url} on this home ({root}); it keeps its port — "
            f"stop it with `ow down` first to move it to port {port}, or use another OW_HOME"
        )
    return url or "(a port it is still opening)"


def serve(port: int | None = None, home: str | None = None, quiet: bool = False) -> None:
    """Run the embedded default in the foreground until SIGINT/SIGTERM (`port` None: the
    default port)."""
    config = from_env(home=home)
    root = config.home_path
    root.mkdir(parents=True, exist_ok=True)
    with locks.hold(_lock_file(root)) as held:
        if not held:
            print(f"ow is already up at {already_up(root, port)} (stop it with `ow down`)")
            return
        private_home(root, walk=True, umask=True)  # 0700/0600: other local users read nothing
        port = defaults.DEFAULT_PORT if port is None else port
        if port > 0 and not _port_free(port):
            raise ConfigError(
                f"port {port} is taken by another program: pick another port with --port"
            )
        _serve(config, root, port, quiet)


def _serve(config: Any, root: Path, port: int, quiet: bool) -> None:
    from ow.cli.tenancy import Supervisor  # org accounts, per-org schedulers, token expiry

    services = Services(lambda args, env, log: _child(args, {**env, **tenancy.agent_env(args)},
                                                      log))
    tenancy = Supervisor(root, config, services.spawn_named)
    server = NatsServer(
        root / "nats", port=port, name="ow", sync_interval=config.sync_interval,
        extra_config=tenancy.server_config(),
    ).start()
    env = {**os.environ, "OW_URL": server.url, "OW_ORG": config.org, "OW_HOME": str(root),
           **tenancy.env(config.org)}
    logs = root / "logs"
    logs.mkdir(exist_ok=True)
    reporter = Reporter(lambda: server.url, lambda org: tenancy.env(org).get("OW_TOKEN", ""))
    # the auth callout first: the agents' credentials need it to connect (`ow.core.callout`)
    services.add(Child("auth-callout", ["ow.core.authsvc"], env, logs / "auth-callout.log"))
    tenancy.start(server, env, logs)
    tenancy.wait_callout()
    children = [
        Child("scheduler", ["ow.scheduler", "--provider", "local"], env, logs / "scheduler.log"),
        Child("agent", _agent_argv, {**env, **tenancy.env(config.org, worker=True)},
              logs / "agent.log"),
        Child("serve", ["ow.cli.serve"], env, logs / "serve.log"),  # read service + dashboard
    ]
    for child in children:
        services.add(child)
    _write_state(root, server, tenancy.enabled)
    say = (lambda _line: None) if quiet else print
    say(f"ow is up: NATS at {server.url} (org {config.org!r}, data in {root})")
    say(f"logs in {logs}; Ctrl-C stops everything")
    if not quiet and importlib.util.find_spec("ow.web") is not None:
        threading.Thread(target=_say_dashboard, args=(root,), daemon=True).start()
    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        while not stop.wait(defaults.SUPERVISE_INTERVAL_S):
            if server.proc is not None and server.proc.poll() is not None:
                _restart_server(server, root, reporter, config.org)
                if server.proc.poll() is None:
                    _write_state(root, server, tenancy.enabled)
            tenancy.tick()
            for restarted in services.check():
                # always printed: in the foreground on the terminal, detached into up.log
                print(f"ow up: restarted {restarted.name} ({restarted.reason}; restart "
                      f"{restarted.restarts}, after {restarted.backoff_s:g}s)", flush=True)
                reporter.report(restarted)
    finally:
        services.stop_all()
        reporter.close()
        server.stop()
        _state_file(root).unlink(missing_ok=True)
        say("ow is down")


def _say_dashboard(root: Path) -> None:
    """Print the dashboard's address once the read service serves it."""
    from ow.cli.serve import dashboard_url

    if url := dashboard_url(root):
        print(f"dashboard: {url}", flush=True)


def _write_state(root: Path, server: NatsServer, accounts: bool) -> None:
    """up.json: who runs this home, where its server listens, whether accounts are on."""
    assert server.proc is not None
    locks.write_state(_state_file(root), {
        "pid": os.getpid(), "url": server.url, "nats_pid": server.proc.pid, "accounts": accounts,
    })


def _restart_server(server: NatsServer, root: Path, reporter: Reporter, org: str) -> None:
    """The nats-server died: start it again on its port and store (clients reconnect)."""
    assert server.proc is not None
    code = server.proc.returncode
    print(f"ow up: nats-server exited with {code}; restarting it", flush=True)
    try:
        server.start()
    except BusUnavailableError as exc:  # e.g. its port was taken meanwhile: the next tick retries
        print(f"ow up: nats-server did not start again: {exc}", flush=True)
        return
    reporter.report(ev.ServiceRestarted(
        org=org, name="nats-server", exit=code, reason=f"exited with {code}",
        event_id=uuid7(), ts=ev.now(),
    ))


def start_detached(port: int | None = None, home: str | None = None) -> str:
    """Start `serve` in the background; return its URL once NATS accepts clients.

    On a home where `ow up` already runs, return its URL (a different `port` is refused)
    and touch nothing."""
    config = from_env(home=home)
    root = config.home_path
    root.mkdir(parents=True, exist_ok=True)
    if (url := already_up(root, port)) is not None:
        return url
    env = {**os.environ, "OW_HOME": str(root)}
    port_args = [] if port is None else ["--port", str(port)]
    proc = _child(["ow.cli.up", *port_args], env, root / "up.log")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        info = _running(root)
        if info and info.get("pid") == proc.pid and info.get("url"):
            return info["url"]
        if proc.poll() is not None:  # lost a race to another `ow up`, or failed to start
            if (url := already_up(root, port)) is not None:
                return url
            raise BusUnavailableError(
                f"`ow up` exited with {proc.returncode}: see {root / 'up.log'}"
            )
        time.sleep(0.05)
    raise BusUnavailableError(f"`ow up` did not start within 30 s: see {root / 'up.log'}")


def down(home: str | None = None) -> bool:
    """Stop a detached `ow up`; False if none was running."""
    root = from_env(home=home).home_path
    info = _running(root)
    if info is None:
        return False
    pid = info.get("pid") or locks.holder(_lock_file(root))
    if not pid:  # it holds the lock but has not said who it is yet
        raise ConfigError("`ow up` is still starting on this home: try `ow down` again")
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 30
    while locks.holder(_lock_file(root)) is not None and time.monotonic() < deadline:
        time.sleep(0.05)
    return True


def register(app: Any) -> None:
    """Add `up`, `down`, `worker` and `scheduler` to the typer app."""
    import typer

    @app.command()
    def up(
        detach: bool = typer.Option(False, "--detach", "-d", help="run in the background"),
        port: int = typer.Option(
            None, help=f"NATS client port (default {defaults.DEFAULT_PORT}; -1: random)"),
    ) -> None:
        """Start NATS, a scheduler (local provider) and one local agent."""
        if (url := already_up(from_env().home_path, port)) is not None:
            print(f"ow is already up at {url} (stop it with `ow down`)")
        elif detach:
            print(f"ow is up: NATS at {start_detached(port)} (stop it with `ow down`)")
            _say_dashboard(from_env().home_path)
        else:
            serve(port)

    @app.command(name="down")
    def down_cmd() -> None:
        """Stop what `ow up --detach` started."""
        print("ow is down" if down() else "ow was not running")

    @app.command()
    def worker(
        worker_id: str = typer.Option(None, help="stable id (default: generated)"),
        image: str = typer.Option(None, help="image this worker serves ('*' = any)"),
        vram_gb: float = typer.Option(None, help="override detected VRAM"),
    ) -> None:
        """Run one agent on this machine (connects to OW_URL)."""
        import anyio

        from ow.agent import run_agent

        config = from_env()
        anyio.run(lambda: run_agent(config, worker_id=worker_id, image=image, vram_gb=vram_gb))

    @app.command()
    def scheduler(provider: str = typer.Option("local", help="local | runpod")) -> None:
        """Run the scheduler (provisions and reaps workers through a provider)."""
        os.execv(sys.executable, [sys.executable, "-m", "ow.scheduler", "--provider", provider])


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(prog="ow up")
    parser.add_argument("--port", type=int, default=None)
    try:
        serve(parser.parse_args().port, quiet=True)
    except ConfigError as exc:
        raise SystemExit(f"error: {exc}") from None
