"""What every handler needs: the host's projectors and buses, the viewer of a request, one
SDK client per org (for cancel and restart), query-parameter parsing that answers 400.

Imports: stdlib, anyio, starlette, `ow.core`, `ow.projections`, `ow.sdk` and `ow.web`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
from starlette.requests import Request

from ow.core import tenancy as tn
from ow.core.bus import Bus
from ow.projections import Projector
from ow.web.auth import COOKIE, Auth, Viewer, cookie_tokens
from ow.web.errors import BadParameter

__all__ = ["Web", "choice_param", "int_param", "web_of"]


@dataclass
class Web:
    projector_for: Callable[[str], Awaitable[Projector]]
    bus_for: Callable[[str], Awaitable[Bus]]
    home: Path
    auth: Auth
    closing: anyio.Event = field(default_factory=anyio.Event)
    _clients: dict[str, Any] = field(default_factory=dict)
    _lock: anyio.Lock = field(default_factory=anyio.Lock)

    async def viewer(self, request: Request) -> Viewer:
        tokens = cookie_tokens(request.cookies.get(COOKIE))
        header = request.headers.get("authorization", "")
        if header.lower().startswith("bearer "):
            tokens.append(header[7:].strip())
        return await self.auth.viewer(tokens)

    async def org(self, request: Request) -> tuple[str, str]:
        """The org of the path and the viewer's scope on it (401/403 otherwise)."""
        org = request.path_params["org"]
        viewer = await self.viewer(request)
        return org, viewer.scope(org)

    async def client(self, org: str) -> Any:
        """The org's SDK client with the operator's control token (one per org, kept)."""
        async with self._lock:  # two first requests at once make one client
            if org not in self._clients:
                from ow.sdk import AsyncOpenWeights

                bus = await self.bus_for(org)
                token = tn.control_token(self.auth.state(), org) or None
                self._clients[org] = AsyncOpenWeights(url=bus.url, org=org, token=token)
            return self._clients[org]

    async def aclose(self) -> None:
        self.closing.set()
        for c in self._clients.values():
            close = getattr(c, "close", None)
            if close is not None:
                await close()
        self._clients.clear()


def web_of(request: Request) -> Web:
    return request.app.state.web


def int_param(request: Request, name: str, default: int | None, lo: int, hi: int) -> int | None:
    value = request.query_params.get(name)
    if value in (None, ""):
        return default
    try:
        n = int(value)
    except ValueError:
        n = lo - 1
    if not lo <= n <= hi:
        raise BadParameter(f"query parameter {name}={value!r} must be an integer from {lo} to {hi}")
    return n


def choice_param(request: Request, name: str, choices: tuple[str, ...]) -> str | None:
    value = request.query_params.get(name)
    if value in (None, ""):
        return None
    if value not in choices:
        raise BadParameter(f"query parameter {name}={value!r} must be one of {', '.join(choices)}")
    return value
