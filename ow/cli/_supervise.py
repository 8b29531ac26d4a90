"""What `ow up` supervises: child processes restarted with backoff, each restart reported.

`Services` holds a list of `Child(name, argv, env, log)` entries (argv may be a function that
makes a fresh argv for each start: the local agent takes a new worker id every time, since a
worker that died stays dead in the log). `check()` notices exits, restarts what is due
(`ow.core.lifecycle.restart_delay`) and returns one `ServiceRestarted` per restart; the
caller prints it and hands it to `Reporter`, a thread that publishes it to the org's log
(retried until the server takes it: the event id makes a retry store it once).

Imports: stdlib, `ow.core` (the bus lazily, in the reporter thread).
"""

from __future__ import annotations

import logging
import os
import queue
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ow.core import defaults
from ow.core import events as ev
from ow.core.ids import uuid7
from ow.core.lifecycle import restart_delay

__all__ = ["Child", "Reporter", "Services", "stop_process"]

log = logging.getLogger(__name__)

Spawn = Callable[[list[str], dict[str, str], Path], subprocess.Popen]


@dataclass
class Child:
    """One supervised process: `python -m <argv>` with `env`, its output appended to `log`."""

    name: str
    argv: list[str] | Callable[[], list[str]]
    env: dict[str, str]
    log: Path
    proc: subprocess.Popen | None = None
    started_at: float = 0.0
    failures: int = 0
    due_at: float | None = None  # when the pending restart starts it
    last_exit: int | None = None
    worker_id: str = ""  # the worker an agent child runs as (from its --worker-id)
    restarts: int = 0

    def args(self) -> list[str]:
        return self.argv() if callable(self.argv) else list(self.argv)


def _worker_id(args: list[str]) -> str:
    return args[args.index("--worker-id") + 1] if "--worker-id" in args[:-1] else ""


def _why(code: int | None) -> str:
    if code is not None and code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exited with {code}"


class Services:
    """Start, watch and restart children; `stop_all()` ends them (last started first)."""

    def __init__(self, spawn: Spawn, clock: Callable[[], float] = time.monotonic):
        self.spawn, self.clock = spawn, clock
        self.children: list[Child] = []

    def add(self, child: Child) -> Child:
        self.children.append(child)
        self._start(child)
        return child

    def spawn_named(self, argv: list[str], env: dict[str, str], log: Path) -> Any:
        """`spawn`'s signature for code that starts children itself (tenancy's per-org
        schedulers): the child is supervised under its log's name."""
        return self.add(Child(Path(log).stem, argv, env, Path(log))).proc

    def _start(self, child: Child) -> None:
        args = child.args()
        child.worker_id = _worker_id(args)
        child.proc = self.spawn(args, child.env, child.log)
        child.started_at, child.due_at = self.clock(), None

    def check(self) -> list[ev.ServiceRestarted]:
        """Notice exits and restart what is due; the restarts made."""
        now, out = self.clock(), []
        for c in self.children:
            if c.due_at is None and c.proc is not None and c.proc.poll() is not None:
                healthy = now - c.started_at >= defaults.RESTART_HEALTHY_AFTER_S
                c.failures = 1 if healthy else c.failures + 1
                c.last_exit = c.proc.returncode
                c.due_at = now + restart_delay(c.failures)
                log.warning("%s %s; restarting in %.1fs", c.name, _why(c.last_exit),
                            c.due_at - now)
            if c.due_at is not None and now >= c.due_at:
                gone, delay = c.worker_id, restart_delay(c.failures)
                self._start(c)
                c.restarts += 1
                out.append(ev.ServiceRestarted(
                    event_id=uuid7(), ts=ev.now(), org=c.env.get("OW_ORG", ""), name=c.name,
                    exit=c.last_exit, reason=_why(c.last_exit), worker_id=gone, restarts=c.restarts,
                    backoff_s=delay,
                ))
        return out

    def stop_all(self) -> None:
        for c in reversed(self.children):
            if c.proc is not None:
                stop_process(c.proc)


def stop_process(proc: subprocess.Popen) -> None:
    """SIGTERM the child's process group, SIGKILL after 10 s."""
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


class Reporter:
    """Publishes `ServiceRestarted` events from a thread of its own, so a server that is down
    (or restarting) never holds up the supervision loop; unsent events are retried."""

    def __init__(self, url: Callable[[], str], token_for: Callable[[str], str]):
        self.url, self.token_for = url, token_for
        self._queue: queue.Queue[ev.Event | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, daemon=True, name="ow-up-reporter")
        self._thread.start()

    def report(self, event: ev.Event) -> None:
        self._queue.put(event)

    def close(self, timeout_s: float = 5.0) -> None:
        """Send what is queued (within `timeout_s`), then stop."""
        self._queue.put(None)
        self._thread.join(timeout_s)

    def _run(self) -> None:
        import anyio

        pending: list[ev.Event] = []
        closing = False
        while not (closing and not pending):
            try:
                item = self._queue.get(timeout=1.0 if pending else None)
                if item is None:
                    closing = True
                else:
                    pending.append(item)
            except queue.Empty:
                pass
            if pending:
                try:
                    pending = anyio.run(self._publish, pending)
                except Exception as exc:  # the server is down: try again shortly
                    log.warning("could not report %d restart(s) yet: %s", len(pending), exc)
                if closing and pending:
                    return

    async def _publish(self, events: list[ev.Event]) -> list[ev.Event]:
        from ow.core import bus as bus_mod

        left = []
        for e in events:
            try:
                bus = await bus_mod.connect(self.url(), org=e.org, actor="ow-up",
                                            token=self.token_for(e.org), reconnect=False,
                                            name="ow-up")
            except Exception:
                left.append(e)
                continue
            async with bus:
                await bus.publish(e)
        return left
