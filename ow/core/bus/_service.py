"""Services over request/reply: a `nats.micro` service whose endpoints answer requests
(`serve`), and the request door (`request`). Nothing else of the bus depends on it.

Imports: stdlib, anyio, nats and `ow.core`.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import anyio
import nats.errors

from ow.core import defaults
from ow.core.bus._base import BusBase
from ow.core.bus._errors import mapped
from ow.core.errors import BusUnavailableError, NoServiceError

if TYPE_CHECKING:  # nats.micro is imported when a service starts
    from nats.micro.service import Request

__all__ = ["Handler", "Reply", "ServiceFault", "ServiceMixin"]

log = logging.getLogger(__name__)

#: handle(endpoint name, request bytes) -> reply bytes; raising `ServiceFault` (or any
#: exception) answers an error instead
Handler = Callable[[str, bytes], Awaitable[bytes]]


@dataclass(frozen=True, slots=True)
class Reply:
    """A service's answer: its bytes, or an error code and description (`code` "" if none)."""

    data: bytes
    code: str = ""
    error: str = ""


class ServiceFault(Exception):
    """Raised by a service handler: answer with this error code, text and body."""

    def __init__(self, code: str, text: str, data: bytes = b""):
        super().__init__(text)
        self.code, self.text, self.data = code, text, data


class ServiceMixin(BusBase):
    """`serve` and `request`."""

    async def serve(
        self,
        name: str,
        endpoints: dict[str, str],
        handle: Handler,
        *,
        concurrency: int = defaults.QUERY_CONCURRENCY,
        task_status: Any = anyio.TASK_STATUS_IGNORED,
    ) -> None:
        """Answer requests on `endpoints` ({endpoint name: subject}) until cancelled.

        `await handle(endpoint, data) -> bytes` runs in a task of its own per request (up to
        `concurrency` at once), so one slow answer does not hold up the others. A handler
        that raises answers an error: `ServiceFault(code, text)` as given, anything else
        as code 500 with the exception's text; the service goes on either way."""
        import nats.micro
        from nats.micro.service import Request  # a subscript below evaluates it

        sem = anyio.Semaphore(concurrency)
        send, receive = anyio.create_memory_object_stream[tuple[str, Request]](10_000)

        def endpoint(ep: str) -> Callable[[Request], Awaitable[None]]:
            async def on_request(req: Request) -> None:
                await send.send((ep, req))  # answered by the task group below
            return on_request

        async def answer(ep: str, req: Request) -> None:
            async with sem:
                try:
                    data = await handle(ep, req.data)
                except ServiceFault as exc:
                    await _respond_error(req, exc.code, exc.text, exc.data)
                except Exception as exc:  # a handler error never stops the service
                    log.exception("service %s: %s failed", name, ep)
                    await _respond_error(req, "500", f"{type(exc).__name__}: {exc}", b"")
                else:
                    with contextlib.suppress(Exception):
                        await req.respond(data)

        with mapped("start service", name):
            svc = await nats.micro.add_service(self.nc, name=name, version="1.0.0")
            for ep, subject in endpoints.items():
                await svc.add_endpoint(name=ep, subject=subject, handler=endpoint(ep))
            await self.nc.flush()  # the server knows every endpoint before `started`
        try:
            async with anyio.create_task_group() as tg, receive:
                task_status.started()
                async for ep, req in receive:
                    tg.start_soon(answer, ep, req)
        finally:
            with anyio.CancelScope(shield=True), contextlib.suppress(Exception):
                await svc.stop()

    async def request(
        self, subject: str, data: bytes, timeout: float = defaults.QUERY_TIMEOUT_S  # noqa: ASYNC109
    ) -> Reply:
        """Ask a service; `NoServiceError` if none listens on the subject."""
        started = anyio.current_time()
        with mapped("request", subject):
            try:
                msg = await self.nc.request(subject, data, timeout=timeout)
            except nats.errors.NoRespondersError as exc:
                raise NoServiceError(f"no service answers {subject}") from exc
            except (nats.errors.TimeoutError, TimeoutError) as exc:
                self.raise_if_denied(started, "request", subject, exc)
                raise BusUnavailableError(
                    f"request {subject}: no answer in {timeout}s (the service is busy or stuck)"
                ) from exc
        headers = msg.headers or {}
        code = headers.get("Nats-Service-Error-Code", "")
        return Reply(msg.data, code, headers.get("Nats-Service-Error", "") if code else "")


async def _respond_error(req: Request, code: str, text: str, data: bytes) -> None:
    with contextlib.suppress(Exception):  # the asker may be gone
        await req.respond_error(code, " ".join(text.split())[:500], data)
