"""`ow.api.deploy(model)`: a temporary OpenAI-compatible server running as a job.

`TemporaryApi` submits the `api` job (the built-in job type of `payloads.jobs`), waits until
its run logs `{"status": "ready", "base_url": ...}` and the server answers `/health`, and
holds a lease on it: `JobTimeoutExtended` 15 minutes ahead, renewed every minute while its
`async with` block is open (and by every chat request through it), so a client that dies
leaves a server that stops within 15 minutes. On exit it cancels the job. Entering it yields
an OpenAI client (the `openai` package's, pointed at the server: `AsyncOpenAI` for `async
with`, `OpenAI` for `with`), as openweights does; the deployment stays reachable as the
client's `.deployment`. The same model deployed twice is the same job (content ids), so a
second deploy of a running API reuses it. `multi_deploy` gives one server per base model,
LoRA adapters of the same base sharing it.

Imports: anyio, `ow.core`, sibling sdk modules; the `openai` package lazily.
"""

from __future__ import annotations

import contextlib
import json
import logging
import urllib.request
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio

from ow.core import events as ev
from ow.core import subjects
from ow.core.errors import ApiError, JobFailedError, OWError, UnsupportedError, ValidationError
from ow.core.state import TERMINAL
from ow.sdk._registry import job_type
from ow.sdk._resource import AsyncResource

if TYPE_CHECKING:
    from ow.sdk._client import AsyncOpenWeights

__all__ = ["LEASE_S", "RENEW_S", "AsyncApi", "TemporaryApi", "base_model_of"]

log = logging.getLogger(__name__)

#: a deployment's lease (openweights' 15 minutes) and how often a live client renews it
LEASE_S = 15 * 60.0
RENEW_S = 60.0


def base_model_of(model: str) -> str:
    """The base model of a LoRA adapter directory (its adapter_config.json), else the model."""
    config = Path(model).expanduser() / "adapter_config.json"
    if config.is_file():
        return json.loads(config.read_text()).get("base_model_name_or_path") or model
    return model


