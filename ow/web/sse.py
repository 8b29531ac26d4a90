"""Server-sent events fed from the streams: a run's metric points, a run's log, events.

Each SSE message is one stream message, and its `id:` is that message's stream sequence. A
stream starts after the `Last-Event-ID` the browser sends on reconnect, else after the
`after` query parameter (the position of the page's first load), so a page sees every
message once: no gap, no duplicate. A comment every `KEEPALIVE_S` lets a dead connection
be noticed. An undecodable message is logged and skipped; the stream goes on.

Imports: stdlib, anyio, msgspec, starlette (requests) and `ow.core`, `ow.web`.
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

from ow.core import codec, subjects
from ow.core import events as ev
from ow.core.bus import Bus
from ow.web import present
from ow.web.errors import BadParameter

__all__ = [
    "KEEPALIVE_S", "EventStream", "events", "logs", "metrics", "pings", "respond", "start_after",
]

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


def respond(items: AsyncIterator[Item], closing: anyio.Event) -> EventStream:
    """An SSE response of `items`, with keep-alives, ending when the app shuts down."""
    return EventStream(items, closing)


class EventStream:
    """The SSE response as a plain ASGI callable: its tasks (the stream's reader, the
    disconnect watch) live in one task group inside the call, never across a generator's
    `yield`, so a page going away closes the stream's consumer in the task that opened it."""

    def __init__(self, items: AsyncIterator[Item], closing: anyio.Event):
        self.items, self.closing = items, closing

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": _HEADERS})
        send_item, receive_item = anyio.create_memory_object_stream[Item](100)
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(self._pump, send_item)
                tg.start_soon(_cancel_on_disconnect, receive, tg.cancel_scope)
                tg.start_soon(_cancel_on, self.closing, tg.cancel_scope)
                await _body(send, f"retry: {RETRY_MS}\n\n".encode())
                async with receive_item:
                    while True:
                        with anyio.move_on_after(KEEPALIVE_S) as idle:
                            try:
                                item = await receive_item.receive()
                            except anyio.EndOfStream:
                                break
                        await _body(send, b": keep-alive\n\n" if idle.cancelled_caught
                                    else frame(*item))
                tg.cancel_scope.cancel()
            await _body(send, b"", more=False)
        except OSError:  # the client went away mid-send
            return

    async def _pump(self, send_item: Any) -> None:
        try:
            async with send_item:
                async for item in self.items:
                    await send_item.send(item)
        finally:  # unsubscribe the stream's consumer even when cancelled
            with anyio.CancelScope(shield=True):
                await self.items.aclose()  # type: ignore[attr-defined]


_HEADERS = [(b"content-type", b"text/event-stream; charset=utf-8"),
            (b"cache-control", b"no-store"), (b"x-accel-buffering", b"no")]


async def _body(send: Any, data: bytes, more: bool = True) -> None:
    await send({"type": "http.response.body", "body": data, "more_body": more})


async def _cancel_on_disconnect(receive: Any, scope: anyio.CancelScope) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
    scope.cancel()


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
                records = [e.data for e in codec.decode_message(bytes(data))
                           if isinstance(e, ev.MetricLogged)]
            except msgspec.MsgspecError as exc:  # a bad message must not end the stream
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
