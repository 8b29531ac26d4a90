"""The auth callout service: answers the server's authorization requests (`ow.core.callout`).

`ow up` runs it as a supervised child (`python -m ow.core.authsvc`) next to the server. It
connects as the callout's own user (in the `OW_AUTH` account, one of the static users the
server checks itself) and serves `$SYS.REQ.USER.AUTH`. It reads the tenancy state for each
request (the orgs and keys change while it runs: `ow org create`); the state file is the
operator's, so the service runs only where the operator's home is. With no org but the
default (no accounts, no auth) the server never asks, and it idles.

Imports: stdlib, anyio and `ow.core` (bus, callout, config, lifecycle, tenancy).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio

from ow.core import bus as bus_mod
from ow.core import callout, tenancy
from ow.core.errors import TokenError

__all__ = ["AuthService", "main"]

log = logging.getLogger(__name__)


class AuthService:
    """`await AuthService(url, home).run()` answers authorization requests until cancelled."""

    def __init__(self, url: str, home: Path):
        self.url, self.home = url, Path(home)
        self._scope: anyio.CancelScope | None = None

    async def handle(self, _endpoint: str, data: bytes) -> bytes:
        """One authorization request: the signed response (an error response refuses)."""
        state = tenancy.load(self.home)
        try:  # a token's bcrypt check takes ~0.1 s: not on the loop
            answer, what = await anyio.to_thread.run_sync(
                callout.authorize, data, state, datetime.now(UTC))
        except TokenError as exc:  # not a request the server signed: no answer at all
            log.warning("auth callout: ignored a request that is not the server's: %s", exc)
            return b""
        log.info("auth callout: %s", what)
        return answer.encode()

    async def run(self, *, task_status: Any = anyio.TASK_STATUS_IGNORED) -> None:
        state = tenancy.load(self.home)
        bus = await bus_mod.connect(self.url, org=callout.AUTH_ACCOUNT, actor="auth-callout",
                                    token=state.callout_token, name="ow-auth-callout")
        try:
            with anyio.CancelScope() as self._scope:
                await bus.serve("ow-auth-callout", {"authorize": callout.CALLOUT_SUBJECT},
                                self.handle, task_status=task_status)
        finally:
            await bus.close()

    def shutdown(self) -> None:
        if self._scope is not None:
            self._scope.cancel()


def main() -> None:
    """`python -m ow.core.authsvc`: serve the callout of OW_URL for OW_HOME until a signal."""
    from ow.core.config import from_env
    from ow.core.lifecycle import run_until_signalled

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    config = from_env()
    anyio.run(run_until_signalled, AuthService(config.url, config.home_path))


if __name__ == "__main__":
    main()