class TemporaryApi:
    """A deployment: `async with api:` (or `up()` / `down()`); `base_url`, `api_key`, `models`."""

    def __init__(
        self,
        client: AsyncOpenWeights,
        model: str,
        lora_adapters: list[str] | None = None,
        *,
        max_model_len: int = 2048,
        requires_vram_gb: float | None = None,
        timeout_s: float = LEASE_S,
        **params: Any,
    ):
        self.client = client
        self.model = model
        self.lora_adapters = list(lora_adapters or [])
        self.max_model_len = max_model_len
        self.requires_vram_gb = requires_vram_gb
        self.timeout_s = timeout_s
        self.params = params  # the rest of the api job's params (max_num_seqs, host, …)
        self.job_id = ""
        self._renewed = 0.0  # anyio.current_time() of the last lease renewal
        self.base_url = ""
        self.api_key = "EMPTY"  # the local server takes no key; vLLM's ignores it
        self.models: list[str] = []

    async def up(self, timeout: float = 600) -> TemporaryApi:  # noqa: ASYNC109
        """Submit (or reuse) the API job and wait until it serves."""
        creator = job_type("api")
        if creator is None:
            raise UnsupportedError(
                "the built-in `api` job type is not available (payloads not installed)"
            )
        params: dict[str, Any] = {
            "port": 0, **self.params, "model": self.model, "lora_adapters": self.lora_adapters,
            "max_model_len": self.max_model_len,
        }
        if self.requires_vram_gb is not None:
            params["requires_vram_gb"] = self.requires_vram_gb
        job = await creator(self.client).create(**params)
        self.job_id = job.id
        await self.extend()
        with anyio.fail_after(timeout):
            ready = await self._wait_ready()
        self.base_url = ready["base_url"]
        self.models = list(ready.get("models") or [self.model, *self.lora_adapters])
        await anyio.to_thread.run_sync(_health, self.base_url)
        self.client.deployments.update({m: self for m in self.models})
        log.info("api job_id=%s serves %s at %s", self.job_id, self.models, self.base_url)
        return self

    async def _wait_ready(self) -> dict[str, Any]:
        """The ready record of the job's run; fails if the job ends first, and at once (the
        job canceled) with UnschedulableError when the scheduler says nothing here can run it."""
        from ow.core.errors import UnschedulableError
        from ow.sdk import _pending

        bus = await self.client.bus()
        subject = subjects.job_subject(bus.org, self.job_id)
        box: dict[str, Any] = {"state": (await self.client.jobs.current(self.job_id))[0]}

        def say(n: ev.SchedulerNoticed) -> None:
            log.warning("api job %s is pending: %s", self.job_id, n.message)

        async with anyio.create_task_group() as outer:
            async def stuck() -> None:
                box["stuck"] = await _pending.watch(bus, self.job_id, lambda: box["state"], say, 0)
                outer.cancel_scope.cancel()

            outer.start_soon(stuck)
            while True:
                state, last = await self.client.jobs.current(self.job_id)
                box["state"] = state
                if state.status in TERMINAL:  # raised outside the task group: no group
                    run_id = state.runs[-1].run_id if state.runs else ""
                    box["ended"] = JobFailedError(self.job_id, run_id, state.error or state.status)
                    outer.cancel_scope.cancel()
                    break
                found: dict[str, Any] = {}
                async with anyio.create_task_group() as tg:
                    if state.status == "in_progress":
                        tg.start_soon(self._ready_of, state.runs[-1].run_id, found,
                                      tg.cancel_scope)
                    async for _ in bus.subscribe(subject, start_seq=last + 1):
                        break  # the job moved: look again (unless the server got ready first)
                    tg.cancel_scope.cancel()
                if found:
                    outer.cancel_scope.cancel()
                    return found
        if "ended" in box:
            raise box["ended"]
        with anyio.CancelScope(shield=True):
            await self.client.jobs.cancel(self.job_id)  # nobody will ever serve it: no leftover
        raise UnschedulableError(self.job_id, box["stuck"].message)

    async def _ready_of(self, run_id: str, found: dict[str, Any], scope: Any) -> None:
        async for item in self.client.metrics.subscribe(run_id):
            if item["data"].get("status") == "ready":
                found.update(item["data"])
                scope.cancel()
                return

    async def extend(self) -> None:
        """Renew the lease: the job's deadline `timeout_s` from now."""
        bus = await self.client.bus()
        until = ev.now() + timedelta(seconds=self.timeout_s)
        await bus.publish(ev.JobTimeoutExtended(job_id=self.job_id, until=until))
        self._renewed = anyio.current_time()

    async def renew_if_due(self) -> None:
        """Renew the lease if the last renewal is `RENEW_S` old (a request is a sign of life)."""
        if self.job_id and anyio.current_time() - self._renewed >= self._every:
            try:
                await self.extend()
            except OWError as exc:
                log.warning("could not extend api job_id=%s: %s", self.job_id, exc)

    @property
    def _every(self) -> float:
        return min(RENEW_S, self.timeout_s / 4)

    async def keep_alive(self) -> None:
        """Renew the lease every `RENEW_S` until cancelled."""
        while True:
            await anyio.sleep(self._every)
            await self.renew_if_due()

    @property
    def async_client(self) -> Any:
        """An `openai.AsyncOpenAI` pointed at this deployment (after `up()`)."""
        return self._openai_client("AsyncOpenAI")

    @property
    def sync_client(self) -> Any:
        """An `openai.OpenAI` pointed at this deployment (after `up()`)."""
        return self._openai_client("OpenAI")

    def _openai_client(self, kind: str) -> Any:
        if not self.base_url:
            raise ApiError(f"the deployment of {self.model} is not up; enter it or call up()")
        cached = self.__dict__.get(f"_{kind}")
        if cached is None:
            import openai

            cached = getattr(openai, kind)(base_url=self.base_url, api_key=self.api_key,
                                           max_retries=1, timeout=1800)
            cached.deployment = self
            self.__dict__[f"_{kind}"] = cached
        return cached

    async def down(self) -> None:
        """Stop the server (cancel its job). Idempotent."""
        for m in self.models:
            if self.client.deployments.get(m) is self:
                del self.client.deployments[m]
        # close the openai clients here: left to the garbage collector, an async one closes
        # its connections from whatever event loop runs then (and fails there)
        async_client = self.__dict__.pop("_AsyncOpenAI", None)
        if async_client is not None:
            await async_client.close()
        sync_client = self.__dict__.pop("_OpenAI", None)
        if sync_client is not None:
            sync_client.close()
        if self.job_id:
            await self.client.jobs.cancel(self.job_id)
            with contextlib.suppress(OWError):  # canceled (expected), or not gone in time
                await self.client.jobs.wait(self.job_id, timeout=15)

    async def __aenter__(self) -> Any:
        await self.up()
        self._tg = anyio.create_task_group()
        await self._tg.__aenter__()
        self._tg.start_soon(self.keep_alive)
        return self.async_client

    async def __aexit__(self, *exc: object) -> None:
        self._tg.cancel_scope.cancel()
        await self._tg.__aexit__(None, None, None)
        with anyio.CancelScope(shield=True):
            await self.down()


def _health(base_url: str) -> None:
    root = base_url.removesuffix("/v1")
    with urllib.request.urlopen(f"{root}/health", timeout=10) as resp:  # noqa: S310 - our server
        if resp.status != 200:
            raise ApiError(f"the API at {base_url} is not healthy (HTTP {resp.status})")


class AsyncApi(AsyncResource):
    """`ow.api`: deploy models as temporary OpenAI-compatible servers."""

    def deploy(
        self, model: str, lora_adapters: list[str] | None = None, **kwargs: Any
    ) -> TemporaryApi:
        """A deployment of `model`; enter it (`async with`/`with`) or call `up()`."""
        return TemporaryApi(self.client, model, lora_adapters, **kwargs)

    def multi_deploy(self, models: list[str], **kwargs: Any) -> dict[str, TemporaryApi]:
        """One deployment per base model; LoRA adapters of the same base share it."""
        if not models:
            raise ValidationError("multi_deploy needs at least one model")
        by_base: dict[str, list[str]] = {}
        for m in models:
            base = base_model_of(m)
            by_base.setdefault(base, [])
            if base != m:
                by_base[base].append(m)
        apis = {b: TemporaryApi(self.client, b, ads, **kwargs) for b, ads in by_base.items()}
        return {m: apis[base_model_of(m)] for m in models}
