"""Why a pending job waits: the scheduler's notices about it, read from its scheduler subject.

The scheduler publishes `SchedulerNoticed{subject_id=job_id, rule, message, evidence}` on
`subjects.aggregate_subject(org, "scheduler", job_id)` when a job cannot be served (it plans on
every change, debounced by `SCHEDULER_DEBOUNCE_S`, so within a second of the submit). A notice
*stands* while the job is still pending and has had no event since. `reason` reads the
standing one; `watch` follows them live for `job.wait()`, `ow exec`, `ow deploy` and
`api.deploy`.

Imports: anyio and `ow.core`.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import anyio

from ow.core import events as ev
from ow.core import subjects
from ow.core.state import JobState, fold_all

if TYPE_CHECKING:
    from ow.core.bus import Bus

__all__ = ["reason", "reason_of", "stands", "watch"]

log = logging.getLogger(__name__)


def stands(notice: ev.SchedulerNoticed | None, state: JobState | None) -> bool:
    """Whether `notice` still explains why the job waits: the job is pending and nothing
    happened to it since the notice. (The scheduler forgets a notice whenever the job has an
    event, and notices again within its debounce if the reason holds, so a notice older than
    the job's last event is history: a reason from before a reset, a requeue, ...)"""
    if notice is None or state is None or state.status != "pending" or state.cancel_requested:
        return False
    return state.updated_at is None or notice.ts is None or notice.ts >= state.updated_at


async def last_notice(bus: Bus, job_id: str) -> ev.SchedulerNoticed | None:
    history, _ = await bus.history(subjects.aggregate_subject(bus.org, "scheduler", job_id))
    found = [d.event for d in history if isinstance(d.event, ev.SchedulerNoticed)]
    return found[-1] if found else None


async def reason(bus: Bus, job_id: str, state: JobState | None) -> str | None:
    """The scheduler's standing reason for the pending job, or None."""
    notice = await last_notice(bus, job_id)
    return notice.message if stands(notice, state) else None


async def reason_of(bus: Bus, job_id: str) -> str | None:
    """`reason` for a job read from its own subject now."""
    history, _ = await bus.history(subjects.job_subject(bus.org, job_id))
    return await reason(bus, job_id, fold_all(d.event for d in history))


async def watch(
    bus: Bus,
    job_id: str,
    state_of: Callable[[], JobState | None],
    say: Callable[[ev.SchedulerNoticed], Any],
    give_up_after: float | None = None,
) -> ev.SchedulerNoticed | None:
    """Call `say(notice)` once per standing notice (history, then live). With `give_up_after`,
    return the unschedulable notice once it has stood that long (counted from its time);
    otherwise run until cancelled."""
    box: dict[str, Any] = {"notice": None, "changed": anyio.Event()}
    subject = subjects.aggregate_subject(bus.org, "scheduler", job_id)

    async def follow() -> None:
        said: set[str] = set()
        async for d in bus.subscribe(subject, start_seq=1):
            n = d.event
            if not isinstance(n, ev.SchedulerNoticed) or not stands(n, state_of()):
                continue
            box["notice"] = n
            box["changed"].set()
            if n.message not in said:
                said.add(n.message)
                await _call(say, n)

    async with anyio.create_task_group() as tg:
        tg.start_soon(follow)
        while True:
            n: ev.SchedulerNoticed | None = box["notice"]
            wait_s = math.inf
            if give_up_after is not None and n is not None and n.rule == ev.NOTICE_UNSCHEDULABLE:
                age = (ev.now() - n.ts).total_seconds() if n.ts else 0.0
                wait_s = max(0.0, give_up_after - age)
            changed = box["changed"]
            with anyio.move_on_after(wait_s):
                await changed.wait()
                box["changed"] = anyio.Event()
                continue
            if n is box["notice"] and stands(n, state_of()):
                tg.cancel_scope.cancel()
                return n
            box["notice"] = None


async def _call(fn: Callable[[Any], Any], arg: Any) -> None:
    result = fn(arg)
    if hasattr(result, "__await__"):
        await result
