"""Running a long-lived component (agent, scheduler) until SIGTERM or SIGINT asks it to stop.

Imports: stdlib and anyio.
"""

from __future__ import annotations

import signal
from typing import Any

import anyio

__all__ = ["run_until_signalled"]


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
