"""`OpenWeights`: the synchronous facade over `AsyncOpenWeights` (never a second implementation).

It holds one blocking portal (an event loop in a background thread). Every coroutine method
of the async client and its resources becomes a blocking call through that portal, async
iterators become plain iterators, async context managers become plain ones, and `Job`s that
come back get the portal so `job.refresh()` / `job.wait()` are blocking too.

Imports: anyio and sibling sdk modules.
"""

from __future__ import annotations

import atexit
import inspect
from collections.abc import Iterator
from functools import partial
from typing import Any

from anyio.from_thread import start_blocking_portal

from ow.sdk._client import AsyncOpenWeights
from ow.sdk._objects import _bind

__all__ = ["OpenWeights"]


def _iterate(portal: Any, agen: Any) -> Iterator[Any]:
    """Pull an async iterator through the portal, one item per call."""
    try:
        while True:
            try:
                yield portal.call(agen.__anext__)
            except StopAsyncIteration:
                return
    finally:
        if hasattr(agen, "aclose"):
            portal.call(agen.aclose)


class _Sync:
    """Blocking view of an async resource: same names, same arguments."""

    def __init__(self, target: Any, portal: Any):
        object.__setattr__(self, "_target", target)
        object.__setattr__(self, "_portal", portal)

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._target, name)
        return _wrap(attr, self._portal)

    def __repr__(self) -> str:
        return f"<sync {self._target!r}>"


def _wrap(attr: Any, portal: Any) -> Any:
    if inspect.iscoroutinefunction(attr):
        def call(*args: Any, **kwargs: Any) -> Any:
            return _bind(portal.call(partial(attr, *args, **kwargs)), portal)
        call.__doc__ = attr.__doc__
        return call
    if inspect.isasyncgenfunction(attr):
        def iterate(*args: Any, **kwargs: Any) -> Iterator[Any]:
            return _iterate(portal, attr(*args, **kwargs))
        iterate.__doc__ = attr.__doc__
        return iterate
    if callable(attr) and not isinstance(attr, type) and hasattr(attr, "__func__"):
        def plain(*args: Any, **kwargs: Any) -> Any:
            result = attr(*args, **kwargs)
            if hasattr(result, "__aenter__"):
                return portal.wrap_async_context_manager(result)
            if hasattr(result, "__anext__"):
                return _iterate(portal, result)
            return _bind(result, portal)
        return plain
    if hasattr(attr, "client") or hasattr(attr, "__aenter__"):
        return _Sync(attr, portal)
    return attr


class OpenWeights(_Sync):
    """Blocking client: `OpenWeights(url=None, org=None)`; see `AsyncOpenWeights`."""

    def __init__(self, url: str | None = None, org: str | None = None, **kwargs: Any):
        cm = start_blocking_portal()
        portal = cm.__enter__()
        client = portal.call(partial(AsyncOpenWeights, url, org, **kwargs))
        super().__init__(client, portal)
        object.__setattr__(self, "_cm", cm)
        object.__setattr__(self, "_closed", False)
        atexit.register(self.close)

    def close(self) -> None:
        """Flush run logs, close the connection and stop the background loop. Idempotent."""
        if self._closed:
            return
        object.__setattr__(self, "_closed", True)
        atexit.unregister(self.close)
        try:
            self._portal.call(self._target.close)
        finally:
            self._cm.__exit__(None, None, None)

    def __enter__(self) -> OpenWeights:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
