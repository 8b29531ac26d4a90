"""CLI plumbing shared by the command modules: global settings, running a coroutine,
connecting to the bus, asking the read service (or a private fold), the SDK client.

Imports: anyio, `ow.core`, `ow.projections`, `ow.sdk` (lazily).
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import anyio

from ow.core.config import Config, from_env

if TYPE_CHECKING:  # nats, DuckDB and the SDK load when used, not at `ow <command>`
    from ow.core.bus import Bus
    from ow.projections import Projector
    from ow.projections.client import Reader
    from ow.sdk import AsyncOpenWeights

__all__ = ["ask", "client", "connected", "projection", "reader", "run", "settings"]

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


def run(fn: Callable[..., Awaitable[T]], *args: Any, **kwargs: Any) -> T:
    """Run one coroutine function to completion (Ctrl-C ends it quietly)."""
    return anyio.run(functools.partial(fn, *args, **kwargs))


@contextlib.asynccontextmanager
async def connected(org: str | None = None, provision: bool = True) -> AsyncIterator[Bus]:
    """A bus for the configured URL and org (provisioned: its streams exist)."""
    from ow.core import bus as bus_mod

    cfg = settings.config
    bus = await bus_mod.connect(
        cfg.url, org=org or cfg.org, token=cfg.token, actor="cli", name="ow-cli"
    )
    try:
        if provision:
            await bus.provision(cfg.replicas)
        yield bus
    finally:
        await bus.close()


@contextlib.asynccontextmanager
async def projection(progress: Any = None) -> AsyncIterator[Projector]:
    """This process's projection of the org, caught up to the end of every stream."""
    from ow.projections import Projector

    async with connected() as bus, Projector(bus, Path(settings.db) if settings.db else None) as p:
        await p.catch_up(progress=progress)
        yield p


def _notice(text: str) -> None:
    from ow.cli import render

    render.console(stderr=True).print(f"[bright_black]{text}[/]")


@contextlib.asynccontextmanager
async def reader(bus: Bus | None = None, private: str | None = None) -> AsyncIterator[Reader]:
    """Queries through the read service; with none answering, a private fold of this
    process (in memory, or the `--db` file), announced in one line on stderr. A reader
    does not provision: it writes nothing."""
    from ow.projections.client import Reader

    async with contextlib.AsyncExitStack() as stack:
        if bus is None:
            bus = await stack.enter_async_context(connected(provision=False))
        r = Reader(bus, private=private or settings.db, notice=_notice)
        stack.callback(r.close)
        yield r


async def ask(name: str, **params: Any) -> Any:
    """One query's result, reflecting every message stored before the call."""
    async with reader() as r:
        return await r.result(name, params)


@contextlib.asynccontextmanager
async def client() -> AsyncIterator[AsyncOpenWeights]:
    """The SDK's async client for the configured URL and org."""
    from ow.sdk import AsyncOpenWeights

    cfg = settings.config
    async with AsyncOpenWeights(url=cfg.url, org=cfg.org) as c:
        yield c
