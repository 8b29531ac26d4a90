"""CLI plumbing shared by the command modules: global settings, running a coroutine,
connecting to the bus, a caught-up projection, the SDK client.

Imports: anyio, `ow.core`, `ow.projections`, `ow.sdk` (lazily).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import anyio

from ow.core.config import Config, from_env

__all__ = ["client", "connected", "projection", "run", "settings"]

T = TypeVar("T")


class _Settings:
    url: str | None = None
    org: str | None = None
    db: str | None = None
    debug: bool = False

    @property
    def config(self) -> Config:
        return from_env(url=self.url, org=self.org)


settings = _Settings()


def run(fn: Callable[..., Awaitable[T]], *args: Any) -> T:
    """Run one coroutine function to completion (Ctrl-C ends it quietly)."""
    return anyio.run(fn, *args)


@contextlib.asynccontextmanager
async def connected(org: str | None = None) -> AsyncIterator[Any]:
    """A provisioned bus for the configured URL and org."""
    from ow.core import bus as bus_mod

    cfg = settings.config
    bus = await bus_mod.connect(
        cfg.url, org=org or cfg.org, token=cfg.token, actor="cli", name="ow-cli"
    )
    try:
        await bus.provision(cfg.replicas)
        yield bus
    finally:
        await bus.close()


@contextlib.asynccontextmanager
async def projection(progress: Any = None) -> AsyncIterator[Any]:
    """This process's projection of the org, caught up to the end of every stream."""
    from ow.projections import Projector

    async with connected() as bus, Projector(bus, Path(settings.db) if settings.db else None) as p:
        await p.catch_up(progress=progress)
        yield p


@contextlib.asynccontextmanager
async def client() -> AsyncIterator[Any]:
    """The SDK's async client for the configured URL and org."""
    from ow.sdk import AsyncOpenWeights

    cfg = settings.config
    async with AsyncOpenWeights(url=cfg.url, org=cfg.org) as c:
        yield c
