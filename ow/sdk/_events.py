"""`ow.events` and `ow.metrics`: what runs logged, as lists and as live subscriptions.

`events.list(job_id=|run_id=)` keeps the openweights shape (each item has `data`). The
subscriptions are ordered consumers that resume from their last sequence after a reconnect
or a server restart: no gap, no duplicate.

Imports: `ow.core` and sibling sdk modules.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from typing import TYPE_CHECKING, Any

from ow.core import events as ev
from ow.core import subjects
from ow.core.errors import ValidationError
from ow.sdk._resource import AsyncResource

if TYPE_CHECKING:
    pass

__all__ = ["AsyncEvents", "AsyncMetrics"]


def _item(seq: int, e: ev.MetricLogged) -> dict[str, Any]:
    return {
        "id": e.event_id, "seq": seq, "run_id": e.run_id, "job_id": e.job_id,
        "data": e.data, "created_at": e.ts,
    }


class AsyncMetrics(AsyncResource):
    """Metric records (`ow.run.log`) of a run."""

    async def list(self, run_id: str) -> list[dict[str, Any]]:
        bus = await self.client.bus()
        history, _ = await bus.history(
            subjects.metric_subject(bus.org, run_id), stream=subjects.METRICS_STREAM
        )
        return [_item(d.seq, d.event) for d in history if isinstance(d.event, ev.MetricLogged)]

    async def subscribe(
        self, run_id: str, since: int | datetime | None = None
    ) -> AsyncIterator[dict[str, Any]]:
        """Live records of a run, from the start (default), a sequence or a time."""
        bus = await self.client.bus()
        start_seq, start_time = _start(since, default_seq=1)
        async for d in bus.subscribe(
            subjects.metric_subject(bus.org, run_id), stream=subjects.METRICS_STREAM,
            start_seq=start_seq, start_time=start_time,
        ):
            if isinstance(d.event, ev.MetricLogged):
                yield _item(d.seq, d.event)


class AsyncEvents(AsyncResource):
    """Events of jobs and runs: logged records (`list`, `latest`) and control events."""

    async def list(
        self, job_id: str | None = None, run_id: str | None = None
    ) -> list[dict[str, Any]]:
        """Records logged by a run, or by every run of a job, oldest first."""
        if (job_id is None) == (run_id is None):
            raise ValidationError("events.list needs exactly one of job_id= or run_id=")
        run_ids = [run_id] if run_id else [r.id for r in (await self._job(job_id)).runs]
        out: list[dict[str, Any]] = []
        for rid in run_ids:
            out.extend(await self.client.metrics.list(rid))
        return out

    async def latest(
        self, key: str | list[str], job_id: str | None = None, run_id: str | None = None
    ) -> Any:
        """The most recent logged value of `key` (None if never logged); for a list of keys
        (openweights' form) a dict of each key's latest value, for "*" of every key's
        latest non-null value (keys never logged are left out)."""
        items = await self.list(job_id=job_id, run_id=run_id)
        if key == "*":
            found = {k: v for item in items for k, v in item["data"].items() if v is not None}
            return found
        keys = [key] if isinstance(key, str) else list(key)
        found = {}
        for item in reversed(items):
            for k in keys:
                if k not in found and k in item["data"]:
                    found[k] = item["data"][k]
        return found.get(key) if isinstance(key, str) else found

    async def subscribe(
        self, job_id: str | None = None, since: int | datetime | None = None
    ) -> AsyncIterator[ev.Event]:
        """Live control-plane events of one job, or of the whole org (job_id=None)."""
        bus = await self.client.bus()
        filt = subjects.job_subject(bus.org, job_id) if job_id else subjects.events_filter(bus.org)
        start_seq, start_time = _start(since, default_seq=1 if job_id else None)
        async for d in bus.subscribe(filt, start_seq=start_seq, start_time=start_time):
            yield d.event

    async def _job(self, job_id: str | None) -> Any:
        assert job_id is not None
        return await self.client.jobs.retrieve(job_id)


def _start(
    since: int | datetime | None, default_seq: int | None
) -> tuple[int | None, datetime | None]:
    if isinstance(since, datetime):
        return None, since
    if isinstance(since, int):
        return since, None
    return default_seq, None
