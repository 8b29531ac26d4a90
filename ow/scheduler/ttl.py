"""The in-pod TTL watchdog: a pod terminates itself once its shutdown time has passed.

A second line of defence behind the scheduler's own `pod_ttl_s` rule, for when no scheduler
runs: the shutdown time lives in a file (`~/shutdown.txt`, one ISO datetime), written at
start as now + TTL_HOURS unless it already exists. Anyone in the pod may `extend` or `set`
it; the watchdog re-reads it every check (each minute), so an extension takes effect at once.
When the time has passed it calls `terminate(pod_id)` for its own pod (RUNPOD_POD_ID) and
retries on the next check if that fails.

`decide` is the pure rule; `TTLWatchdog.run` the small loop around it (clock injectable).

Imports: stdlib, anyio, `ow.core.defaults`.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import anyio

from ow.core import defaults

__all__ = ["DEFAULT_FILE", "TTLWatchdog", "decide", "extend", "read_deadline", "set_ttl"]

log = logging.getLogger(__name__)

DEFAULT_FILE = Path("~/shutdown.txt")


def _aware(t: datetime) -> datetime:
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def read_deadline(path: Path) -> datetime | None:
    """The shutdown time in the file, or None if it is missing or unreadable."""
    try:
        return _aware(datetime.fromisoformat(path.expanduser().read_text().strip()))
    except (OSError, ValueError):
        return None


def _write(path: Path, when: datetime) -> datetime:
    path = path.expanduser()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(when.isoformat())
    tmp.replace(path)  # atomic: the watchdog never reads half a date
    return when


def set_ttl(path: Path, hours: float, now: datetime) -> datetime:
    """Shut down `hours` from now."""
    return _write(path, now + timedelta(hours=hours))


def extend(path: Path, hours: float, now: datetime) -> datetime:
    """Push the shutdown time `hours` later (from now if it is missing or already past)."""
    current = read_deadline(path)
    base = current if current is not None and current > now else now
    return _write(path, base + timedelta(hours=hours))


def decide(deadline: datetime | None, now: datetime) -> bool:
    """Whether the pod must terminate now (an unreadable deadline never kills it)."""
    return deadline is not None and now >= deadline


class TTLWatchdog:
    """`await TTLWatchdog(pod_id, terminate).run()` inside the pod."""

    def __init__(
        self,
        pod_id: str,
        terminate: Callable[[str], Awaitable[Any]],
        *,
        path: Path = DEFAULT_FILE,
        ttl_hours: float = defaults.POD_TTL_S / 3600,
        interval_s: float = defaults.POD_TTL_CHECK_S,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        sleep: Callable[[float], Awaitable[Any]] = anyio.sleep,
    ):
        self.pod_id = pod_id
        self.terminate = terminate
        self.path = path
        self.ttl_hours = ttl_hours
        self.interval_s = interval_s
        self.clock = clock
        self.sleep = sleep

    def start(self) -> datetime:
        """Write now + TTL unless a shutdown time is already set (a restart keeps it)."""
        current = read_deadline(self.path)
        if current is not None:
            return current
        return set_ttl(self.path, self.ttl_hours, self.clock())

    async def check(self) -> bool:
        """One check: True once the terminate call was made and succeeded."""
        deadline = read_deadline(self.path)
        if not decide(deadline, self.clock()):
            return False
        log.warning("pod_id=%s passed its TTL (%s): terminating", self.pod_id, deadline)
        try:
            await self.terminate(self.pod_id)
        except Exception as exc:  # any failure: retry on the next check (the seed's rule)
            log.warning("pod_id=%s could not terminate itself: %s; retrying", self.pod_id, exc)
            return False
        return True

    async def run(self, *, task_status: Any = anyio.TASK_STATUS_IGNORED) -> None:
        """Check every `interval_s` until the pod was terminated."""
        task_status.started(self.start())
        while not await self.check():
            await self.sleep(self.interval_s)
