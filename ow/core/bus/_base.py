"""What every part of the bus shares: the connection, the org, and waiting out an outage.

`BusBase` holds the nats-py connection and its JetStream context; the concerns of the bus
(`_publish`, `_read`, `_kv`, `_dispatch`, `_service`) are mixins over it, put together as
`Bus` in `_bus.py`.

Imports: stdlib, anyio, nats and `ow.core`.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import anyio
from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.kv import KeyValue

from ow.core import credentials, defaults
from ow.core.bus._errors import mapped
from ow.core.errors import BusUnavailableError, PermissionDeniedError

__all__ = ["BusBase"]

log = logging.getLogger(__name__)

T = TypeVar("T")


class BusBase:
    """A NATS connection bound to one org (`Bus` adds the operations)."""

    def __init__(self, nc: Client, *, org: str, actor: str, url: str):
        self.nc = nc
        self.js: JetStreamContext = nc.jetstream(timeout=defaults.REQUEST_TIMEOUT_S)
        self.org = org
        self.actor = actor
        self.url = url
        self._kv: dict[str, KeyValue] = {}
        #: credentials for the bulk reader's own connection; None: it is not possible here
        self.wire_auth: dict[str, Any] | None = None
        #: operations the server refused to these credentials: (time, text), newest last
        self.denials: list[tuple[float, str]] = []
        #: the identity its bound events go out under (`ow.core.credentials.sender_of`)
        self.sender = ""
        #: the claims of its run credential, None for any other token (`credentials.run_of`)
        self.run: credentials.Credential | None = None
        #: a bounded read spanning at least this many sequences goes through the bulk reader
        self.bulk_from = defaults.BULK_READ_FROM_SEQS

    async def close(self) -> None:
        """Flush what was published and close (not drain: a pending pull would hold it 30 s)."""
        with contextlib.suppress(Exception):
            await self.nc.flush(timeout=2)
        with contextlib.suppress(Exception):
            await self.nc.close()

    async def retrying(
        self, what: str, key: str, fn: Callable[..., Awaitable[T]], *args: Any, **kwargs: Any
    ) -> T:
        """Run an idempotent operation, retrying while the server is briefly unavailable.

        A restart or a leader election makes requests time out for a few seconds; reads and
        publishes carrying a message id are safe to repeat, so they wait it out (up to
        `defaults.RETRY_S`) instead of failing the caller.
        """
        started = anyio.current_time()
        deadline = started + defaults.RETRY_S
        while True:
            try:
                with mapped(what, key):
                    return await fn(*args, **kwargs)
            except BusUnavailableError as exc:
                self.raise_if_denied(started, what, key, exc)
                if self.nc.is_closed or anyio.current_time() > deadline:
                    raise
                log.debug("%s %s: server unavailable, retrying", what, key)
                await anyio.sleep(0.1)

    def raise_if_denied(self, since: float, what: str, key: str, cause: Exception) -> None:
        """Raise `PermissionDeniedError` if the server refused something since `since`: a
        refused request is never answered, so without this it would look like a timeout."""
        texts = [text for when, text in self.denials if when >= since]
        if texts:
            raise PermissionDeniedError(
                f"{what} {key}: the server refused it to this connection's credentials "
                f"({texts[-1]}). A token's scope limits what it may do: see `ow token check`."
            ) from cause

    async def wait_connected(self) -> None:
        """Wait (up to 30 s) for the connection to be up again; `BusUnavailableError` if it
        is closed for good."""
        with anyio.move_on_after(30):
            while not self.nc.is_connected:
                if self.nc.is_closed:
                    raise BusUnavailableError("the NATS connection is closed")
                await anyio.sleep(0.05)
