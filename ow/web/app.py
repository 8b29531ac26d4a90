"""The dashboard app: routes (pages, JSON API, static assets), the error mapping, the OpenAPI
document, and `serve_app` (uvicorn inside the caller's anyio loop).

Error mapping, one table: `AuthError` -> its 401/403, `NotFoundError` -> 404 naming the id,
`BadParameter` -> 400 naming the parameter, any other `OWError` -> 502 with its message,
anything else -> 500 with no traceback (logged here). API paths answer JSON, pages HTML.

Imports: stdlib, anyio, starlette, uvicorn (in `serve_app`), `ow.core` and `ow.web`.
"""

from __future__ import annotations

import html
import inspect
import logging
import socket
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from ow.core.bus import Bus
from ow.core.errors import NotFoundError, OWError
from ow.projections import Projector
from ow.web import api, pages
from ow.web.auth import Auth
from ow.web.context import Web
from ow.web.errors import AuthError, BadParameter

__all__ = ["create_app", "serve_app"]

log = logging.getLogger(__name__)


def create_app(
    *,
    projector_for: Callable[[str], Awaitable[Projector]],
    bus_for: Callable[[str], Awaitable[Bus]],
    home: Path,
) -> Starlette:
    """The dashboard as an ASGI app over the host's live projectors and admin buses."""
    routes = [Route("/api/openapi.json", openapi), *api.ROUTES(), *pages.ROUTES()]
    app = Starlette(
        routes=routes,
        exception_handlers={AuthError: _error, OWError: _error, BadParameter: _error,
                            HTTPException: _error, Exception: _error},
    )
    app.state.web = Web(projector_for, bus_for, Path(home), Auth(Path(home)))
    return app


_STATUS: list[tuple[type[BaseException], int]] = [
    (NotFoundError, 404), (BadParameter, 400), (OWError, 502),
]


async def _error(request: Request, exc: Exception) -> Response:
    if isinstance(exc, AuthError):
        status, message = exc.status, str(exc)
    elif isinstance(exc, HTTPException):
        status, message = exc.status_code, f"{exc.detail}: {request.url.path}"
    else:
        status = next((s for kind, s in _STATUS if isinstance(exc, kind)), 500)
        message = str(exc) if status != 500 else "internal error: see the read service's log"
    if status == 500:
        log.error("%s %s failed", request.method, request.url.path, exc_info=exc)
    if request.url.path.startswith("/api/"):
        return JSONResponse({"error": message, "status": status}, status_code=status)
    body = (f"<!doctype html><title>{status}</title><link rel=stylesheet href=/static/style.css>"
            f"<main><h1>{status}</h1><p class=error>{html.escape(message)}</p>"
            f'<p><a href="/">dashboard</a> · <a href="/login">log in</a></p></main>')
    return HTMLResponse(body, status_code=status)


async def openapi(request: Request) -> JSONResponse:
    """This API's OpenAPI document, written from the handlers' docstrings."""
    paths: dict[str, Any] = {}
    for route in request.app.routes:
        if not isinstance(route, Route) or not route.path.startswith("/api/"):
            continue
        doc = inspect.getdoc(route.endpoint) or ""
        summary, _, description = doc.partition("\n")
        params = [{"name": n, "in": "path", "required": True, "schema": {"type": "string"}}
                  for n in route.param_convertors]
        for method in sorted((route.methods or {"GET"}) - {"HEAD"}):
            paths.setdefault(route.path, {})[method.lower()] = {
                "summary": summary, "description": description.strip(), "parameters": params,
                "responses": {"200": {"description": "OK"},
                              "400": {"description": "a malformed query parameter, named"},
                              "401": {"description": "no valid token; how to get one"},
                              "403": {"description": "not your org, or not your scope"},
                              "404": {"description": "no such id"}},
            }
    return JSONResponse({"openapi": "3.0.3", "info": {"title": "ow dashboard API",
                                                       "version": "1"}, "paths": paths})


async def serve_app(
    app: Any, host: str = "127.0.0.1", port: int = 0, *,
    task_status: anyio.abc.TaskStatus[int] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """Serve `app` with uvicorn in this (asyncio) loop until cancelled; reports the port.

    The host process owns signals: uvicorn's own handlers are not installed. On the way out
    live streams end at once (they would hold the shutdown), then uvicorn closes."""
    import uvicorn

    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(128)
    sock.setblocking(False)
    config = uvicorn.Config(app, lifespan="off", log_level="warning", access_log=False,
                            timeout_graceful_shutdown=1)
    config.load()
    web = getattr(getattr(app, "state", None), "web", None)
    if web is not None and web.closing.is_set():
        web.closing = anyio.Event()  # served again after a stop
    server = uvicorn.Server(config)
    server.lifespan = config.lifespan_class(config)
    await server.startup(sockets=[sock])
    task_status.started(sock.getsockname()[1])
    try:
        await server.main_loop()
    finally:
        with anyio.CancelScope(shield=True):
            if web is not None:
                await web.aclose()
            await server.shutdown(sockets=[sock])
