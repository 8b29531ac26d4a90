"""Running a long-lived component (agent, scheduler) until SIGTERM or SIGINT asks it to stop,
and the pure restart rule of a supervisor (`restart_delay`).

Imports: stdlib, anyio and `ow.core.defaults`.
"""

from __future__ import annotations

import signal
from typing import Any

import anyio

from ow.core import defaults

__all__ = ["restart_delay", "run_until_signalled"]


def restart_delay(
    failures: int,
    *,
    first_s: float = defaults.RESTART_BACKOFF_FIRST_S,
    max_s: float = defaults.RESTART_BACKOFF_MAX_S,
) -> float:
    """How long to wait before restarting a service that exited `failures` times in a row
    (1 for the first exit): `first_s`, doubling, capped at `max_s`. A service that ran for
    `defaults.RESTART_HEALTHY_AFTER_S` counts from 1 again (the supervisor resets it)."""
    return min(max_s, first_s * 2 ** max(0, failures - 1))


async def run_until_signalled(
    component: Any, *, task_status: Any = anyio.TASK_STATUS_IGNORED
) -> None:
    """`await component.run()`; the first SIGTERM/SIGINT calls `component.shutdown()`."""
    async with anyio.create_task_group() as tg:

        async def on_signal() -> None:
            with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
                async for _ in signals:
                    component.shutdown()
                    return

        tg.start_soon(on_signal)
        await component.run(task_status=task_status)
        tg.cancel_scope.cancel()
