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
from ow.sdk._objects import Job, _bind

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
            result = portal.call(partial(attr, *args, **kwargs))
            if hasattr(result, "__anext__"):  # a stream (chat with stream=True)
                return _iterate(portal, result)
            return _bind(result, portal)
        call.__doc__ = attr.__doc__
        return call
    if inspect.isasyncgenfunction(attr):
        def iterate(*args: Any, **kwargs: Any) -> Iterator[Any]:
            return _iterate(portal, attr(*args, **kwargs))
        iterate.__doc__ = attr.__doc__
        return iterate
    if callable(attr) and not isinstance(attr, type) and hasattr(attr, "__func__"):
        def plain(*args: Any, **kwargs: Any) -> Any:
            return _sync_result(attr(*args, **kwargs), portal)
        return plain
    if _is_resource(attr):
        return _Sync(attr, portal)
    return attr


def _is_resource(attr: Any) -> bool:
    """SDK resources (files, jobs, chat.completions, job creators …) get a sync view too."""
    from ow.sdk._jobs import Jobs

    module = type(attr).__module__
    return isinstance(attr, Jobs) or (module.startswith("ow.sdk.") and hasattr(attr, "__dict__")
                                      and not isinstance(attr, Job))


def _sync_result(result: Any, portal: Any) -> Any:
    """Sync view of what a plain method returned (context managers, iterators, Jobs)."""
    if hasattr(result, "__aenter__"):
        return _SyncContext(result, portal)
    if hasattr(result, "__anext__"):
        return _iterate(portal, result)
    if isinstance(result, dict) and any(hasattr(v, "__aenter__") for v in result.values()):
        shared: dict[int, _SyncContext] = {}
        return {k: shared.setdefault(id(v), _SyncContext(v, portal)) for k, v in result.items()}
    return _bind(result, portal)


class _SyncContext(_Sync):
    """An async context manager used with `with`; its attributes stay readable."""

    def __enter__(self) -> Any:
        cm = self._portal.wrap_async_context_manager(self._target)
        object.__setattr__(self, "_cm", cm)
        entered = cm.__enter__()
        if entered is self._target:
            return self
        # an API deployment yields its OpenAI client: the blocking one here
        return getattr(self._target, "sync_client", entered)

    def __exit__(self, *exc: Any) -> Any:
        return self._cm.__exit__(*exc)


class _AsyncView(_Sync):
    """Awaitable view of a resource whose loop is the portal's: each call runs there from a
    worker thread, so the caller's own event loop (asyncio.run, jupyter) stays free."""

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._target, name)
        if inspect.iscoroutinefunction(attr):
            async def call(*args: Any, **kwargs: Any) -> Any:
                import anyio

                return await anyio.to_thread.run_sync(
                    self._portal.call, partial(attr, *args, **kwargs)
                )
            return call
        if _is_resource(attr):
            return _AsyncView(attr, self._portal)
        return attr


class OpenWeights(_Sync):
    """Blocking client: `OpenWeights(url=None, org=None)`; see `AsyncOpenWeights`."""

    def __init__(self, url: str | None = None, org: str | None = None, **kwargs: Any):
        cm = start_blocking_portal()
        portal = cm.__enter__()
        client = portal.call(partial(AsyncOpenWeights, url, org, **kwargs))
        super().__init__(client, portal)
        client.spawn = portal.start_task_soon  # background tasks (chat's deployments' leases)
        object.__setattr__(self, "_cm", cm)
        object.__setattr__(self, "_closed", False)
        if client.config.run_id:  # inside a job: logged records leave within a flush interval
            object.__setattr__(
                self, "_flusher", portal.start_task_soon(client.run.flush_periodically)
            )
        atexit.register(self.close)

    @property
    def async_chat(self) -> Any:
        """The chat client for `await ow.async_chat.completions.create(...)` in any event loop."""
        return _AsyncView(self._target.chat, self._portal)

    @property
    def chat(self) -> Any:
        """`ow.chat`: blocking, or the async client when created with `use_async=True`."""
        if self._target.use_async:
            return self.async_chat
        return _Sync(self._target.chat, self._portal)

    def close(self) -> None:
        """Flush run logs, close the connection and stop the background loop. Idempotent."""
        if self._closed:
            return
        object.__setattr__(self, "_closed", True)
        atexit.unregister(self.close)
        flusher = self.__dict__.get("_flusher")
        if flusher is not None:
            flusher.cancel()
        try:
            self._portal.call(self._target.close)
        finally:
            self._cm.__exit__(None, None, None)

    def __enter__(self) -> OpenWeights:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
