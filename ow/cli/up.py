"""`ow up`, `ow down`, `ow worker`, `ow scheduler`: the embedded default and its processes.

`ow up` starts, in one command, a nats-server with JetStream (data under the ow home), a
scheduler with the local provider and one local agent; it prints where it listens and stops
all of them on Ctrl-C. `ow up --detach` runs the same in the background (its pid and URL in
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

from ow.core import defaults
from ow.core.config import from_env
from ow.core.errors import BusUnavailableError, ConfigError
from ow.core.server import NatsServer, pid_alive

__all__ = ["down", "register", "serve", "start_detached"]


def _state_file(home: Path) -> Path:
    return home / "up.json"


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


def _child(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    out = open(log, "ab")  # noqa: SIM115 - owned by the child for its lifetime
    return subprocess.Popen(
        [sys.executable, "-m", *args], env=env, stdout=out, stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(10)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(5)
    except ProcessLookupError:
        pass


def serve(port: int = defaults.DEFAULT_PORT, home: str | None = None, quiet: bool = False) -> None:
    """Run the embedded default in the foreground until SIGINT/SIGTERM."""
    config = from_env(home=home)
    root = config.home_path
    root.mkdir(parents=True, exist_ok=True)
    if port > 0 and not _port_free(port):
        raise ConfigError(
            f"port {port} is taken — is `ow up` already running? Stop it with `ow down`, "
            "or pick another port with --port"
        )
    from ow.cli.tenancy import Supervisor  # org accounts, per-org schedulers, token expiry

    tenancy = Supervisor(root, config, _child)
    server = NatsServer(
        root / "nats", port=port, name="ow", sync_interval=config.sync_interval,
        extra_config=tenancy.server_config(),
    ).start()
    env = {**os.environ, "OW_URL": server.url, "OW_ORG": config.org, "OW_HOME": str(root),
           **tenancy.env(config.org)}
    logs = root / "logs"
    logs.mkdir(exist_ok=True)
    children = [
        _child(["ow.scheduler", "--provider", "local"], env, logs / "scheduler.log"),
        _child(
            # a new id for each start: a worker id that was terminated (the last `ow down`)
            # stays terminated in the fold, and would have its runs requeued
            ["ow.agent", "--image", "*", "--worker-id",
             f"local-{socket.gethostname()}-{secrets.token_hex(3)}"],
            {**env, **tenancy.env(config.org, worker=True)},
            logs / "agent.log",
        ),
        _child(["ow.cli.serve"], env, logs / "serve.log"),  # the read service (+ dashboard)
    ]
    assert server.proc is not None
    children += tenancy.start(server, env, logs)
    _state_file(root).write_text(
        json.dumps({"pid": os.getpid(), "url": server.url, "nats_pid": server.proc.pid})
    )
    if not quiet:
        print(f"ow is up: NATS at {server.url} (org {config.org!r}, data in {root})")
        print(f"logs in {logs}; Ctrl-C stops everything")
        if importlib.util.find_spec("ow.web") is not None:
            print(f"dashboard: http://127.0.0.1:{defaults.WEB_PORT}")
    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        while not stop.wait(1.0):
            children += tenancy.tick()
            for proc in children:
                if proc.poll() is not None and not quiet:
                    print(f"warning: {proc.args[2]} exited with {proc.returncode}; see {logs}")
                    children.remove(proc)
    finally:
        for proc in reversed(children):
            _stop(proc)
        server.stop()
        _state_file(root).unlink(missing_ok=True)
        if not quiet:
            print("ow is down")


def start_detached(port: int = defaults.DEFAULT_PORT, home: str | None = None) -> str:
    """Start `serve` in the background; return its URL once NATS accepts clients."""
    config = from_env(home=home)
    root = config.home_path
    root.mkdir(parents=True, exist_ok=True)
    state = _state_file(root)
    state.unlink(missing_ok=True)
    env = {**os.environ, "OW_HOME": str(root)}
    proc = _child(["ow.cli.up", "--port", str(port)], env, root / "up.log")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if state.exists():
            return json.loads(state.read_text())["url"]
        if proc.poll() is not None:
            raise BusUnavailableError(
                f"`ow up` exited with {proc.returncode}: see {root / 'up.log'}"
            )
        time.sleep(0.05)
    raise BusUnavailableError(f"`ow up` did not start within 30 s: see {root / 'up.log'}")


def down(home: str | None = None) -> bool:
    """Stop a detached `ow up`; False if none was running."""
    root = from_env(home=home).home_path
    state = _state_file(root)
    if not state.exists():
        return False
    pid = json.loads(state.read_text())["pid"]
    if not pid_alive(pid):
        state.unlink(missing_ok=True)
        return False
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 30
    while pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    return True


def register(app: Any) -> None:
    """Add `up`, `down`, `worker` and `scheduler` to the typer app."""
    import typer

    @app.command()
    def up(
        detach: bool = typer.Option(False, "--detach", "-d", help="run in the background"),
        port: int = typer.Option(defaults.DEFAULT_PORT, help="NATS client port (-1: random)"),
    ) -> None:
        """Start NATS, a scheduler (local provider) and one local agent."""
        if detach:
            print(f"ow is up: NATS at {start_detached(port)} (stop it with `ow down`)")
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
    parser.add_argument("--port", type=int, default=defaults.DEFAULT_PORT)
    serve(parser.parse_args().port, quiet=True)
