"""Server-sent events fed from the streams: a run's metric points, a run's log, events.

Each SSE message is one stream message, and its `id:` is that message's stream sequence. A
stream starts after the `Last-Event-ID` the browser sends on reconnect, else after the
`after` query parameter (the position of the page's first load), so a page sees every
message once: no gap, no duplicate. A comment every `KEEPALIVE_S` lets a dead connection
be noticed. An undecodable message is logged and skipped; the stream goes on.

Imports: stdlib, anyio, starlette and `ow.core`.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import AsyncIterator
from typing import Any

import anyio
import msgspec
from starlette.requests import Request
from starlette.responses import StreamingResponse

from ow.core import events as ev
from ow.core import subjects
from ow.core.bus import Bus
from ow.web import present
from ow.web.errors import BadParameter

__all__ = ["KEEPALIVE_S", "events", "logs", "metrics", "pings", "respond", "start_after"]

log = logging.getLogger(__name__)

KEEPALIVE_S = 10.0
RETRY_MS = 1000
#: (seq, SSE event name, JSON-able data)
Item = tuple[int, str, Any]


def start_after(request: Request) -> int:
    """The last sequence the page has: `Last-Event-ID`, else `?after=`, else 0."""
    for name, value in (("Last-Event-ID", request.headers.get("last-event-id")),
                        ("after", request.query_params.get("after"))):
        if value not in (None, ""):
            if not value.isdigit():
                raise BadParameter(f"{name}={value!r} is not a stream sequence (an integer ≥ 0)")
            return int(value)
    return 0


def frame(seq: int, event: str, data: Any) -> bytes:
    body = json.dumps(data, default=str, separators=(",", ":"))
    return f"id: {seq}\nevent: {event}\ndata: {body}\n\n".encode()


def respond(items: AsyncIterator[Item], closing: anyio.Event) -> StreamingResponse:
    """An SSE response of `items`, with keep-alives, ending when the app shuts down."""

    async def body() -> AsyncIterator[bytes]:
        send, receive = anyio.create_memory_object_stream[Item](100)

        async def pump() -> None:
            try:
                async with send:
                    async for item in items:
                        await send.send(item)
            finally:  # the stream's consumer is unsubscribed even when the page went away
                with anyio.CancelScope(shield=True):
                    await items.aclose()

        yield f"retry: {RETRY_MS}\n\n".encode()
        async with anyio.create_task_group() as tg:
            tg.start_soon(pump)
            tg.start_soon(_cancel_on, closing, tg.cancel_scope)
            async with receive:
                while True:
                    with anyio.move_on_after(KEEPALIVE_S) as idle:
                        try:
                            seq, event, data = await receive.receive()
                        except anyio.EndOfStream:
                            break
                    yield b": keep-alive\n\n" if idle.cancelled_caught else frame(seq, event, data)
            tg.cancel_scope.cancel()

    return StreamingResponse(
        body(), media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


async def _cancel_on(closing: anyio.Event, scope: anyio.CancelScope) -> None:
    await closing.wait()
    scope.cancel()


async def metrics(bus: Bus, org: str, run_id: str, after: int) -> AsyncIterator[Item]:
    """The plot points of each metrics message of a run (a batch of records)."""
    messages = bus.subscribe(subjects.metric_subject(org, run_id),
                             stream=subjects.METRICS_STREAM, start_seq=after + 1, raw=True)
    async with contextlib.aclosing(messages):
        async for seq, _subject, data in messages:
            try:
                records = [e.data for e in ev.decode_message(bytes(data))
                           if isinstance(e, ev.MetricLogged)]
            except Exception as exc:  # a bad message must not end the stream  # noqa: BLE001
                log.warning("metrics message seq=%s of run_id=%s skipped: %s", seq, run_id, exc)
                continue
            yield seq, "points", _points(records)


def _points(records: list[dict[str, Any]]) -> dict[str, Any]:
    latest: dict[str, Any] = {}
    for r in records:
        latest.update(r)
    points = [p for r in records if (p := present.point(r)) is not None]
    return {"points": points, "latest": latest, "records": len(records)}


async def logs(bus: Bus, org: str, run_id: str, after: int) -> AsyncIterator[Item]:
    """A run's output chunks as text, from the first one kept (or after `after`)."""
    chunks = bus.subscribe(subjects.log_subject(org, run_id), stream=subjects.LOGS_STREAM,
                           start_seq=after + 1, raw=True)
    async with contextlib.aclosing(chunks):
        async for seq, _subject, data in chunks:
            yield seq, "log", bytes(data).decode(errors="replace")


async def events(bus: Bus, filt: str, after: int) -> AsyncIterator[Item]:
    """Control-plane events under a subject filter, as timeline rows."""
    deliveries = bus.subscribe(filt, stream=subjects.EVENTS_STREAM, start_seq=after + 1)
    async with contextlib.aclosing(deliveries):
        async for d in deliveries:
            yield d.seq, "event", present.event_row(d.seq, msgspec.to_builtins(d.event))


async def pings(bus: Bus, filt: str, after: int) -> AsyncIterator[Item]:
    """Workers' heartbeats (who, and which run), so heartbeat ages stay current."""
    deliveries = bus.subscribe(filt, stream=subjects.HEARTBEATS_STREAM, start_seq=after + 1)
    async with contextlib.aclosing(deliveries):
        async for d in deliveries:
            if isinstance(d.event, ev.WorkerPinged):
                yield d.seq, "ping", {"worker_id": d.event.worker_id, "run_id": d.event.run_id}
