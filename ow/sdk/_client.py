"""`AsyncOpenWeights`: the one implementation of the SDK. `OpenWeights` (in `_sync.py`) wraps it.

The client connects lazily on first use (so constructing it never blocks), provisions the
streams once, and exposes resources as attributes: `files`, `jobs`, `events`, `metrics`,
`run`, and one attribute per `@register`ed job type (`ow.addition.create(...)`).

Imports: `ow.core` and the sibling `ow.sdk` modules.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from functools import cached_property
from typing import TYPE_CHECKING, Any

import anyio

from ow.core.config import Config, from_env
from ow.sdk._compat import client_kwargs
from ow.sdk._jobs import JobFold

if TYPE_CHECKING:  # the bus imports nats (and aiohttp): connect() loads it on first use
    from ow.core import bus as bus_mod
    from ow.core.blobs import BlobStore
    from ow.sdk._api import AsyncApi, TemporaryApi
    from ow.sdk._chat import AsyncChat
    from ow.sdk._events import AsyncEvents, AsyncMetrics
    from ow.sdk._files import AsyncFiles
    from ow.sdk._jobs import AsyncJobsResource
    from ow.sdk._run import AsyncRun
    from ow.sdk._runs import AsyncRuns

__all__ = ["AsyncOpenWeights"]

log = logging.getLogger(__name__)


class AsyncOpenWeights:
    """Async client for `ow`: files, jobs, runs, events, metrics, registered job types."""

    def __init__(
        self,
        url: str | None = None,
        org: str | None = None,
        *,
        token: str | None = None,
        env: Mapping[str, str] | None = None,
        **overrides: Any,
    ):
        overrides, options = client_kwargs(overrides)  # openweights' spellings too
        overrides = {"url": url, "org": org, "token": token} | {
            k: v for k, v in overrides.items() if v is not None
        }
        self.config: Config = from_env(env, **overrides)
        self.deploy_kwargs: dict[str, Any] = dict(options.get("deploy_kwargs") or {})
        self.use_async = bool(options.get("use_async"))
        self._bus: bus_mod.Bus | None = None
        self._lock = anyio.Lock()
        self.deployments: dict[str, TemporaryApi] = {}  # model -> the deployment serving it
        self.job_fold = JobFold()  # every job of the org, folded as far as read (jobs.list)
        #: starts a background task on the loop that outlives a call (the sync facade's
        #: portal sets it: chat's deployments' leases); None with the async client
        self.spawn: Callable[..., Any] | None = None

    @property
    def org(self) -> str:
        return self.config.org

    async def bus(self) -> bus_mod.Bus:
        """The connected, provisioned bus (connects on first call)."""
        if self._bus is None:
            async with self._lock:
                if self._bus is None:
                    from ow.core import bus as bus_mod

                    b = await bus_mod.connect(
                        self.config.url, org=self.config.org, token=self.config.token,
                        actor=self.config.run_id or "sdk", name="ow-sdk",
                    )
                    if b.run is None:  # a run's agent provisioned; a run reads no stream info
                        await b.provision(self.config.replicas)
                    self._bus = b
        return self._bus

    async def close(self) -> None:
        """Flush buffered run logs and close the connection. Idempotent."""
        if "run" in self.__dict__:
            await self.run.end()
        if "chat" in self.__dict__:  # deployments it started on first use
            await self.chat.close()
        if self._bus is not None:
            bus, self._bus = self._bus, None
            await bus.close()

    async def __aenter__(self) -> AsyncOpenWeights:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # --- resources -----------------------------------------------------------------

    @cached_property
    def blobs(self) -> BlobStore:
        from ow.core.blobs import store_for

        return store_for(self.config, self.bus)

    @cached_property
    def files(self) -> AsyncFiles:
        from ow.sdk._files import AsyncFiles

        return AsyncFiles(self)

    @cached_property
    def jobs(self) -> AsyncJobsResource:
        from ow.sdk._jobs import AsyncJobsResource

        return AsyncJobsResource(self)

    @cached_property
    def runs(self) -> AsyncRuns:
        from ow.sdk._runs import AsyncRuns

        return AsyncRuns(self)

    @cached_property
    def events(self) -> AsyncEvents:
        from ow.sdk._events import AsyncEvents

        return AsyncEvents(self)

    @cached_property
    def metrics(self) -> AsyncMetrics:
        from ow.sdk._events import AsyncMetrics

        return AsyncMetrics(self)

    @cached_property
    def api(self) -> AsyncApi:
        from ow.sdk._api import AsyncApi

        return AsyncApi(self)

    @cached_property
    def chat(self) -> AsyncChat:
        from ow.sdk._chat import AsyncChat

        return AsyncChat(self)

    @property
    def async_chat(self) -> AsyncChat:
        """openweights' name for the chat client when used with await (here: `chat`)."""
        return self.chat

    @cached_property
    def run(self) -> AsyncRun:
        from ow.sdk._run import AsyncRun

        return AsyncRun(self)

    def __getattr__(self, name: str) -> Any:
        """`ow.<registered job name>`: the creator for that job type."""
        from ow.sdk._registry import job_type

        if name.startswith("_"):
            raise AttributeError(name)
        cls = job_type(name)
        if cls is None:
            raise AttributeError(
                f"'AsyncOpenWeights' has no attribute {name!r}: no job type {name!r} is "
                "registered (decorate a Jobs subclass with @register(name), or import the "
                "module that does)"
            )
        creator = cls(self)
        self.__dict__[name] = creator
        return creator
